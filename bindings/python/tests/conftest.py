"""pytest configuration for the fcgi_runtime package's unit suite (make py-test).

Run from bindings/python (``python -m pytest tests``), so the package under test is the
checkout's; FCGI_RUNTIME_LIB names the freshly built library."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
#: bindings/python: the package under test comes first on sys.path.
PACKAGE_ROOT = os.path.dirname(HERE)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

"""The package's type hints: mypy (bindings/python/mypy.ini) finds no error in fcgi_runtime
(the whole package and these tests fully annotated) and the package says it is typed."""

import os
import subprocess
import sys

import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_py_typed_marker() -> None:
    assert os.path.isfile(os.path.join(PACKAGE_ROOT, "fcgi_runtime", "py.typed"))


def test_mypy_finds_no_error() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("mypy is not installed (make py-venv installs it)")
        pytest.skip("mypy is not installed (make py-venv installs it)")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--no-incremental"],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, "mypy:\n" + r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout

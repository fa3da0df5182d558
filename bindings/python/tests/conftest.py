"""pytest configuration for the fcgi_runtime package's unit suite (make py-test).

Run from bindings/python (``python -m pytest tests``), so the package under test is the
checkout's; FCGI_RUNTIME_LIB names the freshly built library."""

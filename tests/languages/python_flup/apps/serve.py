"""python serve.py IMPL MODULE APP JSON_KWARGS

Serves hello_app.APP with flup's WSGIServer: IMPL `flup` imports it from flup 1.0.3
(`flup.server.MODULE`), IMPL `shim` from fcgi_runtime.flup (`fcgi_runtime.flup.server.MODULE`);
nothing else differs, which is the switch fcgi_runtime.flup promises. MODULE: fcgi, fcgi_fork
or fcgi_single. JSON_KWARGS: WSGIServer's keyword arguments (a list bindAddress becomes a
tuple)."""

import json
import sys
from importlib import import_module

import hello_app


def main() -> None:
    impl, module, app_name, kwargs_json = sys.argv[1:5]
    prefix = {"flup": "flup.server.", "shim": "fcgi_runtime.flup.server."}[impl]
    server_class = import_module(prefix + module).WSGIServer
    kwargs = json.loads(kwargs_json)
    if isinstance(kwargs.get("bindAddress"), list):
        kwargs["bindAddress"] = tuple(kwargs["bindAddress"])
    ret = server_class(getattr(hello_app, app_name), **kwargs).run()
    print("run returned %r" % (ret,), flush=True)


if __name__ == "__main__":
    main()

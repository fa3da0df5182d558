//! Language runtimes on the library, behind nginx:
//!
//! - `php`: PHP 8.2's own php-cgi and php-fpm relinked on the native face (`make php` builds
//!   them in target/php/; without it the tests skip, and fail under CI=true);
//! - `python_wsgi`, `python_asgi`, `python_logging`: bindings/python (`python3 -m fcgi_runtime`),
//!   WSGI (Flask), ASGI (Starlette and FastAPI from PyPI, in target/py-venv) and its log
//!   through Python's `logging`; `python_workers`: its `--workers` on the library's pool;
//! - `python_wheel`: the package's wheel and sdist (`make wheel`, `make sdist`) installed into a
//!   fresh virtual environment, serving on the library they carry;
//! - `python_flup`: flup 1.0.3 beside bindings/python's flup shim (`fcgi_runtime.flup`), the same
//!   application behind nginx, and the throughput comparison (ignored);
//! - `perl_plack`: Perl's FCGI module and Plack::Handler::FCGI on the libfcgi drop-in.
//!
//! Run: `cargo test --release --test languages` (tests/README.md maps tests to what they cover).

#[path = "../harness/mod.rs"]
mod harness;
mod perl_plack;
mod php;
mod python_asgi;
mod python_flup;
mod python_logging;
mod python_wheel;
mod python_workers;
mod python_wsgi;

"""flup 1.0.3's ``flup.server`` FastCGI modules on fcgi_runtime: ``fcgi`` (threads),
``fcgi_fork`` (worker processes), ``fcgi_single`` (one thread), ``fcgi_base`` (constants)."""

"""The server's log, through Python's ``logging``: loggers under ``fcgi_runtime``.

``configure()`` is what the command line calls once at start (``--log-level``,
``--log-config``); an application embedding the servers configures ``logging`` itself."""

import logging
import logging.config
from typing import Optional

#: The package's root logger; the servers log under it.
logger = logging.getLogger("fcgi_runtime")


def configure(level: Optional[str] = None, config_file: Optional[str] = None) -> None:
    """Sets up ``logging`` for the command line: `config_file` (``.json``: a dictConfig
    dictionary; else an INI file for fileConfig) when given, else one stderr handler on the
    package's logger at `level` (default ``info``)."""
    if config_file:
        if config_file.endswith(".json"):
            import json

            with open(config_file) as f:
                logging.config.dictConfig(json.load(f))
        else:
            logging.config.fileConfig(config_file, disable_existing_loggers=False)
    elif not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("fcgi_runtime: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    if level:
        logger.setLevel(level.upper())
    elif logger.level == logging.NOTSET and not config_file:
        logger.setLevel(logging.INFO)

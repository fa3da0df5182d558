"""fcgi_runtime.log: the library's levels, the hook, the threshold given to the library and
configure() (the end-to-end test is tests/languages/python_logging.rs)."""

import ctypes
import json
import logging
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from fcgi_runtime import log


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def library_records() -> Iterator[List[logging.LogRecord]]:
    keep = _Keep()
    lg = log.library_logger
    old_level = lg.level
    lg.addHandler(keep)
    lg.setLevel(logging.DEBUG)
    try:
        yield keep.records
    finally:
        lg.removeHandler(keep)
        lg.setLevel(old_level)


def test_levels_map_onto_logging() -> None:
    assert log.LEVELS == {
        1: logging.DEBUG,
        2: logging.INFO,
        3: logging.WARNING,
        4: logging.ERROR,
        5: logging.CRITICAL,
    }


@pytest.mark.parametrize(
    "level, name",
    [
        (logging.NOTSET, "debug"),
        (logging.DEBUG, "debug"),
        (15, "notice"),
        (logging.INFO, "notice"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "alert"),
        (100, "alert"),
    ],
)
def test_library_threshold(level: int, name: str) -> None:
    assert log.library_threshold(level) == name


def test_hook_logs_the_line_at_the_mapped_level(
    library_records: List[logging.LogRecord],
) -> None:
    text = "protocol error from 127.0.0.1: caf\xe9".encode("utf-8")
    buf = ctypes.create_string_buffer(text + b"trailing bytes not part of the line")
    for level in (1, 2, 3, 4, 5, 9):
        log._HOOK(level, ctypes.addressof(buf), len(text), None)
    got = [(r.name, r.levelno, r.getMessage()) for r in library_records]
    line = "protocol error from 127.0.0.1: caf\xe9"
    assert got == [
        ("fcgi_runtime.library", logging.DEBUG, line),
        ("fcgi_runtime.library", logging.INFO, line),
        ("fcgi_runtime.library", logging.WARNING, line),
        ("fcgi_runtime.library", logging.ERROR, line),
        ("fcgi_runtime.library", logging.CRITICAL, line),
        # An unknown level: a warning rather than nothing.
        ("fcgi_runtime.library", logging.WARNING, line),
    ]


def test_hook_never_raises_into_the_library(
    library_records: List[logging.LogRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*_args: object, **_kw: object) -> None:
        raise RuntimeError("a handler that fails")

    unraisable: List[object] = []
    monkeypatch.setattr(log.library_logger, "log", boom)
    # An exception that leaves a ctypes callback goes to sys.unraisablehook ("Exception
    # ignored on calling ctypes callback function"): nothing may reach it.
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    buf = ctypes.create_string_buffer(b"x")
    log._HOOK(3, ctypes.addressof(buf), 1, None)
    assert unraisable == []


def test_configure_json_keeps_the_package_loggers(tmp_path: Path) -> None:
    """A dictConfig that names only the root logger: the package's loggers, created at import,
    stay enabled (disable_existing_loggers defaults to false here)."""
    out = tmp_path / "out.log"
    cfg = {
        "version": 1,
        "formatters": {"f": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(out), "formatter": "f"}
        },
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps(cfg))
    pkg = logging.getLogger("fcgi_runtime")
    saved = (pkg.level, pkg.propagate, list(pkg.handlers))
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    try:
        log.configure("warning", str(path))
        assert pkg.level == logging.WARNING
        logging.getLogger("fcgi_runtime.server").info("an info line")
        logging.getLogger("fcgi_runtime.server").warning("a warning line")
        for h in root.handlers:
            h.flush()
        assert out.read_text() == "fcgi_runtime.server WARNING a warning line\n"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        root.setLevel(saved_root[0])
        for h in saved_root[1]:
            root.addHandler(h)
        pkg.setLevel(saved[0])
        pkg.propagate = saved[1]
        pkg.handlers[:] = saved[2]


def test_command_line_format_keeps_the_former_texts() -> None:
    fmt = log._CommandLineFormatter()
    server = logging.LogRecord("fcgi_runtime.server", logging.INFO, "", 0, "stopped", None, None)
    library = logging.LogRecord(
        "fcgi_runtime.library", logging.WARNING, "", 0, "%s", ("protocol error",), None
    )
    assert fmt.format(server) == "fcgi_runtime: stopped"
    assert fmt.format(library) == "fcgi-runtime: WARNING: protocol error"

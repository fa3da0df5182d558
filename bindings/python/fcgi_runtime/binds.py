"""gunicorn's ``--bind`` forms, mapped onto the library's listening addresses.

- ``unix:PATH``: a Unix socket at PATH (the library's form is the bare path);
- ``fd://N``: a listening socket the process inherited on descriptor N (systemd, a spawner);
- ``HOST:PORT``, ``[V6]:PORT``, ``:PORT``, ``PORT``, a bare path: passed to the library
  (fcgi_listen) as they are.
"""

import os
import socket
from typing import NamedTuple, Optional


class Bind(NamedTuple):
    """One ``--bind``: `text` as given; `address` for fcgi_listen, or `fd` inherited."""

    text: str
    address: Optional[str]
    fd: Optional[int]


def parse(text: str) -> Bind:
    """Parses one ``--bind`` value. Raises ValueError for a malformed ``unix:`` or ``fd://``."""
    if text.startswith("fd://"):
        num = text[len("fd://"):]
        if not num.isdigit():
            raise ValueError("%r: fd://N wants a descriptor number" % (text,))
        return Bind(text, None, int(num))
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]  # unix://PATH, as some write it
        if not path:
            raise ValueError("%r: unix:PATH wants a path" % (text,))
        return Bind(text, path, None)
    if not text:
        raise ValueError("an empty --bind address")
    return Bind(text, text, None)


def is_listening(fd: int) -> bool:
    """Whether descriptor `fd` is a listening socket (SO_ACCEPTCONN)."""
    try:
        dup = os.dup(fd)
    except OSError:
        return False
    try:
        s = socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return False
    try:
        return bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False
    finally:
        s.close()


def check_fd(b: Bind) -> int:
    """The inherited descriptor of an ``fd://N`` bind; OSError when it is not a listening
    socket."""
    assert b.fd is not None
    if not is_listening(b.fd):
        raise OSError("--bind %s: descriptor %d is not a listening socket" % (b.text, b.fd))
    return b.fd

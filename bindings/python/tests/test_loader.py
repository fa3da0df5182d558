"""_lib.load: FCGI_RUNTIME_LIB naming the real library, libc (a library without the native
API: LibraryNotFound), a missing file; the prototypes it declares."""

import ctypes
import ctypes.util
import os
from typing import Iterator

import pytest

from fcgi_runtime import _lib
from fcgi_runtime._lib import LibraryNotFound

REAL = os.environ.get("FCGI_RUNTIME_LIB", "")


@pytest.fixture(autouse=True)
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test loads anew (load() caches the library it found)."""
    monkeypatch.setattr(_lib, "_LIB", None)
    yield


def real_library() -> str:
    if not REAL or not os.path.exists(REAL):
        pytest.fail("FCGI_RUNTIME_LIB must name the built libfcgi.so (make py-test sets it)")
    return REAL


def libc_path() -> str:
    name = ctypes.util.find_library("c")
    assert name, "no libc found"
    # An absolute path, so the existence check runs too.
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return name


def test_loads_the_library_named_by_fcgi_runtime_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    path = real_library()
    monkeypatch.setenv("FCGI_RUNTIME_LIB", path)
    lib = _lib.load()
    assert lib.path == path
    assert _lib.load() is lib  # cached
    # The prototypes are declared: a limit round-trips through the real library.
    assert lib.fcgi_get_limit(_lib.FCGI_LIMIT_OUTPUT_BUFFER_BYTES) > 0
    assert lib.fcgi_request_role(None) == -1
    assert lib.fcgi_accept_request.restype is ctypes.c_int
    assert lib.fcgi_read.argtypes == [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]


def test_libc_is_not_fcgi_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    path = libc_path()
    monkeypatch.setenv("FCGI_RUNTIME_LIB", path)
    with pytest.raises(LibraryNotFound) as e:
        _lib.load()
    msg = str(e.value)
    assert "not fcgi-runtime (no fcgi_accept_request)" in msg
    assert path in msg and "FCGI_RUNTIME_LIB" in msg


def test_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(os.fspath(tmp_path), "no-such-libfcgi.so")
    monkeypatch.setenv("FCGI_RUNTIME_LIB", path)
    with pytest.raises(LibraryNotFound) as e:
        _lib.load()
    assert "%s (FCGI_RUNTIME_LIB): no such file" % path in str(e.value)
    assert isinstance(e.value, OSError)


def test_a_file_that_is_not_a_library(monkeypatch: pytest.MonkeyPatch, tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(os.fspath(tmp_path), "libfcgi.so")
    with open(path, "w") as f:
        f.write("not an ELF file\n")
    monkeypatch.setenv("FCGI_RUNTIME_LIB", path)
    with pytest.raises(LibraryNotFound) as e:
        _lib.load()
    assert path in str(e.value)


def test_fcgi_runtime_lib_is_the_only_candidate_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FCGI_RUNTIME_LIB", "/nonexistent/libfcgi.so")
    assert [how for _, how in _lib._candidates()] == ["FCGI_RUNTIME_LIB"]


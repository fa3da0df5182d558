"""environ building: server._load_params (fcgi_getenv_all's block split into a dict) and
Server._environ (PEP 3333's keys, nginx's duplicates, SCRIPT_NAME/PATH_INFO, the scheme)."""

import threading
from typing import Any, Dict, List

import pytest

from fakes import REQ, FakeLib
from fcgi_runtime import server
from fcgi_runtime.server import ErrorStream, InputStream, Server, _Exchange, _load_params


def environ(params: Dict[str, str], script_name: str = "", role: int = 1) -> Dict[str, Any]:
    lib = FakeLib(params, role=role)
    # Server.__init__ loads the library; _environ only needs script_name.
    srv = object.__new__(Server)
    srv.script_name = script_name.rstrip("/")
    setattr(srv, "multiprocess", False)  # read by _environ in the workers branch
    return srv._environ(lib, REQ, _Exchange(lib, REQ))


NGINX = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "/app/users/7",
    "DOCUMENT_URI": "/app/users/7",
    "REQUEST_URI": "/app/users/7?x=1",
    "QUERY_STRING": "x=1",
    "SERVER_NAME": "example.org",
    "SERVER_PORT": "8080",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "CONTENT_TYPE": "",
    "CONTENT_LENGTH": "",
    "HTTP_HOST": "example.org:8080",
}


def test_load_params_splits_the_block_and_keeps_latin1() -> None:
    lib = FakeLib({"A": "1", "EMPTY": "", "B": "caf\xe9", "HTTP_X": "a=b"})
    assert _load_params(lib, REQ) == {"A": "1", "EMPTY": "", "B": "caf\xe9", "HTTP_X": "a=b"}


def test_load_params_with_no_params_is_empty() -> None:
    assert _load_params(FakeLib({}), REQ) == {}


def test_load_params_grows_its_buffer_for_a_large_block() -> None:
    big = {"HTTP_COOKIE": "c" * 40000, "A": "1"}
    lib = FakeLib(big)
    got: List[Dict[str, str]] = []
    # A fresh thread: its buffer starts at the default size.
    t = threading.Thread(target=lambda: got.append(_load_params(lib, REQ)))
    t.start()
    t.join()
    assert got == [big]
    need = len(lib.block())
    assert lib.getenv_calls == [server._ENV_BUF_SIZE, need]


def test_nginx_default_whole_path_in_script_name_becomes_path_info() -> None:
    env = environ(NGINX)
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/app/users/7"
    assert env["QUERY_STRING"] == "x=1"
    assert env["SERVER_NAME"] == "example.org" and env["SERVER_PORT"] == "8080"


def test_script_name_option_strips_the_mount_point() -> None:
    env = environ(NGINX, script_name="/app/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/7")
    # A path outside the mount point is left whole.
    env = environ(dict(NGINX, SCRIPT_NAME="/other", DOCUMENT_URI="/other"), script_name="/app")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/other")


def test_web_server_split_is_kept_and_root_script_name_is_empty() -> None:
    env = environ(dict(NGINX, SCRIPT_NAME="/app", PATH_INFO="/users/7"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/7")
    env = environ(dict(NGINX, SCRIPT_NAME="/", PATH_INFO="/x"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/x")


def test_path_from_request_uri_is_percent_decoded_as_latin1() -> None:
    env = environ({"REQUEST_URI": "/a%20b/%C3%A9?q=%20"})
    assert env["PATH_INFO"] == "/a b/\xc3\xa9"


def test_defaults_for_a_bare_request() -> None:
    env = environ({})
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["QUERY_STRING"] == ""
    assert env["SERVER_NAME"] == "localhost" and env["SERVER_PORT"] == "80"
    assert env["PATH_INFO"] == "" and env["SCRIPT_NAME"] == ""
    assert env["wsgi.input_terminated"] is True


def test_server_addr_and_https_port_defaults() -> None:
    env = environ({"SERVER_ADDR": "10.0.0.1", "HTTPS": "on"})
    assert env["SERVER_NAME"] == "10.0.0.1"
    assert env["SERVER_PORT"] == "443"
    assert env["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize(
    "params,scheme",
    [
        ({"HTTPS": "on"}, "https"),
        ({"HTTPS": "1"}, "https"),
        ({"HTTPS": "off", "REQUEST_SCHEME": "https"}, "https"),
        ({"REQUEST_SCHEME": "HTTP"}, "http"),
        ({"REQUEST_SCHEME": "ftp"}, "http"),
        ({}, "http"),
    ],
)
def test_url_scheme(params: Dict[str, str], scheme: str) -> None:
    assert environ(params)["wsgi.url_scheme"] == scheme


def test_http_content_duplicates_folded_into_the_cgi_names() -> None:
    env = environ(
        {
            "CONTENT_TYPE": "text/plain",
            "HTTP_CONTENT_TYPE": "text/plain",
            "HTTP_CONTENT_LENGTH": "5",
        }
    )
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert "wsgi.input_terminated" not in env


@pytest.mark.parametrize("value", ["abc", "-3", ""])
def test_unusable_content_length_means_read_to_the_end(value: str) -> None:
    env = environ({"CONTENT_LENGTH": value})
    assert env["wsgi.input_terminated"] is True


def test_wsgi_keys_and_extensions() -> None:
    env = environ(NGINX, role=2)
    assert env["wsgi.version"] == (1, 0)
    assert isinstance(env["wsgi.input"], InputStream)
    assert isinstance(env["wsgi.errors"], ErrorStream)
    assert (env["wsgi.multithread"], env["wsgi.multiprocess"], env["wsgi.run_once"]) == (
        True,
        False,
        False,
    )
    assert env["wsgi.file_wrapper"] is server.FileWrapper
    assert env["fcgi.request_id"] == 1
    assert env["fcgi.role"] == "AUTHORIZER"
    assert env["fcgi.aborted"]() is False
    for key in env:
        assert type(key) is str

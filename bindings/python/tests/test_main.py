"""The command's application loader (__main__.load_app) and its argument checks."""

import os
import sys
import textwrap
from typing import Iterator

import pytest

from fcgi_runtime.__main__ import load_app, main


@pytest.fixture
def apps(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A directory on sys.path with test modules (unique names: imports are cached)."""
    d = os.fspath(tmp_path)
    files = {
        "lt_both.py": """
            def application(e, s): return [b"application"]
            def app(e, s): return [b"app"]
        """,
        "lt_app_only.py": "def app(e, s): return [b'app']\n",
        "lt_neither.py": "x = 1\n",
        "lt_nested.py": """
            class Holder:
                class Inner:
                    @staticmethod
                    def wsgi(e, s): return [b"nested"]
            not_callable = 42
        """,
    }
    for name, src in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(textwrap.dedent(src))
    monkeypatch.syspath_prepend(d)
    yield d
    for name in files:
        sys.modules.pop(name[:-3], None)


def test_module_alone_prefers_application(apps: str) -> None:
    assert load_app("lt_both")({}, None) == [b"application"]
    assert load_app("lt_app_only")({}, None) == [b"app"]


def test_module_with_neither_exits(apps: str) -> None:
    with pytest.raises(SystemExit, match="neither `application` nor `app`"):
        load_app("lt_neither")


def test_dotted_attribute(apps: str) -> None:
    assert load_app("lt_nested:Holder.Inner.wsgi")({}, None) == [b"nested"]


def test_not_callable_exits(apps: str) -> None:
    with pytest.raises(SystemExit, match="is not callable"):
        load_app("lt_nested:not_callable")


def test_missing_attribute_and_module(apps: str) -> None:
    with pytest.raises(AttributeError):
        load_app("lt_nested:nope")
    with pytest.raises(ImportError):
        load_app("lt_no_such_module:app")


def test_threads_must_be_positive(apps: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["lt_app_only:app", "--threads", "0"])
    assert e.value.code == 2
    assert "--threads must be at least 1" in capsys.readouterr().err

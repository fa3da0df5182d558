"""Builds fcgi_runtime with fcgi-runtime's shared library inside: fcgi_runtime/libfcgi.so, which
the package loads first (fcgi_runtime/_lib.py). The library is loaded with ctypes, it is no
CPython extension: the wheel is tagged py3-none-<platform>.

Where the library comes from, first that applies:
1. FCGI_RUNTIME_WHEEL_LIB: the path of an already built libfcgi.so, copied as it is (make
   wheel, with the one make build wrote);
2. rust/ beside this file (the sdist, assembled by tools/python-dist-stage.py): built there with
   `cargo build --release --locked -p fcgi-runtime-capi --lib`, without debug info unless
   CARGO_PROFILE_RELEASE_DEBUG says otherwise;
3. the checkout this file sits in (bindings/python of the repository): `cargo build --release`
   at its root, as make build does (nothing is rebuilt when make build is up to date).
An editable install (pip install -e) bundles nothing: it runs on the checkout's target/release.
cargo is CARGO, else cargo on PATH, else ~/.cargo/bin/cargo; CARGO_TARGET_DIR is honoured.
"""

import os
import shutil
import subprocess
from typing import List, Tuple

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel  # setuptools 70.1+
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = "libfcgi.so"
NO_CARGO = (
    "building fcgi_runtime from source needs Rust's cargo (Rust 1.85 or newer), to build "
    "fcgi-runtime's library libfcgi.so: install it (https://rustup.rs) or set CARGO to its path; "
    "or install the prebuilt wheel (make wheel in the repository writes dist/*.whl)"
)


def _cargo() -> str:
    for c in (
        os.environ.get("CARGO"),
        shutil.which("cargo"),
        os.path.expanduser(os.path.join("~", ".cargo", "bin", "cargo")),
    ):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise SystemExit("error: " + NO_CARGO)


def _is_checkout(root: str) -> bool:
    try:
        with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
            return 'name = "fcgi-runtime-capi"' in f.read()
    except OSError:
        return False


def _cargo_build() -> str:
    """Builds the library with cargo; returns the path of the libfcgi.so it wrote."""
    sdist = os.path.join(HERE, "rust")
    checkout = os.path.dirname(os.path.dirname(HERE))
    env = dict(os.environ)
    if os.path.isfile(os.path.join(sdist, "Cargo.toml")):
        ws = sdist
        args: List[str] = ["build", "--release", "--locked", "-p", "fcgi-runtime-capi", "--lib"]
        env.setdefault("CARGO_PROFILE_RELEASE_DEBUG", "0")
    elif _is_checkout(checkout):
        ws = checkout
        args = ["build", "--release"]
    else:
        raise SystemExit(
            "error: no Rust sources to build fcgi-runtime's library from: neither %s (an sdist "
            "made by make sdist) nor a checkout of the repository around %s" % (sdist, HERE)
        )
    cmd = [_cargo()] + args + ["--manifest-path", os.path.join(ws, "Cargo.toml")]
    print("fcgi_runtime: " + " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, env=env)
    except subprocess.CalledProcessError as e:
        raise SystemExit("error: cargo failed (exit status %d): %s" % (e.returncode, " ".join(cmd)))
    target = env.get("CARGO_TARGET_DIR") or os.path.join(ws, "target")
    path = os.path.join(os.path.abspath(target), "release", LIB)
    if not os.path.isfile(path):
        raise SystemExit("error: cargo succeeded but wrote no %s" % path)
    return path


def library() -> str:
    """The libfcgi.so to bundle."""
    prebuilt = os.environ.get("FCGI_RUNTIME_WHEEL_LIB")
    if prebuilt:
        if not os.path.isfile(prebuilt):
            raise SystemExit("error: FCGI_RUNTIME_WHEEL_LIB=%s: no such file" % prebuilt)
        return prebuilt
    return _cargo_build()


class BuildPy(build_py):
    """The package, plus the library beside _lib.py."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # pip install -e: the package runs from the checkout, on its target/release.
            return
        self.copy_file(library(), os.path.join(self.build_lib, "fcgi_runtime", LIB))


class BinaryDistribution(Distribution):
    """Not pure: the package goes to platlib (auditwheel checks it there)."""

    def has_ext_modules(self) -> bool:
        return True


class BdistWheel(bdist_wheel):
    """A platform wheel (it carries a native library) for any Python 3: py3-none-<platform>."""

    def get_tag(self) -> Tuple[str, str, str]:
        plat = super().get_tag()[2]
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel}, distclass=BinaryDistribution)

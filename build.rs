//! 1. Generates include/fcgi.h from the native API (src/ffi/native*.rs) with cbindgen. The
//!    header is committed; `make check-header` fails when it is stale.
//! 2. Compiles csrc/printf.c, the C bodies of libfcgi's variadic functions.
//! 3. Gives the shared library libfcgi's SONAME, libfcgi.so.0, so programs linked against
//!    either library ask for the same file.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/printf.c");
    cc::Build::new()
        .file("csrc/printf.c")
        .flag_if_supported("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .compile("fcgi_cshim");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfcgi.so.0");
    }

    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let srcs = [
        "src/ffi/native_types.rs",
        "src/ffi/native.rs",
        "src/ffi/native_embed.rs",
        "src/ffi/native_loop.rs",
        "src/ffi/pool.rs",
    ];
    for s in srcs {
        println!("cargo:rerun-if-changed={s}");
    }
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut builder = cbindgen::Builder::new().with_config(config);
    for s in srcs {
        builder = builder.with_src(dir.join(s));
    }
    let bindings = builder
        .generate()
        .expect("cbindgen failed to generate include/fcgi.h");
    let out = dir.join("include/fcgi.h");
    let mut new = Vec::new();
    bindings.write(&mut new);
    // Only touch the file when it changes, so builds do not loop and mtimes stay stable.
    if std::fs::read(&out).ok().as_deref() != Some(&new[..]) {
        std::fs::create_dir_all(dir.join("include")).expect("create include/");
        std::fs::write(&out, &new).expect("write include/fcgi.h");
    }
}

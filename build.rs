//! 1. Generates include/fcgi.h from the native API (src/ffi/native*.rs) with cbindgen. The
//!    header is committed and the build only checks it (a cargo warning when it differs; `make
//!    check-header` fails, `make header` rewrites it).
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
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    // The header is checked, not rewritten: the build leaves the source tree alone. The
    // generated copy goes to OUT_DIR and beside the library (target/<profile>/fcgi.h.generated,
    // what `make check-header` compares); `make header` (FCGI_UPDATE_HEADER=1) writes it to
    // include/fcgi.h.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("fcgi.h"), &generated).expect("write OUT_DIR/fcgi.h");
    // OUT_DIR is target/<profile>/build/<package>-<hash>/out.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let copy = profile_dir.join("fcgi.h.generated");
        if std::fs::read(&copy).ok().as_deref() != Some(&generated[..]) {
            std::fs::write(&copy, &generated).expect("write fcgi.h.generated");
        }
    }
    println!("cargo:rerun-if-changed=include/fcgi.h");
    println!("cargo:rerun-if-env-changed=FCGI_UPDATE_HEADER");
    let committed = dir.join("include/fcgi.h");
    if std::fs::read(&committed).ok().as_deref() != Some(&generated[..]) {
        if std::env::var_os("FCGI_UPDATE_HEADER").is_some_and(|v| v == "1") {
            std::fs::write(&committed, &generated).expect("write include/fcgi.h");
        } else {
            println!(
                "cargo:warning=include/fcgi.h differs from the header src/ffi generates; run `make header` and commit it"
            );
        }
    }
}

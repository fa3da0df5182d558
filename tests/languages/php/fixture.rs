//! The PHP of `make php` for `tests/languages/php.rs`: finding the relinked build, its scripts, starting
//! php-fpm and php-cgi on free ports of 127.0.0.1 (on the library under test), and the nginx and
//! HAProxy configurations in front of them. Everything lives in a [`Fixture`] of
//! `tests/harness/fixture.rs`, so the processes die with the test and the logs are printed on failure.

use crate::harness;
use crate::harness::{tcp_ready, Fixture};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The scripts every test serves, written into `<fixture>/www/`.
const SCRIPTS: &[(&str, &str)] = &[
    (
        "hello.php",
        r#"<?php
header('Content-Type: text/plain');
echo "Hello from ", PHP_SAPI, " pid ", getmypid(), "\n";
"#,
    ),
    (
        "post.php",
        r#"<?php
$body = file_get_contents('php://input');
header('Content-Type: text/plain');
echo "len=", strlen($body), "\n";
echo "sha256=", hash('sha256', $body), "\n";
echo "method=", $_SERVER['REQUEST_METHOD'], "\n";
"#,
    ),
    (
        "upload.php",
        r#"<?php
header('Content-Type: text/plain');
foreach ($_POST as $k => $v) {
    echo "post $k=$v\n";
}
foreach ($_FILES as $k => $f) {
    $sum = $f['error'] === UPLOAD_ERR_OK ? hash_file('sha256', $f['tmp_name']) : '-';
    echo "file $k name=", $f['name'], " size=", $f['size'], " error=", $f['error'],
        " sha256=", $sum, "\n";
}
"#,
    ),
    (
        // `bytes` bytes of the alphabet, repeated, in writes of 65520 bytes (26 * 2520).
        "big.php",
        r#"<?php
header('Content-Type: application/octet-stream');
$chunk = str_repeat('abcdefghijklmnopqrstuvwxyz', 2520);
for ($left = (int)($_GET['bytes'] ?? 0); $left > 0; $left -= strlen($piece)) {
    $piece = substr($chunk, 0, min($left, strlen($chunk)));
    echo $piece;
}
"#,
    ),
    (
        "headers.php",
        r#"<?php
http_response_code((int)($_GET['code'] ?? 200));
header('X-Php-Test: ' . ($_GET['v'] ?? ''));
header('X-Multi: one');
header('X-Multi: two', false);
setcookie('php_test', 'cookie value');
if (isset($_GET['location'])) {
    header('Location: ' . $_GET['location']);
}
$h = getallheaders();
echo "x-req=", $h['X-Req'] ?? 'none', "\n";
"#,
    ),
    (
        // A fatal error before any output: PHP answers 500 (display_errors=0) and sends the
        // message on FCGI_STDERR.
        "fatal.php",
        r#"<?php
undefined_function_of_the_php_test();
"#,
    ),
    (
        // Answers, ends the request with fastcgi_finish_request, then waits (at most 20 s) for
        // the test to create ../release-<id> and records in ../done-<id> whether it saw it.
        "finish.php",
        r#"<?php
$id = basename($_GET['id'] ?? 'x');
echo "answered before the end, id ", $id, "\n";
fastcgi_finish_request();
$release = __DIR__ . "/../release-$id";
for ($i = 0; $i < 2000 && !file_exists($release); $i++) {
    usleep(10000);
}
file_put_contents(__DIR__ . "/../done-$id", file_exists($release) ? "released" : "timeout");
"#,
    ),
];

/// INI settings of every PHP process: room for the uploads and bodies of the tests, errors to
/// the log (FCGI_STDERR) instead of the page.
const INI: &[&str] = &[
    "upload_max_filesize=16M",
    "post_max_size=64M",
    "display_errors=0",
    "log_errors=1",
];

/// The relinked PHP of `make php`.
pub struct Php {
    pub prefix: PathBuf,
}

impl Php {
    /// `target/php` (or `FCGI_TEST_PHP_PREFIX`) when it has php-fpm and php-cgi. Otherwise
    /// None with the reason printed (the test is skipped), or, under `CI=true`, a panic:
    /// `make test` runs `make php` before the tests.
    pub fn find() -> Option<Php> {
        let prefix = match std::env::var_os("FCGI_TEST_PHP_PREFIX") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/php"),
        };
        let php = Php { prefix };
        let missing: Vec<PathBuf> = [php.fpm(), php.cgi()]
            .into_iter()
            .filter(|p| !p.exists())
            .collect();
        if missing.is_empty() {
            return Some(php);
        }
        let reason = format!(
            "no relinked PHP: {missing:?} missing (make php builds it; docs/sapi.md, section 5)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{reason}; make test builds it first under CI, so this fails instead of skipping"
            );
        }
        eprintln!("SKIPPED: {reason}");
        None
    }

    pub fn fpm(&self) -> PathBuf {
        self.prefix.join("sbin/php-fpm")
    }

    pub fn cgi(&self) -> PathBuf {
        self.prefix.join("bin/php-cgi")
    }
}

pub use crate::harness::wait_for;

/// `<fixture>/www` with [`SCRIPTS`] in it.
pub fn write_scripts(fx: &Fixture) -> PathBuf {
    let www = fx.path("www");
    fs::create_dir_all(&www).expect("create www");
    for (name, text) in SCRIPTS {
        fs::write(www.join(name), text).expect("write a PHP script");
    }
    www
}

fn ini_args(cmd: &mut Command) {
    for s in INI {
        cmd.arg("-d").arg(s);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Starts php-fpm in the foreground as `name`, its log on stderr (`<name>.err`), with one pool
/// `www` listening on a free port: `pm = static` with `children` workers, `catch_workers_output`
/// on, and the lines of `pool` added. Waits until it is ready and checks it runs on the library
/// under test. Returns the port.
pub fn start_fpm(fx: &mut Fixture, php: &Php, name: &str, children: u32, pool: &str) -> u16 {
    let conf = fx.path(&format!("{name}.conf"));
    let pid_file = fx.path(&format!("{name}.pid"));
    let fpm = php.fpm();
    let err = fx.path(&format!("{name}.err"));
    let port = fx.start_on_free_port(
        name,
        "Address already in use",
        |port| {
            fs::write(
                &conf,
                format!(
                    "[global]
error_log = /proc/self/fd/2
pid = {pid}
daemonize = no

[www]
listen = 127.0.0.1:{port}
pm = static
pm.max_children = {children}
catch_workers_output = yes
{pool}
",
                    pid = pid_file.display(),
                ),
            )
            .expect("write php-fpm.conf");
            let mut cmd = Command::new(&fpm);
            cmd.arg("-n").arg("-F").arg("-y").arg(&conf);
            if is_root() {
                cmd.arg("--allow-to-run-as-root");
            }
            ini_args(&mut cmd);
            cmd.env("LD_LIBRARY_PATH", harness::lib_dir())
                .stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    );
    // Listening comes first; the workers are forked before this line.
    fx.wait_ready(name, || {
        fs::read_to_string(&err).is_ok_and(|t| t.contains("ready to handle connections"))
    });
    let pid = fx.pid(name);
    fx.check_lib(pid, "php-fpm");
    port
}

/// No worker of the php-fpm started as `name` died on a signal or exited with an error: FPM's
/// master logs every child that ends ("child N exited on signal 11 (SIGSEGV)", "child N exited
/// with code 70"); a static pool's workers end only at a reload or a stop, with code 0.
pub fn check_fpm_workers(fx: &Fixture, name: &str) {
    let log = fs::read_to_string(fx.path(&format!("{name}.err"))).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("exited on signal")
                || l.split_once("exited with code ")
                    .is_some_and(|(_, rest)| !rest.starts_with("0 "))
        })
        .collect();
    fx.check(bad.is_empty(), || {
        format!("php-fpm's workers ended badly:\n{}", bad.join("\n"))
    });
}

/// Starts `php-cgi -b 127.0.0.1:PORT` as `name` with `PHP_FCGI_CHILDREN` and
/// `PHP_FCGI_MAX_REQUESTS`, on a free port; checks it runs on the library under test.
pub fn start_cgi(fx: &mut Fixture, php: &Php, name: &str, children: u32, max_requests: u32) -> u16 {
    let cgi = php.cgi();
    let port = fx.start_on_free_port(
        name,
        "Couldn't create FastCGI listen socket",
        |port| {
            let mut cmd = Command::new(&cgi);
            cmd.arg("-n").arg("-b").arg(format!("127.0.0.1:{port}"));
            ini_args(&mut cmd);
            cmd.env("PHP_FCGI_CHILDREN", children.to_string())
                .env("PHP_FCGI_MAX_REQUESTS", max_requests.to_string())
                .env("LD_LIBRARY_PATH", harness::lib_dir())
                .stdin(Stdio::null());
            cmd
        },
        |_, port| tcp_ready(port),
    );
    let pid = fx.pid(name);
    fx.check_lib(pid, "php-cgi");
    port
}

/// nginx in front of FastCGI servers: for each `(name, port)`, an upstream `<name>_keep` with
/// `keepalive 8` and the locations `/<name>-keep/<script>.php` (`fastcgi_keep_conn on`) and
/// `/<name>-nokeep/<script>.php` (a connection per request); SCRIPT_FILENAME is `www/<script>`.
pub fn start_nginx(fx: &mut Fixture, www: &Path, servers: &[(&str, u16)]) {
    let mut upstreams = String::new();
    let mut locations = String::new();
    for (name, port) in servers {
        upstreams.push_str(&format!(
            "    upstream {name}_keep {{\n        server 127.0.0.1:{port};\n        keepalive 8;\n    }}\n"
        ));
        for (kind, pass, keep) in [
            ("keep", format!("{name}_keep"), "on"),
            ("nokeep", format!("127.0.0.1:{port}"), "off"),
        ] {
            locations.push_str(&format!(
                r#"        location ~ ^/{name}-{kind}/(?<script>[a-z]+\.php)$ {{
            @PARAMS@
            fastcgi_param SCRIPT_FILENAME {www}/$script;
            fastcgi_pass {pass};
            fastcgi_keep_conn {keep};
        }}
"#,
                www = www.display(),
            ));
        }
    }
    fx.start_nginx(&upstreams, &locations);
}

/// HAProxy 2.6 in front of php-fpm on `port`: `/fpm-keep/<script>` through a FastCGI
/// connection kept between requests (`option keep-conn`, without multiplexing: docs/deploy.md's
/// setting for 2.6), `/fpm-nokeep/<script>` through one per request. Sets `fx.port`.
pub fn start_haproxy(fx: &mut Fixture, www: &Path, port: u16) {
    const HAPROXY: &str = "/usr/sbin/haproxy";
    crate::harness::require(HAPROXY, "haproxy");
    let cfg = fx.path("haproxy.cfg");
    let www = www.display().to_string();
    let front = fx.start_on_free_port(
        "haproxy",
        "Address already in use",
        |front| {
            fs::write(
                &cfg,
                format!(
                    r#"# generated by tests/languages/php/fixture.rs
global
    nbthread 1

defaults
    mode http
    timeout connect 10s
    timeout client 60s
    timeout server 60s

frontend web
    bind 127.0.0.1:{front}
    use_backend fpm_keep if {{ path_beg /fpm-keep/ }}
    use_backend fpm_nokeep if {{ path_beg /fpm-nokeep/ }}

fcgi-app php_keep
    docroot {www}
    option keep-conn
    no option mpxs-conns
    no option get-values

fcgi-app php_nokeep
    docroot {www}
    no option keep-conn
    no option get-values

backend fpm_keep
    use-fcgi-app php_keep
    http-request replace-path /fpm-keep(/.*) \1
    server s1 127.0.0.1:{port} proto fcgi

backend fpm_nokeep
    use-fcgi-app php_nokeep
    http-request replace-path /fpm-nokeep(/.*) \1
    server s1 127.0.0.1:{port} proto fcgi
"#
                ),
            )
            .expect("write haproxy.cfg");
            let mut cmd = Command::new(HAPROXY);
            cmd.arg("-f").arg(&cfg).arg("-db").stdin(Stdio::null());
            cmd
        },
        |_, front| tcp_ready(front),
    );
    fx.port = front;
}

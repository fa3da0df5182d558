//! Pool files read and refused: FPM's syntax and checks, the mapping to the library's
//! settings, includes, `$pool`, env[]. (The files are run by tests/tools/fcgi_spawn_conf.rs.)

use super::*;
use std::time::Duration;

/// A fresh directory with `files` (name, text) in it.
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "fcgi-spawn-conf-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    for (name, text) in files {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    std::fs::create_dir_all(&d).unwrap();
    d
}

const USER: Options = Options {
    is_root: false,
    allow_root: false,
};

/// A minimal valid pool, then `extra` lines.
fn pool_text(name: &str, listen: &str, extra: &str) -> String {
    format!(
        "[{name}]\nlisten = {listen}\npm = static\npm.max_children = 2\ncommand = /bin/sh -c 'exit 0'\n{extra}\n"
    )
}

fn load_text(text: &str) -> Result<Config, String> {
    let d = dir_with(&[("pool.conf", text)]);
    let r = load(&d.join("pool.conf"), USER);
    let _ = std::fs::remove_dir_all(&d);
    r
}

fn one(text: &str) -> PoolSpec {
    let c = load_text(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.pools.len(), 1);
    c.pools.into_iter().next().unwrap()
}

fn err(text: &str) -> String {
    match load_text(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn warnings(c: &Config) -> Vec<String> {
    c.notes
        .iter()
        .filter_map(|n| match n {
            Note::Warning(w) => Some(w.clone()),
            Note::Notice(_) => None,
        })
        .collect()
}

#[test]
fn settings_mapped_from_fpm_directives() {
    let p = one(&pool_text(
        "www",
        "127.0.0.1:9000",
        "pm = dynamic
pm.max_children = 8
pm.start_servers = 3
pm.min_spare_servers = 2
pm.max_spare_servers = 4
pm.process_idle_timeout = 2m
pm.max_requests = 500
pm.status_path = /status
pm.status_listen = 127.0.0.1:9001
ping.path = /ping
ping.response = \"alive\"
access.log = /var/log/$pool.access.log
access.format = \"%R - %u %t \\\"%m %r\\\" %s\"
slowlog = /var/log/$pool.slow.log
request_slowlog_timeout = 5s
request_terminate_timeout = 30s
catch_workers_output = yes
decorate_workers_output = no
pm.max_requests_jitter = 50
pm.max_lifetime = 1h
pm.max_lifetime_jitter = 90
pm.drain_delay = 1500ms
pm.max_memory = 64M",
    ));
    let s = &p.settings;
    assert_eq!(s.mode, fcgi_runtime::pool::Mode::Dynamic);
    assert_eq!(s.max_children, 8);
    assert_eq!(s.start_servers, Some(3));
    assert_eq!((s.min_spare, s.max_spare), (2, 4));
    assert_eq!(s.idle_timeout, Duration::from_secs(120));
    assert_eq!(s.max_requests, 500);
    assert_eq!(s.status_path, "/status");
    assert_eq!(s.status_listen, "127.0.0.1:9001");
    assert_eq!(
        (s.ping_path.as_str(), s.ping_response.as_str()),
        ("/ping", "alive")
    );
    assert_eq!(s.access_log, "/var/log/www.access.log");
    assert_eq!(s.access_format, "%R - %u %t \"%m %r\" %s");
    assert_eq!(s.slowlog, "/var/log/www.slow.log");
    assert_eq!(s.slowlog_timeout, Duration::from_secs(5));
    assert_eq!(s.terminate_timeout, Duration::from_secs(30));
    assert!(s.catch_workers_output && !s.decorate_workers_output);
    assert_eq!(s.max_requests_jitter, 50);
    assert_eq!(s.max_lifetime, Duration::from_secs(3600));
    assert_eq!(s.max_lifetime_jitter, Duration::from_secs(90));
    assert_eq!(s.drain_delay, Duration::from_millis(1500));
    assert_eq!(s.max_memory, 64 << 20);
    assert_eq!(s.name, "www");
    assert!(!s.exec, "exec is the supervisor's to set");
    // FPM's defaults where the file says nothing.
    let p = one(&pool_text("d", "9000", ""));
    assert_eq!(p.backlog, 511);
    assert_eq!(p.sock_mode, 0o660);
    assert!(p.clear_env);
    assert_eq!(p.settings.max_requests, 0);
    assert!(p.settings.decorate_workers_output);
    assert_eq!(p.command, ["/bin/sh", "-c", "exit 0"]);
}

#[test]
fn globals_apply_to_every_pool() {
    let text = format!(
        "[global]\nprocess_control_timeout = 7s\nlog_level = warn\npid = run/x.pid\n\
         error_log = log/err.log\nrlimit_files = 4096\nrlimit_core = unlimited\n\
         process.priority = 5\n{}{}",
        pool_text("a", "/tmp/a.sock", ""),
        pool_text("b", "/tmp/b.sock", "")
    );
    let d = dir_with(&[("etc/pool.conf", &text)]);
    let c = load(&d.join("etc/pool.conf"), USER).unwrap();
    for p in &c.pools {
        assert_eq!(p.settings.graceful_timeout, Duration::from_secs(7));
        assert_eq!(
            p.settings.log_level,
            Some(fcgi_runtime::log::Level::Warning)
        );
    }
    // Relative paths: from the file's directory.
    assert_eq!(c.global.pid, Some(d.join("etc/run/x.pid")));
    assert_eq!(c.global.error_log, Some(d.join("etc/log/err.log")));
    assert_eq!(c.global.rlimit_files, Some(4096));
    assert_eq!(c.global.rlimit_core, Some(libc::RLIM_INFINITY));
    assert_eq!(c.global.priority, Some(5));
    // Directives before any section are global too; [global] may come after the pools.
    let c = load_text(&format!(
        "log_level = error\n{}[global]\nprocess_control_timeout = 0\n",
        pool_text("a", "9000", "")
    ))
    .unwrap();
    assert_eq!(c.pools[0].settings.graceful_timeout, Duration::ZERO);
    assert_eq!(
        c.pools[0].settings.log_level,
        Some(fcgi_runtime::log::Level::Error)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn time_values() {
    use directives::time_ms;
    assert_eq!(time_ms("30"), Ok(30_000));
    assert_eq!(time_ms("30s"), Ok(30_000));
    assert_eq!(time_ms("2m"), Ok(120_000));
    assert_eq!(time_ms("1h"), Ok(3_600_000));
    assert_eq!(time_ms("1d"), Ok(86_400_000));
    assert_eq!(time_ms("250ms"), Ok(250));
    assert_eq!(time_ms("0"), Ok(0));
    for bad in ["", "10x", "1.5m", "-5", "s", "ms", "5 s"] {
        assert!(time_ms(bad).is_err(), "{bad}");
    }
    assert!(directives::boolean("maybe").is_err());
    assert_eq!(directives::boolean("1"), Ok(true));
    assert_eq!(directives::boolean(""), Ok(false));
    assert_eq!(directives::boolean("0"), Ok(false));
}

#[test]
fn errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        ("pm.max_chidlren = 3", "unknown entry 'pm.max_chidlren'"),
        ("pm.max_children = many", "'pm.max_children'"),
        ("request_terminate_timeout = 10x", "unknown suffix"),
        ("catch_workers_output = maybe", "invalid boolean value"),
        ("listen.mode = 999", "'listen.mode'"),
        ("listen.backlog = x", "'listen.backlog'"),
        (
            "listen.allowed_clients = 1.2.3.4, nonsense",
            "Wrong IP address 'nonsense'",
        ),
        ("listen.acl_users = www-data", "not supported"),
        ("rlimit_core = -1", "'rlimit_core'"),
        ("process.priority = 30", "[-19,20]"),
        ("env[] = x", "You must provide a key"),
        ("env[X] =", "empty value"),
        ("foo[x] = 1", "unknown directive 'foo'"),
        ("command = app | tee x", "needs a shell"),
        ("command = /nonexistent/app", "not an executable"),
        ("command = no-such-program-anywhere", "not found in PATH"),
        ("# comment", "'#'"),
        ("listen = 70000", "'listen'"),
        ("pm = lazy", "invalid process manager"),
        ("ping.response = \"pong", "unterminated"),
        ("ping.response = E_ALL & ~E_NOTICE", "INI expression"),
        ("Include = x", "unknown entry 'Include'"),
    ];
    for (line, want) in cases {
        let text = format!("{}{line}\n", pool_text("www", "127.0.0.1:9000", ""));
        let e = err(&text);
        assert!(e.contains("pool.conf:7]"), "{line}: no file:line in {e}");
        assert!(e.contains(want), "{line}: {e}");
    }
    // Checks made once the section is read name the pool (and where it starts).
    let cases: &[(&str, &str)] = &[
        ("[www]\npm = static\npm.max_children = 1\ncommand = /bin/true\n", "no listen address"),
        ("[www]\nlisten = 9000\npm.max_children = 1\ncommand = /bin/true\n", "process manager is missing"),
        ("[www]\nlisten = 9000\npm = static\ncommand = /bin/true\n", "pm.max_children must be a positive value"),
        ("[www]\nlisten = 9000\npm = static\npm.max_children = 1\n", "no 'command'"),
        (
            "[www]\nlisten = 9000\npm = dynamic\npm.max_children = 2\npm.min_spare_servers = 1\npm.max_spare_servers = 3\ncommand = /bin/true\n",
            "cannot be greater than pm.max_children",
        ),
        (
            "[www]\nlisten = 9000\npm = ondemand\npm.max_children = 2\npm.process_idle_timeout = 0\ncommand = /bin/true\n",
            "must be greater than 0s",
        ),
        (
            "[www]\nlisten = 9000\npm = static\npm.max_children = 2\nrequest_slowlog_timeout = 10\nrequest_terminate_timeout = 5\ncommand = /bin/true\n",
            "can't be greater than",
        ),
        ("[www]\nlisten = 9000\npm = static\npm.max_children = 2\nping.path = ping\ncommand = /bin/true\n", "must start with a '/'"),
        ("[www]\nlisten = 9000\npm = static\npm.max_children = 2\npm.status_path = /st atus\ncommand = /bin/true\n", "only the following characters"),
        ("[www]\nlisten = 9000\npm = static\npm.max_children = 2\nchroot = relative\ncommand = /bin/true\n", "must start with a '/'"),
        ("[www]\nlisten = 9000\npm = static\npm.max_children = 2\nchdir = /nonexistent-dir\ncommand = /bin/true\n", "does not exist"),
        ("[two words]\nlisten = 9000\npm = static\npm.max_children = 2\ncommand = /bin/true\n", "printable"),
        ("[global]\npid = /run/$pool.pid\n[www]\nlisten = 9000\n", "Can't use '$pool'"),
        ("[global]\nenv[X] = 1\n", "Array are not allowed in the global section"),
        ("[global]\nlog_level = loud\n", "invalid value for 'log_level'"),
        ("[global]\npid = /run/x.pid\n", "No pool defined"),
    ];
    for (text, want) in cases {
        let e = err(text);
        assert!(e.contains(want), "{text}: {e}");
        assert!(
            e.contains("pool.conf:") || e.contains("pool.conf]"),
            "{text}: no file in {e}"
        );
    }
    let e = err(&format!(
        "{}{}",
        pool_text("a", "127.0.0.1:9000", ""),
        pool_text("b", "127.0.0.1:9000", "")
    ));
    assert!(e.contains("already used in another pool 'a'"), "{e}");
    let e = err(&format!(
        "[global]\nprocess.max = 3\n{}{}",
        pool_text("a", "9000", ""),
        pool_text("b", "9001", "")
    ));
    assert!(e.contains("process.max (3)"), "{e}");
}

#[test]
fn php_only_directives_warn_in_one_line() {
    let c = load_text(&pool_text(
        "www",
        "/tmp/www.sock",
        "php_admin_value[memory_limit] = 32M
php_flag[display_errors] = off
php_value[error_reporting] = E_ALL & ~E_DEPRECATED
php_admin_flag[log_errors] = on
security.limit_extensions = .php .php7
request_slowlog_trace_depth = 20",
    ))
    .unwrap();
    let w = warnings(&c);
    assert_eq!(w.len(), 1, "{w:?}");
    for name in [
        "php_admin_value[memory_limit] [",
        "php_flag[display_errors]",
        "php_value[error_reporting]",
        "php_admin_flag[log_errors]",
        "security.limit_extensions",
        "request_slowlog_trace_depth",
        "pool.conf:7]",
    ] {
        assert!(w[0].contains(name), "{name}: {}", w[0]);
    }
    assert!(w[0].starts_with("[pool www] PHP-only"), "{}", w[0]);
}

#[test]
fn includes_sections_and_pool_names() {
    let main = "[global]\nerror_log = /tmp/x.log\ninclude = pool.d/*.conf\n";
    let d = dir_with(&[
        ("main.conf", main),
        (
            "pool.d/a.conf",
            &pool_text("a", "$pool.sock", "env[POOL] = $pool"),
        ),
        ("pool.d/b.conf", &pool_text("b", "127.0.0.1:9001", "")),
        ("pool.d/README", "not a pool file"),
        ("pool.d/sub.conf/x", ""),
    ]);
    let c = load(&d.join("main.conf"), USER).unwrap();
    let names: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    // `$pool` substituted; a relative socket path from the including file's directory.
    assert_eq!(c.pools[0].listen, Listen::Unix(d.join("pool.d/a.sock")));
    assert_eq!(c.pools[0].env, [("POOL".to_string(), "a".to_string())]);
    // An included file continues the section it is included in (as FPM).
    let d2 = dir_with(&[
        (
            "main.conf",
            "[www]\nlisten = 9000\ninclude = more.conf\ncommand = /bin/true\n",
        ),
        ("more.conf", "pm = static\npm.max_children = 3\n"),
    ]);
    let c = load(&d2.join("main.conf"), USER).unwrap();
    assert_eq!(c.pools[0].settings.max_children, 3);
    // Nothing matching is a warning; a section named twice continues its pool.
    let c = load_text(&format!(
        "include = /nonexistent-dir-{}/x/*.conf\n{}[WWW]\npm.max_requests = 9\n",
        std::process::id(),
        pool_text("www", "9000", "")
    ));
    let e = c.err().unwrap_or_default();
    assert!(
        e.contains("unable to globalize"),
        "an unreadable directory: {e}"
    );
    let d3 = dir_with(&[(
        "pool.conf",
        &format!(
            "include = none/*.conf\n{}[WWW]\npm.max_requests = 9\n",
            pool_text("www", "9000", "")
        ),
    )]);
    std::fs::create_dir_all(d3.join("none")).unwrap();
    let c = load(&d3.join("pool.conf"), USER).unwrap();
    assert_eq!(c.pools.len(), 1);
    assert_eq!(c.pools[0].settings.max_requests, 9);
    assert!(
        warnings(&c)
            .iter()
            .any(|w| w.contains("Nothing matches the include pattern")),
        "{:?}",
        c.notes
    );
    // Includes nest five deep at most.
    let d4 = dir_with(&[
        ("1.conf", "include = 2.conf\n"),
        ("2.conf", "include = 3.conf\n"),
        ("3.conf", "include = 4.conf\n"),
        ("4.conf", "include = 5.conf\n"),
        ("5.conf", "include = 6.conf\n"),
        ("6.conf", "[www]\n"),
    ]);
    let e = load(&d4.join("1.conf"), USER).err().unwrap_or_default();
    assert!(e.contains("more than 5 files recursively"), "{e}");
    for d in [d, d2, d3, d4] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn env_and_clear_env() {
    std::env::set_var("FCGI_SPAWN_CONF_TEST_HOST", "box1");
    let p = one(&pool_text(
        "www",
        "9000",
        "env[HOSTNAME] = $FCGI_SPAWN_CONF_TEST_HOST
env[PATH] = /usr/local/bin:/usr/bin:/bin
env[TMP] = \"${FCGI_SPAWN_CONF_TEST_HOST}/tmp\"
env[EMPTY] = $FCGI_SPAWN_CONF_TEST_UNSET
env[TMP] = /tmp
clear_env = no",
    ));
    assert_eq!(
        p.env,
        [
            ("HOSTNAME".to_string(), "box1".to_string()),
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string()
            ),
            ("EMPTY".to_string(), String::new()),
            ("TMP".to_string(), "/tmp".to_string()),
        ]
    );
    assert!(!p.clear_env);
}

#[test]
fn listen_forms_and_the_open_address_warning() {
    let listen = |v: &str| one(&pool_text("www", v, "")).listen;
    assert_eq!(
        listen("127.0.0.1:9000"),
        Listen::Tcp("127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(
        listen("[::1]:9000"),
        Listen::Tcp("[::1]:9000".parse().unwrap())
    );
    // FPM: a bare port is every address, IPv6 and IPv4.
    assert_eq!(listen("9000"), Listen::Tcp("[::]:9000".parse().unwrap()));
    assert_eq!(
        listen("/run/app.sock"),
        Listen::Unix("/run/app.sock".into())
    );
    let warned = |v: &str, extra: &str| {
        let c = load_text(&pool_text("www", v, extra)).unwrap();
        warnings(&c)
            .iter()
            .any(|w| w.contains("no listen.allowed_clients"))
    };
    assert!(warned("9000", ""));
    assert!(warned("0.0.0.0:9000", ""));
    assert!(!warned(
        "9000",
        "listen.allowed_clients = 127.0.0.1, 10.0.0.0/8"
    ));
    assert!(!warned("127.0.0.1:9000", ""));
    assert!(!warned("[::1]:9000", ""));
    assert!(!warned("/tmp/x.sock", ""));
    let p = one(&pool_text(
        "www",
        "9000",
        "listen.allowed_clients = 127.0.0.1",
    ));
    assert_eq!(p.allowed_clients.as_deref(), Some("127.0.0.1"));
    // On a Unix socket it means nothing (FPM checks TCP peers only): warned, dropped.
    let c = load_text(&pool_text(
        "www",
        "/tmp/x.sock",
        "listen.allowed_clients = 127.0.0.1",
    ))
    .unwrap();
    assert_eq!(c.pools[0].allowed_clients, None);
    assert!(warnings(&c).iter().any(|w| w.contains("TCP sockets only")));
}

#[test]
fn users_as_root() {
    let root = Options {
        is_root: true,
        allow_root: false,
    };
    let d = dir_with(&[
        ("nouser.conf", &pool_text("www", "9000", "")),
        (
            "nobody.conf",
            &pool_text(
                "www",
                "9000",
                "user = nobody\nlisten.owner = nobody\nlisten.mode = 0600",
            ),
        ),
        ("root.conf", &pool_text("www", "9000", "user = root")),
        (
            "unknown.conf",
            &pool_text("www", "9000", "user = no-such-user-here"),
        ),
    ]);
    let e = load(&d.join("nouser.conf"), root).err().unwrap_or_default();
    assert!(e.contains("user has not been defined"), "{e}");
    let e = load(&d.join("root.conf"), root).err().unwrap_or_default();
    assert!(e.contains("other than root"), "{e}");
    let e = load(&d.join("unknown.conf"), root)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("nouser") || e.contains("no-such-user-here"),
        "{e}"
    );
    assert!(e.contains("unknown.conf:6]"), "{e}");
    let allow = Options {
        is_root: true,
        allow_root: true,
    };
    let c = load(&d.join("nouser.conf"), allow).unwrap();
    assert_eq!(c.pools[0].run_as, None);
    if let Ok(c) = load(&d.join("nobody.conf"), root) {
        let p = &c.pools[0];
        let ids = p.run_as.as_ref().expect("run as nobody");
        assert!(ids.uid.is_some_and(|u| u > 0));
        assert_eq!(
            ids.user_name.as_deref().map(|n| n.to_str().unwrap()),
            Some("nobody")
        );
        assert_eq!(p.sock_owner.0, ids.uid);
        assert_eq!(p.sock_mode, 0o600);
    }
    // Not root: user, group and listen.owner are ignored with a notice (as FPM does for
    // user and group).
    let c = load(&d.join("nobody.conf"), USER).unwrap();
    assert_eq!(c.pools[0].run_as, None);
    assert_eq!(c.pools[0].sock_owner, (None, None));
    assert!(c
        .notes
        .iter()
        .any(|n| matches!(n, Note::Notice(t) if t.contains("'user' directive is ignored"))));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unsupported_fpm_directives_warn() {
    let c = load_text(&format!(
        "[global]\ndaemonize = yes\nemergency_restart_threshold = 10\nevents.mechanism = epoll\n{}",
        pool_text(
            "www",
            "9000",
            "listen.allowed_clients = 127.0.0.1\npm.max_spawn_rate = 8\nprocess.dumpable = yes"
        )
    ))
    .unwrap();
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|w| w.contains("'emergency_restart_threshold'")),
        "{w:?}"
    );
    assert!(w.iter().any(|w| w.contains("'events.mechanism'")), "{w:?}");
    assert!(w.iter().any(|w| w.contains("'pm.max_spawn_rate'")), "{w:?}");
}

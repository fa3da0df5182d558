//! The systemd socket + service pair of docs/deploy.md: systemd-analyze verify, then socket activation as systemd does it.

use super::*;

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

/// A unit file: its sections, each with its `Key=value` lines in order.
pub(crate) struct Unit {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Unit {
    fn parse(what: &str, text: &str) -> Unit {
        let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            assert!(
                !l.ends_with('\\'),
                "{what}:{}: continued lines are not supported by this test's launcher",
                n + 1
            );
            if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{what}:{}: not Key=value: {raw:?}", n + 1));
            let section = sections
                .last_mut()
                .unwrap_or_else(|| panic!("{what}:{}: a setting before any [Section]", n + 1));
            section.1.push((k.trim().to_string(), v.trim().to_string()));
        }
        Unit { sections }
    }

    /// Every value of `key` in `section`, in order.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, kv)| kv.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `key` in `section` (the last one wins, as in systemd).
    fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.all(section, key).last().copied()
    }
}

/// systemd's word splitting of `Environment=` values: whitespace separates, double or single
/// quotes group, a backslash escapes the next character.
pub(crate) fn split_quoted(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// uid (from /etc/passwd) or gid (from /etc/group) of `name`.
pub(crate) fn id_of(file: &str, name: &str) -> u32 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("{name} not found in {file}"))
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The socket unit with its commented-out `#ListenStream=` alternative in place of the active
/// `ListenStream=` line.
pub(crate) fn use_commented_listen(socket: &str) -> String {
    let alt = socket
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix('#')
                .map(str::trim)
                .filter(|r| r.starts_with("ListenStream="))
        })
        .expect("a commented-out #ListenStream= alternative in the socket unit")
        .to_string();
    socket
        .lines()
        // Drop the active line and the commented alternative; the latter goes back uncommented.
        .filter(|l| {
            !l.trim()
                .trim_start_matches('#')
                .trim_start()
                .starts_with("ListenStream=")
        })
        .flat_map(|l| {
            if l.trim() == "[Socket]" {
                vec![l.to_string(), alt.clone()]
            } else {
                vec![l.to_string()]
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs `systemd-analyze verify` on `units` (paths); returns its exit status and output lines.
pub(crate) fn systemd_analyze_verify(units: &[PathBuf]) -> (bool, Vec<String>) {
    require(SYSTEMD_ANALYZE, "systemd");
    let mut cmd = Command::new(SYSTEMD_ANALYZE);
    cmd.args(["verify", "--man=no", "--generators=no"])
        .args(units)
        .env("SYSTEMD_LOG_LEVEL", "info")
        .env("SYSTEMD_LOG_COLOR", "0");
    let out = support::run_with_stdin(&mut cmd, Vec::new(), |_| {})
        .unwrap_or_else(|e| panic!("systemd-analyze verify: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Writes the units into `DIR/units/` and checks them with `systemd-analyze verify` (see the
/// module documentation for what is tolerated).
pub(crate) fn verify_units(fx: &Fixture, socket: &str, service: &str) {
    let dir = fx.path("units");
    fs::create_dir_all(&dir).expect("create units dir");
    let paths = [dir.join("app.socket"), dir.join("app.service")];
    fs::write(&paths[0], socket).expect("write app.socket");
    fs::write(&paths[1], service).expect("write app.service");
    let (ok, lines) = systemd_analyze_verify(&paths);
    let dir_text = dir.display().to_string();
    let (ours, other): (Vec<&String>, Vec<&String>) = lines.iter().partition(|l| {
        l.contains(&dir_text) || l.contains("app.socket") || l.contains("app.service")
    });
    let (host, unknown): (Vec<&String>, Vec<&String>) = other.iter().partition(|l| {
        ["/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/"]
            .iter()
            .any(|d| l.contains(d))
    });
    for l in &host {
        eprintln!("systemd-analyze, about the host (tolerated): {l}");
    }
    fx.check(ok && ours.is_empty() && unknown.is_empty(), || {
        format!(
            "systemd-analyze verify (success: {ok}) reported:\n{}\n--- app.socket ---\n{socket}\
             --- app.service ---\n{service}",
            lines.join("\n")
        )
    });
}

/// The application systemd would start for the units, and where it listens.
pub(crate) struct Activated {
    pid: u32,
    addr: Addr,
}

/// Does what systemd does when `app.socket` activates `app.service` (see the module
/// documentation): binds the socket and starts the service's program on it as `name`.
pub(crate) fn launch_socket_unit(
    fx: &mut Fixture,
    socket: &Unit,
    service: &Unit,
    name: &str,
) -> Activated {
    let listen = socket.all("Socket", "ListenStream");
    let [listen] = listen[..] else {
        fx.fail(&format!(
            "want one ListenStream= in app.socket, got {listen:?}"
        ));
    };
    fx.check(
        socket.get("Socket", "Accept").is_none_or(|a| a == "no"),
        || "StandardInput=socket needs Accept=no".to_string(),
    );
    let (fd, addr) = if listen.starts_with('/') {
        let path = PathBuf::from(listen);
        let parent = path.parent().expect("socket directory");
        // systemd creates missing directories with DirectoryMode= (0755).
        let mode = socket.get("Socket", "DirectoryMode").unwrap_or("0755");
        let mode = u32::from_str_radix(mode, 8).expect("octal DirectoryMode");
        let mut missing = Vec::new();
        let mut p = parent;
        while !p.exists() {
            missing.push(p.to_path_buf());
            p = p.parent().expect("an existing ancestor");
        }
        for d in missing.iter().rev() {
            fs::create_dir(d).expect("create socket directory");
            fs::set_permissions(d, fs::Permissions::from_mode(mode)).expect("chmod directory");
        }
        let l = UnixListener::bind(&path)
            .unwrap_or_else(|e| fx.fail(&format!("bind {}: {e}", path.display())));
        let mode = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let mode = u32::from_str_radix(mode, 8).expect("octal SocketMode");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod socket");
        if is_root() {
            let uid = socket
                .get("Socket", "SocketUser")
                .map(|u| id_of("/etc/passwd", u));
            let gid = socket
                .get("Socket", "SocketGroup")
                .map(|g| id_of("/etc/group", g));
            std::os::unix::fs::chown(&path, uid, gid).expect("chown socket");
        }
        (OwnedFd::from(l), Addr::Unix(path))
    } else {
        let l =
            TcpListener::bind(listen).unwrap_or_else(|e| fx.fail(&format!("bind {listen}: {e}")));
        let port = l.local_addr().expect("local_addr").port();
        (OwnedFd::from(l), Addr::Tcp(port))
    };

    fx.check(
        service.get("Service", "StandardInput") == Some("socket"),
        || "app.service: want StandardInput=socket (the listening socket on fd 0)".to_string(),
    );
    for key in ["StandardOutput", "StandardError"] {
        let v = service.get("Service", key);
        fx.check(v.is_some_and(|v| v != "inherit" && v != "socket"), || {
            format!("app.service: {key}={v:?} would write to the socket (set e.g. journal)")
        });
    }
    let exec = service.all("Service", "ExecStart");
    let [exec] = exec[..] else {
        fx.fail(&format!("want one ExecStart= in app.service, got {exec:?}"));
    };
    fx.check(
        !exec.starts_with(['-', '@', ':', '+', '!']) && !exec.contains(['%', '"', '\'', '$', ';']),
        || format!("ExecStart={exec}: prefixes, specifiers, quotes and variables are not emulated"),
    );
    let argv: Vec<&str> = exec.split_whitespace().collect();

    let mut cmd = Command::new("/bin/sh");
    // exec keeps the pid: LISTEN_PID names the program, as systemd sets it.
    cmd.args(["-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"", "sh"])
        .args(&argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "app.socket");
    for line in service.all("Service", "Environment") {
        for word in split_quoted(line) {
            let (k, v) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("Environment=: {word:?} is not NAME=value"));
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::from(fd));
    // SAFETY: dup2 and fcntl are async-signal-safe; fd 0 is the socket (std sets up stdin
    // before the pre_exec hooks run). systemd passes the socket as fd 3 too (LISTEN_FDS=1).
    unsafe {
        cmd.pre_exec(|| {
            if libc::dup2(0, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let pid = fx.spawn(name, &mut cmd);
    check_project_lib(fx, pid, name);
    // The emulation itself: fds 0 and 3 are the listening socket, LISTEN_PID is the program's.
    let fd0 = fs::read_link(format!("/proc/{pid}/fd/0")).ok();
    let fd3 = fs::read_link(format!("/proc/{pid}/fd/3")).ok();
    fx.check(
        fd0.as_ref()
            .is_some_and(|t| t.to_string_lossy().starts_with("socket:"))
            && fd0 == fd3,
        || format!("{name}: fd 0 {fd0:?} and fd 3 {fd3:?} should be the listening socket"),
    );
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let listen_pid = format!("LISTEN_PID={pid}");
    fx.check(
        environ
            .split(|&b| b == 0)
            .any(|e| e == listen_pid.as_bytes()),
        || format!("{name}: no {listen_pid} in its environment"),
    );
    Activated { pid, addr }
}

/// `fcgi-client ARGS`, optionally as user `uid`:`gid`, bounded by RUN_TIMEOUT.
pub(crate) fn fcgi_client(
    fx: &Fixture,
    client: &Path,
    args: &[&str],
    user: Option<(u32, u32)>,
) -> std::process::Output {
    let mut cmd = Command::new(client);
    cmd.args(args);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    support::run_with_stdin(&mut cmd, Vec::new(), |_| {})
        .unwrap_or_else(|e| fx.fail(&format!("fcgi-client {args:?}: {e}")))
}

/// fcgi-client's output (the application's FastCGI stdout) as a response.
pub(crate) fn client_response(fx: &Fixture, what: &str, out: &std::process::Output) -> Response {
    fx.check(out.status.success(), || {
        format!(
            "{what}: fcgi-client failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let raw = &out.stdout;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| fx.fail(&format!("{what}: no end of headers in {}", show(raw))));
    let headers = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = headers
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(200);
    Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

pub(crate) fn systemd_scenario(face: Face, transport: Transport) {
    let mut fx = Fixture::new("deploy-systemd");
    fx.curl_max_time = CURL_MAX_TIME;
    let mut socket_text = doc_block("systemd-socket", "app");
    if transport == Transport::Tcp {
        socket_text = use_commented_listen(&socket_text);
    }
    let service_text = face.text(&doc_block("systemd-service", "app"));
    let exe = install_example(&mut fx, face.echo());
    let client = fx.install_executable(&crate::common::tool("fcgi-client"), "fcgi-client");
    let sock = fx.path("run/app/app.sock");
    let docroot = fx.path("srv-app");
    fs::create_dir_all(&docroot).expect("create docroot");

    // TCP: the port is chosen free, then bound by the launcher (retried if taken meanwhile).
    let mut activated = None;
    for _ in 0..5 {
        let port = common::free_port();
        let subst = Subst::default()
            .set(APP_SOCK, sock.display())
            .set(APP_ADDR, format!("127.0.0.1:{port}"))
            .set(PROGRAM, exe.display())
            .set(LF_PROGRAM, exe.display())
            .set(LIB_DIR, common::lib_dir().display());
        let socket = subst.apply("app.socket", &socket_text);
        let service = subst.apply("app.service", &service_text);
        if transport == Transport::Tcp && std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
        {
            continue;
        }
        verify_units(&fx, &socket, &service);
        let (socket, service) = (
            Unit::parse("app.socket", &socket),
            Unit::parse("app.service", &service),
        );
        let a = launch_socket_unit(&mut fx, &socket, &service, "app");
        activated = Some((a, socket, service));
        break;
    }
    let Some((app, socket, service)) = activated else {
        fx.fail("no free port for the TCP socket unit");
    };
    let addr = app.addr.client();

    if let Addr::Unix(path) = &app.addr {
        let meta = fs::metadata(path).expect("stat the socket");
        let want = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let want = u32::from_str_radix(want, 8).expect("octal SocketMode");
        fx.check(meta.permissions().mode() & 0o7777 == want, || {
            format!(
                "socket mode {:o}, want {want:o} (SocketMode)",
                meta.permissions().mode() & 0o7777
            )
        });
        if is_root() {
            if let (Some(u), Some(g)) = (
                socket.get("Socket", "SocketUser"),
                socket.get("Socket", "SocketGroup"),
            ) {
                let (uid, gid) = (id_of("/etc/passwd", u), id_of("/etc/group", g));
                fx.check(meta.uid() == uid && meta.gid() == gid, || {
                    format!(
                        "socket owned by {}:{}, want {u}:{g}",
                        meta.uid(),
                        meta.gid()
                    )
                });
            }
        }
    }

    // Straight to the socket: a GET and a POST with fcgi-client.
    let query = "a=1&b=two%20words";
    let out = fcgi_client(&fx, &client, &[&addr, &format!("/app/echo?{query}")], None);
    let r = client_response(&fx, "fcgi-client GET", &out);
    check_app(
        &fx,
        face,
        "fcgi-client GET",
        &r,
        &echo_lines("GET", "/app/echo", query, b""),
        b"",
    );
    let body = common::body(100 * 1024, 0x5_0c4e7);
    let file = fx.path("body.bin");
    fs::write(&file, &body).expect("write body");
    let out = fcgi_client(
        &fx,
        &client,
        &[
            "-f",
            file.to_str().expect("utf-8 path"),
            &addr,
            "/app/echo?upload=1",
        ],
        None,
    );
    let r = client_response(&fx, "fcgi-client POST", &out);
    let mut want = echo_lines("POST", "/app/echo", "upload=1", &body);
    want.push(format!("CONTENT_LENGTH={}", body.len()));
    check_app(&fx, face, "fcgi-client POST", &r, &want, &body);

    // The FCGI_RUNTIME_* settings of Environment= reached the application: FCGI_GET_VALUES
    // answers with them (read when the first request was accepted).
    let env: BTreeMap<String, String> = service
        .all("Service", "Environment")
        .iter()
        .flat_map(|l| split_quoted(l))
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let out = fcgi_client(&fx, &client, &["--get-values", &addr], None);
    let values = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut checked = 0;
    for name in ["MAX_CONNS", "MAX_REQS", "MPXS_CONNS"] {
        if let Some(v) = env.get(&format!("FCGI_RUNTIME_{name}")) {
            let line = format!("FCGI_{name}={v}");
            fx.check(values.lines().any(|l| l == line), || {
                format!("FCGI_GET_VALUES: want {line} (from Environment=), got:\n{values}")
            });
            checked += 1;
        }
    }
    fx.check(checked > 0, || {
        "app.service sets no FCGI_RUNTIME_* that FCGI_GET_VALUES reports".to_string()
    });

    // Who may connect: the socket's user (the web server), and not someone else.
    if let (Addr::Unix(_), true, Some(user)) =
        (&app.addr, is_root(), socket.get("Socket", "SocketUser"))
    {
        let web = (id_of("/etc/passwd", user), id_of("/etc/group", user));
        let out = fcgi_client(&fx, &client, &[&addr, "/app/echo?as=web"], Some(web));
        let r = client_response(&fx, &format!("fcgi-client as {user}"), &out);
        check_app(
            &fx,
            face,
            &format!("as {user}"),
            &r,
            &echo_lines("GET", "/app/echo", "as=web", b""),
            b"",
        );
        // The document promises that other users may not.
        let mode = socket.get("Socket", "SocketMode").unwrap_or("0666");
        let nobody = (
            id_of("/etc/passwd", "nobody"),
            id_of("/etc/group", "nogroup"),
        );
        let out = fcgi_client(&fx, &client, &[&addr, "/app/echo?as=nobody"], Some(nobody));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        fx.check(
            !out.status.success() && err.contains("Permission denied"),
            || {
                format!(
                    "user nobody could talk to the socket (SocketMode={mode}): {} {err}",
                    out.status
                )
            },
        );
    }

    // Through the document's nginx block for this socket.
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display());
    start_nginx(&mut fx, &subst, &nginx_block(transport));
    exercise_nginx(&fx, face, &app.addr, &docroot);

    fx.check(support::is_alive(app.pid), || {
        "the application exited".to_string()
    });
    let journal = fx.stderr_of("app") + &fs::read_to_string(fx.path("app.out")).unwrap_or_default();
    fx.check(journal.trim().is_empty(), || {
        format!("the application wrote to its journal:\n{journal}")
    });
}

#[test]
pub(crate) fn systemd_unix_socket_native() {
    systemd_scenario(Face::Native, Transport::Unix);
}

#[test]
pub(crate) fn systemd_unix_socket_libfcgi() {
    systemd_scenario(Face::Libfcgi, Transport::Unix);
}

#[test]
pub(crate) fn systemd_tcp_socket_native() {
    systemd_scenario(Face::Native, Transport::Tcp);
}

#[test]
pub(crate) fn systemd_tcp_socket_libfcgi() {
    systemd_scenario(Face::Libfcgi, Transport::Tcp);
}

/// `systemd-analyze verify` as this test runs it does report problems in these units (so a
/// silent run means something): an unknown key and a missing program.
#[test]
pub(crate) fn systemd_analyze_reports_broken_units() {
    let fx = Fixture::new("deploy-systemd-broken");
    let subst = Subst::default()
        .set(APP_SOCK, fx.path("app.sock").display())
        .set(APP_ADDR, "127.0.0.1:1")
        .set(PROGRAM, fx.path("no-such-program").display())
        .set(LIB_DIR, common::lib_dir().display());
    let socket = subst
        .apply("app.socket", &doc_block("systemd-socket", "app"))
        .replace("[Socket]\n", "[Socket]\nListenStreams=nowhere\n");
    let service = subst.apply("app.service", &doc_block("systemd-service", "app"));
    let dir = fx.path("units");
    fs::create_dir_all(&dir).expect("create units dir");
    let paths = [dir.join("app.socket"), dir.join("app.service")];
    fs::write(&paths[0], socket).expect("write app.socket");
    fs::write(&paths[1], service).expect("write app.service");
    let (_, lines) = systemd_analyze_verify(&paths);
    let text = lines.join("\n");
    fx.check(
        text.contains("Unknown key") && text.contains("ListenStreams"),
        || format!("systemd-analyze did not report the unknown key:\n{text}"),
    );
    fx.check(text.contains("no-such-program"), || {
        format!("systemd-analyze did not report the missing program:\n{text}")
    });
}

//! Security defaults over real sockets and processes: allowed-client lists (IPv4 and IPv6,
//! exact and CIDR, v4-mapped peers, both library faces), the mode and owner of Unix listening
//! sockets, and close-on-exec on every descriptor the library opens.

mod common;

#[path = "adversarial/app.rs"]
mod app;

use app::{req, App, Spec, IO_TIMEOUT};
use fcgi_runtime::addr::ClientStream;
use fcgi_runtime_tools::client::Client;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A TCP connection to `to` from the local address `from` (any 127.0.0.0/8 address works on
/// Linux loopback).
fn connect_from(from: IpAddr, to: SocketAddr) -> Client {
    let domain = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain system calls on a socket this function owns; the addresses are valid
    // sockaddr_in/sockaddr_in6 values of the given sizes.
    let s = unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let s = TcpStream::from_raw_fd(fd);
        let (ss, len) = sockaddr(SocketAddr::new(from, 0));
        assert_eq!(
            libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len),
            0
        );
        let (ss, len) = sockaddr(to);
        assert_eq!(
            libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len),
            0,
            "connect {from} -> {to}: {}",
            std::io::Error::last_os_error()
        );
        s
    };
    let c = Client::from_stream(ClientStream::Tcp(s));
    c.set_timeout(Some(IO_TIMEOUT)).unwrap();
    c
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero sockaddr_storage is valid; it is large enough for either family.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is suitably sized and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is suitably sized and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Whether a request from `c` is answered (true) or the connection is closed unanswered.
fn answered(mut c: Client) -> bool {
    let _ = c.send_request(&req(1, ""));
    match c.read_response(1) {
        Ok(r) => {
            assert!(r.stdout.ends_with(b"STDIN_LENGTH=0\n") || r.stdout.contains(&b'='));
            true
        }
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "neither an answer nor a refusal: {e}"
            );
            false
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// Starts adv_app on `addr` with FCGI_WEB_SERVER_ADDRS=`list`; checks which sources get
/// answers: `(source, expected)`.
fn check_acl(listen: &str, to: SocketAddr, list: &str, cases: &[(&str, bool)]) {
    let env = [("FCGI_WEB_SERVER_ADDRS", list)];
    let mut spec = Spec::adv(1, &env);
    spec.args[0] = listen.to_string();
    spec.addr = to.to_string();
    let mut app = App::start(spec);
    for (from, want) in cases {
        let got = answered(connect_from(ip(from), to));
        assert_eq!(got, *want, "list {list:?}, client {from}: answered={got}");
    }
    if cases.iter().any(|(_, w)| !w) {
        assert!(app.log_text().contains("disallowed"), "{}", app.log_text());
    }
    app.assert_alive();
}

#[test]
fn allowed_clients_ipv4_exact_and_cidr() {
    let port = common::free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listen = to.to_string();
    check_acl(
        &listen,
        to,
        "127.0.0.2",
        &[("127.0.0.2", true), ("127.0.0.1", false)],
    );
    let port = common::free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    check_acl(
        &to.to_string(),
        to,
        "10.0.0.1, 127.0.0.0/30",
        &[
            ("127.0.0.3", true),
            ("127.0.0.1", true),
            ("127.0.0.4", false),
            ("127.1.0.1", false),
        ],
    );
}

#[test]
fn allowed_clients_ipv6_exact_and_cidr() {
    if !has_ipv6() {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    }
    for (list, want) in [
        ("::1", true),
        ("::2", false),
        ("::/120", true),
        ("2001:db8::/32, 127.0.0.1", false),
    ] {
        let to: SocketAddr = format!("[::1]:{}", common::free_port()).parse().unwrap();
        check_acl(&format!("[::1]:{}", to.port()), to, list, &[("::1", want)]);
    }
}

/// On a dual-stack listener ([::]) IPv4 clients arrive as ::ffff:a.b.c.d: IPv4 entries and
/// v4-mapped entries both apply to them.
#[test]
fn allowed_clients_v4_mapped_peers() {
    if !has_ipv6() {
        eprintln!("no IPv6 on this machine; skipping");
        return;
    }
    for (list, cases) in [
        ("127.0.0.2", [("127.0.0.2", true), ("127.0.0.1", false)]),
        (
            "::ffff:127.0.0.0/126",
            [("127.0.0.3", true), ("127.0.0.5", false)],
        ),
        ("::1", [("127.0.0.1", false), ("127.0.0.2", false)]),
    ] {
        let port = common::free_port();
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        check_acl(&format!("[::]:{port}"), to, list, &cases);
    }
}

/// The libfcgi face (an unmodified libfcgi program) applies FCGI_WEB_SERVER_ADDRS too, and
/// refuses Unix peers while a list is set.
#[test]
fn allowed_clients_on_the_libfcgi_face() {
    let port = common::free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let env = [("FCGI_WEB_SERVER_ADDRS", "127.0.0.2")];
    let app = App::start(Spec::example(
        "lf-threaded",
        &to.to_string(),
        &["-t", "1"],
        &env,
    ));
    assert!(answered(connect_from(ip("127.0.0.2"), to)));
    assert!(!answered(connect_from(ip("127.0.0.1"), to)));
    drop(app);
    let dir = temp_dir("acl-unix");
    let path = dir.join("s.sock");
    let app = App::start(Spec::example(
        "lf-threaded",
        path.to_str().unwrap(),
        &["-t", "1"],
        &env,
    ));
    assert!(!answered(app.connect()));
    drop(app);
    // Without a list, the same Unix socket is served.
    let app = App::start(Spec::example(
        "lf-threaded",
        path.to_str().unwrap(),
        &["-t", "1"],
        &[],
    ));
    assert!(answered(app.connect()));
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fcgi-sec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The id of `name` in /etc/passwd (`file` "passwd") or /etc/group.
fn id_of(file: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/etc/{file}")).ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

/// (mode bits, uid, gid) of the socket file `app` listens on.
fn stat(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).expect("socket file");
    (m.mode() & 0o777, m.uid(), m.gid())
}

fn unix_app<'a>(path: &Path, env: &'a [(&'a str, &'a str)], extra: &[&str]) -> Spec<'a> {
    let mut spec = Spec::adv(1, env);
    spec.args[0] = path.to_str().unwrap().to_string();
    spec.args.extend(extra.iter().map(|s| s.to_string()));
    spec.addr = spec.args[0].clone();
    spec
}

#[test]
fn unix_socket_mode_and_owner_on_the_native_face() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: chown to another user cannot be tested; skipping");
        return;
    }
    let (nobody, nogroup) = (id_of("passwd", "nobody"), id_of("group", "nogroup"));
    let (Some(nobody), Some(nogroup)) = (nobody, nogroup) else {
        eprintln!("no nobody/nogroup on this machine; skipping");
        return;
    };
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    let dir = temp_dir("mode");
    let path = dir.join("s.sock");
    // Default: 0777, as PHP's fcgi_listen; owner unchanged.
    let mut app = App::start(unix_app(&path, &[], &[]));
    assert_eq!(stat(&path), (0o777, 0, gid));
    app.assert_serves();
    drop(app);
    // From the environment.
    let env = [
        ("FCGI_RUNTIME_SOCKET_MODE", "0660"),
        ("FCGI_RUNTIME_SOCKET_OWNER", "nobody:nogroup"),
    ];
    let mut app = App::start(unix_app(&path, &env, &[]));
    assert_eq!(stat(&path), (0o660, nobody, nogroup));
    app.assert_serves();
    drop(app);
    // From the API (fcgi_set_socket_permissions), which wins over the environment.
    let env = [("FCGI_RUNTIME_SOCKET_MODE", "0666")];
    let app = App::start(unix_app(&path, &env, &["-s", "0600", "nobody"]));
    assert_eq!(stat(&path), (0o600, nobody, gid));
    drop(app);
    let app = App::start(unix_app(&path, &[], &["-s", "-1", ":nogroup"]));
    assert_eq!(stat(&path), (0o777, 0, nogroup));
    drop(app);
    // A setting that cannot be applied makes listening fail; no socket file is left.
    std::fs::remove_file(&path).ok();
    let env = [("FCGI_RUNTIME_SOCKET_OWNER", "no-such-user-fcgi")];
    let mut app = App::spawn(unix_app(&path, &env, &[]));
    assert_eq!(app.wait_exit().code(), Some(1));
    assert!(
        app.log_text().contains("FCGI_RUNTIME_SOCKET_OWNER"),
        "{}",
        app.log_text()
    );
    assert!(!path.exists());
    let mut app = App::spawn(unix_app(&path, &[], &["-s", "1777", "-"]));
    assert_eq!(app.wait_exit().code(), Some(3));
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_socket_mode_and_owner_on_the_libfcgi_face() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipping");
        return;
    }
    let Some(nogroup) = id_of("group", "nogroup") else {
        eprintln!("no nogroup on this machine; skipping");
        return;
    };
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    let dir = temp_dir("lfmode");
    let path = dir.join("s.sock");
    let addr = path.to_str().unwrap();
    // Default: what the umask gives, as libfcgi.
    let mut spec = Spec::example("lf-threaded", addr, &["-t", "1"], &[]);
    spec.umask = Some(0o077);
    let app = App::start(spec);
    assert_eq!(stat(&path), (0o700, 0, gid));
    drop(app);
    let env = [
        ("FCGI_RUNTIME_SOCKET_MODE", "660"),
        ("FCGI_RUNTIME_SOCKET_OWNER", ":nogroup"),
    ];
    let mut spec = Spec::example("lf-threaded", addr, &["-t", "1"], &env);
    spec.umask = Some(0o077);
    let app = App::start(spec);
    assert_eq!(stat(&path), (0o660, 0, nogroup));
    assert!(answered(app.connect()));
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

/// O_CLOEXEC in /proc/PID/fdinfo/N for every descriptor above 2.
fn assert_all_cloexec(pid: u32, what: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd: u32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        if fd <= 2 {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            continue; // closed meanwhile
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
            .unwrap();
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_default();
        assert!(
            flags & libc::O_CLOEXEC as u32 != 0,
            "{what}: fd {fd} ({}) lacks O_CLOEXEC (flags {flags:o})",
            target.display()
        );
        n += 1;
    }
    n
}

/// Busy servers (native and libfcgi faces, TCP and Unix): kept-alive connections and a request
/// in progress; every descriptor above 2 is close-on-exec.
#[test]
fn every_descriptor_is_close_on_exec() {
    let dir = temp_dir("cloexec");
    let unix = dir.join("s.sock");
    let unix = unix.to_str().unwrap();
    for (program, addr) in [
        ("adv_app", format!("127.0.0.1:{}", common::free_port())),
        ("adv_app", unix.to_string()),
        ("lf-threaded", format!("127.0.0.1:{}", common::free_port())),
        ("lf-threaded", unix.to_string()),
    ] {
        let spec = if program == "adv_app" {
            let mut s = Spec::adv(2, &[]);
            s.args[0] = addr.clone();
            s.addr = addr.clone();
            s
        } else {
            Spec::example(program, &addr, &["-t", "2"], &[])
        };
        let app = App::start(spec);
        let mut kept: Vec<Client> = (0..3)
            .map(|i| {
                let mut c = app.connect();
                c.request(&req(1, &format!("k={i}")).keep_conn(true))
                    .unwrap();
                c
            })
            .collect();
        // A request in progress: STDIN not ended, a thread waits in its read.
        let mut busy = app.connect();
        let mut wire = Vec::new();
        fcgi_runtime_tools::client::encode_begin_and_params(&req(1, "").keep_conn(true), &mut wire);
        busy.send_raw(&wire).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let n = assert_all_cloexec(app.pid(), &format!("{program} on {addr}"));
        assert!(n >= 6, "{program} on {addr}: only {n} descriptors above 2");
        kept.push(busy);
        drop(app);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The application fork+execs a child while connections are open: the child sees only the
/// descriptors it was given (0, 1, 2).
#[test]
fn an_exec_child_inherits_no_library_descriptor() {
    let dir = temp_dir("exec");
    let unix = dir.join("s.sock");
    for addr in [
        format!("127.0.0.1:{}", common::free_port()),
        unix.to_str().unwrap().to_string(),
    ] {
        let mut spec = Spec::adv(2, &[]);
        spec.args[0] = addr.clone();
        spec.addr = addr.clone();
        let app = App::start(spec);
        let _kept: Vec<Client> = (0..3)
            .map(|i| {
                let mut c = app.connect();
                c.request(&req(1, &format!("k={i}")).keep_conn(true))
                    .unwrap();
                c
            })
            .collect();
        let mut c = app.connect();
        let out = c.request(&req(1, "exec=1").keep_conn(true)).unwrap().stdout;
        let text = String::from_utf8_lossy(&out);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        // "lrwx------ 1 root root 64 Nov 22 06:10 3 -> socket:[123]"; ls's own descriptor
        // for the /proc/PID/fd directory it lists is not inherited.
        let fds: BTreeSet<u32> = body
            .lines()
            .filter_map(|l| {
                let (left, target) = l.split_once(" -> ")?;
                let is_listing = target.starts_with("/proc/") && target.ends_with("/fd");
                (!is_listing).then(|| left.split_whitespace().last()?.parse().ok())?
            })
            .collect();
        assert!(fds.contains(&1), "no listing from the child: {body}");
        assert_eq!(
            fds,
            BTreeSet::from([0, 1, 2]),
            "the child of the application on {addr} sees: {body}"
        );
        drop(app);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

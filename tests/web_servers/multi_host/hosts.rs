//! The three hosts: one fcgi-spawn each, on 127.0.0.2, 127.0.0.3 and 127.0.0.4 and the same
//! port, started with docs/deploy.md's `fcgi-spawn hosts` command line as written (through
//! `deploy_docs::several_hosts_spawn`), running tests/web_servers/multi_host/host_app.c on the
//! project's libfcgi.so.0 with `HOST_NAME=host1` (`host2`, `host3`): the names HAProxy's
//! configuration gives the servers.

use crate::deploy_docs::several_hosts_spawn;
use crate::harness::{self, Fixture, START_TIMEOUT};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The hosts' loopback addresses, host1 first.
pub const IPS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

/// The hosts' FCGI_WEB_SERVER_ADDRS: where the balancers connect from.
pub const BALANCERS: &str = "127.0.0.1";

pub struct Host {
    /// `host1`...: its HOST_NAME, HAProxy's server name, its process name in the fixture.
    pub name: String,
    pub ip: &'static str,
    pub pid_file: PathBuf,
}

pub struct Hosts {
    pub port: u16,
    /// Workers per host: the command line's `-F`.
    pub workers: usize,
    pub hosts: Vec<Host>,
}

/// host_app.c built once per test binary against the project's headers and library.
fn host_app() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| harness::build_c("tests/web_servers/multi_host/host_app.c"))
}

/// A port free on all three addresses (bound on each and released).
fn free_port_on_all() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind((IPS[0], 0)).expect("bind 127.0.0.2:0");
        let port = first.local_addr().expect("local_addr").port();
        if IPS[1..]
            .iter()
            .all(|ip| TcpListener::bind((*ip, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on {IPS:?}")
}

/// Whether something accepts connections on `ip`:`port`.
pub fn accepts(ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// A TCP connection to `ip`:`port` from the local address `from` (bound before connecting),
/// as a client on another machine would come.
pub fn connect_from(from: &str, ip: &str, port: u16) -> io::Result<TcpStream> {
    let bad = |e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}"));
    let src: Ipv4Addr = from.parse().map_err(bad)?;
    let dst: Ipv4Addr = ip.parse().map_err(bad)?;
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the socket just created, owned by nothing else; OwnedFd closes it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let a = sin(src, 0);
    // SAFETY: bind(2) on that socket with a valid sockaddr_in and its size.
    if unsafe { libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let b = sin(dst, port);
    // SAFETY: connect(2) on that socket with a valid sockaddr_in and its size.
    if unsafe { libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(sock))
}

/// Whether process `pid` has a libfcgi mapped.
fn maps_libfcgi(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .contains("libfcgi")
}

impl Hosts {
    /// Starts the three hosts and waits until each accepts and its workers run host_app on the
    /// project's library. The port is tried again (another one) if one was taken meanwhile.
    pub fn start(fx: &mut Fixture) -> Hosts {
        let program = host_app();
        for attempt in 0..5 {
            let port = free_port_on_all();
            let hosts: Vec<Host> = IPS
                .iter()
                .enumerate()
                .map(|(i, ip)| Host {
                    name: format!("host{}", i + 1),
                    ip,
                    pid_file: fx.path(&format!("host{}-try{attempt}.pid", i + 1)),
                })
                .collect();
            let mut workers = 0;
            for h in &hosts {
                let argv = several_hosts_spawn(h.ip, port, &h.pid_file, program);
                workers = argv
                    .iter()
                    .position(|a| a == "-F")
                    .and_then(|i| argv.get(i + 1))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("no -F N in the hosts' command line {argv:?}"));
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..])
                    .env("HOST_NAME", &h.name)
                    .env("LD_LIBRARY_PATH", harness::lib_dir())
                    .env_remove("PHP_FCGI_CHILDREN")
                    // As docs/deploy.md advises: only the balancers may connect (on loopback
                    // they connect from 127.0.0.1).
                    .env("FCGI_WEB_SERVER_ADDRS", BALANCERS)
                    .env_remove("LISTEN_FDS")
                    .env_remove("LISTEN_PID")
                    .stdin(Stdio::null());
                fx.spawn(&format!("{}-try{attempt}", h.name), &mut cmd);
            }
            let mut in_use = false;
            for h in &hosts {
                let name = format!("{}-try{attempt}", h.name);
                let deadline = Instant::now() + START_TIMEOUT;
                loop {
                    if accepts(h.ip, port) {
                        break;
                    }
                    if fx.exited(&name).is_some() {
                        if fx.stderr_of(&name).contains("in use") {
                            in_use = true;
                            break;
                        }
                        fx.fail(&format!(
                            "{name} exited before listening on {}:{port}",
                            h.ip
                        ));
                    }
                    if Instant::now() > deadline {
                        fx.fail(&format!("{name} not listening after {START_TIMEOUT:?}"));
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
            if in_use {
                for h in &hosts {
                    let pid = fx.pid(&format!("{}-try{attempt}", h.name));
                    // SAFETY: kill(2) on the process group of a host this test started (it
                    // leads its group, Fixture::spawn); it is not reaped yet.
                    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                }
                continue;
            }
            let mut hosts = hosts;
            for h in &mut hosts {
                let name = format!("{}-try{attempt}", h.name);
                fx.rename(&name, &h.name);
                let pid_file = fx.path(&format!("{}.pid", h.name));
                let _ = fs::rename(&h.pid_file, &pid_file);
                h.pid_file = pid_file;
            }
            let me = Hosts {
                port,
                workers,
                hosts,
            };
            for h in &me.hosts {
                let workers = me.wait_workers(fx, h, &BTreeSet::new());
                for w in workers {
                    fx.check(harness::runs_project_lib(w), || {
                        format!(
                            "{} worker {w} does not run on the project's libfcgi.so.0",
                            h.name
                        )
                    });
                }
            }
            return me;
        }
        fx.fail("cannot start the hosts: their port was always taken")
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// `IP:PORT` of each host, host1 first.
    pub fn addrs(&self) -> [String; 3] {
        let a = |i: usize| format!("{}:{}", self.hosts[i].ip, self.port);
        [a(0), a(1), a(2)]
    }

    /// The supervisor's pid, as its pid file (`-P`) says; checked against the process the
    /// fixture started.
    pub fn supervisor(&self, fx: &Fixture, h: &Host) -> u32 {
        let text = fs::read_to_string(&h.pid_file).unwrap_or_default();
        let pid: u32 = text.trim().parse().unwrap_or_else(|_| {
            fx.fail(&format!(
                "{}: pid file {} holds {text:?}",
                h.name,
                h.pid_file.display()
            ))
        });
        fx.check(pid == fx.pid(&h.name), || {
            format!(
                "{}: pid file says {pid}, the process is {}",
                h.name,
                fx.pid(&h.name)
            )
        });
        pid
    }

    /// Sends `sig` to the host's fcgi-spawn, found by its pid file (as the document's procedures
    /// do).
    pub fn signal(&self, fx: &Fixture, h: &Host, sig: libc::c_int) {
        let pid = self.supervisor(fx, h);
        // SAFETY: kill(2) on the fcgi-spawn this test started (not reaped: it is checked to be
        // the fixture's live child by `supervisor`).
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }

    /// The host's live workers (the supervisor's children).
    pub fn workers(&self, fx: &Fixture, h: &Host) -> BTreeSet<u32> {
        harness::live_children_of(fx.pid(&h.name))
    }

    /// Waits until the host has its [`Hosts::workers`] workers, none of them in `old`, each with
    /// a libfcgi mapped; returns them.
    pub fn wait_workers(&self, fx: &mut Fixture, h: &Host, old: &BTreeSet<u32>) -> BTreeSet<u32> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let now = self.workers(fx, h);
            if now.len() == self.workers
                && now.is_disjoint(old)
                && now.iter().all(|&p| maps_libfcgi(p))
            {
                return now;
            }
            if let Some(st) = fx.exited(&h.name) {
                fx.fail(&format!("{} exited ({st}) waiting for its workers", h.name));
            }
            if Instant::now() > deadline {
                fx.fail(&format!(
                    "{}: want {} workers none of which is in {old:?}, have {now:?} after \
                     {START_TIMEOUT:?}",
                    h.name, self.workers
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the host's process group: its fcgi-spawn and every worker at once. Returns
    /// once none of them runs.
    pub fn kill(&self, fx: &mut Fixture, h: &Host) {
        let sup = fx.pid(&h.name);
        let mut all = self.workers(fx, h);
        all.insert(sup);
        // SAFETY: kill(2) on the process group of a host this test started (it leads its group,
        // Fixture::spawn, and is not reaped yet).
        unsafe { libc::kill(-(sup as libc::pid_t), libc::SIGKILL) };
        fx.wait_exit(&h.name);
        let deadline = Instant::now() + START_TIMEOUT;
        while all.iter().any(|&p| harness::is_alive(p)) {
            if Instant::now() > deadline {
                fx.fail(&format!(
                    "{}: processes {all:?} still run after SIGKILL",
                    h.name
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The seqs of host `h`'s trace (host_app's `trace=1`): those begun and those ended.
    pub fn trace(&self, fx: &Fixture, h: &Host) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let log = fx.stderr_of(&h.name);
        let mut begun = BTreeSet::new();
        let mut ended = BTreeSet::new();
        for l in log.lines() {
            if let Some(s) = l.strip_prefix("host_app: begin ") {
                begun.extend(s.trim().parse::<u64>().ok());
            } else if let Some(s) = l.strip_prefix("host_app: end ") {
                ended.extend(s.trim().parse::<u64>().ok());
            }
        }
        (begun, ended)
    }
}

//! Listening and connecting addresses: PHP's `fcgi_listen` syntax (plus bracketed IPv6), the
//! listening socket itself, and the peer checks FastCGI needs on raw descriptors.
//!
//! Address forms, for [`parse_listen`] and [`connect`]:
//!
//! | text | meaning |
//! |---|---|
//! | `9000` | TCP port 9000 on every IPv4 address (`0.0.0.0`) |
//! | `:9000`, `*:9000` | the same |
//! | `127.0.0.1:9000`, `localhost:9000` | TCP on that address (names resolve, IPv4 preferred) |
//! | `[::1]:9000`, `[::]:9000` | TCP over IPv6; `[::]` is dual-stack |
//! | anything else | a Unix socket path (`/run/app.sock`, `/tmp/x:y`) |
//!
//! A colon whose port part is not a non-zero 16-bit number makes the whole text a Unix path, as in
//! PHP and libfcgi. Two deliberate deviations: an all-digit text that is not a valid non-zero
//! port (`0`, `70000`) is an error rather than a file named like a number, and a text starting
//! with `[` must be a well-formed bracketed IPv6 address with a port.

use super::sys::{self, SockAddr, SUN_PATH_LEN};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where to listen (or connect): a TCP socket address or a Unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address; the unspecified IPv6 address means dual-stack.
    Tcp(SocketAddr),
    /// A Unix-domain socket path (shorter than `sun_path`).
    Unix(PathBuf),
}

/// Why a text is not an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrError {
    /// The host of `host:port` did not resolve; `reason` is the resolver's.
    Unresolved { host: String, reason: String },
    /// A Unix socket path of `len` bytes: `sun_path` holds at most `SUN_PATH_LEN - 1`.
    PathTooLong { path: String, len: usize },
    /// Anything else (an empty text, a bad port or IPv6 address, a NUL byte), as a message.
    Invalid(String),
}

impl AddrError {
    /// The line PHP's `fcgi_listen` logs for the same failure, where it logs one (its texts,
    /// so that a SAPI's log reads as under PHP).
    pub fn php_text(&self) -> Option<String> {
        match self {
            AddrError::Unresolved { host, .. } => {
                Some(format!("Cannot resolve host name '{host}'!"))
            }
            AddrError::PathTooLong { .. } => {
                Some("Listening socket's path name is too long.".to_string())
            }
            AddrError::Invalid(_) => None,
        }
    }
}

impl std::fmt::Display for AddrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrError::Unresolved { host, reason } => {
                write!(f, "cannot resolve host name '{host}': {reason}")
            }
            AddrError::PathTooLong { path, len } => write!(
                f,
                "socket path '{path}' is too long ({len} bytes, at most {})",
                SUN_PATH_LEN - 1
            ),
            AddrError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AddrError {}

/// Parses a listening address in PHP's `fcgi_listen` syntax, extended with `[v6]:port`.
///
/// An empty or `*` host means `0.0.0.0`. Host names are resolved with the system resolver; the
/// first IPv4 result is preferred, else the first result.
pub fn parse_listen(s: &str) -> Result<ListenAddr, AddrError> {
    parse_addr(s, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The shared parser: `empty_host` is what an absent (or `*`) host stands for.
fn parse_addr(s: &str, empty_host: IpAddr) -> Result<ListenAddr, AddrError> {
    let invalid = AddrError::Invalid;
    if s.is_empty() {
        return Err(invalid("empty address".to_string()));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return match parse_port(s) {
            Some(port) => Ok(ListenAddr::Tcp(SocketAddr::new(empty_host, port))),
            None => Err(invalid(format!("invalid port '{s}'"))),
        };
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(|| {
            invalid(format!(
                "invalid IPv6 address '{s}': expected [address]:port"
            ))
        })?;
        let ip: Ipv6Addr = host
            .parse()
            .map_err(|_| invalid(format!("invalid IPv6 address '{host}'")))?;
        let port =
            parse_port(port).ok_or_else(|| invalid(format!("invalid port '{port}' in '{s}'")))?;
        return Ok(ListenAddr::Tcp(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    if let Some((host, port)) = s.split_once(':') {
        if let Some(port) = parse_port(port) {
            let ip = resolve_host(host, port, empty_host)?;
            return Ok(ListenAddr::Tcp(SocketAddr::new(ip, port)));
        }
    }
    unix_path(s).map(ListenAddr::Unix)
}

/// A non-zero port written with ASCII digits only.
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Resolves the host part of `host:port`.
fn resolve_host(host: &str, port: u16, empty_host: IpAddr) -> Result<IpAddr, AddrError> {
    if host.is_empty() || host == "*" {
        return Ok(empty_host);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(ip));
    }
    let unresolved = |reason: String| AddrError::Unresolved {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| unresolved("no address".to_string()))
}

/// Checks that a Unix socket path fits `sun_path` and holds no NUL.
fn unix_path(s: &str) -> Result<PathBuf, AddrError> {
    if s.len() >= SUN_PATH_LEN {
        return Err(AddrError::PathTooLong {
            path: s.to_string(),
            len: s.len(),
        });
    }
    if s.contains('\0') {
        return Err(AddrError::Invalid(
            "socket path contains a NUL byte".to_string(),
        ));
    }
    Ok(PathBuf::from(s))
}

/// Opens a listening socket for `addr`: close-on-exec, blocking, `listen(backlog)`.
///
/// TCP sockets get `SO_REUSEADDR`; an unspecified IPv6 address (`[::]`) gets `IPV6_V6ONLY=0` so it
/// also accepts IPv4. For a Unix path, an existing *socket* file at that path is unlinked first
/// (any other kind of file is left alone and makes bind fail), and the socket file gets the
/// configured owner and mode after bind (`sockperm`; by default mode 0777, as PHP does).
pub fn listen(addr: &ListenAddr, backlog: i32) -> io::Result<OwnedFd> {
    listen_with(addr, backlog, false)
}

/// [`listen`], with `SO_REUSEPORT` on a TCP socket when `reuseport` (a pool's setting: another
/// instance may bind the same address during a blue/green switch).
pub fn listen_with(addr: &ListenAddr, backlog: i32, reuseport: bool) -> io::Result<OwnedFd> {
    listen_steps(addr, backlog, reuseport, Some(0o777)).map_err(|(_, e)| e)
}

/// A failed step of opening a listening socket (`"socket"`, `"SO_REUSEADDR"`, `"bind"`,
/// `"listen"`, ...), and its error.
pub(crate) type StepError = (&'static str, io::Error);

/// [`listen_with`] for every face, telling which step failed. `unix_mode` is the mode a Unix
/// socket file gets when nothing is configured (`sockperm`): 0777 for the native API (PHP's),
/// `None` (the umask's) for the libfcgi face. The socket file's owner and mode are set before
/// listen(2), so that no client connects to a file that is not yet as configured; if either
/// step fails, the file is removed.
pub fn listen_steps(
    addr: &ListenAddr,
    backlog: i32,
    reuseport: bool,
    unix_mode: Option<u32>,
) -> Result<OwnedFd, StepError> {
    let step = |name: &'static str| move |e: io::Error| (name, e);
    let fd = match addr {
        ListenAddr::Tcp(sa) => {
            let domain = if sa.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let fd = sys::socket(domain, libc::SOCK_STREAM).map_err(step("socket"))?;
            let raw = fd.as_raw_fd();
            sys::set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
                .map_err(step("SO_REUSEADDR"))?;
            if reuseport {
                sys::set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
                    .map_err(step("SO_REUSEPORT"))?;
            }
            if let SocketAddr::V6(a) = sa {
                if a.ip().is_unspecified() {
                    sys::set_int_option(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)
                        .map_err(step("IPV6_V6ONLY"))?;
                }
            }
            sys::bind(raw, &SockAddr::from_std(sa)).map_err(step("bind"))?;
            sys::listen(raw, backlog).map_err(step("listen"))?;
            fd
        }
        ListenAddr::Unix(path) => {
            let bytes = path.as_os_str().as_bytes();
            let sa = SockAddr::unix(bytes).ok_or_else(|| {
                let code = if bytes.len() >= SUN_PATH_LEN {
                    libc::ENAMETOOLONG
                } else {
                    libc::EINVAL // a NUL byte
                };
                ("path", io::Error::from_raw_os_error(code))
            })?;
            if let Ok(md) = std::fs::symlink_metadata(path) {
                if md.file_type().is_socket() {
                    std::fs::remove_file(path).map_err(step("unlink"))?;
                }
            }
            let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM).map_err(step("socket"))?;
            sys::bind(fd.as_raw_fd(), &sa).map_err(step("bind"))?;
            let fail = |what: &'static str, e: io::Error| {
                let _ = std::fs::remove_file(path);
                (what, e)
            };
            super::sockperm::apply(path, unix_mode).map_err(|e| fail("socket permissions", e))?;
            sys::listen(fd.as_raw_fd(), backlog).map_err(|e| fail("listen", e))?;
            fd
        }
    };
    super::shed::note_own_listener(fd.as_raw_fd());
    Ok(fd)
}

/// True when `fd` is a socket with no peer, i.e. `getpeername` fails with `ENOTCONN`: how PHP and
/// libfcgi decide that fd 0 is a listening socket inherited from a web server (FastCGI mode).
pub fn fd_is_listening_socket(fd: RawFd) -> bool {
    matches!(sys::peer_addr(fd), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// The peer of a connected socket, as far as access control cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 or IPv6 peer.
    Tcp(SocketAddr),
    /// A Unix-domain peer.
    Unix,
    /// Anything else, including descriptors getpeername fails on.
    Other,
}

impl Peer {
    /// The client's IP address as PHP's `fcgi_get_last_client_ip` shows it (an IPv4-mapped
    /// IPv6 address as IPv4); None for peers that are not TCP.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(sa) => Some(match sa.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            }),
            Peer::Unix | Peer::Other => None,
        }
    }
}

/// For log lines: the client's IP address (as [`Peer::ip`]), "a Unix socket" or "an unknown
/// peer".
impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self, self.ip()) {
            (_, Some(ip)) => write!(f, "{ip}"),
            (Peer::Unix, None) => f.write_str("a Unix socket"),
            _ => f.write_str("an unknown peer"),
        }
    }
}

/// Finds the peer of a connected socket with `getpeername`.
pub fn peer_of(fd: RawFd) -> Peer {
    match sys::peer_addr(fd) {
        Ok(a) => peer_from(&a.ss),
        Err(_) => Peer::Other,
    }
}

/// The peer an address returned by accept(2) or getpeername(2) names.
pub fn peer_from(ss: &libc::sockaddr_storage) -> Peer {
    if ss.ss_family as libc::c_int == libc::AF_UNIX {
        return Peer::Unix;
    }
    sys::socket_addr_of(ss).map_or(Peer::Other, Peer::Tcp)
}

/// A connected client stream over TCP or a Unix socket.
#[derive(Debug)]
pub enum ClientStream {
    /// A TCP connection (`TCP_NODELAY` set).
    Tcp(TcpStream),
    /// A Unix-domain connection.
    Unix(UnixStream),
}

impl ClientStream {
    /// Half-closes the stream: the peer reads EOF, this side can still read.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.shutdown(how),
            ClientStream::Unix(s) => s.shutdown(how),
        }
    }

    /// Sets the read timeout (`None`: block forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.set_read_timeout(t),
            ClientStream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// Sets the write timeout (`None`: block forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.set_write_timeout(t),
            ClientStream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// A second handle to the same connection (e.g. for a writer thread).
    pub fn try_clone(&self) -> io::Result<ClientStream> {
        Ok(match self {
            ClientStream::Tcp(s) => ClientStream::Tcp(s.try_clone()?),
            ClientStream::Unix(s) => ClientStream::Unix(s.try_clone()?),
        })
    }
}

impl AsRawFd for ClientStream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ClientStream::Tcp(s) => s.as_raw_fd(),
            ClientStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.read(buf),
            ClientStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.write(buf),
            ClientStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects to an address in the [`parse_listen`] syntax, like libfcgi's `OS_FcgiConnect`.
///
/// An empty (or `*`) host, or an all-digit port, means `127.0.0.1`; `[::]` means `[::1]`.
pub fn connect(s: &str) -> io::Result<ClientStream> {
    let addr = parse_addr(s, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    match addr {
        ListenAddr::Tcp(mut sa) => {
            if sa.ip().is_unspecified() {
                sa.set_ip(match sa.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            let s = TcpStream::connect(sa)?;
            s.set_nodelay(true)?;
            Ok(ClientStream::Tcp(s))
        }
        ListenAddr::Unix(path) => Ok(ClientStream::Unix(UnixStream::connect(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    fn tcp(s: &str) -> SocketAddr {
        match parse_listen(s) {
            Ok(ListenAddr::Tcp(a)) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn unix(s: &str) -> PathBuf {
        match parse_listen(s) {
            Ok(ListenAddr::Unix(p)) => p,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fcgi-addr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn port_only_forms() {
        assert_eq!(tcp("9000"), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(tcp(":9000"), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(tcp("*:9000"), "0.0.0.0:9000".parse().unwrap());
        assert!(parse_listen("0").is_err());
        assert!(parse_listen("70000").is_err());
        assert!(parse_listen("").is_err());
    }

    #[test]
    fn host_forms() {
        assert_eq!(tcp("127.0.0.1:9000"), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(tcp("10.1.2.3:65535"), "10.1.2.3:65535".parse().unwrap());
        let l = tcp("localhost:9000");
        assert!(l.ip().is_loopback(), "{l}");
        assert_eq!(l.port(), 9000);
        if l.is_ipv6() {
            // Only when the resolver has no IPv4 entry for localhost.
            assert_eq!(l.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        assert!(parse_listen("no-such-host.invalid:9000").is_err());
    }

    /// The failures PHP's fcgi_listen logs have PHP's lines; the others none.
    #[test]
    fn php_texts_of_errors() {
        let e = parse_listen("no-such-host.invalid:9000").unwrap_err();
        assert_eq!(
            e.php_text().as_deref(),
            Some("Cannot resolve host name 'no-such-host.invalid'!")
        );
        let e = parse_listen(&format!("/{}", "a".repeat(107))).unwrap_err();
        assert_eq!(
            e.php_text().as_deref(),
            Some("Listening socket's path name is too long.")
        );
        assert!(e.to_string().contains("108 bytes, at most 107"), "{e}");
        for bad in ["", "0", "[::1]", "[nope]:9000"] {
            assert_eq!(parse_listen(bad).unwrap_err().php_text(), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(tcp("[::1]:9000"), "[::1]:9000".parse().unwrap());
        assert_eq!(tcp("[::]:9000"), "[::]:9000".parse().unwrap());
        assert!(parse_listen("[::1]").is_err());
        assert!(parse_listen("[::1]:0").is_err());
        assert!(parse_listen("[nope]:9000").is_err());
        assert!(parse_listen("[1.2.3.4]:9000").is_err());
    }

    #[test]
    fn unix_forms() {
        assert_eq!(unix("/tmp/app.sock"), PathBuf::from("/tmp/app.sock"));
        assert_eq!(unix("/tmp/x:y"), PathBuf::from("/tmp/x:y"));
        assert_eq!(unix("/x/foo:bar"), PathBuf::from("/x/foo:bar"));
        assert_eq!(unix("relative.sock"), PathBuf::from("relative.sock"));
        // Port 0 or out of range after a colon: a path, as in PHP.
        assert_eq!(unix("/tmp/a:0"), PathBuf::from("/tmp/a:0"));
        assert_eq!(unix("/tmp/a:99999"), PathBuf::from("/tmp/a:99999"));
        let max = format!("/{}", "a".repeat(106));
        assert_eq!(max.len(), 107);
        assert_eq!(unix(&max), PathBuf::from(&max));
        let long = format!("/{}", "a".repeat(107));
        assert!(parse_listen(&long).is_err());
    }

    #[test]
    fn listen_tcp_v4() {
        let fd = listen(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()), 16).unwrap();
        assert!(fd_is_listening_socket(fd.as_raw_fd()));
        let std_l = std::net::TcpListener::from(fd);
        let local = std_l.local_addr().unwrap();
        let c = connect(&format!("127.0.0.1:{}", local.port())).unwrap();
        let (srv, _) = std_l.accept().unwrap();
        assert!(!fd_is_listening_socket(c.as_raw_fd()));
        assert!(!fd_is_listening_socket(srv.as_raw_fd()));
        match peer_of(srv.as_raw_fd()) {
            Peer::Tcp(a) => assert_eq!(a.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST)),
            p => panic!("{p:?}"),
        }
        // Empty host and all-digit forms connect to loopback.
        let _c2 = connect(&format!(":{}", local.port())).unwrap();
        let _c3 = connect(&local.port().to_string()).unwrap();
    }

    #[test]
    fn listen_tcp_v6() {
        let fd = match listen(&ListenAddr::Tcp("[::1]:0".parse().unwrap()), 16) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("IPv6 loopback unavailable, skipping: {e}");
                return;
            }
        };
        let l = std::net::TcpListener::from(fd);
        let port = l.local_addr().unwrap().port();
        let _c = connect(&format!("[::1]:{port}")).unwrap();
        let (srv, _) = l.accept().unwrap();
        assert_eq!(
            peer_of(srv.as_raw_fd()),
            Peer::Tcp(srv.peer_addr().unwrap())
        );
    }

    #[test]
    fn listen_dual_stack() {
        let fd = match listen(&ListenAddr::Tcp("[::]:0".parse().unwrap()), 16) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("IPv6 unavailable, skipping: {e}");
                return;
            }
        };
        let l = std::net::TcpListener::from(fd);
        let port = l.local_addr().unwrap().port();
        // An IPv4 client reaches the IPv6 wildcard socket as a v4-mapped peer.
        let _c = connect(&format!("127.0.0.1:{port}")).unwrap();
        let (srv, _) = l.accept().unwrap();
        match peer_of(srv.as_raw_fd()) {
            Peer::Tcp(SocketAddr::V6(a)) => {
                assert_eq!(a.ip().to_ipv4_mapped(), Some(Ipv4Addr::LOCALHOST))
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn listen_unix() {
        let dir = temp_dir("unix");
        let path = dir.join("s.sock");
        // A stale socket file is replaced.
        drop(UnixListener::bind(&path).unwrap());
        let addr = parse_listen(path.to_str().unwrap()).unwrap();
        let fd = listen(&addr, 8).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
        assert!(fd_is_listening_socket(fd.as_raw_fd()));
        let l = UnixListener::from(fd);
        let c = connect(path.to_str().unwrap()).unwrap();
        let (srv, _) = l.accept().unwrap();
        assert_eq!(peer_of(srv.as_raw_fd()), Peer::Unix);
        assert!(!fd_is_listening_socket(c.as_raw_fd()));
        // A regular file in the way is not removed.
        let file = dir.join("plain");
        std::fs::write(&file, b"keep").unwrap();
        assert!(listen(&ListenAddr::Unix(file.clone()), 8).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pipe_is_not_a_listener() {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two c_ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!fd_is_listening_socket(fds[0]));
        assert_eq!(peer_of(fds[0]), Peer::Other);
        // SAFETY: both descriptors were just created by pipe() and are closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        assert!(!fd_is_listening_socket(-1));
    }

    #[test]
    fn client_stream_half_close() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = connect(&l.local_addr().unwrap().to_string()).unwrap();
        let (mut srv, _) = l.accept().unwrap();
        c.write_all(b"ping").unwrap();
        c.shutdown_write().unwrap();
        let mut got = Vec::new();
        srv.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");
        srv.write_all(b"pong").unwrap();
        drop(srv);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"pong");
    }
}

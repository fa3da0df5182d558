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

use std::io::{self, Read, Write};
use std::mem;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream,
    ToSocketAddrs,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Room for a path in `sockaddr_un.sun_path`, including the terminating NUL.
const SUN_PATH_LEN: usize = 108;

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
fn parse_port(s: &str) -> Option<u16> {
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

/// The result of a libc call returning -1 on error, as an `io::Result`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Sets an integer socket option.
fn set_int_opt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket; the option value points at a live c_int of the given size.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Creates a blocking, close-on-exec stream socket of `domain`.
fn new_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments.
    let fd = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Converts a socket address to its C form.
pub(super) fn sockaddr_of(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Converts a C socket address to a `SocketAddr` (IPv4 and IPv6 only).
fn socket_addr_from(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is large enough.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6; storage is large enough.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Builds a `sockaddr_un` for `path` (which must fit `sun_path`).
fn sockaddr_un_of(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= SUN_PATH_LEN || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or contains NUL",
        ));
    }
    // SAFETY: sockaddr_un is plain old data; all-zero is valid and NUL-terminates the path.
    let mut sun: libc::sockaddr_un = unsafe { mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in sun.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((sun, len as libc::socklen_t))
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
    let fd = match addr {
        ListenAddr::Tcp(sa) => {
            let domain = if sa.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let fd = new_socket(domain)?;
            set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            if reuseport {
                set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
            }
            if let SocketAddr::V6(a) = sa {
                if a.ip().is_unspecified() {
                    set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)?;
                }
            }
            let (ss, len) = sockaddr_of(sa);
            // SAFETY: `ss` is a valid sockaddr of `len` bytes for this socket's family.
            cvt(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&ss as *const libc::sockaddr_storage).cast(),
                    len,
                )
            })?;
            fd
        }
        ListenAddr::Unix(path) => {
            let (sun, len) = sockaddr_un_of(path)?;
            if let Ok(md) = std::fs::symlink_metadata(path) {
                if md.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
            let fd = new_socket(libc::AF_UNIX)?;
            // SAFETY: `sun` is a valid sockaddr_un of `len` bytes.
            cvt(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sun as *const libc::sockaddr_un).cast(),
                    len,
                )
            })?;
            if let Err(e) = super::sockperm::apply(path, Some(0o777)) {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            fd
        }
    };
    // SAFETY: `fd` is a bound socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    super::shed::note_own_listener(fd.as_raw_fd());
    Ok(fd)
}

/// Runs getpeername on `fd`; `Err` carries errno.
fn getpeername(fd: RawFd) -> Result<libc::sockaddr_storage, i32> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss`/`len` describe a writable buffer large enough for any socket address; an
    // invalid `fd` only makes the call fail.
    let r = unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(ss)
    }
}

/// True when `fd` is a socket with no peer, i.e. `getpeername` fails with `ENOTCONN`: how PHP and
/// libfcgi decide that fd 0 is a listening socket inherited from a web server (FastCGI mode).
pub fn fd_is_listening_socket(fd: RawFd) -> bool {
    matches!(getpeername(fd), Err(e) if e == libc::ENOTCONN)
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
    match getpeername(fd) {
        Ok(ss) => peer_from(&ss),
        Err(_) => Peer::Other,
    }
}

/// The peer an address returned by accept(2) or getpeername(2) names.
pub fn peer_from(ss: &libc::sockaddr_storage) -> Peer {
    if ss.ss_family as libc::c_int == libc::AF_UNIX {
        return Peer::Unix;
    }
    socket_addr_from(ss).map_or(Peer::Other, Peer::Tcp)
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

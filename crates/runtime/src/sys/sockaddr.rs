//! Socket addresses in the form the kernel gives and takes (`sockaddr_storage` and a length),
//! and their conversions to and from the standard library's `SocketAddr` and Unix paths.

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Room for a path in `sockaddr_un.sun_path`, including the terminating NUL.
pub const SUN_PATH_LEN: usize = 108;

/// A socket address as the kernel gives and takes it.
#[derive(Clone, Copy)]
pub struct SockAddr {
    pub ss: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

/// An all-zero `sockaddr_storage` (family AF_UNSPEC).
pub(super) fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data (integers and byte arrays); all-zero bytes
    // are a valid value of it.
    unsafe { mem::zeroed() }
}

impl SockAddr {
    /// The address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub fn family(&self) -> libc::c_int {
        self.ss.ss_family as libc::c_int
    }

    /// The C form of an IPv4 or IPv6 address (`sockaddr_in`/`sockaddr_in6` and its size).
    pub fn from_std(addr: &SocketAddr) -> SockAddr {
        let mut ss = zeroed_storage();
        let len = match addr {
            SocketAddr::V4(a) => {
                let storage: *mut libc::sockaddr_storage = &mut ss;
                // SAFETY: sockaddr_storage is larger than and at least as aligned as
                // sockaddr_in (it exists to hold any address); `ss` is a live local borrowed
                // mutably only through this reference until it ends.
                let sin = unsafe { &mut *storage.cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let storage: *mut libc::sockaddr_storage = &mut ss;
                // SAFETY: as for IPv4, with sockaddr_in6 (also smaller and no more aligned
                // than sockaddr_storage).
                let sin6 = unsafe { &mut *storage.cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr {
            ss,
            len: len as libc::socklen_t,
        }
    }

    /// The C form of a Unix socket path (`sockaddr_un`, its length counting the terminating
    /// NUL), or `None` when the path does not fit `sun_path` or holds a NUL byte.
    pub fn unix(path: &[u8]) -> Option<SockAddr> {
        if path.len() >= SUN_PATH_LEN || path.contains(&0) {
            return None;
        }
        let mut ss = zeroed_storage();
        let storage: *mut libc::sockaddr_storage = &mut ss;
        // SAFETY: sockaddr_storage is larger than and at least as aligned as sockaddr_un; the
        // storage is all zero, so the path copied below stays NUL-terminated.
        let sun = unsafe { &mut *storage.cast::<libc::sockaddr_un>() };
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in sun.sun_path.iter_mut().zip(path) {
            *dst = src as libc::c_char;
        }
        let len = mem::size_of::<libc::sa_family_t>() + path.len() + 1;
        Some(SockAddr {
            ss,
            len: len as libc::socklen_t,
        })
    }

    /// The IPv4 or IPv6 address this is, `None` for other families.
    pub fn to_std(&self) -> Option<SocketAddr> {
        socket_addr_of(&self.ss)
    }

    /// The address as the `const sockaddr *` system calls take.
    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.ss as *const libc::sockaddr_storage).cast()
    }
}

/// An IPv4 or IPv6 address in C form (as accept(2) and getpeername(2) fill it in) as a
/// `SocketAddr`; `None` for other families.
pub fn socket_addr_of(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let storage: *const libc::sockaddr_storage = ss;
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller than
            // and no more aligned than sockaddr_storage; `ss` is borrowed for the read.
            let sin = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_round_trip() {
        for text in ["127.0.0.1:9000", "[::1]:443", "[fe80::1%2]:80", "0.0.0.0:1"] {
            let sa: SocketAddr = text.parse().unwrap();
            let c = SockAddr::from_std(&sa);
            assert_eq!(c.to_std(), Some(sa), "{text}");
            let want = if sa.is_ipv4() {
                mem::size_of::<libc::sockaddr_in>()
            } else {
                mem::size_of::<libc::sockaddr_in6>()
            };
            assert_eq!(c.len as usize, want);
        }
    }

    #[test]
    fn unix_paths() {
        let a = SockAddr::unix(b"/tmp/s.sock").unwrap();
        assert_eq!(a.family(), libc::AF_UNIX);
        assert_eq!(a.len as usize, mem::size_of::<libc::sa_family_t>() + 12);
        assert_eq!(a.to_std(), None);
        assert!(SockAddr::unix(&[b'a'; SUN_PATH_LEN - 1]).is_some());
        assert!(SockAddr::unix(&[b'a'; SUN_PATH_LEN]).is_none());
        assert!(SockAddr::unix(b"/tmp/a\0b").is_none());
    }
}

//! The listening sockets the master opens and holds for the pools that name them.

use crate::conf::{Listen, PoolSpec};
use crate::socket;
use std::os::fd::OwnedFd;

/// A listening socket the master holds for the pools that name it.
pub(super) struct Sock {
    pub(super) fd: OwnedFd,
    pub(super) unix: Option<socket::UnixFile>,
    pub(super) backlog: i32,
    pub(super) mode: u32,
    pub(super) owner: (Option<u32>, Option<u32>),
}

pub(super) fn open_sock(spec: &PoolSpec) -> Result<Sock, String> {
    let (fd, unix) = match &spec.listen {
        Listen::Tcp(sa) => {
            let open = |sa: std::net::SocketAddr| {
                fcgi_runtime::addr::listen_with(
                    &fcgi_runtime::addr::ListenAddr::Tcp(sa),
                    spec.backlog,
                    false,
                )
            };
            let fd = match open(*sa) {
                // `listen = PORT` on a host without IPv6: every IPv4 address.
                Err(e)
                    if sa.ip().is_unspecified()
                        && sa.is_ipv6()
                        && e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
                {
                    open(std::net::SocketAddr::from(([0, 0, 0, 0], sa.port())))
                }
                r => r,
            }
            .map_err(|e| format!("[pool {}] cannot listen on {sa}: {e}", spec.name))?;
            (fd, None)
        }
        Listen::Unix(p) => {
            let path = p
                .to_str()
                .ok_or_else(|| format!("[pool {}] the socket path is not UTF-8", spec.name))?;
            let (fd, file) =
                socket::unix(path, spec.backlog, spec.sock_owner, Some(spec.sock_mode))
                    .map_err(|e| format!("[pool {}] {e}", spec.name))?;
            (fd, Some(file))
        }
    };
    Ok(Sock {
        fd,
        unix,
        backlog: spec.backlog,
        mode: spec.sock_mode,
        owner: spec.sock_owner,
    })
}

//! Allowed clients: `FCGI_WEB_SERVER_ADDRS` (FastCGI §3.2) and PHP's `fcgi_set_allowed_clients`.
//!
//! The list is comma-separated; each entry is an IPv4 or IPv6 address, optionally with a CIDR
//! prefix length (`10.0.0.0/8`, `fd00::/8`). Differences from PHP, all deliberate:
//! - IPv6 entries compare all 16 bytes (PHP compares only the first 12);
//! - CIDR ranges are accepted;
//! - peers that are not TCP (Unix sockets, anything else) are refused, as §3.2 requires.
//!
//! As in PHP, a list without any valid entry denies every peer: a typo never opens the
//! application to everyone. The runtime consults an [`AllowList`] only when one is configured.

use super::addr::Peer;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One network: address bits plus a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    V4 { addr: u32, prefix: u8 },
    V6 { addr: u128, prefix: u8 },
}

impl Net {
    /// Parses `addr` or `addr/len`, masking off host bits.
    fn parse(entry: &str) -> Option<Net> {
        let (ip, len) = match entry.split_once('/') {
            Some((ip, len)) => {
                if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
                    return None;
                }
                (ip, Some(len.parse::<u8>().ok()?))
            }
            None => (entry, None),
        };
        match ip.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let prefix = len.unwrap_or(32);
                (prefix <= 32).then(|| Net::V4 {
                    addr: u32::from(a) & mask32(prefix),
                    prefix,
                })
            }
            IpAddr::V6(a) => {
                let prefix = len.unwrap_or(128);
                if prefix > 128 {
                    return None;
                }
                // A v4-mapped entry with a prefix covering the mapping is an IPv4 entry.
                match a.to_ipv4_mapped() {
                    Some(v4) if prefix >= 96 => Some(Net::V4 {
                        addr: u32::from(v4) & mask32(prefix - 96),
                        prefix: prefix - 96,
                    }),
                    _ => Some(Net::V6 {
                        addr: u128::from(a) & mask128(prefix),
                        prefix,
                    }),
                }
            }
        }
    }

    fn contains_v4(&self, ip: Ipv4Addr) -> bool {
        match *self {
            Net::V4 { addr, prefix } => u32::from(ip) & mask32(prefix) == addr,
            Net::V6 { .. } => false,
        }
    }

    fn contains_v6(&self, ip: Ipv6Addr) -> bool {
        match *self {
            Net::V6 { addr, prefix } => u128::from(ip) & mask128(prefix) == addr,
            Net::V4 { .. } => false,
        }
    }
}

/// The network mask of an IPv4 prefix length (0..=32).
fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The network mask of an IPv6 prefix length (0..=128).
fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// A parsed allow-list of client addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<Net>,
}

impl AllowList {
    /// Parses a comma-separated list. Returns the list and the entries that could not be parsed
    /// (to be logged as "Wrong IP address '%s' in listen.allowed_clients"). Whitespace around
    /// entries is ignored, and so are empty entries. A list with no valid entry denies every peer.
    pub fn parse(list: &str) -> (AllowList, Vec<String>) {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match Net::parse(entry) {
                Some(n) => nets.push(n),
                None => bad.push(entry.to_string()),
            }
        }
        (AllowList { nets }, bad)
    }

    /// Number of valid entries (0: every peer is denied).
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// True when the list has no valid entry, and so denies every peer.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether a connection from `peer` may be served. Only TCP peers can be allowed; an
    /// IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) is checked against the IPv4 entries.
    pub fn allows(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp(sa) => self.allows_ip(sa.ip()),
            Peer::Unix | Peer::Other => false,
        }
    }

    /// Whether the address `ip` matches an entry.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.nets.iter().any(|n| n.contains_v4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.nets.iter().any(|n| n.contains_v4(v4)),
                None => self.nets.iter().any(|n| n.contains_v6(v6)),
            },
        }
    }

    /// Convenience for a socket address.
    pub fn allows_addr(&self, sa: &SocketAddr) -> bool {
        self.allows_ip(sa.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: &str) -> Peer {
        Peer::Tcp(SocketAddr::new(ip.parse().unwrap(), 4321))
    }

    fn list(s: &str) -> AllowList {
        let (l, bad) = AllowList::parse(s);
        assert!(bad.is_empty(), "{bad:?}");
        l
    }

    #[test]
    fn exact_ipv4() {
        let l = list("127.0.0.1, 10.0.0.5");
        assert_eq!(l.len(), 2);
        assert!(l.allows(&tcp("127.0.0.1")));
        assert!(l.allows(&tcp("10.0.0.5")));
        assert!(!l.allows(&tcp("10.0.0.6")));
        assert!(!l.allows(&tcp("::1")));
    }

    #[test]
    fn whitespace_and_empty_entries() {
        let l = list("  127.0.0.1 ,\t::1\n, ,");
        assert_eq!(l.len(), 2);
        assert!(l.allows(&tcp("127.0.0.1")));
        assert!(l.allows(&tcp("::1")));
    }

    #[test]
    fn ipv4_cidr() {
        let l = list("192.168.0.0/16,10.1.2.3/32");
        assert!(l.allows(&tcp("192.168.255.1")));
        assert!(!l.allows(&tcp("192.169.0.1")));
        assert!(l.allows(&tcp("10.1.2.3")));
        assert!(!l.allows(&tcp("10.1.2.4")));
        // Host bits in the entry are masked off.
        let l = list("10.9.9.9/8");
        assert!(l.allows(&tcp("10.0.0.1")));
        assert!(!l.allows(&tcp("11.0.0.1")));
    }

    #[test]
    fn ipv4_slash_zero_allows_all_v4_only() {
        let l = list("0.0.0.0/0");
        assert!(l.allows(&tcp("1.2.3.4")));
        assert!(l.allows(&tcp("255.255.255.255")));
        assert!(l.allows(&tcp("::ffff:8.8.8.8")));
        assert!(!l.allows(&tcp("2001:db8::1")));
    }

    #[test]
    fn ipv6_full_comparison() {
        let l = list("2001:db8::1");
        assert!(l.allows(&tcp("2001:db8::1")));
        // PHP compares 12 bytes only and would allow these.
        assert!(!l.allows(&tcp("2001:db8::2")));
        assert!(!l.allows(&tcp("2001:db8::1:0:1")));
        let l = list("2001:db8::1/128");
        assert!(l.allows(&tcp("2001:db8::1")));
        assert!(!l.allows(&tcp("2001:db8::2")));
    }

    #[test]
    fn ipv6_cidr() {
        let l = list("2001:db8:1:2::/64");
        assert!(l.allows(&tcp("2001:db8:1:2:ffff::1")));
        assert!(!l.allows(&tcp("2001:db8:1:3::1")));
        let l = list("::/0");
        assert!(l.allows(&tcp("2001:db8::1")));
        assert!(l.allows(&tcp("::1")));
        assert!(!l.allows(&tcp("127.0.0.1")));
    }

    #[test]
    fn mapped_addresses() {
        let l = list("127.0.0.1");
        assert!(l.allows(&tcp("::ffff:127.0.0.1")));
        assert!(!l.allows(&tcp("::ffff:127.0.0.2")));
        // A mapped entry is an IPv4 entry, prefix shifted by 96.
        let l = list("::ffff:10.0.0.0/104");
        assert!(l.allows(&tcp("10.200.0.1")));
        assert!(l.allows(&tcp("::ffff:10.1.1.1")));
        assert!(!l.allows(&tcp("11.0.0.1")));
        let l = list("::ffff:1.2.3.4");
        assert!(l.allows(&tcp("1.2.3.4")));
    }

    #[test]
    fn non_tcp_peers_refused() {
        let l = list("0.0.0.0/0,::/0");
        assert!(!l.allows(&Peer::Unix));
        assert!(!l.allows(&Peer::Other));
    }

    #[test]
    fn garbage_entries() {
        let (l, bad) = AllowList::parse("127.0.0.1,localhost,1.2.3,10.0.0.0/33,::1/129,1.2.3.4/,/8,1.2.3.4/x,::1/-1,1.2.3.4/0008");
        assert_eq!(l.len(), 1);
        assert_eq!(
            bad,
            [
                "localhost",
                "1.2.3",
                "10.0.0.0/33",
                "::1/129",
                "1.2.3.4/",
                "/8",
                "1.2.3.4/x",
                "::1/-1",
                "1.2.3.4/0008"
            ]
        );
        assert!(l.allows(&tcp("127.0.0.1")));
    }

    #[test]
    fn no_valid_entry_denies_all() {
        for s in ["", "   ", "bogus", "a,b,c", ",,"] {
            let (l, _) = AllowList::parse(s);
            assert!(l.is_empty());
            assert!(!l.allows(&tcp("127.0.0.1")), "{s:?}");
            assert!(!l.allows(&tcp("::1")), "{s:?}");
            assert!(!l.allows(&Peer::Unix));
        }
    }
}

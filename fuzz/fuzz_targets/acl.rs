//! The allowed-clients list (FCGI_WEB_SERVER_ADDRS): any text parses without panicking, every
//! entry is either kept or reported, and whether an address is allowed agrees with a
//! bit-by-bit reference of CIDR matching (IPv4, IPv6, IPv4-mapped IPv6); non-TCP peers never.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fcgi_fuzz::rng::Bytes;
use fcgi_runtime::acl::AllowList;
use fcgi_runtime::addr::Peer;
use libfuzzer_sys::fuzz_target;

/// An address as octets: 4 for IPv4 (and IPv4-mapped IPv6), 16 for IPv6.
fn octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => {
            let o = a.octets();
            if o[..10] == [0; 10] && o[10..12] == [0xff, 0xff] {
                o[12..].to_vec()
            } else {
                o.to_vec()
            }
        }
    }
}

/// An entry as (network octets, prefix length), or None when it is not valid.
fn entry(e: &str) -> Option<(Vec<u8>, usize)> {
    let (ip, len) = match e.split_once('/') {
        Some((ip, len)) => {
            let ok = (1..=3).contains(&len.len()) && len.bytes().all(|b| b.is_ascii_digit());
            (ip, Some(len).filter(|_| ok)?.parse::<usize>().ok())
        }
        None => (e, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = len.unwrap_or(full);
    if prefix > full {
        return None;
    }
    let o = octets(ip);
    if o.len() == 4 && full == 128 {
        // IPv4-mapped: an IPv4 entry when the prefix covers the mapping, else an IPv6 one
        // that no IPv4 (or mapped) peer can match.
        if prefix < 96 {
            let IpAddr::V6(a) = ip else { unreachable!() };
            return Some((a.octets().to_vec(), prefix));
        }
        return Some((o, prefix - 96));
    }
    Some((o, prefix))
}

fn matches(net: &[u8], prefix: usize, probe: &[u8]) -> bool {
    net.len() == probe.len()
        && (0..prefix).all(|i| (net[i / 8] ^ probe[i / 8]) & (0x80 >> (i % 8)) == 0)
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let p4 = Ipv4Addr::from(b.u32());
    let mut p6 = [0u8; 16];
    for x in &mut p6 {
        *x = b.u8();
    }
    let list = String::from_utf8_lossy(b.rest());
    let (acl, bad) = AllowList::parse(&list);
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    assert_eq!(acl.len() + bad.len(), entries.len());
    let nets: Vec<(Vec<u8>, usize)> = entries.iter().filter_map(|e| entry(e)).collect();
    assert_eq!(nets.len(), acl.len(), "valid entries");
    for e in &bad {
        assert!(entry(e).is_none(), "{e:?} refused");
    }
    let probes = [
        IpAddr::V4(p4),
        IpAddr::V6(Ipv6Addr::from(p6)),
        IpAddr::V6(p4.to_ipv6_mapped()),
    ];
    for ip in probes {
        let o = octets(ip);
        let want = nets.iter().any(|(n, len)| matches(n, *len, &o));
        assert_eq!(acl.allows_ip(ip), want, "{ip} against {list:?}");
        let tcp = Peer::Tcp(std::net::SocketAddr::new(ip, 9000));
        assert_eq!(acl.allows(&tcp), want);
    }
    assert!(!acl.allows(&Peer::Unix) && !acl.allows(&Peer::Other));
});

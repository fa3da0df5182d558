//! A client address as NUL-terminated text for the C API, formatted only when the address
//! changes (a kept-alive connection's requests reuse the text): no allocation, no formatting
//! per request.

use std::io::Write;
use std::net::IpAddr;
use std::os::raw::c_char;

/// Room for the longest IPv6 text (45 bytes, INET6_ADDRSTRLEN - 1) and its NUL.
const LEN: usize = 48;

/// The text of one address, or none.
pub struct IpText {
    ip: Option<IpAddr>,
    buf: [u8; LEN],
}

impl IpText {
    pub const fn new() -> IpText {
        IpText {
            ip: None,
            buf: [0; LEN],
        }
    }

    /// Holds `ip` from now on (`None`: no address).
    pub fn set(&mut self, ip: Option<IpAddr>) {
        if self.ip == ip {
            return;
        }
        self.ip = ip;
        if let Some(ip) = ip {
            let mut w = &mut self.buf[..LEN - 1];
            let _ = write!(w, "{ip}");
            let len = LEN - 1 - w.len();
            self.buf[len] = 0;
        }
    }

    /// The NUL-terminated text, or NULL without an address. Valid until the next `set` with
    /// another address (the buffer is rewritten in place).
    pub fn as_ptr(&self) -> *const c_char {
        match self.ip {
            Some(_) => self.buf.as_ptr().cast(),
            None => std::ptr::null(),
        }
    }
}

impl Default for IpText {
    fn default() -> Self {
        IpText::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn text(t: &IpText) -> Option<String> {
        let p = t.as_ptr();
        // SAFETY: as_ptr gives NULL or a NUL-terminated buffer inside `t`.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
    }

    #[test]
    fn formats_and_reuses() {
        let mut t = IpText::new();
        assert_eq!(text(&t), None);
        t.set(Some("192.168.100.200".parse().unwrap()));
        assert_eq!(text(&t).as_deref(), Some("192.168.100.200"));
        t.set(Some("10.0.0.1".parse().unwrap()));
        assert_eq!(text(&t).as_deref(), Some("10.0.0.1"));
        let long: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        t.set(Some(long));
        assert_eq!(text(&t), Some(long.to_string()));
        t.set(None);
        assert_eq!(text(&t), None);
    }
}

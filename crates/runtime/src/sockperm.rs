//! Mode and owner of the Unix listening sockets the library creates (`fcgi_listen`,
//! `FCGX_OpenSocket`, `OS_CreateLocalIpcFd`).
//!
//! Configured by the application (`fcgi_set_socket_permissions`) or, for settings it did not
//! make, by the environment: `FCGI_RUNTIME_SOCKET_MODE` (octal, e.g. `0660`) and
//! `FCGI_RUNTIME_SOCKET_OWNER` (`user`, `user:group` or `:group`; names or numeric ids).
//! Unset, each face keeps what the library it replaces did: the native API makes the socket
//! 0777 (PHP's `fcgi_listen`), the libfcgi face leaves the mode the umask gives and the owner
//! the process's. A setting that cannot be applied (bad value, unknown user, chown refused)
//! makes the listen call fail: a socket must not end up more open than asked.

use parking_lot::Mutex;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Environment variable for the mode (octal).
pub const MODE_ENV: &str = "FCGI_RUNTIME_SOCKET_MODE";
/// Environment variable for the owner (`user[:group]`).
pub const OWNER_ENV: &str = "FCGI_RUNTIME_SOCKET_OWNER";

/// Owner to give the socket file: `None` leaves that id unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Default)]
struct Settings {
    mode: Option<u32>,
    owner: Option<Owner>,
}

static API: Mutex<Settings> = Mutex::new(Settings {
    mode: None,
    owner: None,
});

/// Parses an octal mode of at most 0o777 (`660`, `0660`, `0o660`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "invalid socket mode '{s}': expected octal digits, at most 0777"
        )),
    }
}

/// Parses `user`, `user:group` or `:group` (names or numeric ids) into ids.
pub fn parse_owner(s: &str) -> Result<Owner, String> {
    let (user, group) = match s.trim().split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s.trim(), None),
    };
    let mut o = Owner::default();
    if !user.is_empty() {
        o.uid = Some(user_id(user).ok_or_else(|| format!("unknown user '{user}' in '{s}'"))?);
    }
    match group {
        Some(g) if !g.is_empty() => {
            o.gid = Some(group_id(g).ok_or_else(|| format!("unknown group '{g}' in '{s}'"))?);
        }
        Some(_) => return Err(format!("empty group in socket owner '{s}'")),
        None => {}
    }
    if o.uid.is_none() && o.gid.is_none() {
        return Err(format!("empty socket owner '{s}'"));
    }
    Ok(o)
}

fn user_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    super::sys::user_id(&CString::new(name).ok()?)
}

fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    super::sys::group_id(&CString::new(name).ok()?)
}

/// Sets the mode and owner from the API; `None` leaves that setting to the environment and
/// the default. Validates the owner now (unknown names are an error).
pub fn set(mode: Option<u32>, owner: Option<&str>) -> Result<(), String> {
    if let Some(m) = mode {
        if m > 0o777 {
            return Err(format!("invalid socket mode {m:o}: at most 0777"));
        }
    }
    let owner = owner.map(parse_owner).transpose()?;
    let mut a = API.lock();
    a.mode = mode;
    a.owner = owner;
    Ok(())
}

/// The mode and owner in effect: the API's, else the environment's, else `default_mode` and
/// no change of owner.
fn effective(default_mode: Option<u32>) -> io::Result<(Option<u32>, Option<Owner>)> {
    let inval = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let a = API.lock();
    let mode = match a.mode {
        Some(m) => Some(m),
        None => match std::env::var(MODE_ENV) {
            Ok(v) => Some(parse_mode(&v).map_err(|e| inval(format!("{MODE_ENV}: {e}")))?),
            Err(_) => default_mode,
        },
    };
    let owner = match a.owner {
        Some(o) => Some(o),
        None => match std::env::var(OWNER_ENV) {
            Ok(v) => Some(parse_owner(&v).map_err(|e| inval(format!("{OWNER_ENV}: {e}")))?),
            Err(_) => None,
        },
    };
    Ok((mode, owner))
}

/// Applies the configured owner, then mode, to the socket file just bound at `path`.
/// `default_mode` is the face's mode when nothing is configured (`None`: the umask's).
pub fn apply(path: &Path, default_mode: Option<u32>) -> io::Result<()> {
    let (mode, owner) = effective(default_mode)?;
    if let Some(o) = owner {
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // chown(2); `None` (-1) leaves an id unchanged.
        std::os::unix::fs::chown(path, o.uid, o.gid)?;
    }
    if let Some(m) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert_eq!(parse_mode(" 0777 "), Ok(0o777));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("8").is_err());
        assert!(parse_mode("").is_err());
        assert!(parse_mode("rw").is_err());
    }

    #[test]
    fn owners() {
        assert_eq!(
            parse_owner("0:0"),
            Ok(Owner {
                uid: Some(0),
                gid: Some(0)
            })
        );
        assert_eq!(
            parse_owner("root"),
            Ok(Owner {
                uid: Some(0),
                gid: None
            })
        );
        assert_eq!(
            parse_owner(":root"),
            Ok(Owner {
                uid: None,
                gid: Some(0)
            })
        );
        assert!(parse_owner("no-such-user-fcgi").is_err());
        assert!(parse_owner("root:no-such-group-fcgi").is_err());
        assert!(parse_owner("root:").is_err());
        assert!(parse_owner("").is_err());
    }
}

//! Users, groups, chroot and the privilege drop, in spawn-fcgi's order: bind (before the
//! chroot with -S), setgid + setgroups + initgroups while /etc/group is reachable, chroot,
//! bind (inside the chroot by default), setuid. Like spawn-fcgi it never switches to uid or
//! gid 0, and the options are for root only (ignored with a warning otherwise).

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

/// A user or group resolved from a name or a number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The user's name, for initgroups.
    pub user_name: Option<CString>,
    /// The user's home directory (pool files: `HOME` in the programs' environment, as FPM).
    pub home: Option<String>,
}

pub fn is_root() -> bool {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() == 0 }
}

fn numeric(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().filter(|&n| n > 0)
}

/// Resolves `user` and `group` as spawn-fcgi's find_user_group does: a positive number is an
/// id, anything else a name; the group defaults to the user's primary group; uid 0 and gid 0
/// are refused.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Ids, String> {
    let mut ids = Ids::default();
    let mut primary = None;
    if let Some(u) = user {
        // SAFETY: getpwnam/getpwuid return NULL or a pointer to static data, read at once
        // (the process has one thread).
        let pw = unsafe {
            match numeric(u) {
                Some(n) => libc::getpwuid(n),
                None => {
                    let c = CString::new(u).map_err(|_| format!("bad user name '{u}'"))?;
                    libc::getpwnam(c.as_ptr())
                }
            }
        };
        if pw.is_null() {
            match numeric(u) {
                Some(n) => ids.uid = Some(n),
                None => return Err(format!("can't find user name {u}")),
            }
        } else {
            // SAFETY: a valid passwd entry (see above).
            let pw = unsafe { &*pw };
            ids.uid = Some(pw.pw_uid);
            primary = Some(pw.pw_gid);
            // SAFETY: pw_name is a NUL-terminated string of the entry.
            ids.user_name = Some(unsafe { CStr::from_ptr(pw.pw_name) }.to_owned());
            if !pw.pw_dir.is_null() {
                // SAFETY: pw_dir is a NUL-terminated string of the entry.
                let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
                ids.home = Some(dir.to_string_lossy().into_owned());
            }
        }
        if ids.uid == Some(0) {
            return Err("I will not set uid to 0".to_string());
        }
    }
    if let Some(g) = group {
        let gid = match numeric(g) {
            Some(n) => n,
            None => {
                let c = CString::new(g).map_err(|_| format!("bad group name '{g}'"))?;
                // SAFETY: as for getpwnam.
                let gr = unsafe { libc::getgrnam(c.as_ptr()) };
                if gr.is_null() {
                    return Err(format!("can't find group name {g}"));
                }
                // SAFETY: a valid group entry.
                unsafe { (*gr).gr_gid }
            }
        };
        ids.gid = Some(gid);
    } else {
        ids.gid = primary;
    }
    if ids.gid == Some(0) {
        return Err("I will not set gid to 0".to_string());
    }
    Ok(ids)
}

fn os_err(what: String) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// setgid, setgroups(0) and initgroups (when the user has a name): before the chroot.
pub fn set_group(ids: &Ids) -> Result<(), String> {
    let Some(gid) = ids.gid else {
        return Ok(());
    };
    // SAFETY: plain system calls; the name is NUL-terminated.
    unsafe {
        if libc::setgid(gid) != 0 {
            return Err(os_err(format!("setgid({gid}) failed")));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_err("setgroups failed".to_string()));
        }
        if let Some(name) = &ids.user_name {
            if libc::initgroups(name.as_ptr(), gid) != 0 {
                return Err(os_err(format!("initgroups({name:?}) failed")));
            }
        }
    }
    Ok(())
}

/// chroot to `dir`, then chdir("/").
pub fn chroot(dir: &Path) -> Result<(), String> {
    let c = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| "NUL in the chroot path".to_string())?;
    // SAFETY: NUL-terminated paths.
    unsafe {
        if libc::chroot(c.as_ptr()) != 0 {
            return Err(os_err(format!("chroot('{}') failed", dir.display())));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(os_err("chdir('/') failed".to_string()));
        }
    }
    Ok(())
}

/// setuid: the last step.
pub fn set_user(ids: &Ids) -> Result<(), String> {
    if let Some(uid) = ids.uid {
        // SAFETY: setuid(2).
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(os_err(format!("setuid({uid}) failed")));
        }
    }
    Ok(())
}

//! The user and group databases (getpwnam_r(3), getgrnam_r(3)): names to ids.

use std::ffi::CStr;

/// Room for the strings of one passwd or group entry.
const BUF_LEN: usize = 16384;

/// The uid of user `name`, `None` when there is no such user (or the lookup failed).
pub fn user_id(name: &CStr) -> Option<u32> {
    // SAFETY: passwd is plain old data (integers and pointers); all-zero bytes are valid.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; BUF_LEN];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; `pw`, `buf` (of the length given) and `res` are live
    // and writable for the call; the entry's strings point into `buf`, which is not read.
    let r = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    (r == 0 && !res.is_null()).then_some(pw.pw_uid)
}

/// The gid of group `name`, `None` when there is no such group (or the lookup failed).
pub fn group_id(name: &CStr) -> Option<u32> {
    // SAFETY: group is plain old data (integers and pointers); all-zero bytes are valid.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; BUF_LEN];
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_id`, for a group entry.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    (r == 0 && !res.is_null()).then_some(gr.gr_gid)
}

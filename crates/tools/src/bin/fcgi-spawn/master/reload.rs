//! A reload (SIGHUP, SIGUSR2): the file read again, new sockets opened first, the pools
//! diffed (added ones start, removed ones drain, changed ones get a new supervisor before the
//! old one drains, unchanged ones get SIGHUP), sockets no pool names closed.

use super::global::{apply_global, write_pid};
use super::signals::signal_name;
use super::sockets::{open_sock, Sock};
use super::{conf_options, Master, Phase, PoolState};
use crate::conf::{self, Listen};
use crate::notify_relay;
use fcgi_runtime::log::Level;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

impl Master {
    pub(super) fn reload(&mut self, sig: libc::c_int) {
        self.log.line(
            Level::Notice,
            &format!(
                "reloading {} ({})",
                self.args.file.display(),
                signal_name(sig)
            ),
        );
        if let Some(sd) = &self.systemd {
            sd.send(&format!(
                "RELOADING=1\nMONOTONIC_USEC={}",
                notify_relay::monotonic_usec()
            ));
        }
        let failed = |m: &mut Master, e: String| {
            m.log.line(Level::Error, &e);
            m.log.line(
                Level::Error,
                "reload failed: the pools keep running as they were",
            );
            m.phase = Phase::Running;
            if let Some(sd) = &m.systemd {
                sd.send(&format!("READY=1\nSTATUS=reload failed: {e}"));
            }
        };
        let mut notes = Vec::new();
        let new = conf::load_noting(
            &self.args.file,
            conf_options(self.args.allow_root),
            &mut notes,
        );
        self.log.notes(&notes);
        let new = match new {
            Ok(c) => c,
            Err(e) => return failed(self, e),
        };
        // New sockets first: if one cannot be opened, nothing changes.
        let mut opened: Vec<(Listen, Sock)> = Vec::new();
        for p in &new.pools {
            if self.sockets.contains_key(&p.listen) || opened.iter().any(|(l, _)| *l == p.listen) {
                continue;
            }
            match open_sock(p) {
                Ok(s) => opened.push((p.listen.clone(), s)),
                Err(e) => {
                    for (_, s) in &opened {
                        if let Some(u) = &s.unix {
                            u.remove();
                        }
                    }
                    return failed(self, e);
                }
            }
        }
        let old_global = self.conf.global.clone();
        if let Err(e) = apply_global(&new, &mut self.log, &mut self.error_log, Some(&old_global)) {
            self.log.line(Level::Error, &e);
        }
        let new_pid = self
            .args
            .pid_file
            .clone()
            .or_else(|| new.global.pid.clone());
        if new_pid != self.pid_file {
            self.remove_pid_file();
            if let Some(p) = &new_pid {
                if let Err(e) = write_pid(p) {
                    self.log.line(Level::Error, &e);
                }
            }
            self.pid_file = new_pid;
        }
        for (l, s) in opened {
            self.sockets.insert(l, s);
        }
        // Sockets kept: their backlog, mode and owner as the file now says.
        for p in &new.pools {
            let spec = p;
            let Some(s) = self.sockets.get_mut(&spec.listen) else {
                continue;
            };
            if s.backlog != spec.backlog {
                let _ = fcgi_runtime::sys::listen(s.fd.as_raw_fd(), spec.backlog);
                s.backlog = spec.backlog;
            }
            if let (Some(u), true) = (
                &s.unix,
                s.mode != spec.sock_mode || s.owner != spec.sock_owner,
            ) {
                use std::os::unix::fs::PermissionsExt;
                if spec.sock_owner != (None, None) {
                    let _ = std::os::unix::fs::chown(&u.path, spec.sock_owner.0, spec.sock_owner.1);
                }
                let _ = std::fs::set_permissions(
                    &u.path,
                    std::fs::Permissions::from_mode(spec.sock_mode),
                );
                s.mode = spec.sock_mode;
                s.owner = spec.sock_owner;
            }
        }
        // Pools removed.
        let removed: Vec<String> = self
            .pools
            .keys()
            .filter(|n| !new.pools.iter().any(|p| p.name == **n))
            .cloned()
            .collect();
        for name in removed {
            if let Some(ps) = self.pools.remove(&name) {
                self.log.line(
                    Level::Notice,
                    &format!("[pool {name}] removed from the file"),
                );
                for pid in ps.active.into_iter().chain(ps.old) {
                    self.retire(pid);
                }
            }
        }
        // Pools added, changed, unchanged.
        for p in &new.pools {
            let name = p.name.clone();
            match self.pools.get_mut(&name) {
                None => {
                    self.log
                        .line(Level::Notice, &format!("[pool {name}] added to the file"));
                    self.pools.insert(
                        name.clone(),
                        PoolState {
                            spec: Rc::new(p.clone()),
                            active: None,
                            old: Vec::new(),
                            restart_at: None,
                            backoff: Duration::ZERO,
                        },
                    );
                    self.spawn(&name);
                }
                Some(ps) if *ps.spec == *p => {
                    if let Some(pid) = ps.active {
                        if let Some(c) = self.children.get_mut(&pid) {
                            if c.ready && c.speaks_notify {
                                c.awaiting = true;
                            }
                        }
                        self.log.line(
                            Level::Notice,
                            &format!(
                                "[pool {name}] unchanged: SIGHUP to supervisor {pid} (new workers)"
                            ),
                        );
                        self.deliver(pid, libc::SIGHUP);
                    }
                }
                Some(ps) => {
                    self.log.line(
                        Level::Notice,
                        &format!(
                            "[pool {name}] changed: a new supervisor, then the old one drains"
                        ),
                    );
                    if let Some(a) = ps.active.take() {
                        ps.old.push(a);
                    }
                    ps.spec = Rc::new(p.clone());
                    ps.backoff = Duration::ZERO;
                    ps.restart_at = None;
                    self.spawn(&name);
                }
            }
        }
        // Sockets no pool names any more: closed here (supervisors still draining hold their
        // own copies), their files removed.
        let names: Vec<Listen> = new.pools.iter().map(|p| p.listen.clone()).collect();
        let gone: Vec<Listen> = self
            .sockets
            .keys()
            .filter(|l| !names.contains(l))
            .cloned()
            .collect();
        for l in gone {
            if let Some(s) = self.sockets.remove(&l) {
                if let Some(u) = &s.unix {
                    u.remove();
                }
                self.log
                    .line(Level::Notice, &format!("closed {l} (no pool names it)"));
            }
        }
        self.conf = new;
        self.phase = Phase::Reloading;
    }
}

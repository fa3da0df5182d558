//! Several hosts behind a load balancer, on one machine (issue 22, item 9): three hosts stood
//! for by 127.0.0.2, 127.0.0.3 and 127.0.0.4, each with its own fcgi-spawn (supervisor and
//! pool) on the same port, running tests/web_servers/multi_host/host_app.c (a libfcgi program
//! on the project's libfcgi.so.0 that answers with its host's name and its pid); HAProxy and
//! nginx in front of the three at the same time, both on docs/deploy.md's "Several hosts"
//! configurations as written, the hosts on its fcgi-spawn command line as written
//! (tests/web_servers/deploy_docs.rs hands them over, placeholders replaced). Traffic stays on
//! loopback.
//!
//! Under continuous load (a client per balancer, [`load`]: several kept-alive connections
//! sending GETs back to back, every answer checked: status 200, its own `seq`, the payload byte
//! for byte, which host and which worker answered):
//!
//! - [`rolling_reload_loses_nothing`]: SIGHUP to each host's fcgi-spawn in turn (by its pid
//!   file, as the document's procedure does; [`AFTER`] answers per balancer before each), the
//!   next one only once this host's workers are all new and both balancers got answers from the
//!   new generation: zero failed requests through either balancer. (The balancers retry a GET
//!   sent on a kept connection just as an old worker closed it; the counts are printed.)
//! - [`drained_host_loses_nothing`]: SIGQUIT to one host with the document's `drain_delay_ms`:
//!   its ping answers 503 (asked directly over FastCGI) while its workers still answer
//!   requests; once HAProxy's `show stat` reports the server DOWN (its checks got the 503), the
//!   second SIGQUIT; fcgi-spawn exits 0. Zero failed requests through HAProxy; through nginx
//!   (no active checks) the requests its passive retries passed to another host are counted,
//!   and none may fail either.
//! - [`killed_host_loses_at_most_its_requests_in_flight`]: SIGKILL to one host's process
//!   group (fcgi-spawn and every worker) while it holds GETs of the loads, a POST through each
//!   balancer and a GET through HAProxy held 10 s (seen in host_app's trace): every failed GET
//!   must have been in flight at the kill, every GET the dead host held must have been retried
//!   by the balancer and answered by another host (the balancers' logs say so; the held GET
//!   makes sure there is one), neither POST may be sent again (a 502, no other
//!   host began it: HAProxy's `disable-l7-retry`, nginx's rule for non-idempotent methods), and
//!   both balancers must take the host out (HAProxy: DOWN in `show stat`; nginx: "upstream
//!   server temporarily disabled").
//!
//! The hosts run with `FCGI_WEB_SERVER_ADDRS=127.0.0.1` (where the balancers connect from), as
//! the document advises; each scenario first checks that a client bound to 127.0.0.9 gets no
//! answer.
//!
//! Every wait is for observable state (a process set, a stats row, an answer, a log line) with
//! a deadline ([`harness::START_TIMEOUT`]); the counts are printed (`--nocapture`).
//!
//! Run: `cargo test --release --test web_servers -- multi_host --nocapture`.

mod balancers;
mod hosts;
mod load;

use crate::harness::{self, http, Fixture, START_TIMEOUT};
use balancers::{Haproxy, Logged, Nginx};
use fcgi_runtime::addr::ClientStream;
use fcgi_runtime_tools::client::{Client, Request};
use hosts::Hosts;
use load::{Load, Report, Shape};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// Connections of each load client.
const CONNECTIONS: usize = 4;
/// Answers each load must get after the last event of a scenario before it stops (so that the
/// state after the event is exercised too).
const AFTER: u64 = 60;

/// The hosts, both balancers in front of them, and a load through each.
struct Rig {
    fx: Fixture,
    hosts: Hosts,
    haproxy: Haproxy,
    nginx: Nginx,
    loads: Vec<Load>,
}

impl Rig {
    fn start(tag: &str, shape: Shape) -> Rig {
        let mut fx = Fixture::new(tag);
        let hosts = Hosts::start(&mut fx);
        let addrs = hosts.addrs();
        let haproxy = Haproxy::start(&mut fx, &addrs);
        for h in &hosts.hosts {
            let st = haproxy.wait_status(&fx, &h.name, "UP");
            // The check went over FastCGI and got the ping's 200.
            wait_state(&fx, &haproxy, &h.name, "UP L7OK 200", &st);
        }
        // FCGI_WEB_SERVER_ADDRS: a client from another address (127.0.0.9) gets no answer.
        for h in &hosts.hosts {
            let (st, body) = fcgi_get(&format!("{}:{}", h.ip, hosts.port), "/hosts?seq=0")
                .unwrap_or_else(|e| {
                    fx.fail(&format!("{}: from {}: {e}", h.name, hosts::BALANCERS))
                });
            fx.check(
                st == 200 && body.starts_with(&format!("host={}\n", h.name)),
                || format!("{}: from {}: {st} {body:?}", h.name, hosts::BALANCERS),
            );
            let other = hosts::connect_from("127.0.0.9", h.ip, hosts.port)
                .map_err(|e| format!("connect: {e}"))
                .and_then(|s| fcgi_request(Client::from_stream(ClientStream::Tcp(s)), "/hosts"));
            fx.check(other.is_err(), || {
                format!(
                    "{}: a client from 127.0.0.9 was answered: {other:?}",
                    h.name
                )
            });
        }
        let nginx = Nginx::start(&mut fx, &addrs);
        let loads = vec![
            Load::start("haproxy", haproxy.port, "/", CONNECTIONS, shape),
            Load::start("nginx", nginx.port, "/", CONNECTIONS, shape),
        ];
        let rig = Rig {
            fx,
            hosts,
            haproxy,
            nginx,
            loads,
        };
        // Every host answers through both balancers before anything happens.
        for h in &rig.hosts.hosts {
            for l in &rig.loads {
                rig.wait(&format!("{} answers through {}", h.name, l.name), || {
                    !l.pids_of(&h.name).is_empty()
                });
            }
        }
        rig
    }

    /// Polls `cond` (every 10 ms) until it holds; fails after [`START_TIMEOUT`] with the loads'
    /// counts.
    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        while !cond() {
            if Instant::now() > deadline {
                let counts: Vec<String> = self
                    .loads
                    .iter()
                    .map(|l| format!("{}: {} ok, {} failed", l.name, l.ok(), l.failed()))
                    .collect();
                self.fx.fail(&format!(
                    "{what}: not reached after {START_TIMEOUT:?} ({})",
                    counts.join("; ")
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until each load got [`AFTER`] more good answers.
    fn more_answers(&self) {
        let marks: Vec<u64> = self.loads.iter().map(|l| l.ok()).collect();
        for (l, m) in self.loads.iter().zip(&marks) {
            self.wait(&format!("{AFTER} more answers through {}", l.name), || {
                l.ok() >= m + AFTER
            });
        }
    }

    /// Waits until each load got [`AFTER`] more good answers, then stops them.
    fn finish(mut self) -> (Fixture, Hosts, Haproxy, Nginx, Vec<Report>) {
        self.more_answers();
        let reports = self.loads.drain(..).map(Load::finish).collect();
        (self.fx, self.hosts, self.haproxy, self.nginx, reports)
    }
}

/// Waits until HAProxy's state of server `name` is exactly `want` (`status check_status
/// check_code`).
fn wait_state(fx: &Fixture, haproxy: &Haproxy, name: &str, want: &str, first: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut st = first.to_string();
    while st != want {
        if Instant::now() > deadline {
            fx.fail(&format!("HAProxy: server {name} is {st:?}, want {want:?}"));
        }
        thread::sleep(Duration::from_millis(20));
        st = haproxy.state(fx, name);
    }
}

/// One line of counts for a load.
fn summary(r: &Report, log: &[Logged]) -> String {
    let retried = log.iter().filter(|l| l.retries > 0).count();
    // (HAProxy also logs a client connection closed while idle, without a request: no seq.)
    let not_200 = log
        .iter()
        .filter(|l| l.seq.is_some() && l.status != "200")
        .count();
    format!(
        "{}: {} requests, {} failed, {} retried by the balancer, {} logged with a status \
         other than 200, per host {:?}",
        r.name,
        r.total(),
        r.failures().len(),
        retried,
        not_200,
        r.per_host()
    )
}

/// Fails unless every request of `r` succeeded. (That the load ran through the events is
/// what the scenarios wait for: answers from a new generation, [`AFTER`] answers after the
/// last event.)
fn check_no_failure(fx: &Fixture, r: &Report, what: &str) {
    fx.check(r.failures().is_empty(), || {
        format!(
            "{what}: {} of {} requests through {} failed:\n{}",
            r.failures().len(),
            r.total(),
            r.name,
            r.show_failures(20)
        )
    });
}

/// The status and body of a GET of `uri` sent straight to a host over FastCGI.
fn fcgi_get(addr: &str, uri: &str) -> Result<(u16, String), String> {
    let c = Client::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    fcgi_request(c, uri)
}

/// The status and body of a GET of `uri` on connection `c`.
fn fcgi_request(mut c: Client, uri: &str) -> Result<(u16, String), String> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let req = Request::new(1)
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", path)
        .param("REQUEST_URI", uri)
        .param("QUERY_STRING", query)
        .param("SERVER_PROTOCOL", "HTTP/1.1")
        .param("GATEWAY_INTERFACE", "CGI/1.1");
    c.set_timeout(Some(harness::WEB_IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let r = c.request(&req).map_err(|e| format!("request: {e}"))?;
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {out:?}"))?;
    let status = head
        .lines()
        .find_map(|l| l.strip_prefix("Status:"))
        .map(|s| s.trim().split(' ').next().unwrap_or("").parse::<u16>())
        .unwrap_or(Ok(200))
        .map_err(|_| format!("bad Status in {head:?}"))?;
    Ok((status, body.to_string()))
}

// ---------------------------------------------------------------------------------------------
// a) rolling reload
// ---------------------------------------------------------------------------------------------

#[test]
fn rolling_reload_loses_nothing() {
    let shape = Shape {
        sleep_ms: 5,
        trace: false,
    };
    let mut rig = Rig::start("multi-host-reload", shape);
    let mut generations = BTreeMap::new();
    let names: Vec<String> = rig.hosts.hosts.iter().map(|h| h.name.clone()).collect();
    for name in &names {
        rig.more_answers();
        let h = rig.hosts.host(name);
        let old = rig.hosts.workers(&rig.fx, h);
        let t0 = Instant::now();
        rig.hosts.signal(&rig.fx, h, libc::SIGHUP);
        let new = rig.hosts.wait_workers(&mut rig.fx, h, &old);
        let replaced = t0.elapsed();
        // The new generation serves through both balancers before the next host reloads.
        for l in &rig.loads {
            rig.wait(
                &format!("{name}'s new generation answers through {}", l.name),
                || !l.pids_of(name).is_disjoint(&new),
            );
        }
        eprintln!(
            "{name}: old generation gone {} ms after SIGHUP, new one answering through both \
             balancers after {} ms",
            replaced.as_millis(),
            t0.elapsed().as_millis()
        );
        generations.insert(name.clone(), (old, new));
    }
    for h in &rig.hosts.hosts {
        let now = rig.hosts.workers(&rig.fx, h);
        let (_, new) = &generations[&h.name];
        rig.fx.check(&now == new, || {
            format!("{}: workers {now:?} after the reload, want {new:?}", h.name)
        });
    }
    let (fx, _hosts, haproxy, nginx, reports) = rig.finish();
    let logs = [haproxy.log(&fx), nginx.log(&fx)];
    for (r, log) in reports.iter().zip(&logs) {
        eprintln!("rolling reload of 3 hosts, {}", summary(r, log));
        check_no_failure(&fx, r, "rolling reload");
    }
}

// ---------------------------------------------------------------------------------------------
// b) drain, then stop
// ---------------------------------------------------------------------------------------------

#[test]
fn drained_host_loses_nothing() {
    let shape = Shape {
        sleep_ms: 5,
        trace: false,
    };
    let mut rig = Rig::start("multi-host-drain", shape);
    let victim = "host2";
    let addr = format!("{}:{}", rig.hosts.host(victim).ip, rig.hosts.port);
    let (st, body) = fcgi_get(&addr, "/ping").unwrap_or_else(|e| rig.fx.fail(&e));
    rig.fx.check(st == 200 && body == "pong", || {
        format!("{victim}'s /ping before the drain: {st} {body:?}, want 200 \"pong\"")
    });
    rig.hosts
        .signal(&rig.fx, rig.hosts.host(victim), libc::SIGQUIT);
    rig.wait(&format!("{victim}'s /ping answers 503"), || {
        matches!(fcgi_get(&addr, "/ping"), Ok((503, _)))
    });
    // The workers go on serving meanwhile.
    let (st, body) = fcgi_get(&addr, "/hosts?seq=0").unwrap_or_else(|e| rig.fx.fail(&e));
    rig.fx.check(
        st == 200 && body.starts_with(&format!("host={victim}\n")),
        || format!("{victim} during the drain delay: {st} {body:?}, want its answer"),
    );
    let st = rig.haproxy.wait_status(&rig.fx, victim, "DOWN");
    rig.fx.check(st == "DOWN L7STS 503", || {
        format!("HAProxy's server {victim}: {st:?}, want DOWN from its checks' 503")
    });
    let still_up = rig.fx.exited(victim).is_none();
    rig.hosts
        .signal(&rig.fx, rig.hosts.host(victim), libc::SIGQUIT);
    let status = rig.fx.wait_exit(victim);
    rig.fx.check(status.code() == Some(0), || {
        format!("{victim}'s fcgi-spawn exited {status}, want 0")
    });
    rig.fx.check(still_up, || {
        format!("{victim} had stopped before the second SIGQUIT (drain_delay_ms too short?)")
    });
    let (fx, _hosts, haproxy, nginx, reports) = rig.finish();
    let logs = [haproxy.log(&fx), nginx.log(&fx)];
    for (r, log) in reports.iter().zip(&logs) {
        eprintln!("drain then stop of {victim}, {}", summary(r, log));
        check_no_failure(&fx, r, "drain then stop");
    }
}

// ---------------------------------------------------------------------------------------------
// c) a host killed outright
// ---------------------------------------------------------------------------------------------

/// A POST (or a GET) through the balancer on 127.0.0.1:`port` that host_app holds
/// [`PROBE_MS`] (traced), on a connection of its own: its status and body, or what went wrong.
fn probe(port: u16, post: bool, seq: u64) -> thread::JoinHandle<Result<(u16, String), String>> {
    thread::spawn(move || {
        let path = format!("/hosts?seq={seq}&bytes=0&sleep_ms={PROBE_MS}&trace=1");
        let mut c = http::connect(port).map_err(|e| format!("connect: {e}"))?;
        let sent = if post {
            let body = b"a request with an effect";
            let head = [
                format!("Content-Length: {}", body.len()),
                "Content-Type: text/plain".to_string(),
            ];
            http::send_head(&mut c, "POST", &path, &head).and_then(|_| c.get_mut().write_all(body))
        } else {
            http::send_head(&mut c, "GET", &path, &[])
        };
        sent.map_err(|e| format!("send: {e}"))?;
        let r = http::read_response(&mut c, false).map_err(|e| format!("read: {e}"))?;
        Ok((r.status, r.text()))
    })
}

/// How long a POST probe holds its worker: longer than the test needs to kill its host.
const PROBE_MS: u32 = 10_000;

#[test]
fn killed_host_loses_at_most_its_requests_in_flight() {
    let shape = Shape {
        sleep_ms: 20,
        trace: true,
    };
    let mut rig = Rig::start("multi-host-kill", shape);
    // A POST held by the host to be killed, through each balancer: nginx's goes where nginx
    // sends it, and that host is the victim; HAProxy's, and a GET, are sent while the two other
    // servers are disabled (`disable server`, then `enable server` and UP again before the
    // kill), so the victim surely holds a GET at the kill.
    let which_host = |rig: &Rig, seq: u64| -> Option<String> {
        rig.hosts
            .hosts
            .iter()
            .find(|h| rig.hosts.trace(&rig.fx, h).0.contains(&seq))
            .map(|h| h.name.clone())
    };
    let nginx_post = load::next_seq();
    let nginx_probe = probe(rig.nginx.port, true, nginx_post);
    let mut victim = String::new();
    rig.wait("nginx's POST probe reaches a host", || {
        which_host(&rig, nginx_post).map(|h| victim = h).is_some()
    });
    let victim = victim;
    let others: Vec<String> = rig
        .hosts
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .filter(|n| *n != victim)
        .collect();
    for o in &others {
        rig.haproxy.cli(&rig.fx, &format!("disable server app/{o}"));
    }
    let haproxy_post = load::next_seq();
    let haproxy_probe = probe(rig.haproxy.port, true, haproxy_post);
    let haproxy_get = load::next_seq();
    let get_probe = probe(rig.haproxy.port, false, haproxy_get);
    for seq in [haproxy_post, haproxy_get] {
        rig.wait(&format!("HAProxy's probe {seq} reaches a host"), || {
            which_host(&rig, seq).is_some()
        });
        rig.fx
            .check(which_host(&rig, seq).as_deref() == Some(&*victim), || {
                format!(
                    "HAProxy's probe {seq} went to {:?}, not {victim}",
                    which_host(&rig, seq)
                )
            });
    }
    for o in &others {
        rig.haproxy.cli(&rig.fx, &format!("enable server app/{o}"));
        rig.haproxy.wait_status(&rig.fx, o, "UP");
    }
    let t_kill = Instant::now();
    let h = rig.hosts.host(&victim);
    let ip = h.ip;
    rig.hosts.kill(&mut rig.fx, h);
    let st = rig.haproxy.wait_status(&rig.fx, &victim, "DOWN");
    {
        let (fx, nginx) = (&rig.fx, &rig.nginx);
        let deadline = Instant::now() + START_TIMEOUT;
        while !nginx
            .errors(fx)
            .contains("upstream server temporarily disabled")
        {
            if Instant::now() > deadline {
                fx.fail("nginx never took the killed host out");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    // The GET was sent again, to another host.
    let got = get_probe.join().expect("probe thread");
    rig.fx.check(
        matches!(&got, Ok((200, body)) if body.starts_with("host=") && !body.starts_with(&format!("host={victim}\n"))),
        || format!("HAProxy: the GET {victim} held at the kill: {got:?}, want another host's answer"),
    );
    let logged = rig.haproxy.log(&rig.fx);
    let line = logged.iter().find(|l| l.seq == Some(haproxy_get));
    rig.fx.check(line.is_some_and(|l| l.retries > 0), || {
        format!("HAProxy: the GET {victim} held at the kill is logged {line:?}, want a retry")
    });
    eprintln!(
        "kill of {victim}: the GET it held, through haproxy: {:?}, logged {:?}",
        got.as_ref()
            .map(|(st, b)| (st, b.lines().next().unwrap_or(""))),
        line
    );
    // The POSTs were not sent again: they fail, and no other host ever began them.
    for (balancer, seq, probe) in [
        ("haproxy", haproxy_post, haproxy_probe),
        ("nginx", nginx_post, nginx_probe),
    ] {
        let answer = probe.join().expect("probe thread");
        let elsewhere: Vec<&str> = rig
            .hosts
            .hosts
            .iter()
            .filter(|h| h.name != victim && rig.hosts.trace(&rig.fx, h).0.contains(&seq))
            .map(|h| h.name.as_str())
            .collect();
        eprintln!(
            "kill of {victim}: the POST it held, through {balancer}: {:?}",
            answer.as_ref().map(|(st, _)| st)
        );
        rig.fx.check(
            !matches!(answer, Ok((200, _))) && elsewhere.is_empty(),
            || {
                format!(
                    "{balancer}: the POST {victim} held at the kill was sent again (to \
                 {elsewhere:?}; answer {answer:?})"
                )
            },
        );
    }
    let (fx, hosts, haproxy, nginx, reports) = rig.finish();
    let (begun, ended) = hosts.trace(&fx, hosts.host(&victim));
    let answered_by_victim: BTreeSet<u64> = reports
        .iter()
        .flat_map(|r| r.outcomes.iter())
        .filter(|o| matches!(&o.result, Ok((host, _)) if *host == victim))
        .map(|o| o.seq)
        .collect();
    // The GETs the dead host held: begun, not ended, never answered by it.
    let held: BTreeSet<u64> = begun
        .difference(&ended)
        .copied()
        .filter(|s| {
            !answered_by_victim.contains(s) && ![nginx_post, haproxy_post, haproxy_get].contains(s)
        })
        .collect();
    let logs = [haproxy.log(&fx), nginx.log(&fx)];
    for (r, log) in reports.iter().zip(&logs) {
        let in_flight = r.in_flight_at(t_kill);
        let failed: BTreeSet<u64> = r.failures().iter().map(|o| o.seq).collect();
        let mine: BTreeSet<u64> = r.outcomes.iter().map(|o| o.seq).collect();
        let held_here: BTreeSet<u64> = held.intersection(&mine).copied().collect();
        let by_seq: BTreeMap<u64, &Logged> = log.iter().filter_map(|l| Some((l.seq?, l))).collect();
        let retried_held = held_here
            .iter()
            .filter(|s| by_seq.get(s).is_some_and(|l| l.retries > 0))
            .count();
        eprintln!(
            "kill of {victim}, {}; GETs in flight at the kill: {} (held by {victim}: {}, \
             retried: {retried_held}), failed: {}",
            summary(r, log),
            in_flight.len(),
            held_here.len(),
            failed.len()
        );
        fx.check(failed.is_subset(&in_flight), || {
            format!(
                "{}: requests failed that were not in flight at the kill: {:?}\n{}",
                r.name,
                failed.difference(&in_flight).collect::<Vec<_>>(),
                r.show_failures(20)
            )
        });
        // Every GET the dead host held was sent to another host by the balancer.
        for s in &held_here {
            let o = r.outcomes.iter().find(|o| o.seq == *s).expect("own seq");
            fx.check(
                matches!(&o.result, Ok((host, _)) if *host != victim),
                || {
                    format!(
                        "{}: seq {s}, held by {victim} at the kill: {:?}",
                        r.name, o.result
                    )
                },
            );
            let l = by_seq.get(s).unwrap_or_else(|| {
                fx.fail(&format!("{}: seq {s} is not in the balancer's log", r.name))
            });
            fx.check(l.retries > 0, || {
                format!(
                    "{}: seq {s}, held by {victim}, logged without a retry: {l:?}",
                    r.name
                )
            });
            if r.name == "nginx" {
                fx.check(l.sent_to.first().map(String::as_str) == Some(ip), || {
                    format!("{}: seq {s} was not first sent to {victim}: {l:?}", r.name)
                });
            }
        }
    }
    eprintln!("kill of {victim}: HAProxy shows it {st:?}; nginx logged it temporarily disabled");
}

//! Side by side: one libfcgi program, tests/compare/lf_app.c, compiled ONCE against Debian's
//! fcgiapp.h and linked with Debian's libfcgi (`-lfcgi`, NEEDED libfcgi.so.0), then run twice:
//! as it is (Debian's /usr/lib/x86_64-linux-gnu/libfcgi.so.0) and with LD_LIBRARY_PATH naming
//! the project's build (checked in /proc/<pid>/maps either way). Both are driven with the same
//! raw FastCGI bytes over TCP.
//!
//! - `same_*`: where libfcgi is correct, both answer identically. Answers are compared as
//!   transcripts: the management records (id 0) in order, the records of requests in order, with
//!   consecutive non-empty STDOUT (or STDERR) records merged (a stream does not depend on how it
//!   is split, FastCGI §3.3), whether every record is 8-byte aligned, and whether the connection
//!   was closed. Two differences are allowed ([`Transcript::normalized`]): GET_VALUES_RESULT is
//!   compared by its names (the values are each library's own: libfcgi 1, 1, 0; the project its
//!   real limits), and within one request's answer the order of STDOUT relative to STDERR
//!   records is not (they may interleave, §6.1; each stream's own order is compared).
//! - `second_begin_on_busy_connection`: different by design, each library consistent with the
//!   FCGI_MPXS_CONNS it reports (libfcgi rejects, the project multiplexes).
//! - `fixed_*`: where libfcgi is wrong (../shared/reference/libfcgi.md §2, §3, and three bugs
//!   found here: `fixed_get_values_unpadded_query_answered_alone`,
//!   `fixed_empty_record_of_other_id_keeps_next_record`, `fixed_exit_status_not_carried_over`),
//!   the project gives the correct answer, and libfcgi's wrong answer is recorded by an
//!   assertion (that it differs, that the connection was dropped, or that the process crashed),
//!   so a test also fails if the bug it documents was not reproduced.
//!
//! Reads time out after [`IO_TIMEOUT`] (to fail rather than hang); nothing asserts on timing.

mod common;

use common::{body, fnv1a64, lib_dir, runs_project_lib, IO_TIMEOUT};
use fcgi_runtime_protocol::record::{
    push_abort_request, push_begin_request, push_nv_pair, push_record, push_stream,
    push_stream_end, rtype, Header,
};
use fcgi_runtime_tools::client::{
    decode_nv_pairs, encode_begin_and_params, encode_request, Client, Request,
};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DEBIAN_LIBFCGI: &str = "/usr/lib/x86_64-linux-gnu/libfcgi.so.0";

// ---------------------------------------------------------------------------------------------
// Building and running lf_app

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles tests/compare/lf_app.c with the system's compiler, headers and libfcgi (Debian's),
/// once per test binary, into target/<profile>/compare/.
fn build_app() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target dir")?
        .to_path_buf();
    let dir = profile.join("compare");
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let out = dir.join("lf_app");
    let tmp = dir.join(format!("lf_app.tmp{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let src = manifest_dir().join("tests/compare/lf_app.c");
    let res = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .args(["-L/usr/lib/x86_64-linux-gnu", "-lfcgi"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cc}: {e}"))?;
    if !res.status.success() {
        return Err(format!(
            "{cc} {} failed ({}): {}",
            src.display(),
            res.status,
            String::from_utf8_lossy(&res.stderr)
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("rename: {e}"))?;
    Ok(out)
}

fn app_path() -> &'static Path {
    static P: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match P.get_or_init(build_app) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Which libfcgi.so.0 the same binary runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lib {
    Debian,
    Project,
}

/// A running lf_app, killed on drop.
struct App {
    child: Child,
    addr: String,
    lib: Lib,
}

impl App {
    fn start(lib: Lib) -> App {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let mut cmd = Command::new(app_path());
        cmd.env("FCGI_ADDR", &addr)
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            // cargo's LD_LIBRARY_PATH names target/<profile>/deps, where the project's
            // libfcgi.so.0 link lives: the Debian run must not inherit it.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if lib == Lib::Project {
            cmd.env("LD_LIBRARY_PATH", lib_dir());
        }
        let child = cmd.spawn().expect("start lf_app");
        let mut app = App { child, addr, lib };
        app.wait_ready();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", app.child.id()))
            .expect("read /proc/pid/maps");
        match lib {
            Lib::Project => assert!(
                runs_project_lib(app.child.id()),
                "lf_app does not run on the project's libfcgi.so.0 (LD_LIBRARY_PATH={})",
                lib_dir().display()
            ),
            // (maps names the file, libfcgi.so.0.0.0)
            Lib::Debian => assert!(
                maps.contains(DEBIAN_LIBFCGI),
                "lf_app does not run on Debian's libfcgi"
            ),
        }
        app
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                panic!("lf_app ({:?}) exited at start: {st}", self.lib);
            }
            if fcgi_runtime::addr::connect(&self.addr).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "lf_app did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> Client {
        let c = Client::connect(&self.addr).expect("connect to lf_app");
        c.set_timeout(Some(IO_TIMEOUT)).expect("set timeouts");
        c
    }

    /// Waits (at most IO_TIMEOUT: a hang guard) for the process to exit on its own.
    fn wait_exit(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (st, err);
            }
            assert!(
                Instant::now() < deadline,
                "lf_app ({:?}) is still running",
                self.lib
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[track_caller]
    fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("lf_app ({:?}) exited: {st}\n{err}", self.lib);
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Transcripts

/// One received record, stream records merged; shown as text in assertion messages.
#[derive(Clone, PartialEq, Eq)]
struct Rec {
    rtype: u8,
    id: u16,
    content: Vec<u8>,
    aligned: bool,
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.rtype {
            rtype::STDOUT => "STDOUT".to_string(),
            rtype::STDERR => "STDERR".to_string(),
            rtype::END_REQUEST => "END_REQUEST".to_string(),
            rtype::GET_VALUES_RESULT => "GET_VALUES_RESULT".to_string(),
            rtype::UNKNOWN_TYPE => "UNKNOWN_TYPE".to_string(),
            t => format!("type{t}"),
        };
        let body = if matches!(self.rtype, rtype::STDOUT | rtype::STDERR) {
            format!("{:?}", String::from_utf8_lossy(&self.content))
        } else {
            format!("{:?}", self.content)
        };
        let a = if self.aligned { "" } else { " UNALIGNED" };
        write!(f, "{name}({}){a} {body}", self.id)
    }
}

/// What came back on one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Transcript {
    /// Management records (id 0), in order.
    mgmt: Vec<Rec>,
    /// Records of requests, in order, consecutive non-empty stream records merged.
    reqs: Vec<Rec>,
    /// Whether the application closed the connection (EOF or reset) at the end.
    closed: bool,
}

impl Transcript {
    fn push(&mut self, r: fcgi_runtime_tools::client::RawRecord) {
        let aligned = (r.content.len() + r.padding_len as usize) % 8 == 0;
        let rec = Rec {
            rtype: r.rtype,
            id: r.id,
            content: r.content,
            aligned,
        };
        if rec.id == 0 {
            self.mgmt.push(rec);
            return;
        }
        if matches!(rec.rtype, rtype::STDOUT | rtype::STDERR) && !rec.content.is_empty() {
            if let Some(last) = self.reqs.last_mut() {
                if last.rtype == rec.rtype && last.id == rec.id && !last.content.is_empty() {
                    last.content.extend_from_slice(&rec.content);
                    last.aligned &= rec.aligned;
                    return;
                }
            }
        }
        self.reqs.push(rec);
    }

    /// The END_REQUEST records received.
    fn ends(&self) -> Vec<&Rec> {
        self.reqs
            .iter()
            .filter(|r| r.rtype == rtype::END_REQUEST)
            .collect()
    }

    /// The STDOUT bytes of request `id`.
    fn stdout(&self, id: u16) -> Vec<u8> {
        self.stream(rtype::STDOUT, id)
    }

    fn stream(&self, t: u8, id: u16) -> Vec<u8> {
        self.reqs
            .iter()
            .filter(|r| r.rtype == t && r.id == id)
            .flat_map(|r| r.content.clone())
            .collect()
    }

    /// What [`assert_same`] compares: GET_VALUES_RESULT values blanked (each library reports
    /// its own), and within each request's answer STDERR records put before STDOUT ones, each
    /// stream's order kept (the two may interleave, §6.1: libfcgi sends all of STDERR at
    /// Finish, before STDOUT's last buffer; the project sends what was written to STDOUT
    /// before the STDERR data first).
    fn normalized(&self) -> Transcript {
        let mut t = Transcript {
            mgmt: self.mgmt.clone(),
            reqs: Vec::new(),
            closed: self.closed,
        };
        for r in &mut t.mgmt {
            if r.rtype == rtype::GET_VALUES_RESULT {
                let mut names = Vec::new();
                for (n, _) in decode_nv_pairs(&r.content).expect("well-formed GET_VALUES_RESULT") {
                    push_nv_pair(&mut names, &n, b"");
                }
                r.content = names;
            }
        }
        let order = |r: &Rec| match r.rtype {
            rtype::STDERR => 0,
            rtype::STDOUT => 1,
            _ => 2,
        };
        for answer in self.reqs.split_inclusive(|r| r.rtype == rtype::END_REQUEST) {
            let mut a = answer.to_vec();
            a.sort_by_key(|r| order(r));
            for r in a {
                t.push(fcgi_runtime_tools::client::RawRecord {
                    rtype: r.rtype,
                    id: r.id,
                    padding_len: if r.aligned {
                        (8 - r.content.len() % 8) as u8 % 8
                    } else {
                        1
                    },
                    content: r.content,
                });
            }
        }
        t
    }
}

/// Reads records until `ends` END_REQUESTs have arrived in total; then, with `then_close`, until
/// the connection closes (a record or a timeout then fails).
fn read_transcript(c: &mut Client, t: &mut Transcript, ends: usize, then_close: bool) {
    while t.ends().len() < ends {
        match c.read_record() {
            Ok(Some(r)) => t.push(r),
            Ok(None) => {
                t.closed = true;
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                t.closed = true;
                return;
            }
            Err(e) => panic!("reading records: {e}; so far {t:#?}"),
        }
    }
    if then_close {
        read_to_close(c, t);
    }
}

/// Reads until EOF (or reset), recording every record.
fn read_to_close(c: &mut Client, t: &mut Transcript) {
    loop {
        match c.read_record() {
            Ok(Some(r)) => t.push(r),
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("waiting for the connection to close: {e}; so far {t:#?}"),
        }
    }
    t.closed = true;
}

/// Reads records until one satisfies `pred` (returned); the others go into `t`.
fn read_until(
    c: &mut Client,
    t: &mut Transcript,
    what: &str,
    pred: impl Fn(&fcgi_runtime_tools::client::RawRecord) -> bool,
) -> fcgi_runtime_tools::client::RawRecord {
    loop {
        let r = c
            .read_record()
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}; so far {t:#?}"))
            .unwrap_or_else(|| panic!("connection closed while waiting for {what}: {t:#?}"));
        if pred(&r) {
            return r;
        }
        t.push(r);
    }
}

/// Runs `f` against lf_app on Debian's libfcgi, then on the project's.
fn on_both<T>(f: impl Fn(&mut App) -> T) -> (T, T) {
    let mut deb = App::start(Lib::Debian);
    let d = f(&mut deb);
    drop(deb);
    let mut ours = App::start(Lib::Project);
    let p = f(&mut ours);
    ours.assert_running();
    (d, p)
}

#[track_caller]
fn assert_same(debian: &Transcript, project: &Transcript) {
    assert_eq!(
        debian.normalized(),
        project.normalized(),
        "\n--- Debian's libfcgi ---\n{debian:#?}\n--- project ---\n{project:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Requests and what lf_app answers

fn role_name(role: u16) -> &'static str {
    match role {
        1 => "RESPONDER",
        2 => "AUTHORIZER",
        3 => "FILTER",
        _ => "",
    }
}

fn param<'a>(req: &'a Request, name: &str) -> Option<&'a [u8]> {
    req.params
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// lf_app's answer to `req` when nothing goes wrong (see tests/compare/lf_app.c).
fn expected(req: &Request) -> Vec<u8> {
    let role = role_name(req.role);
    let mut out = b"Content-Type: text/plain\r\n\r\n".to_vec();
    if let Some(m) = param(req, "FLUSH_MARK") {
        out.extend_from_slice(m);
        out.push(b'\n');
    }
    if param(req, "HOLD_FIFO").is_some() {
        out.extend_from_slice(b"RELEASED\n");
    }
    out.extend_from_slice(format!("ROLE={role}\nENV FCGI_ROLE={role}\n").as_bytes());
    for (n, v) in &req.params {
        out.extend_from_slice(b"ENV ");
        out.extend_from_slice(n);
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out.extend_from_slice(
        format!(
            "STDIN_LENGTH={}\nSTDIN_FNV1A64={:016x}\nSTDIN_ERROR=0\n",
            req.stdin.len(),
            fnv1a64(&req.stdin)
        )
        .as_bytes(),
    );
    if req.role == 3 {
        out.extend_from_slice(
            format!(
                "START_FILTER_DATA=0\nDATA_LENGTH={}\nDATA_FNV1A64={:016x}\nDATA_ERROR=0\n",
                req.data.len(),
                fnv1a64(&req.data)
            )
            .as_bytes(),
        );
    }
    out
}

fn get(id: u16, uri: &str) -> Request {
    Request::new(id)
        .param("GATEWAY_INTERFACE", "CGI/1.1")
        .param("REQUEST_METHOD", "GET")
        .param("SCRIPT_NAME", "/app")
        .param("REQUEST_URI", uri)
        .param("SERVER_PROTOCOL", "HTTP/1.1")
}

fn post(id: u16, uri: &str, stdin: Vec<u8>) -> Request {
    Request::new(id)
        .param("REQUEST_METHOD", "POST")
        .param("REQUEST_URI", uri)
        .param("CONTENT_LENGTH", stdin.len().to_string())
        .stdin(stdin)
}

fn wire(req: &Request) -> Vec<u8> {
    let mut w = Vec::new();
    encode_request(req, &mut w);
    w
}

/// One record with `pad` bytes of non-zero padding.
fn padded(t: u8, id: u16, content: &[u8], pad: u8) -> Vec<u8> {
    let mut v = Header::encode(t, id, content.len() as u16, pad).to_vec();
    v.extend_from_slice(content);
    v.resize(v.len() + pad as usize, 0xEE);
    v
}

/// A GET_VALUES record asking for `names` (zero padding to 8 bytes).
fn get_values(names: &[&str]) -> Vec<u8> {
    get_values_with(&names.iter().map(|n| (*n, "")).collect::<Vec<_>>())
}

/// A GET_VALUES record with these pairs (values are ignored by the application).
fn get_values_with(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (n, v) in pairs {
        push_nv_pair(&mut body, n.as_bytes(), v.as_bytes());
    }
    let mut w = Vec::new();
    push_record(&mut w, rtype::GET_VALUES, 0, &body);
    w
}

/// The pairs of a GET_VALUES_RESULT record.
fn values_of(r: &Rec) -> Vec<(String, String)> {
    assert_eq!((r.rtype, r.id), (rtype::GET_VALUES_RESULT, 0), "{r:?}");
    decode_nv_pairs(&r.content)
        .unwrap()
        .into_iter()
        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

/// Sends `req` and reads its whole answer (and the close when KEEP_CONN is unset).
fn exchange(c: &mut Client, t: &mut Transcript, req: &Request) {
    c.send_request(req).unwrap();
    let n = t.ends().len() + 1;
    read_transcript(c, t, n, !req.keep_conn);
}

/// Asserts `t` holds exactly the answer of lf_app to each of `reqs`, in order, and nothing else.
#[track_caller]
fn assert_answers(t: &Transcript, reqs: &[&Request]) {
    let mut want = Transcript {
        closed: t.closed,
        mgmt: t.mgmt.clone(),
        ..Transcript::default()
    };
    for req in reqs {
        let rec = |rt: u8, content: &[u8]| fcgi_runtime_tools::client::RawRecord {
            rtype: rt,
            id: req.id,
            content: content.to_vec(),
            padding_len: ((8 - content.len() % 8) % 8) as u8,
        };
        want.push(rec(rtype::STDOUT, &expected(req)));
        want.push(rec(rtype::STDOUT, b""));
        want.push(rec(rtype::END_REQUEST, &[0; 8]));
    }
    assert_eq!(t, &want);
}

// ---------------------------------------------------------------------------------------------
// Identical answers where libfcgi is correct

/// A plain GET: no body, KEEP_CONN unset, the connection closed after END_REQUEST.
#[test]
fn same_simple_get() {
    let req = get(1, "/simple?a=1&b=2").param("QUERY_STRING", "a=1&b=2");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        exchange(&mut c, &mut t, &req);
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&req]);
    assert!(deb.closed);
}

/// A POST whose body comes in records of many sizes (1 byte up to 65535, unaligned ones too).
#[test]
fn same_post_body_split_across_many_records() {
    let data = body(300_000, 42);
    let req = post(1, "/upload", data.clone());
    let mut w = Vec::new();
    encode_begin_and_params(&req, &mut w);
    let sizes = [1usize, 7, 8, 100, 8191, 8192, 8193, 65535, 3, 40_000];
    let (mut at, mut k) = (0, 0);
    while at < data.len() {
        let n = sizes[k % sizes.len()].min(data.len() - at);
        push_record(&mut w, rtype::STDIN, 1, &data[at..at + n]);
        at += n;
        k += 1;
    }
    push_stream_end(&mut w, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        // Written from a helper thread: the application reads while the body is sent.
        let mut writer = c.stream().try_clone().unwrap();
        let w = w.clone();
        let h = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &w));
        let mut t = Transcript::default();
        read_transcript(&mut c, &mut t, 1, true);
        h.join().unwrap().unwrap();
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&req]);
}

/// PARAMS split across records anywhere: inside a name, inside a 4-byte length, one byte per
/// record.
#[test]
fn same_params_split_across_records() {
    let req = get(1, "/split")
        .param("A_LONGER_NAME_TO_CUT", "value")
        .param("BIG", "v".repeat(300))
        .param("X".repeat(200), "long name")
        .keep_conn(true)
        .stdin("s");
    let p = fcgi_runtime_tools::client::encode_pairs(&req.params);
    let big_at = p.windows(3).position(|w| w == b"BIG").unwrap() - 5;
    let name_at = p.windows(6).position(|w| w == b"LONGER").unwrap();
    let mut w = Vec::new();
    push_begin_request(&mut w, 1, 1, true);
    let cuts = [0, name_at, big_at + 2, p.len()];
    for c in cuts.windows(2) {
        push_record(&mut w, rtype::PARAMS, 1, &p[c[0]..c[1]]);
    }
    push_stream_end(&mut w, rtype::PARAMS, 1);
    push_stream(&mut w, rtype::STDIN, 1, b"s");
    push_stream_end(&mut w, rtype::STDIN, 1);
    let mut second = req.clone();
    second.id = 2;
    second.keep_conn = false;
    let mut w2 = Vec::new();
    push_begin_request(&mut w2, 2, 1, false);
    for b in &p {
        push_record(&mut w2, rtype::PARAMS, 2, std::slice::from_ref(b));
    }
    push_stream_end(&mut w2, rtype::PARAMS, 2);
    push_stream(&mut w2, rtype::STDIN, 2, b"s");
    push_stream_end(&mut w2, rtype::STDIN, 2);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        c.send_raw(&w2).unwrap();
        read_transcript(&mut c, &mut t, 2, true);
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&req, &second]);
}

const MAX_CONNS: &str = "FCGI_MAX_CONNS";
const MAX_REQS: &str = "FCGI_MAX_REQS";
const MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// GET_VALUES with one to three names (an unknown one omitted), before a request and in the
/// middle of its STDIN: one GET_VALUES_RESULT each, with the same names; the values are each
/// library's (libfcgi: 1, 1, 0). Every query here ends with padding: libfcgi answers a query
/// whose record ends without padding only once more bytes arrive (see
/// `fixed_get_values_unpadded_query_answered_alone`).
#[test]
fn same_get_values_one_to_three_names() {
    let queries: [&[(&str, &str)]; 4] = [
        &[(MAX_REQS, "")],
        &[(MAX_CONNS, ""), (MAX_REQS, "")],
        &[(MAX_CONNS, "?"), (MAX_REQS, ""), (MPXS_CONNS, "")],
        &[(MPXS_CONNS, ""), ("NO_SUCH_NAME", ""), (MAX_REQS, "")],
    ];
    for q in queries {
        assert_ne!(get_values_with(q)[6], 0, "padded");
    }
    let req = post(1, "/gv", b"abcdef".to_vec());
    let mut mid = Vec::new();
    encode_begin_and_params(&req, &mut mid);
    push_record(&mut mid, rtype::STDIN, 1, b"abc");
    mid.extend(get_values(&[MAX_REQS]));
    push_record(&mut mid, rtype::STDIN, 1, b"def");
    push_stream_end(&mut mid, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for q in queries {
            c.send_raw(&get_values_with(q)).unwrap();
            t.push(c.read_record().unwrap().expect("GET_VALUES_RESULT"));
        }
        c.send_raw(&mid).unwrap();
        read_transcript(&mut c, &mut t, 1, true);
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&req]);
    assert_eq!(deb.mgmt.len(), 5);
    let names = |r: &Rec| -> Vec<String> { values_of(r).into_iter().map(|p| p.0).collect() };
    assert_eq!(names(&deb.mgmt[3]), [MPXS_CONNS, MAX_REQS]);
    assert_eq!(
        values_of(&deb.mgmt[2]),
        [(MAX_CONNS, "1"), (MAX_REQS, "1"), (MPXS_CONNS, "0")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    for (n, v) in values_of(&ours.mgmt[2]) {
        if n == MPXS_CONNS {
            assert!(v == "0" || v == "1", "{n}={v}");
        } else {
            assert!(v.parse::<u32>().is_ok_and(|x| x > 0), "{n}={v}");
        }
    }
}

/// Unknown management types (and a stray GET_VALUES_RESULT), without content: FCGI_UNKNOWN_TYPE
/// each, then the connection serves a request.
#[test]
fn same_unknown_management_type() {
    let req = get(1, "/after-unknown").stdin("payload");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for ty in [20u8, rtype::GET_VALUES_RESULT, 255] {
            let mut w = Vec::new();
            push_record(&mut w, ty, 0, b"");
            c.send_raw(&w).unwrap();
            t.push(c.read_record().unwrap().expect("UNKNOWN_TYPE"));
        }
        exchange(&mut c, &mut t, &req);
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&req]);
    let types: Vec<_> = deb.mgmt.iter().map(|r| (r.rtype, r.content[0])).collect();
    assert_eq!(
        types,
        [
            (rtype::UNKNOWN_TYPE, 20),
            (rtype::UNKNOWN_TYPE, rtype::GET_VALUES_RESULT),
            (rtype::UNKNOWN_TYPE, 255)
        ]
    );
    assert!(deb.mgmt.iter().all(|r| r.content[1..] == [0; 7]));
}

/// Requests one after the other on a kept connection (ids reused and not), the last one
/// without KEEP_CONN closes it.
#[test]
fn same_keep_conn_sequential_requests() {
    let reqs = [
        post(1, "/k1", body(10_000, 1)).keep_conn(true),
        get(1, "/k2").keep_conn(true),
        post(9, "/k3", b"third".to_vec()).keep_conn(true),
        get(2, "/k4"),
    ];
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for r in &reqs {
            exchange(&mut c, &mut t, r);
        }
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &reqs.iter().collect::<Vec<_>>());
}

/// FCGX_SetExitStatus goes into END_REQUEST's appStatus, big-endian, negative values included.
#[test]
fn same_exit_status() {
    let reqs: Vec<Request> = ["300", "-1", "0", "2147483647"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            get(1 + i as u16, "/exit")
                .param("EXIT_STATUS", s)
                .keep_conn(true)
        })
        .collect();
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for r in &reqs {
            exchange(&mut c, &mut t, r);
        }
        t
    });
    assert_same(&deb, &ours);
    let statuses: Vec<[u8; 8]> = deb
        .ends()
        .iter()
        .map(|r| r.content.clone().try_into().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            [0, 0, 1, 44, 0, 0, 0, 0],
            [255, 255, 255, 255, 0, 0, 0, 0],
            [0; 8],
            [127, 255, 255, 255, 0, 0, 0, 0]
        ]
    );
}

/// An empty STDIN (only its end record), with and without params.
#[test]
fn same_empty_stdin() {
    let reqs = [Request::new(1).keep_conn(true), get(3, "/empty")];
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for r in &reqs {
            exchange(&mut c, &mut t, r);
        }
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &reqs.iter().collect::<Vec<_>>());
}

/// No STDERR record at all unless the application wrote to err; then its data and the empty
/// STDERR record.
#[test]
fn same_stderr_only_when_used() {
    let quiet = get(1, "/quiet").keep_conn(true);
    let noisy = get(2, "/noisy")
        .param("STDERR", "a warning\n")
        .keep_conn(true);
    let long = get(3, "/long").param("STDERR", "e".repeat(3000));
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for r in [&quiet, &noisy, &long] {
            exchange(&mut c, &mut t, r);
        }
        t
    });
    assert_same(&deb, &ours);
    for t in [&deb, &ours] {
        assert!(!t.reqs.iter().any(|r| r.id == 1 && r.rtype == rtype::STDERR));
        assert_eq!(t.stream(rtype::STDERR, 2), b"a warning\n");
        assert_eq!(t.stream(rtype::STDERR, 3), "e".repeat(3000).as_bytes());
        assert_eq!(t.stdout(2), expected(&noisy));
        // Both streams used are terminated, before END_REQUEST.
        for id in [2, 3] {
            let ends: Vec<u8> = t
                .reqs
                .iter()
                .filter(|r| r.id == id && (r.content.is_empty() || r.rtype == rtype::END_REQUEST))
                .map(|r| r.rtype)
                .collect();
            assert!(
                ends.contains(&rtype::STDERR) && ends.contains(&rtype::STDOUT),
                "{t:#?}"
            );
            assert_eq!(ends.last(), Some(&rtype::END_REQUEST), "{t:#?}");
        }
    }
}

/// The Filter role (STDIN, then DATA after FCGX_StartFilterData) and the Authorizer role.
#[test]
fn same_filter_and_authorizer_roles() {
    let filter = Request::new(1)
        .role(3)
        .keep_conn(true)
        .param("FCGI_DATA_LENGTH", "20000")
        .param("FCGI_DATA_LAST_MOD", "1700000000")
        .stdin("form")
        .data(body(20_000, 3));
    let auth = Request::new(2)
        .role(2)
        .param("REMOTE_USER", "alice")
        .param("REMOTE_PASSWD", "pw");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        exchange(&mut c, &mut t, &filter);
        exchange(&mut c, &mut t, &auth);
        t
    });
    assert_same(&deb, &ours);
    assert_answers(&deb, &[&filter, &auth]);
}

/// A second BEGIN_REQUEST while the first request is in progress. Here the libraries differ by
/// design, each consistently with its own FCGI_MPXS_CONNS: libfcgi ("0") rejects it at once
/// with FCGI_CANT_MPX_CONN and goes on with the first request; the project ("1") takes it and
/// serves both (one application thread: the second after the first). Request 1's answer is the
/// same on both. (The rest of request 2 is only sent to the project: libfcgi would hit the bug
/// of `fixed_empty_record_of_other_id_keeps_next_record`.)
#[test]
fn second_begin_on_busy_connection() {
    let first = post(1, "/first", b"0123456789".to_vec())
        .param("FLUSH_MARK", "first-started")
        .keep_conn(true);
    let second = get(2, "/second").keep_conn(true).stdin("two");
    let mut w1 = Vec::new();
    encode_begin_and_params(&first, &mut w1);
    push_record(&mut w1, rtype::STDIN, 1, b"01234");
    let w2 = wire(&second);
    let (begin2, rest2) = w2.split_at(16);
    let mut rest1 = Vec::new();
    push_record(&mut rest1, rtype::STDIN, 1, b"56789");
    push_stream_end(&mut rest1, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&get_values(&[MPXS_CONNS])).unwrap();
        t.push(c.read_record().unwrap().expect("GET_VALUES_RESULT"));
        let mpxs = values_of(&t.mgmt[0])[0].1.clone();
        c.send_raw(&w1).unwrap();
        // Request 1 is now held by the application, which is reading its STDIN.
        let mark = read_until(&mut c, &mut t, "the flush mark", |r| {
            r.rtype == rtype::STDOUT
        });
        t.push(mark);
        c.send_raw(begin2).unwrap();
        if mpxs == "0" {
            // Rejected while request 1 is still open (its STDIN has not ended).
            let end = read_until(&mut c, &mut t, "CANT_MPX_CONN", |r| {
                r.rtype == rtype::END_REQUEST
            });
            t.push(end);
        } else {
            c.send_raw(rest2).unwrap();
        }
        c.send_raw(&rest1).unwrap();
        read_transcript(&mut c, &mut t, 2, false);
        (mpxs, t)
    });
    assert_eq!(deb.0, "0");
    let d = &deb.1;
    assert_eq!(d.ends()[0].id, 2);
    assert_eq!(
        d.ends()[0].content,
        [0, 0, 0, 0, 1, 0, 0, 0],
        "FCGI_CANT_MPX_CONN"
    );
    assert_eq!(d.stdout(1), expected(&first));
    assert_eq!(d.ends()[1].content, [0; 8]);

    let (mpxs, o) = &ours;
    assert_eq!(mpxs, "1", "the project multiplexes");
    assert_eq!(o.stdout(1), expected(&first));
    assert_eq!(o.stdout(2), expected(&second));
    assert!(o.ends().iter().all(|r| r.content == [0; 8]), "{o:#?}");
}

// ---------------------------------------------------------------------------------------------
// Correct answers where libfcgi is wrong

/// Two keep-alive requests sent in one write are both answered. libfcgi reads the second into
/// the first request's buffer and loses it (reference §2 "Keep-conn"): after the first answer it
/// waits for bytes that never come; once the client half-closes, it closes the connection.
#[test]
fn fixed_pipelined_keep_alive_requests() {
    let a = post(1, "/a", b"first body".to_vec()).keep_conn(true);
    let b = post(2, "/b", b"second body".to_vec()).keep_conn(true);
    let mut w = wire(&a);
    w.extend(wire(&b));
    assert!(w.len() < 8192, "one read of libfcgi's reader takes both");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        if app.lib == Lib::Project {
            read_transcript(&mut c, &mut t, 2, false);
        }
        let _ = c.stream().shutdown_write();
        read_to_close(&mut c, &mut t);
        t
    });
    assert_answers(&ours, &[&a, &b]);
    // libfcgi: the first answered, the second lost.
    assert_answers(&deb, &[&a]);
}

/// Padding on BEGIN_REQUEST is skipped. libfcgi does not skip it (SetReaderType zeroes the
/// pending padding), so it parses the padding as the next header: the params vanish and stdin
/// fails.
#[test]
fn fixed_padding_on_begin_request() {
    let req = post(1, "/pad-begin", b"padded body".to_vec());
    let mut w = padded(rtype::BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 8);
    let mut rest = Vec::new();
    encode_begin_and_params(&req, &mut rest);
    w.extend_from_slice(&rest[16..]); // PARAMS and its end, after the plain BEGIN
    push_stream(&mut w, rtype::STDIN, 1, &req.stdin);
    push_stream_end(&mut w, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        let _ = c.stream().shutdown_write();
        read_to_close(&mut c, &mut t);
        t
    });
    assert_answers(&ours, &[&req]);
    assert_ne!(
        deb.stdout(1),
        expected(&req),
        "libfcgi got it right? {deb:#?}"
    );
}

/// Padding on the empty records that end PARAMS and STDIN (and 255 bytes of it on data
/// records) is skipped. libfcgi misreads the padding of the empty PARAMS record as a header.
#[test]
fn fixed_padding_on_empty_params_and_stdin_records() {
    let req = post(1, "/pad-end", b"padded body".to_vec()).keep_conn(true);
    let pairs = fcgi_runtime_tools::client::encode_pairs(&req.params);
    let mut w = Vec::new();
    push_begin_request(&mut w, 1, 1, true);
    w.extend(padded(rtype::PARAMS, 1, &pairs, 255));
    w.extend(padded(rtype::PARAMS, 1, b"", 8));
    w.extend(padded(rtype::STDIN, 1, b"padded", 1));
    w.extend(padded(rtype::STDIN, 1, b" body", 255));
    w.extend(padded(rtype::STDIN, 1, b"", 16));
    let next = get(2, "/next");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        if !t.closed {
            let _ = c.send_request(&next);
            read_transcript(&mut c, &mut t, 2, true);
        }
        t
    });
    assert_answers(&ours, &[&req, &next]);
    assert_ne!(
        deb.stdout(1),
        expected(&req),
        "libfcgi got it right? {deb:#?}"
    );
}

/// A management record of unknown type in the middle of STDIN is answered with UNKNOWN_TYPE and
/// its content skipped. libfcgi delivers the content as stdin ("abc" + "INJ" + "def" = 9 bytes).
#[test]
fn fixed_management_record_in_stdin_not_injected() {
    let req = post(1, "/inject", b"abcdef".to_vec());
    let mut w = Vec::new();
    encode_begin_and_params(&req, &mut w);
    push_record(&mut w, rtype::STDIN, 1, b"abc");
    push_record(&mut w, 20, 0, b"INJ");
    push_record(&mut w, rtype::STDIN, 1, b"def");
    push_stream_end(&mut w, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, true);
        t
    });
    assert_answers(&ours, &[&req]);
    assert_eq!(ours.mgmt.len(), 1);
    assert_eq!(ours.mgmt[0].rtype, rtype::UNKNOWN_TYPE);
    assert_eq!(ours.mgmt[0].content, [20, 0, 0, 0, 0, 0, 0, 0]);
    let injected = post(1, "/inject", b"abcINJdef".to_vec());
    let mut want = expected(&injected);
    // The CONTENT_LENGTH param is the real one, 6.
    let cl = b"ENV CONTENT_LENGTH=9\n";
    let at = want.windows(cl.len()).position(|w| w == cl).unwrap();
    want[at + cl.len() - 2] = b'6';
    assert_eq!(
        String::from_utf8_lossy(&deb.stdout(1)),
        String::from_utf8_lossy(&want),
        "libfcgi injects the management content into stdin"
    );
}

/// An unknown management record WITH content before BEGIN_REQUEST: answered, content skipped,
/// the request after it served. libfcgi reads its content as a header and drops the connection.
#[test]
fn fixed_unknown_type_with_content_before_begin() {
    let req = get(1, "/after").stdin("x");
    let mut w = Vec::new();
    push_record(&mut w, 20, 0, b"INJECTED");
    w.extend(wire(&req));
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, true);
        t
    });
    assert_answers(&ours, &[&req]);
    assert_eq!(ours.mgmt.len(), 1);
    assert_eq!(ours.mgmt[0].content, [20, 0, 0, 0, 0, 0, 0, 0]);
    assert!(deb.closed && deb.reqs.is_empty(), "{deb:#?}");
}

/// GET_VALUES with four or more names (repeats) is answered, and the connection goes on.
/// libfcgi builds its answer in a 64-byte stack buffer without a bound: from four names on the
/// answer overflows it, and with enough names the process dies ("stack smashing detected",
/// SIGABRT; 40 names of 15 bytes do it).
#[test]
fn fixed_get_values_four_or_more_names() {
    let four = [MAX_CONNS, MAX_REQS, MPXS_CONNS, MAX_REQS];
    let sixty: Vec<&str> = [MPXS_CONNS; 60].to_vec();
    for q in [&four[..], &sixty[..]] {
        assert_ne!(get_values(q)[6], 0, "padded: libfcgi reads it at once");
    }
    let req = get(1, "/after-gv");
    // libfcgi
    let mut deb = App::start(Lib::Debian);
    let mut c = deb.connect();
    c.send_raw(&get_values(&sixty)).unwrap();
    let mut t = Transcript::default();
    read_to_close(&mut c, &mut t);
    let (st, err) = deb.wait_exit();
    assert!(!st.success(), "libfcgi survived: {st} {t:#?}");
    assert!(err.contains("stack smashing"), "{st}: {err}");
    // the project: four names, then thousands
    let mut ours = App::start(Lib::Project);
    let mut c = ours.connect();
    let many: Vec<&str> = four.iter().copied().cycle().take(3000).collect();
    let mut t = Transcript::default();
    for names in [&four[..], &sixty[..], &many[..]] {
        c.send_raw(&get_values(names)).unwrap();
        let r = c.read_record().unwrap().expect("GET_VALUES_RESULT");
        t.push(r);
        let rec = t.mgmt.last().unwrap();
        let got = values_of(rec);
        for n in names {
            assert!(got.iter().any(|(k, _)| k == n), "{n} missing: {got:?}");
        }
        assert!(
            got.iter().all(|(k, _)| names.contains(&k.as_str())),
            "{got:?}"
        );
        assert!(rec.aligned);
    }
    exchange(&mut c, &mut t, &req);
    assert_answers(&t, &[&req]);
    ours.assert_running();
}

/// A GET_VALUES whose record ends without padding, sent alone on an idle connection, is
/// answered. libfcgi only answers it once more bytes arrive (its reader looks for the end of
/// the record by reading the socket again), so a server probing an idle connection waits
/// forever; here the libfcgi run sends a second record to get both answers.
#[test]
fn fixed_get_values_unpadded_query_answered_alone() {
    let queries: [&[&str]; 2] = [&[MAX_CONNS], &[MAX_CONNS, MAX_REQS, MPXS_CONNS]];
    for q in queries {
        assert_eq!(get_values(q)[6], 0, "no padding");
    }
    let mut unknown = Vec::new();
    push_record(&mut unknown, 20, 0, b"");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        for q in queries {
            c.send_raw(&get_values(q)).unwrap();
            if app.lib == Lib::Debian {
                c.send_raw(&unknown).unwrap();
                t.push(c.read_record().unwrap().expect("GET_VALUES_RESULT"));
            }
            t.push(c.read_record().unwrap().expect("an answer"));
        }
        t
    });
    let kinds = |t: &Transcript| t.mgmt.iter().map(|r| r.rtype).collect::<Vec<_>>();
    assert_eq!(
        kinds(&ours),
        [rtype::GET_VALUES_RESULT, rtype::GET_VALUES_RESULT]
    );
    assert_eq!(values_of(&ours.mgmt[0]).len(), 1);
    assert_eq!(values_of(&ours.mgmt[1]).len(), 3);
    assert_eq!(
        kinds(&deb),
        [
            rtype::GET_VALUES_RESULT,
            rtype::UNKNOWN_TYPE,
            rtype::GET_VALUES_RESULT,
            rtype::UNKNOWN_TYPE
        ]
    );
}

/// A param declaring a 0x7ffffff0-byte name (and a 16-byte value) is refused without allocating
/// it: the connection is closed (possibly after an END_REQUEST) and the process goes on serving.
/// libfcgi mallocs the declared size, fails an assertion and aborts.
#[test]
fn fixed_huge_declared_name_length() {
    let mut w = Vec::new();
    push_begin_request(&mut w, 1, 1, false);
    push_record(
        &mut w,
        rtype::PARAMS,
        1,
        &[0xff, 0xff, 0xff, 0xf0, 16, b'N', b'A', b'M', b'E'],
    );
    let send = |app: &App| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_to_close(&mut c, &mut t);
        t
    };
    let mut deb = App::start(Lib::Debian);
    let t = send(&deb);
    let (st, err) = deb.wait_exit();
    assert!(!st.success(), "libfcgi survived: {st} {t:#?}");
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&st) == Some(libc::SIGABRT),
        "{st}: {err}"
    );

    let mut ours = App::start(Lib::Project);
    let t = send(&ours);
    assert!(t.closed);
    assert!(
        t.reqs
            .iter()
            .all(|r| r.rtype == rtype::END_REQUEST && r.id == 1),
        "nothing but an END_REQUEST: {t:#?}"
    );
    ours.assert_running();
    let req = get(2, "/still-serving");
    let mut c = ours.connect();
    let mut t = Transcript::default();
    exchange(&mut c, &mut t, &req);
    assert_answers(&t, &[&req]);
}

/// An unknown role gets END_REQUEST(FCGI_UNKNOWN_ROLE) and the kept connection goes on (the
/// rejected request's PARAMS and STDIN belong to an inactive id and are ignored). libfcgi closes
/// the connection without a word.
#[test]
fn fixed_unknown_role_answered() {
    let bad = get(1, "/role").role(9).keep_conn(true).stdin("ignored");
    let good = get(1, "/after-role").stdin("ok");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_request(&bad).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        if !t.closed {
            exchange(&mut c, &mut t, &good);
        }
        t
    });
    assert_eq!(
        ours.reqs[0],
        Rec {
            rtype: rtype::END_REQUEST,
            id: 1,
            content: vec![0, 0, 0, 0, 3, 0, 0, 0],
            aligned: true
        }
    );
    let mut rest = ours.clone();
    rest.reqs.remove(0);
    assert_answers(&rest, &[&good]);
    assert!(deb.closed && deb.reqs.is_empty(), "{deb:#?}");
}

/// ABORT_REQUEST while the application is blocked reading STDIN (never ended): END_REQUEST
/// (REQUEST_COMPLETE) arrives, and the kept connection serves the next request. libfcgi sees the
/// ABORT as a protocol error on stdin (STDIN_ERROR=-3), answers, then closes the connection.
#[test]
fn fixed_abort_while_reading_stdin_keeps_connection() {
    let held = post(1, "/held", b"0123456789".to_vec())
        .param("FLUSH_MARK", "reading")
        .keep_conn(true);
    let mut w = Vec::new();
    encode_begin_and_params(&held, &mut w);
    push_record(&mut w, rtype::STDIN, 1, b"01234");
    let mut abort = Vec::new();
    push_abort_request(&mut abort, 1);
    let next = get(2, "/after-abort").stdin("next");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        let mark = read_until(&mut c, &mut t, "the flush mark", |r| {
            r.rtype == rtype::STDOUT
        });
        t.push(mark);
        c.send_raw(&abort).unwrap();
        // STDIN is still open: only the abort can end request 1.
        read_transcript(&mut c, &mut t, 1, false);
        if !t.closed {
            let _ = c.send_request(&next);
            read_transcript(&mut c, &mut t, 2, true);
        }
        t
    });
    let ends = ours.ends();
    assert_eq!(ends.len(), 2, "{ours:#?}");
    assert_eq!((ends[0].id, ends[0].content[4]), (1, 0), "REQUEST_COMPLETE");
    // Whatever request 1 wrote before the END_REQUEST, request 2's answer is whole and alone.
    let mut rest = ours.clone();
    rest.reqs.retain(|r| r.id == 2);
    assert_answers(&rest, &[&next]);

    let d = String::from_utf8_lossy(&deb.stdout(1)).into_owned();
    assert!(d.contains("STDIN_ERROR=-3"), "{deb:#?}");
    assert_eq!(
        deb.ends().len(),
        1,
        "libfcgi closed the connection: {deb:#?}"
    );
    assert!(deb.closed);
}

/// ABORT_REQUEST while the application holds the request but reads nothing (blocked on a FIFO
/// the test controls): END_REQUEST comes at once, while the application is still blocked; after
/// it is released its output goes nowhere, and the kept connection serves the next request.
/// libfcgi sends END_REQUEST only when the application finishes (after "RELEASED"), then reads
/// the ABORT as the next request's first record and drops the connection.
#[test]
fn fixed_abort_answered_while_app_is_busy() {
    let dir = std::env::temp_dir().join(format!("lf-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |app: &mut App| {
        let fifo = dir.join(format!("hold-{:?}", app.lib));
        let _ = std::fs::remove_file(&fifo);
        let cpath = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `cpath` is a NUL-terminated path that outlives the call.
        let rc = unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo");
        // Opened read-write by the test: the application's open() does not block, its read()
        // does until the test writes.
        let mut release = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let held = get(1, "/busy")
            .param("FLUSH_MARK", "holding")
            .param("HOLD_FIFO", fifo.to_str().unwrap())
            .keep_conn(true);
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_request(&held).unwrap();
        let mark = read_until(&mut c, &mut t, "the flush mark", |r| {
            r.rtype == rtype::STDOUT
        });
        t.push(mark);
        let mut abort = Vec::new();
        push_abort_request(&mut abort, 1);
        c.send_raw(&abort).unwrap();
        let mut ended_while_held = false;
        if app.lib == Lib::Project {
            read_transcript(&mut c, &mut t, 1, false);
            ended_while_held = true;
        }
        std::io::Write::write_all(&mut release, b"x").unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        let next = get(2, "/after-busy").stdin("n");
        if !t.closed {
            let _ = c.send_request(&next);
            read_transcript(&mut c, &mut t, 2, true);
        }
        let _ = std::fs::remove_file(&fifo);
        (ended_while_held, held, next, t)
    };
    let mut deb = App::start(Lib::Debian);
    let (_, held, _, d) = run(&mut deb);
    drop(deb);
    let mut ours = App::start(Lib::Project);
    let (ended_while_held, _, next, o) = run(&mut ours);
    ours.assert_running();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(ended_while_held);
    let ends = o.ends();
    assert_eq!(ends.len(), 2, "{o:#?}");
    assert_eq!((ends[0].id, ends[0].content[4]), (1, 0), "REQUEST_COMPLETE");
    assert!(
        !String::from_utf8_lossy(&o.stdout(1)).contains("RELEASED"),
        "output after the abort is not sent: {o:#?}"
    );
    let mut rest = o.clone();
    rest.reqs.retain(|r| r.id == 2);
    assert_answers(&rest, &[&next]);

    // libfcgi: the whole answer of request 1 (the application finished it), then the close.
    assert_answers(&d, &[&held]);
    assert!(d.closed);
}

/// ABORT_REQUEST after STDIN ended, while the application may still hold the request (it flushed
/// its output after reading STDIN): exactly one END_REQUEST for it, and the next request on the
/// kept connection is answered. libfcgi leaves the ABORT in the socket, reads it as the first
/// record of the next request, and drops the connection with that request.
#[test]
fn fixed_abort_after_stdin_eof_does_not_kill_next_request() {
    let first = post(1, "/first", b"body".to_vec())
        .param("FLUSH_AFTER_STDIN", "1")
        .keep_conn(true);
    let next = get(2, "/next").stdin("n");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_request(&first).unwrap();
        // The flush after STDIN: the application has read STDIN to its end.
        let out = read_until(&mut c, &mut t, "the output", |r| r.rtype == rtype::STDOUT);
        t.push(out);
        let mut abort = Vec::new();
        push_abort_request(&mut abort, 1);
        c.send_raw(&abort).unwrap();
        read_transcript(&mut c, &mut t, 1, false);
        if !t.closed {
            let _ = c.send_request(&next);
            read_transcript(&mut c, &mut t, 2, true);
        }
        t
    });
    let ends = ours.ends();
    assert_eq!(ends.len(), 2, "{ours:#?}");
    assert_eq!((ends[0].id, ends[0].content[4]), (1, 0));
    let mut rest = ours.clone();
    rest.reqs.retain(|r| r.id == 2);
    assert_answers(&rest, &[&next]);

    assert_answers(&deb, &[&first]);
    assert!(deb.closed, "libfcgi drops the connection");
}

/// An empty record of another (inactive) request id in the middle of STDIN is ignored. libfcgi
/// skips it but leaves its skip flag set (only a non-empty content resets it), so the next
/// record of the current request is silently dropped too: "abc" + "def" arrives as "abc".
#[test]
fn fixed_empty_record_of_other_id_keeps_next_record() {
    let req = post(1, "/skip", b"abcdef".to_vec());
    let mut w = Vec::new();
    encode_begin_and_params(&req, &mut w);
    push_record(&mut w, rtype::STDIN, 1, b"abc");
    push_stream_end(&mut w, rtype::STDIN, 7);
    push_record(&mut w, rtype::STDIN, 1, b"def");
    push_stream_end(&mut w, rtype::STDIN, 1);
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        c.send_raw(&w).unwrap();
        read_transcript(&mut c, &mut t, 1, true);
        t
    });
    assert_answers(&ours, &[&req]);
    let d = String::from_utf8_lossy(&deb.stdout(1)).into_owned();
    assert!(
        d.contains("STDIN_LENGTH=3\n"),
        "libfcgi dropped \"def\": {deb:#?}"
    );
}

/// The exit status of one request does not carry over to the next one served by the same
/// FCGX_Request. libfcgi never resets appStatus: every later request of the process ends with
/// the last status set (not in the reference's list; found here).
#[test]
fn fixed_exit_status_not_carried_over() {
    let failing = get(1, "/fail").param("EXIT_STATUS", "5").keep_conn(true);
    // Not kept: the single-threaded application then takes the next connection.
    let plain = get(2, "/plain");
    let (deb, ours) = on_both(|app| {
        let mut c = app.connect();
        let mut t = Transcript::default();
        exchange(&mut c, &mut t, &failing);
        exchange(&mut c, &mut t, &plain);
        // And on a new connection.
        let mut c2 = app.connect();
        let mut t2 = Transcript::default();
        exchange(&mut c2, &mut t2, &get(3, "/other"));
        (t, t2)
    });
    let status = |t: &Transcript, i: usize| t.ends()[i].content[..4].to_vec();
    assert_eq!(status(&ours.0, 0), [0, 0, 0, 5]);
    assert_eq!(status(&ours.0, 1), [0, 0, 0, 0]);
    assert_eq!(status(&ours.1, 0), [0, 0, 0, 0]);
    assert_eq!(
        status(&deb.0, 1),
        [0, 0, 0, 5],
        "libfcgi keeps the old status"
    );
    assert_eq!(status(&deb.1, 0), [0, 0, 0, 5]);
}

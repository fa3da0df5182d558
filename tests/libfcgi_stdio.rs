//! The libfcgi stdio layer (fcgi_stdio.h, `_fcgi_sF`) on the project's library: a C program
//! written against Debian's fcgi_stdio.h (tests/stdio/stdio_app.c), linked with `-lfcgi`
//! against the freshly built libfcgi.so, run as a CGI program (stdin a pipe) and as a FastCGI
//! application (a TCP listening socket as fd 0) driven by the crate's client. Every read has a
//! timeout; nothing asserts on timing.

mod common;

use common::{assert_output, body, fnv1a64, lib_dir, runs_project_lib, IO_TIMEOUT};
use fcgi_runtime_protocol::record::{push_stream, push_stream_end, rtype};
use fcgi_runtime_tools::client::{
    encode_begin_and_params, Client, Request, Response, ResponseBuilder,
};
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a finished program may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh private directory under cargo's per-target temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("libfcgi-stdio-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn compile() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stdio/stdio_app.c");
    let out = temp_dir("build").join("stdio_app");
    let lib = lib_dir();
    // Debian's fcgi_stdio.h (the system include directory); the project's library.
    let res = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()))
        .arg("-Wall")
        .arg("-Wextra")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lfcgi")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !res.status.success() {
        return Err(format!(
            "cc {} failed ({}):\n{}",
            src.display(),
            res.status,
            String::from_utf8_lossy(&res.stderr)
        ));
    }
    Ok(out)
}

/// The compiled test program (built once per test binary).
fn app_path() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(compile) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Asserts the `lib=<path>` line of `out` names the project's library.
#[track_caller]
fn assert_project_lib_line(out: &str) {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("lib="))
        .unwrap_or_else(|| panic!("no lib= line in\n{out}"));
    // cargo hard-links the library into several directories and dladdr may report any of
    // their names: compare the files, not the paths.
    use std::os::unix::fs::MetadataExt;
    let loaded = std::fs::metadata(Path::new(line)).unwrap_or_else(|e| panic!("lib={line}: {e}"));
    let ours = std::fs::metadata(lib_dir().join("libfcgi.so")).expect("project library");
    assert!(
        (loaded.dev(), loaded.ino()) == (ours.dev(), ours.ino()),
        "FCGI_Accept comes from {line}, not from the project's library in {}",
        lib_dir().display()
    );
}

/// Waits for `child` to exit (bounded, so a hang fails instead of blocking the suite).
fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not exit within {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test program serving FastCGI on a TCP listening socket inherited as fd 0. Its real
/// stdout and stderr go to files (read after it exits). Killed on drop.
struct App {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl App {
    fn start() -> App {
        let dir = temp_dir("fcgi");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = l.local_addr().expect("local_addr").to_string();
        let child = Command::new(app_path())
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env_remove("TEST")
            .stdin(Stdio::from(OwnedFd::from(l)))
            .stdout(std::fs::File::create(dir.join("stdout")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr file"))
            .spawn()
            .expect("start the test program");
        App { child, addr, dir }
    }

    /// A new connection with [`IO_TIMEOUT`] set (the socket listens before the program runs).
    fn connect(&self) -> Client {
        let c =
            Client::connect(&self.addr).unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr));
        c.set_timeout(Some(IO_TIMEOUT)).expect("set timeouts");
        c
    }

    /// Sends one request on a new connection and returns the response; checks on the way
    /// that the program runs on the project's library.
    fn request(&self, req: &Request) -> Response {
        let mut c = self.connect();
        let r = c
            .request(req)
            .unwrap_or_else(|e| panic!("request failed: {e}\n{}", self.logs()));
        assert!(
            runs_project_lib(self.child.id()),
            "the program does not run on the project's library"
        );
        r
    }

    fn logs(&self) -> String {
        let read = |n| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "--- program stdout ---\n{}\n--- program stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A responder request selecting the program's test `name`.
fn test_request(id: u16, name: &str) -> Request {
    Request::new(id)
        .param("GATEWAY_INTERFACE", "CGI/1.1")
        .param("REQUEST_METHOD", "POST")
        .param("TEST", name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const HEADER: &str = "Content-Type: text/plain\r\n\r\n";

#[test]
fn cgi_mode_uses_the_real_stdio_streams() {
    let mut child = Command::new(app_path())
        .env("TEST", "cgi")
        .env("FOO", "from the environment")
        .env("REQUEST_METHOD", "POST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test program");
    child
        .stdin
        .take()
        .expect("stdin pipe")
        .write_all(b"first line\nthe rest")
        .expect("write the body");
    let out = child.wait_with_output().expect("wait for the program");
    assert!(out.status.success(), "exit status {}", out.status);
    let stdout = text(&out.stdout);
    assert_project_lib_line(&stdout);
    let want = format!(
        "{HEADER}cgi FOO=from the environment\n\
         fgets=[first line] fread=8 [the rest] feof=1\n\
         fileno stdout=1 stdin=0 stderr=2\n\
         formats: 7 44 wide\n\
         puts line\n\
         fwrite\n\
         lib={}\n\
         second accept=-1\n",
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("lib="))
            .unwrap_or("")
    );
    assert_output(stdout.as_bytes(), want.as_bytes());
    assert_eq!(text(&out.stderr), "cgi stderr\n");
}

#[test]
fn fastcgi_output_functions_write_the_request_streams() {
    let app = App::start();
    let req = test_request(1, "output")
        .param("FOO", "bar baz")
        .param("STATUS", "7");
    let r = app.request(&req);
    let stdout = text(&r.stdout);
    assert_project_lib_line(&stdout);
    let lib = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lib="))
        .unwrap_or("");
    let want = format!(
        "{HEADER}puts line\nP\nfputs line\nfwrite line\nabcdef\nc\n\
         fwrite items=3\n\
         formats: 18446744073709551615 44 wide -42 003.1 str %\n\
         fileno stdout=-1 stdin=-1 stderr=-1\n\
         FOO=bar baz ROLE=RESPONDER missing=unset\n\
         request=1\n\
         start_filter_data=-1\n\
         ferror=0\n\
         via FCGX_PutS\n\
         stdio_stream=null\n\
         lib={lib}\n"
    );
    assert_output(stdout.as_bytes(), want.as_bytes());
    assert_eq!(text(&r.stderr), "to stderr 42\nfputs stderr\n");
    assert_eq!((r.app_status, r.protocol_status), (7, 0));
}

#[test]
fn fastcgi_input_functions_read_the_request_body() {
    let app = App::start();
    let req = test_request(1, "read").stdin("Hello\nworld and more\nlast");
    let r = app.request(&req);
    let want = format!(
        "{HEADER}eof0=0 c1=H ungetc=H c2=H\n\
         fgets=[ello\n]\n\
         fread=19 [world and more\nlast]\n\
         eof1=yes getchar=-1 fread_again=0\n"
    );
    assert_output(&r.stdout, want.as_bytes());

    let req = test_request(2, "gets").stdin("alpha\nbeta\n\n0123456789");
    let r = app.request(&req);
    let want = format!(
        "{HEADER}gets=[alpha] [beta] []\n\
         items=2 [01234567]\n\
         gets_at_eof=(null)\n"
    );
    assert_output(&r.stdout, want.as_bytes());
}

#[test]
fn keep_alive_loop_serves_many_requests() {
    let app = App::start();
    let mut c = app.connect();
    for i in 1..=5u16 {
        let req = test_request(i, "output")
            .keep_conn(i < 5)
            .param("FOO", format!("n{i}"))
            .param("STATUS", i.to_string());
        let r = c
            .request(&req)
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", app.logs()));
        let out = text(&r.stdout);
        assert!(
            out.contains(&format!("\nFOO=n{i} ROLE=RESPONDER missing=unset\n")),
            "request {i}: {out}"
        );
        assert!(
            out.contains(&format!("\nrequest={i}\n")),
            "request {i}: {out}"
        );
        assert_eq!(r.app_status, u32::from(i));
    }
    // A new connection after the keep-alive one: the loop goes on.
    let r = app.request(&test_request(1, "output").param("FOO", "again"));
    assert!(text(&r.stdout).contains("\nFOO=again ROLE=RESPONDER missing=unset\nrequest=6\n"));
    assert!(runs_project_lib(app.child.id()));
}

#[test]
fn large_body_round_trips_through_fread_and_fwrite() {
    let app = App::start();
    let data = body(1 << 20, 42);
    let req = test_request(1, "echo").stdin(data.clone());
    let r = app.request(&req);
    let head = b"Content-Type: application/octet-stream\r\n\r\n";
    assert!(
        r.stdout.starts_with(head),
        "{}",
        text(&r.stdout[..64.min(r.stdout.len())])
    );
    let echoed = &r.stdout[head.len()..];
    assert_eq!(echoed.len(), data.len());
    assert_eq!(fnv1a64(echoed), fnv1a64(&data), "the echoed body differs");
    assert_eq!(
        text(&r.stderr),
        format!(
            "len={} fnv={:016x} short_writes=0\n",
            data.len(),
            fnv1a64(&data)
        )
    );
}

/// Reads records of request `id` until its STDOUT content so far ends with `want`.
fn read_stdout_until(c: &mut Client, b: &mut ResponseBuilder, id: u16, want: &str) {
    while !text(&b.response().stdout).ends_with(want) {
        let rec = c
            .read_record()
            .expect("read a record")
            .unwrap_or_else(|| panic!("connection closed before '{want}'"));
        assert_eq!(rec.id, id);
        assert!(
            !b.feed(rec).expect("valid response"),
            "the request ended before '{want}' was flushed: {:?}",
            text(&b.response().stdout)
        );
    }
}

#[test]
fn fflush_sends_buffered_output_before_the_program_blocks() {
    let app = App::start();
    let mut c = app.connect();
    let req = test_request(1, "flush");
    let mut wire = Vec::new();
    encode_begin_and_params(&req, &mut wire);
    c.send_raw(&wire).expect("send the request head");
    let mut b = ResponseBuilder::new();
    // The program flushed with fflush(NULL) and now waits for a body byte: without the flush
    // this read would time out.
    read_stdout_until(&mut c, &mut b, 1, "first");
    let mut wire = Vec::new();
    push_stream(&mut wire, rtype::STDIN, 1, b"a");
    c.send_raw(&wire).expect("send a body byte");
    read_stdout_until(&mut c, &mut b, 1, " got a, second");
    let mut wire = Vec::new();
    push_stream(&mut wire, rtype::STDIN, 1, b"b");
    push_stream_end(&mut wire, rtype::STDIN, 1);
    c.send_raw(&wire).expect("send the rest of the body");
    while !b.is_ended() {
        let rec = c.read_record().expect("read").expect("a record");
        b.feed(rec).expect("valid response");
    }
    let r = b.into_response();
    assert_output(
        &r.stdout,
        format!("{HEADER}first got a, second got b, fflush=0,0\n").as_bytes(),
    );
    assert!(runs_project_lib(app.child.id()));
}

#[test]
fn filter_role_reads_data_after_start_filter_data() {
    let app = App::start();
    let req = test_request(1, "filter")
        .role(3)
        .stdin("the stdin")
        .data("the data file");
    let r = app.request(&req);
    assert_output(
        &r.stdout,
        format!("{HEADER}stdin=[the stdin] start_filter_data=0 data=[the data file]\n").as_bytes(),
    );
}

#[test]
fn file_wrappers_use_libc_streams() {
    let app = App::start();
    let dir = temp_dir("files");
    let req = test_request(1, "files").param("DIR", dir.to_str().expect("utf-8 path"));
    let r = app.request(&req);
    let want = format!(
        "{HEADER}fprintf=18\n\
         ftell=18 fgets=[line one]\n\
         fgetpos=0 fgets=[line two] fsetpos=0 again=[line two]\n\
         fseek=0 fgetc=o fileno_ok=1 feof=0 ferror=0\n\
         fclose=0\n\
         reread=18 feof=1\n\
         tmpfile=[tmp data] fclose=0\n\
         popen=[popen out] pclose=0\n\
         fdopen=[line one] fclose=0\n\
         freopen=[reopened]\n\
         fcgx fseek=-1 ftell=-1 espipe=111 fgetpos=-1 setvbuf=-1\n\
         fopen_missing=null\n"
    );
    assert_output(&r.stdout, want.as_bytes());
    // perror: "prefix: message" without a newline, as libfcgi writes it.
    assert_eq!(
        text(&r.stderr),
        "open: No such file or directory|after perror\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("f.txt")).expect("f.txt"),
        "line one\nline two\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn freopen_turns_the_request_stderr_into_a_file_until_the_next_accept() {
    let app = App::start();
    let dir = temp_dir("freopen");
    let req = test_request(1, "freopen").param("DIR", dir.to_str().expect("utf-8 path"));
    let r = app.request(&req);
    assert_output(
        &r.stdout,
        format!(
            "{HEADER}freopen=stderr fileno_ok=1 fclose=0 file=[into the file] \
             fprintf_after_fclose=0\n"
        )
        .as_bytes(),
    );
    assert_eq!(text(&r.stderr), "");
    assert_eq!((r.app_status, r.protocol_status), (0, 0));
    // The next request's stderr is a FastCGI stream again.
    let r = app.request(&test_request(2, "output").param("STATUS", "0"));
    assert_eq!(text(&r.stderr), "to stderr 42\nfputs stderr\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn functions_given_a_file_without_stream_fail_cleanly() {
    let app = App::start();
    let r = app.request(&test_request(1, "nulls"));
    let want = format!(
        "{HEADER}fclose=-1 freopen=null setvbuf=-1 fseek=-1 ftell=-1 fgetpos=-1 fsetpos=-1\n\
         fgetc=-1 ungetc=-1 fgets=null fputc=-1 fputs=-1 fread=0 fwrite=0\n\
         feof=-1 ferror=-1 fileno=-1 pclose=-1 fprintf=-1 vfprintf_via_fprintf=-1\n\
         fflush_all=0 fread_overflow=0\n"
    );
    assert_output(&r.stdout, want.as_bytes());
}

#[test]
fn output_before_the_first_accept_goes_nowhere() {
    // Before FCGI_Accept, stdout wraps no stream: libfcgi's printf, vprintf, puts and fputs
    // return EOF, its fprintf 0. fwrite returns 0 items (libfcgi: (size_t)EOF, more items
    // than were asked for).
    let app = App::start();
    let r = app.request(&test_request(1, "nostream"));
    assert_output(
        &r.stdout,
        format!(
            "{HEADER}before accept: printf=-1 vprintf=-1 fprintf=0 puts=-1 fputs=-1 fwrite=0\n"
        )
        .as_bytes(),
    );
}

#[test]
fn accept_after_sigterm_fails_and_leaves_no_dangling_streams() {
    let mut app = App::start();
    let r = app.request(&test_request(1, "output").param("STATUS", "0"));
    assert!(text(&r.stdout).contains("\nrequest=1\n"));
    // The program is back in (or on its way to) FCGI_Accept, with the library's SIGTERM
    // handler installed by the first accept: the accept fails with a negative code, and the
    // program then writes to stdout/stderr, which must fail without touching freed streams.
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(app.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let st = wait_exit(&mut app.child);
    let logs = app.logs();
    assert!(st.success(), "exit status {st}\n{logs}");
    let out = std::fs::read_to_string(app.dir.join("stdout")).expect("stdout file");
    assert_eq!(
        out,
        "after: accept=negative printf_wrote=no fputs=-1 fprintf=0 fwrite=0 putchar=-1 puts=-1 \
         fflush=-1 feof=-1 getchar=-1 fgets=null environ=null requests=1\n",
        "{logs}"
    );
}

#[test]
fn fcgi_sf_is_a_48_byte_object_shared_through_a_copy_relocation() {
    let lib = lib_dir().join("libfcgi.so");
    let nm = Command::new("nm")
        .args(["-D", "-S", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("run nm");
    assert!(nm.status.success());
    let syms = text(&nm.stdout);
    let line = syms
        .lines()
        .find(|l| l.ends_with(" _fcgi_sF"))
        .unwrap_or_else(|| panic!("_fcgi_sF not exported by {}", lib.display()));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 4, "{line}");
    assert_eq!(u64::from_str_radix(f[1], 16).ok(), Some(48), "{line}");
    assert!(matches!(f[2], "B" | "D"), "not a data object: {line}");

    // The library reaches it through the GOT, so the executable's copy is the one it uses
    // (fastcgi_output_functions_write_the_request_streams reads it from the C side).
    let re = Command::new("readelf")
        .args(["-r", "-W"])
        .arg(&lib)
        .output()
        .expect("run readelf");
    assert!(re.status.success());
    let relocs = text(&re.stdout);
    assert!(
        relocs
            .lines()
            .any(|l| l.contains("GLOB_DAT") && l.ends_with("_fcgi_sF + 0")),
        "no GLOB_DAT relocation for _fcgi_sF in {}",
        lib.display()
    );
    #[cfg(target_arch = "x86_64")]
    {
        let re = Command::new("readelf")
            .args(["-r", "-W"])
            .arg(app_path())
            .output()
            .expect("run readelf");
        assert!(
            text(&re.stdout)
                .lines()
                .any(|l| l.contains("R_X86_64_COPY") && l.contains("_fcgi_sF")),
            "the test program has no copy relocation of _fcgi_sF: the sharing is untested"
        );
    }
}

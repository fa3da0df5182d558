//! The applications under test: building them, starting one variant on a fresh port (bare, or
//! under valgrind, strace or the malloc counter), waiting until it listens, stopping it.
//! Every program, the C ones and the peers, takes the same arguments: ADDR THREADS MODE [MAX].

use crate::peers::Peers;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which library serves the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// bench/apps/native_app.c on fcgi-runtime's native API.
    Native,
    /// bench/apps/lf_app.c (libfcgi API) on fcgi-runtime's libfcgi.so.0.
    Ours,
    /// The same lf_app binary on Debian's libfcgi.so.0.
    Debian,
    /// bench/peers/tokio-hello: tokio-fastcgi 1.3 (hello and big only).
    Tokio,
    /// bench/peers/go-hello: Go's net/http/fcgi (hello and big only).
    Go,
    /// fcgi-runtime's safe Rust API, async face on tokio: the `hello_async` example (hello
    /// only).
    RustAsync,
    /// fcgi-runtime's safe Rust API, blocking face: the `hello` example (hello only).
    RustBlocking,
}

/// The three builds of the C programs, measured in every scenario.
pub const VARIANTS: [Variant; 3] = [Variant::Native, Variant::Ours, Variant::Debian];
/// The other FastCGI libraries, measured in the hello and matrix scenarios.
pub const PEERS: [Variant; 4] = [
    Variant::Tokio,
    Variant::Go,
    Variant::RustAsync,
    Variant::RustBlocking,
];
/// Every variant, in the order of the report's columns (`Variant::index`).
pub const ALL: [Variant; 7] = [
    Variant::Native,
    Variant::Ours,
    Variant::Debian,
    Variant::Tokio,
    Variant::Go,
    Variant::RustAsync,
    Variant::RustBlocking,
];

impl Variant {
    /// The name in progress lines and on the command line (--peers).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Ours => "ours",
            Variant::Debian => "debian",
            Variant::Tokio => "tokio",
            Variant::Go => "go",
            Variant::RustAsync => "rust-async",
            Variant::RustBlocking => "rust-blocking",
        }
    }

    /// The column heading in BENCHMARKS.md.
    pub fn column(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Ours => "ours",
            Variant::Debian => "libfcgi",
            Variant::Tokio => "tokio-fastcgi",
            Variant::Go => "Go",
            Variant::RustAsync => "Rust API async",
            Variant::RustBlocking => "Rust API blocking",
        }
    }

    /// The position in `ALL` and in a row's arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// fcgi-runtime (native API or libfcgi API).
    pub fn is_ours(self) -> bool {
        matches!(self, Variant::Native | Variant::Ours)
    }

    pub fn is_peer(self) -> bool {
        PEERS.contains(&self)
    }

    /// The safe Rust API's examples: one argument (the address), threads from HELLO_THREADS.
    pub fn is_rust_example(self) -> bool {
        matches!(self, Variant::RustAsync | Variant::RustBlocking)
    }

    /// Whether the variant's program answers MODE (the Rust examples know hello only).
    pub fn supports(self, mode: &str) -> bool {
        !self.is_rust_example() || mode == "hello"
    }
}

/// Paths the runner needs.
pub struct Env {
    /// target/release: fcgi-bench and the project's libfcgi.so.0.
    pub release: PathBuf,
    /// Where the C programs and scratch files go (target/bench).
    pub work: PathBuf,
    pub native_app: PathBuf,
    pub lf_app: PathBuf,
    pub malloc_count: PathBuf,
    pub fcgi_bench: PathBuf,
    /// tokio-hello and go-hello, built on first use.
    pub peers: Peers,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Env {
    /// Compiles the three C programs with the system's cc.
    pub fn prepare(root: &Path, fcgi_bench: &Path) -> Result<Env, String> {
        let release = fcgi_bench.parent().unwrap().to_path_buf();
        let so = release.join("libfcgi.so");
        if !so.exists() {
            return Err(format!(
                "{} is missing: run `make build` first",
                so.display()
            ));
        }
        let so0 = release.join("libfcgi.so.0");
        if !so0.exists() {
            std::os::unix::fs::symlink("libfcgi.so", &so0).map_err(|e| e.to_string())?;
        }
        if !Path::new("/usr/include/fcgiapp.h").exists() {
            return Err("Debian's libfcgi-dev is needed (apt-get install libfcgi-dev)".into());
        }
        let work = root.join("target/bench");
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let apps = root.join("bench/apps");
        let env = Env {
            native_app: work.join("native_app"),
            lf_app: work.join("lf_app"),
            malloc_count: work.join("malloc_count.so"),
            fcgi_bench: fcgi_bench.to_path_buf(),
            peers: Peers::new(root, &work),
            release,
            work,
        };
        let cflags = ["-O2", "-g", "-Wall", "-Wextra", "-pthread"];
        run(Command::new("cc")
            .args(cflags)
            .arg("-I")
            .arg(root.join("include"))
            .arg(apps.join("native_app.c"))
            .arg("-o")
            .arg(&env.native_app)
            .arg("-L")
            .arg(&env.release)
            .arg("-lfcgi"))?;
        // Against /usr/include/fcgiapp.h and /usr/lib/.../libfcgi.so: a Debian-built binary.
        run(Command::new("cc")
            .args(cflags)
            .arg(apps.join("lf_app.c"))
            .arg("-o")
            .arg(&env.lf_app)
            .arg("-L/usr/lib/x86_64-linux-gnu")
            .arg("-lfcgi"))?;
        run(Command::new("cc")
            .args(["-O2", "-shared", "-fPIC"])
            .arg(apps.join("malloc_count.c"))
            .arg("-o")
            .arg(&env.malloc_count))?;
        Ok(env)
    }
}

/// What runs the application.
#[derive(Clone, Debug)]
pub enum Wrapper {
    None,
    /// valgrind --tool=callgrind; its stderr goes to this file.
    Callgrind(PathBuf),
    /// strace -f -c -o FILE.
    Strace(PathBuf),
    /// LD_PRELOAD=malloc_count.so, total written to this file at exit.
    MallocCount(PathBuf),
}

/// A running application.
pub struct App {
    pub child: Child,
    pub port: u16,
    pub variant: Variant,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl App {
    /// Starts `variant` with THREADS threads in MODE (hello, big, pieces64k, pieces8k,
    /// pieces100, drain; a peer knows hello and big), exiting after MAX requests when MAX > 0
    /// (the C programs only), and waits until it accepts connections. A peer is built first if
    /// it was not yet.
    pub fn start(
        env: &Env,
        variant: Variant,
        threads: u32,
        mode: &str,
        max: u64,
        wrap: &Wrapper,
    ) -> Result<App, String> {
        let port = free_port();
        let prog = match variant {
            Variant::Native => &env.native_app,
            Variant::Ours | Variant::Debian => &env.lf_app,
            Variant::Tokio | Variant::Go | Variant::RustAsync | Variant::RustBlocking => {
                env.peers.binary(variant)?
            }
        };
        if !variant.supports(mode) {
            return Err(format!("{} answers hello only, not {mode}", variant.name()));
        }
        let mut cmd = match wrap {
            Wrapper::None | Wrapper::MallocCount(_) => Command::new(prog),
            Wrapper::Callgrind(log) => {
                let mut c = Command::new("valgrind");
                c.arg("--tool=callgrind")
                    .arg(format!(
                        "--callgrind-out-file={}",
                        env.work.join("callgrind.out").display()
                    ))
                    .arg(format!("--log-file={}", log.display()))
                    .arg(prog);
                c
            }
            Wrapper::Strace(out) => {
                let mut c = Command::new("strace");
                c.args(["-f", "-c", "-o"]).arg(out).arg("--").arg(prog);
                c
            }
        };
        cmd.arg(format!("127.0.0.1:{port}"));
        if variant.is_rust_example() {
            // `hello ADDRESS`: one argument, as a user runs it; MAX is the C programs' only.
            cmd.env("HELLO_THREADS", threads.to_string());
        } else {
            cmd.arg(threads.to_string()).arg(mode).arg(max.to_string());
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        match variant {
            Variant::Native | Variant::Ours => cmd.env("LD_LIBRARY_PATH", &env.release),
            _ => cmd.env_remove("LD_LIBRARY_PATH"),
        };
        if let Wrapper::MallocCount(f) = wrap {
            cmd.env("LD_PRELOAD", &env.malloc_count)
                .env("MALLOC_COUNT_FILE", f);
        }
        let child = cmd.spawn().map_err(|e| format!("{prog:?}: {e}"))?;
        let mut app = App {
            child,
            port,
            variant,
        };
        let t0 = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = app.child.try_wait() {
                return Err(format!(
                    "{} app exited before listening: {st}",
                    variant.name()
                ));
            }
            if t0.elapsed() > Duration::from_secs(30) {
                app.stop();
                return Err(format!("{} app did not listen within 30 s", variant.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(wrap, Wrapper::None) && !variant.is_peer() {
            app.check_library(env)?;
        }
        Ok(app)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Confirms from /proc/PID/maps which libfcgi.so.0 the process loaded.
    fn check_library(&self, env: &Env) -> Result<(), String> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid()))
            .map_err(|e| e.to_string())?;
        let ours = env.release.join("libfcgi.so");
        let ours = ours.canonicalize().unwrap_or(ours);
        let loaded_ours = maps.contains(&*ours.to_string_lossy());
        let loaded_debian = maps.contains("/usr/lib/x86_64-linux-gnu/libfcgi.so.0");
        let ok = match self.variant {
            Variant::Debian => loaded_debian && !loaded_ours,
            _ => loaded_ours && !loaded_debian,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} app loaded the wrong libfcgi (ours {loaded_ours}, debian {loaded_debian})",
                self.variant.name()
            ))
        }
    }

    /// Waits for an application started with MAX to exit by itself.
    pub fn wait_exit(mut self, limit: Duration) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            if t0.elapsed() > limit {
                self.stop();
                return Err(format!(
                    "{} app did not exit after its last request",
                    self.variant.name()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL after two seconds.
    pub fn stop(&mut self) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) takes no pointers; the pid is our own child's (`Child::id`).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

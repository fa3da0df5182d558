//! The nginx blocks of docs/deploy.md, run in front of both faces.

use super::*;

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// Starts nginx on the document's `http {}`-level `block`, with `subst` (all placeholders but
/// the web server's address, which is a free port) and a copy of Debian's fastcgi_params.
pub(crate) fn start_nginx(fx: &mut Fixture, subst: &Subst, block: &str) {
    require(NGINX, "nginx-light");
    require(DEBIAN_FASTCGI_PARAMS, "nginx-common");
    fs::copy(DEBIAN_FASTCGI_PARAMS, fx.path("fastcgi_params")).expect("copy fastcgi_params");
    let conf = fx.path("nginx.conf");
    let error_log = fx.path("error.log");
    let dir = fx.dir.clone();
    start_web(fx, "nginx", &error_log, |port| {
        let text = subst
            .clone()
            .set(WEB_ADDR, format!("127.0.0.1:{port}"))
            .apply("nginx block", block);
        fs::write(&conf, nginx_conf(&dir, &text)).expect("write nginx.conf");
        let mut prefix = dir.as_os_str().to_owned();
        prefix.push("/");
        let mut cmd = Command::new(NGINX);
        cmd.arg("-e")
            .arg(&error_log)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf);
        cmd
    });
}

/// The nginx configuration for `transport`: the `tcp` block, or with the `unix` block's
/// upstream in place of its own.
pub(crate) fn nginx_block(transport: Transport) -> String {
    let tcp = doc_block("nginx", "tcp");
    match transport {
        Transport::Tcp => tcp,
        Transport::Unix => replace_section(&tcp, &doc_block("nginx", "unix"), true),
    }
}

/// The requests every nginx configuration gets, to an application at `addr`.
pub(crate) fn exercise_nginx(fx: &Fixture, face: Face, addr: &Addr, docroot: &Path) {
    let script = format!("SCRIPT_FILENAME={}/app/echo", docroot.display());
    get_and_post(fx, face, "/app/echo", |_| vec![script.clone()]);
    check_one_kept_connection(fx, face, addr, "/app/echo", 5);
    fx.check_error_log(&[]);
}

pub(crate) fn nginx_scenario(face: Face, transport: Transport) {
    let mut fx = Fixture::new("deploy-nginx");
    fx.curl_max_time = CURL_MAX_TIME;
    let block = nginx_block(transport);
    let app = start_app(&mut fx, face, "app", transport);
    let docroot = fx.path("srv-app");
    fs::create_dir_all(&docroot).expect("create docroot");
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display());
    start_nginx(&mut fx, &subst, &block);
    exercise_nginx(&fx, app.face, &app.addr, &docroot);
    check_app_log(&fx, "app");
}

#[test]
pub(crate) fn nginx_tcp_native() {
    nginx_scenario(Face::Native, Transport::Tcp);
}

#[test]
pub(crate) fn nginx_tcp_libfcgi() {
    nginx_scenario(Face::Libfcgi, Transport::Tcp);
}

#[test]
pub(crate) fn nginx_unix_native() {
    nginx_scenario(Face::Native, Transport::Unix);
}

#[test]
pub(crate) fn nginx_unix_libfcgi() {
    nginx_scenario(Face::Libfcgi, Transport::Unix);
}

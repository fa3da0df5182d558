//! The HAProxy blocks of docs/deploy.md, run in front of both faces.

use super::*;

// ---------------------------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------------------------

pub(crate) fn haproxy_scenario(face: Face, keep_conn: bool) {
    require(HAPROXY, "haproxy");
    let mut fx = Fixture::new("deploy-haproxy");
    fx.curl_max_time = CURL_MAX_TIME;
    let mut cfg = doc_block("haproxy", "mpx");
    if keep_conn {
        cfg = replace_section(&cfg, &doc_block("haproxy", "keep-conn"), false);
    }
    // As docs/deploy.md runs it: the native program opts in to multiplexing.
    let app = start_app_with_env(
        &mut fx,
        face,
        "app",
        Transport::Tcp,
        &[("FCGI_RUNTIME_MPXS_CONNS", "1")],
    );
    let docroot = fx.path("srv-app");
    let stats = fx.path("stats.sock");
    let subst = app
        .addr
        .subst(Subst::default())
        .set(DOCROOT, docroot.display())
        .set(STATS_SOCK, stats.display());
    let path = fx.path("haproxy.cfg");
    let log = fx.path("haproxy.out");
    start_web(&mut fx, "haproxy", &log, |port| {
        let text = subst
            .clone()
            .set(WEB_ADDR, format!("127.0.0.1:{port}"))
            .apply("haproxy block", &cfg);
        let _ = fs::remove_file(&stats);
        fs::write(&path, text).expect("write haproxy.cfg");
        let mut cmd = Command::new(HAPROXY);
        cmd.arg("-f").arg(&path).arg("-db");
        cmd
    });
    let root = format!("DOCUMENT_ROOT={}", docroot.display());
    get_and_post(&fx, face, "/app/echo", |_| vec![root.clone()]);
    check_one_kept_connection(&fx, face, &app.addr, "/app/echo", 5);
    check_app_log(&fx, "app");
}

#[test]
pub(crate) fn haproxy_multiplexing_native() {
    haproxy_scenario(Face::Native, false);
}

#[test]
pub(crate) fn haproxy_multiplexing_libfcgi() {
    haproxy_scenario(Face::Libfcgi, false);
}

#[test]
pub(crate) fn haproxy_keep_conn_without_multiplexing_native() {
    haproxy_scenario(Face::Native, true);
}

#[test]
pub(crate) fn haproxy_keep_conn_without_multiplexing_libfcgi() {
    haproxy_scenario(Face::Libfcgi, true);
}

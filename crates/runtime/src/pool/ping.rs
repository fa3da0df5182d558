//! The ping path (FPM's `ping.path` / `ping.response`): a load balancer's health check.
//! Answered by a worker's runtime (the application never sees the request) and by the
//! supervisor on `status_listen`: `200` with the configured body while the pool serves,
//! `503` while it drains (a graceful stop, its drain delay included; a worker the supervisor
//! drains answers 503 too), so a balancer stops sending before the workers go.

/// The CGI response (headers and body) to a ping.
pub fn response(body: &[u8], draining: bool) -> Vec<u8> {
    let (status, body): (&str, &[u8]) = if draining {
        ("503 Service Unavailable", b"draining\n")
    } else {
        ("200 OK", body)
    };
    let mut out = format!(
        "Status: {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
         Cache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn serving_and_draining() {
        let r = String::from_utf8(super::response(b"pong", false)).unwrap();
        assert!(
            r.starts_with("Status: 200 OK\r\n") && r.ends_with("\r\n\r\npong"),
            "{r}"
        );
        let r = String::from_utf8(super::response(b"pong", true)).unwrap();
        assert!(
            r.starts_with("Status: 503 ") && r.ends_with("draining\n"),
            "{r}"
        );
    }
}

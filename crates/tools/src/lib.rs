//! What the tools share, and what the project's tests use to play the web server: a small
//! blocking FastCGI client ([`client`]) that checks the framing an application produces.

pub mod client;

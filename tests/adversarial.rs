//! Adversarial load over real sockets against a real server process (tests/adversarial/
//! adv_app.c, a native-API program, linked against the project's library): slowloris, many
//! idle connections, PARAMS and STDIN floods, vanishing and half-closing peers, abort storms on
//! a multiplexed connection, accept() hitting EMFILE, idle keep-alive connections. Each test
//! checks afterwards that the server still answers a normal request and that its RSS stayed
//! under a stated bound (generous: they catch growth without bound, not a few pages).

mod common;

#[path = "adversarial/app.rs"]
mod app;
#[path = "adversarial/conns.rs"]
mod conns;
#[path = "adversarial/emfile.rs"]
mod emfile;
#[path = "adversarial/floods.rs"]
mod floods;
#[path = "adversarial/peers.rs"]
mod peers;

//! The behaviour PHP's SAPIs expect of the FastCGI layer (issue 20), each shown outside PHP
//! with tests/native/php_behaviour/fpm_worker.c, a native-API program that drives the library the way
//! a PHP-FPM worker drives PHP's layer (its logger, its signal handling, one thread):
//! - `signals`: the library's threads block every signal, so a signal the application blocks
//!   stays pending instead of reaching (and killing the process from) the standby thread;
//! - `mpxs`: the native face advertises FCGI_MPXS_CONNS=0 after fcgi_init, as PHP's does, and
//!   refuses a second request on a connection unless the application opts in;
//! - `loadenv`: fcgi_loadenv visits variables in the order of PHP's hash, allocating nothing;
//! - `logs`: the events PHP's layer logs come out with PHP's texts and levels.

mod hooks;
mod loadenv;
mod logs;
mod mpxs;
mod signals;
mod worker;

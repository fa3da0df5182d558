//! The connection engine on an arbitrary byte stream: the first 8 bytes choose the limits,
//! the split sizes, back-pressure, admissions and when the application ends requests
//! (fcgi_fuzz::driver::Knobs); the rest is what the peer sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fcgi_fuzz::driver::run_input(data));

//! The connection engine on streams built from operations (BEGIN, PARAMS with pairs, STDIN,
//! DATA, ABORT, GET_VALUES, raw records...), so that fuzzing reaches deep states quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (knobs, stream) = fcgi_fuzz::structured::build(data);
    fcgi_fuzz::driver::run(&knobs, &stream);
});

//! libFuzzer target: any bytes as a report answer, through the decoder, the row reader
//! and the totals. The checks live in `check.rs`, shared with the stable proptest run
//! in `tests/it/fuzz.rs`.
//!
//! (No `#![forbid(unsafe_code)]` here: `fuzz_target!` exports an `extern "C"` entry
//! point, which that lint counts as unsafe. The exporter crate itself forbids it.)
#![no_main]

mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::body(data);
    check::agrees(data);
});

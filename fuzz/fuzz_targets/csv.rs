//! Fuzz target: `wgtrain::fuzzing::csv` on arbitrary bytes (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wgtrain::fuzzing::csv(data));

//! Fuzz target: `wgtrain::fuzzing::flags` on arbitrary bytes (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wgtrain::fuzzing::flags(data));

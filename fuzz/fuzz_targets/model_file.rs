//! Fuzz target: `wgtrain::fuzzing::model_file` on arbitrary bytes (see src/fuzzing.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wgtrain::fuzzing::model_file(data));

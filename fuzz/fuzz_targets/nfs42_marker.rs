#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| openvaai_fuzz::nfs42_marker(data));

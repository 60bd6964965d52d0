#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| openvaai_fuzz::control_line(data));

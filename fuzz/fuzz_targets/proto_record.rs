#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| openvaai_fuzz::proto_record(data));

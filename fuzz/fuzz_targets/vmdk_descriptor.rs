#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| openvaai_fuzz::vmdk_descriptor(data));

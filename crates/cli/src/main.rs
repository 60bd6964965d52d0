//! openvaai, the admin tool.
#![deny(unsafe_code)]

fn main() {}

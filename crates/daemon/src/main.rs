//! openvaaid, the NAS daemon.
#![deny(unsafe_code)]

fn main() {}

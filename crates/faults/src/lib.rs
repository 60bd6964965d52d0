//! Test-only crate: the suite is `tests/faults/`, run by `cargo test -p openvaai-faults`.
//! Faults (daemon killed, frozen, network cut, disk full, clients that vanish), hostile input
//! and load, against the real `openvaaid` and the real `libopenvaai.so`; each test checks the
//! state of the filesystem afterwards. See `docs/reliability.md`.
#![deny(unsafe_code)]

//! The openvaai wire protocol.
#![deny(unsafe_code)]

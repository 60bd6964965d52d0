//! The offloads on a local filesystem.
#![deny(unsafe_code)]

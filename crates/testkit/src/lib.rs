//! Shared test helpers: loop-mounted filesystem images.
#![deny(unsafe_code)]

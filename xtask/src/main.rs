//! Build tasks: `cargo xtask esxi`.

fn main() {}

//! Compiles the C shim through which the plugin calls disklib's `va_list` log functions.
fn main() {
    println!("cargo:rerun-if-changed=csrc/log_shim.c");
    cc::Build::new()
        .file("csrc/log_shim.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("openvaai_log_shim");
}

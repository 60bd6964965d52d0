//! Compiles the log functions the CLI gives a plugin's Init (they take a `va_list`).
fn main() {
    println!("cargo:rerun-if-changed=csrc/host_log.c");
    cc::Build::new()
        .file("csrc/host_log.c")
        .warnings(true)
        .extra_warnings(true)
        .compile("openvaai_host_log");
}

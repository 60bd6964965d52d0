//! `openvaaid --check-config`.

#[test]
fn check_config_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[[export]]\npath = \"{}\"\n", dir.path().display()),
    )
    .unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_openvaaid"))
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(st.status.success());
    assert!(!dir.path().join(".openvaai").exists());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[export]]\npath = \"/no/such/dir\"\n").unwrap();
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_openvaaid"))
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(2));
}

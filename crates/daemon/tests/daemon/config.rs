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

/// `openvaaid ARGS` on loopback with a fresh state directory in `dir`, bounded in time:
/// (exit code, stderr).
fn openvaaid(dir: &std::path::Path, args: &[&str], uid: Option<u32>) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_openvaaid"));
    cmd.args(args)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(id) = uid {
        cmd.uid(id).gid(id);
    }
    let mut child = cmd.spawn().unwrap();
    let t = std::time::Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (code, err)
}

#[test]
fn check_config_refuses_what_the_start_refuses_with_exit_code_2_naming_both_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path();
    std::fs::create_dir_all(x.join("real")).unwrap();
    std::fs::create_dir_all(x.join("plain/sub")).unwrap();
    std::os::unix::fs::symlink(x.join("real"), x.join("link")).unwrap();
    let p = |n: &str| x.join(n).to_str().unwrap().to_owned();
    let (link, real, plain, sub) = (p("link"), p("real"), p("plain"), p("plain/sub"));
    let same = format!("exports {link} (resolved: {real}) and {real} are the same directory");
    let nested = format!("export {sub} lies inside export {plain}");
    for (exports, says) in [
        ([&link[..], &real[..]], &same),
        (
            [&real[..], &link[..]],
            &format!("exports {real} and {link} (resolved: {real})"),
        ),
        ([&plain[..], &sub[..]], &nested),
    ] {
        for check in [true, false] {
            let mut args = vec!["--export", exports[0], "--export", exports[1]];
            if check {
                args.push("--check-config");
            }
            let (code, err) = openvaaid(x, &args, None);
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(err.contains(says.as_str()), "{args:?}: {err}");
            assert!(!x.join("real/.openvaai").exists(), "{args:?} wrote nothing");
            assert!(
                !x.join("plain/.openvaai").exists(),
                "{args:?} wrote nothing"
            );
        }
    }
}

#[test]
fn openvaaid_as_another_user_says_it_must_run_as_root_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::set_permissions(&export, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = export.to_str().unwrap();
    for check in [false, true] {
        let mut args = vec!["--export", e];
        if check {
            args.push("--check-config");
        }
        let (code, err) = openvaaid(dir.path(), &args, Some(65534));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "export {e} is owned by uid 0 and openvaaid runs as uid 65534: run openvaaid \
                 as root"
            )),
            "{err}"
        );
        assert_eq!(err.matches("ermission denied").count(), 0, "{err}");
        assert!(!export.join(".openvaai").exists());
    }
}

#[test]
fn a_state_dir_on_the_command_line_wins_over_the_files_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("openvaaid.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"/var/lib/elsewhere\"\n[[export]]\npath = \"{}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (code, err) = openvaaid(dir.path(), &["--check-config", "--config", c], None);
    assert_eq!(code, Some(0), "{err}");
    let state = dir.path().join("state");
    assert!(
        err.contains(&format!(
            "--state-dir {} replaces state_dir = /var/lib/elsewhere of {c} (the command line \
             wins)",
            state.display()
        )),
        "{err}"
    );
}

#[test]
fn the_units_command_line_leaves_the_files_settings_alone() {
    let unit = include_str!("../../../../packaging/systemd/openvaaid.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart=");
    // The command line wins over the file: the unit gives only the file, so that what the
    // file says (state_dir, listen, [metrics], [control]) is what runs.
    assert_eq!(
        exec,
        "/usr/bin/openvaaid --config /etc/openvaai/openvaaid.toml"
    );
}

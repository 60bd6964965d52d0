//! Output into a pipe whose reader goes away early (`openvaai ... | head -1`): every command
//! ends quietly, exit code 0, instead of panicking on EPIPE; `status --watch` into a pipe
//! writes plain tables, no screen escapes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openvaai_testkit::Daemon;

use crate::util::*;

/// `openvaai ARGS` with its stdout a pipe whose read end is closed before it starts.
fn into_a_closed_pipe(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(args)
        .env("OPENVAAI_PLUGIN", plugin_so())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    let foreign = tempfile::tempdir().unwrap();
    for args in [
        &["check", "-d", s(foreign.path())][..],
        &["check", "-d", s(foreign.path()), "--json"][..],
        &["plugin-info", s(&plugin_so())][..],
    ] {
        let out = into_a_closed_pipe(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: nothing on stderr, got: {err}");
    }
}

#[test]
fn status_watch_into_a_pipe_is_plain_and_ends_quietly_when_the_reader_goes() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::builder().export(dir.path()).start();
    let sock = d.state_dir().join("control.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_openvaai"))
        .args(["status", "--socket", s(&sock), "--watch", "0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `head -3`: three lines, then the reader goes away.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Vec<String> = (&mut lines).take(3).map(Result::unwrap).collect();
    drop(lines);
    assert!(first[0].starts_with("openvaaid "), "{first:?}");
    assert!(
        first.iter().all(|l| !l.contains('\x1b')),
        "no screen escapes into a pipe: {first:?}"
    );
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "nothing on stderr, got: {err}");
}

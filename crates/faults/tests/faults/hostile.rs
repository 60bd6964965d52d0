//! Hostile bytes against the real daemon: the committed corpus replayed, and proptest's
//! arbitrary and mutated inputs, each on its own TLS connection, before and after a real
//! authentication. Every reply must be a well-formed RPC reply, every connection must end
//! promptly, nothing may appear outside the export or in its private directory, and the
//! daemon keeps serving a well-behaved client throughout.

use std::io::{Cursor, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use openvaai_proto::access::AccessFile;
use openvaai_proto::record::read_record;
use openvaai_proto::rpc::decode_reply;
use openvaai_proto::Client;
use openvaai_testkit::{write_layout, Run};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::corpus::{self, EXPORT};
use crate::raw::{self, Tls};
use crate::util::*;

/// A daemon with the export `/faults` (and a directory beside it that must stay untouched).
struct Target {
    fx: Fixture,
    access: AccessFile,
    to: SocketAddr,
    /// A well-behaved, authenticated client.
    good: Client<Tls>,
    /// The daemon's descriptors with the well-behaved client connected.
    fds: usize,
}

impl Target {
    fn start() -> Option<Target> {
        let fs = test_fs(openvaai_testkit::FsKind::Xfs, 1 << 30)?;
        let root = fs.path().join("faults");
        let outside = fs.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.vmdk"), b"secret").unwrap();
        let fx = fixture(
            vec![fs],
            &[(root.clone(), "name = \"/faults\"")],
            "handshake_timeout_seconds = 10\nidle_timeout_seconds = 60",
        );
        write_layout(&root.join("a.vmdk"), &[Run::Data(MIB)], 99).unwrap();
        let access = fx.daemon.access(0);
        let to = raw::addr(IpAddr::from([127, 0, 0, 1]), &access);
        let good = raw::authed(to, EXPORT, &access);
        let fds = fd_count(fx.daemon.pid());
        Some(Target {
            fx,
            access,
            to,
            good,
            fds,
        })
    }

    /// Sends `bytes` on a new connection (authenticated first if `authed`), says goodbye and
    /// reads until the daemon closes. Returns the replies (each must decode) and whether the
    /// daemon closed within the bound.
    fn replay(&self, bytes: &[u8], authed: bool) -> (usize, bool) {
        let mut s = if authed {
            raw::authed(self.to, EXPORT, &self.access).into_inner()
        } else {
            raw::tls(self.to, self.access.cert_sha256)
        };
        s.sock
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        // The daemon may close before it has read everything: a failed write is fine.
        let _ = s.write_all(bytes).and_then(|()| s.flush());
        s.conn.send_close_notify();
        let _ = s.flush();
        let (got, closed) = raw::drain(&mut s, Duration::from_secs(8));
        let mut r = Cursor::new(&got[..]);
        let mut replies = 0;
        while let Ok(Some(rec)) = read_record(&mut r) {
            decode_reply(&rec).unwrap_or_else(|e| panic!("an undecodable reply: {e}"));
            replies += 1;
        }
        (replies, closed)
    }

    /// The daemon is alive and answers the well-behaved client.
    fn check_serving(&mut self) {
        assert!(alive(self.fx.daemon.pid()), "openvaaid died");
        let st = self
            .good
            .statx(EXPORT, "a.vmdk")
            .expect("the well-behaved client's STATX")
            .expect("STATX status");
        assert_eq!(st.total_bytes, MIB);
    }

    /// Nothing was created anywhere but where the corpus's valid calls may write.
    fn check_contained(&self) {
        let root = &self.fx.exports[0];
        let outside = root.parent().unwrap().join("outside");
        assert_eq!(listing(&outside), ["secret.vmdk"]);
        for n in listing(root) {
            assert!(n == "a.vmdk" || n == "corpus-copy.vmdk", "unexpected {n}");
        }
        assert_eq!(
            listing(&root.join(".openvaai")),
            ["access", "lock"],
            "only the access file and the daemon's lock in the private directory"
        );
        assert!(!Path::new("/tmp/planted.vmdk").exists());
        assert_no_temporaries(root);
        let pid = self.fx.daemon.pid();
        let fds = wait_fds_at_most(pid, self.fds + 2, Duration::from_secs(10));
        assert!(fds <= self.fds + 2, "daemon fds {} -> {fds}", self.fds);
    }
}

#[test]
fn the_corpus_replayed_against_the_daemon_is_refused_and_contained() {
    let _machine = shared();
    let Some(mut t) = Target::start() else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(corpus::dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "the corpus is there: {}", files.len());
    let mut replies = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(f).unwrap();
        let t0 = Instant::now();
        let (n, closed) = t.replay(&bytes, name.starts_with("authed-"));
        assert!(closed, "{name}: the connection stayed open");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            t0.elapsed()
        );
        replies += n;
        t.check_serving();
    }
    t.check_contained();
    println!("corpus: {} inputs, {replies} replies", files.len());
    let log = t.fx.daemon.log_text();
    for needle in [
        "closing connection: limit exceeded",
        "closing connection: not an RPC call",
        "call rejected at the RPC layer",
        "call refused",
        "HELLO for an unknown export",
        "authentication failed: wrong proof",
        "AUTH without a HELLO",
    ] {
        assert!(log.contains(needle), "the log has no `{needle}`");
    }
    let (_, hwm) = memory(t.fx.daemon.pid());
    assert!(hwm < 64 * MIB, "VmHWM {} MiB", hwm / MIB);
}

/// Inputs for the fuzzer: random bytes, random bytes in a valid record, a corpus entry
/// mutated (bytes overwritten, cut short).
fn input() -> impl Strategy<Value = Vec<u8>> {
    let corpus: Vec<Vec<u8>> = corpus::generate().into_iter().map(|(_, b)| b).collect();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(any::<u8>(), 0..2048).prop_map(|body| {
            let mut v = (body.len() as u32 | 0x8000_0000).to_be_bytes().to_vec();
            v.extend(body);
            v
        }),
        (
            proptest::sample::select(corpus),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            any::<proptest::sample::Index>(),
        )
            .prop_map(|(mut v, edits, cut)| {
                if !v.is_empty() {
                    for (at, b) in edits {
                        let i = at % v.len();
                        v[i] = b;
                    }
                    let keep = cut.index(v.len() + 1).max(1);
                    v.truncate(keep);
                }
                v
            }),
    ]
}

#[test]
fn fuzzed_inputs_against_the_daemon_never_break_it() {
    let _machine = shared();
    let Some(mut t) = Target::start() else {
        return;
    };
    let cases = 160;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&(input(), any::<bool>()), |(bytes, authed)| {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (_, closed) = t.replay(&bytes, authed);
        prop_assert!(closed, "the connection stayed open");
        prop_assert!(alive(t.fx.daemon.pid()), "openvaaid died");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{}", t.fx.daemon.log_text());
    }
    t.check_serving();
    t.check_contained();
    println!("fuzz: {} inputs", n.into_inner());
    let (_, hwm) = memory(t.fx.daemon.pid());
    assert!(hwm < 64 * MIB, "VmHWM {} MiB", hwm / MIB);
}

#[test]

fn a_client_cannot_forge_lines_in_the_daemon_log() {
    let _machine = shared();
    let Some(t) = Target::start() else {
        return;
    };
    let forged = "FORGED openvaaid: authenticated peer=10.0.0.1:1 export=/faults";
    // Before any authentication: a HELLO for an "export" with a newline in its name.
    let mut c = raw::client(t.to, t.access.cert_sha256);
    let r = c.authenticate(&format!("/nope\n{forged} (hello)"), &t.access.secret);
    assert_eq!(r.unwrap(), Err(openvaai_proto::Status::ObjectNotFound));
    // After it: a path with a newline in a clone.
    let mut c = raw::authed(t.to, EXPORT, &t.access);
    let job = c
        .clone_start(&openvaai_proto::CloneArgs {
            export: EXPORT.into(),
            src_export: None,
            src: "a.vmdk".into(),
            dst: format!("x\n{forged} (clone)"),
            flags: openvaai_proto::CLONE_DRY_RUN,
        })
        .unwrap()
        .unwrap();
    let _ = c.wait(job, u64::MAX, 5000).unwrap();
    // The job's last line is written just after its result.
    assert!(wait_for_line(
        &t.fx.daemon,
        &["job finished", "what=clone"],
        Duration::from_secs(5)
    ));
    let log = t.fx.daemon.log_text();
    let forged_lines: Vec<&str> = log.lines().filter(|l| l.starts_with("FORGED")).collect();
    assert!(
        forged_lines.is_empty(),
        "a client wrote lines of its own into the log: {forged_lines:#?}"
    );
}

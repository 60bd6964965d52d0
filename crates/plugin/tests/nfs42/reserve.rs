//! RESVSPACE through the standard backend against knfsd on XFS and ext4 (part of the guest
//! session of `guest.rs`): data kept byte for byte, no holes left (the server's FIEMAP), the
//! progress summing to the size, an abort, and the refusals; judged by `Knfsd::view`.

use openvaai_abi::{alloc, vix, VixError};
use openvaai_host::Progress;

use super::Export;
use crate::assert_vix;

const MIB: u64 = 1 << 20;

impl Export<'_> {
    /// RESVSPACE of `name` with `updateBytes` 1 MiB; aborts at report `abort_at` (0: never).
    fn reserve(&self, name: &str, abort_at: usize) -> (VixError, Vec<u64>) {
        let mut deltas = Vec::new();
        let mut cb = |d: u64| {
            deltas.push(d);
            deltas.len() != abort_at
        };
        let st = self
            .plugin
            .reserve(
                self.id,
                &self.esx(name),
                Some(Progress {
                    update_bytes: MIB,
                    callback: &mut cb,
                }),
            )
            .unwrap();
        (st, deltas)
    }

    fn reserve_err(&self, name: &str) -> VixError {
        let st = self.reserve(name, 0).0;
        assert_ne!(st, vix::OK, "RESVSPACE {name} succeeded");
        st
    }

    /// The private directory's names on the server.
    fn private_names(&self) -> String {
        self.nfs
            .run(&format!("ls -A {}/.openvaai", self.export))
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// Reserve on an export whose filesystem really allocates (XFS, ext4).
pub fn check(e: &Export<'_>) {
    e.nfs
        .run(&format!(
            "set -e; cd {}
             truncate -s 4M rsv-sparse
             truncate -s 4M rsv-part && dd if=/dev/urandom of=rsv-part bs=64k count=2 seek=16 \
               conv=notrunc,fsync 2>/dev/null
             truncate -s 3M rsv-abort
             sync",
            e.export
        ))
        .unwrap();
    // The probe left nothing in the private directory.
    assert_eq!(e.private_names(), "nfs42", "a probe temporary is left");

    // A sparse file as ESXi makes a thick disk (length set, no blocks), and one with data in
    // the middle: afterwards no holes, every byte the same.
    for name in ["rsv-sparse", "rsv-part", "dense", "reserved"] {
        let before = e.view(name);
        let sha = e.sha(name);
        let (st, deltas) = e.reserve(name, 0);
        assert_vix(st, vix::OK);
        assert_eq!(
            deltas.iter().sum::<u64>(),
            before.size,
            "{name}: {deltas:?}"
        );
        assert!(deltas.iter().all(|&d| d <= MIB), "{name}: {deltas:?}");
        let after = e.view(name);
        assert_eq!(after.size, before.size, "{name}: the size changed");
        assert!(after.holes().is_empty(), "{name}: holes left: {after:?}");
        assert!(after.allocated >= after.size, "{name}: {after:?}");
        assert_eq!(e.sha(name), sha, "{name}: the data changed");
        let sx = e.statx(name);
        assert_ne!(sx.alloc_type, alloc::THIN, "{name}: {sx:?}");
    }

    // An abort at the first report: CANCELLED, the data and size as they were.
    let sha = e.sha("rsv-abort");
    let (st, deltas) = e.reserve("rsv-abort", 1);
    assert_vix(st, vix::E_CANCELLED);
    assert_eq!(deltas.len(), 1);
    assert_eq!(e.view("rsv-abort").size, 3 * MIB);
    assert_eq!(e.sha("rsv-abort"), sha);

    // Refusals: a missing file, a directory, an empty file, escapes, the private directory.
    assert_vix(e.reserve_err("missing"), vix::E_FILE_NOT_FOUND);
    assert_vix(e.reserve_err("dir/missing/x"), vix::E_FILE_NOT_FOUND);
    assert_vix(e.reserve_err("dir"), vix::E_INCORRECT_FILE_TYPE);
    assert_vix(e.reserve_err("empty"), vix::E_INVALID_ARG);
    assert_vix(e.reserve_err("../../etc/passwd"), vix::E_INVALID_ARG);
    assert_vix(e.reserve_err("escape/passwd"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.reserve_err("escape"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.reserve_err("link"), vix::E_FILE_ACCESS_ERROR);
    assert_vix(e.reserve_err(".openvaai/nfs42"), vix::E_FILE_ACCESS_ERROR);
    assert_eq!(e.view("empty").size, 0);
    assert_eq!(e.private_names(), "nfs42");

    e.nfs
        .run(&format!(
            "cd {} && rm rsv-sparse rsv-part rsv-abort",
            e.export
        ))
        .unwrap();
}

//! The clone's owner, group and mode follow the source's, as the daemon's do: an
//! unprivileged user's set-user-ID or set-group-ID file is cloned as that user's, with its
//! set-id bits, never as a root-owned set-id copy of their content (the temporary is built by
//! AUTH_SYS root).

use openvaai_abi::clone_flag::{GUARDED, LAZY, SKIPZEROES};
use openvaai_abi::vix;
use openvaai_testkit::FsKind;

use crate::copy::{guest, loaded, Store};
use crate::{assert_vix, serial};

/// `uid gid mode` of `name` on the server, as `stat` shows them.
fn owner_and_mode(s: &Store<'_>, name: &str) -> String {
    s.nfs
        .run(&format!("stat -c '%u %g %a' {}/{name}", s.export))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_clone_of_a_users_set_id_file_is_the_users_with_its_set_id_bits() {
    let _one = serial();
    let Some(nfs) = guest(&[("xfs", FsKind::Xfs)]) else {
        return;
    };
    let export = nfs.export("xfs");
    nfs.run(&format!(
        "set -e; cd {export}
         mkdir -p .openvaai && : > .openvaai/nfs42
         for f in suid sgid plain rootsuid; do
           dd if=/dev/urandom of=$f bs=1M count=2 conv=fsync 2>/dev/null
         done
         chown 1000:1000 suid && chmod 4755 suid
         chown 1000:1001 sgid && chmod 2755 sgid
         chown 1002:1003 plain && chmod 640 plain
         chmod 4755 rootsuid
         : > taken && chmod 4755 taken
         sync"
    ))
    .unwrap();
    let plugin = loaded();
    let s = Store::open(&nfs, &plugin, "xfs");
    let cases = [
        ("suid", "1000 1000 4755"),
        ("sgid", "1000 1001 2755"),
        ("plain", "1002 1003 640"),
        ("rootsuid", "0 0 4755"),
    ];
    for (src, want) in cases {
        assert_eq!(owner_and_mode(&s, src), want, "the source {src}");
        // LAZY (CLONE), full (COPY), thin, and an overwrite of a root-owned file (RENAME).
        for (dst, flags) in [
            (format!("{src}.lazy"), LAZY | GUARDED),
            (format!("{src}.full"), GUARDED),
            (format!("{src}.thin"), GUARDED | SKIPZEROES),
            ("taken".to_owned(), 0),
        ] {
            let (st, _) = s.clone(src, &dst, flags, 0);
            assert_vix(st, vix::OK);
            assert_eq!(
                owner_and_mode(&s, &dst),
                want,
                "{src} cloned to {dst} with flags {flags:#x}"
            );
            assert_eq!(s.sha(&dst), s.sha(src), "{dst}");
        }
    }
    assert!(s.temporaries().is_empty(), "{:?}", s.temporaries());
}

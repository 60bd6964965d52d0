//! A failed clone says which path it concerns: the source, the destination's directory, or
//! the destination itself.

use openvaai_engine::{ErrorKind, Side};

use crate::util::*;

#[test]
fn each_failure_names_its_side() {
    let Some(env) = env(FsKind::Xfs, SMALL) else {
        return;
    };
    std::fs::write(env.p("a"), b"data").unwrap();
    std::fs::create_dir(env.p("dir")).unwrap();
    let plain = flags(false, false, false, false);
    for dry_run in [false, true] {
        let f = flags(false, false, dry_run, false);
        let cases: [(&str, &str, ErrorKind, Side); 5] = [
            ("missing", "b", ErrorKind::NotFound, Side::Source),
            ("nodir/a", "b", ErrorKind::NotFound, Side::Source),
            ("a", "nodir/b", ErrorKind::NotFound, Side::DestinationDir),
            (
                "a",
                "a/b",
                ErrorKind::IncorrectFileType,
                Side::DestinationDir,
            ),
            ("a", "dir", ErrorKind::IncorrectFileType, Side::Destination),
        ];
        for (src, dst, kind, side) in cases {
            let e = env.clone(src, dst, f).unwrap_err();
            assert_eq!(
                (e.kind(), e.side()),
                (kind, Some(side)),
                "{src} -> {dst}: {e}"
            );
        }
    }
    let e = env.clone("a", "a", plain).unwrap_err();
    assert_eq!(e.side(), Some(Side::Destination));
    let e = env.clone("dir", "b", plain).unwrap_err();
    assert_eq!(
        (e.kind(), e.side()),
        (ErrorKind::IncorrectFileType, Some(Side::Source))
    );
}

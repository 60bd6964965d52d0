//! FAILURE: which path a failed job concerns, over the real daemon.

// The shared helpers, of which this file uses a few.
#[allow(dead_code, unused_imports)]
mod util;

use openvaai_proto::*;
use util::*;

fn clone(c: &mut Client<Tls>, d: &Daemon, src: &str, dst: &str) -> (JobInfo, Failure) {
    let job = c
        .clone_start(&CloneArgs {
            export: d.name(0),
            src_export: None,
            src: src.into(),
            dst: dst.into(),
            flags: 0,
        })
        .unwrap()
        .unwrap();
    let info = wait_done(c, job);
    (info, c.failure(job).unwrap().unwrap())
}

#[test]
fn failure_names_the_missing_side_of_a_clone() {
    let d = Daemon::start();
    let root = &d.exports[0];
    write_data(&root.join("a.vmdk"), 1 << 16);
    let mut c = d.authed(0);

    for (src, dst, side) in [
        ("missing.vmdk", "b.vmdk", Side::Source),
        ("a.vmdk", "nodir/b.vmdk", Side::DestinationDir),
    ] {
        let (info, f) = clone(&mut c, &d, src, dst);
        assert_eq!(info.result, Status::FileNotFound, "{src} -> {dst}");
        assert_eq!(
            f,
            Failure {
                result: Status::FileNotFound,
                side
            },
            "{src} -> {dst}"
        );
    }
    // A clone that worked concerns no path; an unknown job is not found.
    let (info, f) = clone(&mut c, &d, "a.vmdk", "b.vmdk");
    assert_eq!((info.result, f.side), (Status::Ok, Side::None));
    assert_eq!(c.failure(12345).unwrap(), Err(Status::ObjectNotFound));
    // Another connection that has not authenticated the export does not see the job.
    let job = c
        .clone_start(&CloneArgs {
            export: d.name(0),
            src_export: None,
            src: "missing".into(),
            dst: "x".into(),
            flags: 0,
        })
        .unwrap()
        .unwrap();
    wait_done(&mut c, job);
    assert_eq!(
        d.client().failure(job).unwrap(),
        Err(Status::ObjectNotFound)
    );
}

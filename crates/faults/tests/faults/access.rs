//! The access file as hostile input to the plugin: whoever can write the datastore's
//! `.openvaai/` (any NFS client mounting it as root) controls what the plugin reads there.
//! Every call must stay bounded in time whatever is put in its place.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use openvaai_abi::vix;
use openvaai_testkit::{access_path, write_layout, Run};

use crate::util::*;

#[test]

fn a_fifo_in_place_of_the_access_file_does_not_hang_the_plugin() {
    let _machine = shared();
    let Some(mut fx) = on_xfs(1 << 30, 1, "") else {
        return;
    };
    write_layout(&fx.path(0, "a.vmdk"), &[Run::Data(MIB)], 110).unwrap();
    // The datastore's mount point, as ESXi sees it: a directory of its own with the access
    // file and the disk (paths are mapped by the plugin; the daemon sees `a.vmdk`).
    let mount = tempfile::tempdir().unwrap();
    let access = access_path(mount.path());
    std::fs::create_dir_all(access.parent().unwrap()).unwrap();
    std::fs::write(&access, fx.daemon.access(0).render()).unwrap();
    let mut ds = datastore(&fx.exports[0]);
    ds.local_mount_point = Some(mount.path().to_str().unwrap().into());
    let id = fx
        .plugin
        .start_session(&ds, Some(TIMEOUT_MS))
        .unwrap_or_else(|e| panic!("StartSession: {}", name(e)));
    let file = mount.path().join("a.vmdk").to_str().unwrap().to_owned();
    assert_vix(fx.plugin.statx(id, &file).unwrap().common.status, vix::OK);

    // The access file becomes a FIFO, and the daemon goes away: the plugin's reconnect
    // reads the access file again.
    std::fs::remove_file(&access).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &access,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    fx.daemon.kill();

    let bound = Duration::from_millis(TIMEOUT_MS) + MARGIN;
    let plugin = &fx.plugin;
    let outcome = std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let file = file.clone();
        s.spawn(move || {
            let t = Instant::now();
            let st = plugin.statx(id, &file).unwrap().common.status;
            let _ = tx.send((st, t.elapsed()));
        });
        let got = rx.recv_timeout(bound);
        if got.is_err() {
            // Unblock the plugin's open(2) before the scope joins its thread: a writer
            // comes and goes, the reader sees end of file.
            let w = std::fs::OpenOptions::new().write(true).open(&access);
            drop(w);
        }
        got
    });
    match outcome {
        Ok((st, took)) => {
            assert_ne!(st, vix::OK);
            assert!(took < bound, "STATX took {took:?}");
        }
        Err(_) => panic!("STATX still blocked {bound:?} later, in open(2) of the FIFO"),
    }
}

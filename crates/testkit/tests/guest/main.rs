//! The knfsd guest fixture itself: it boots, serves NFSv4 to the host, exports each
//! filesystem, reports the server's extents truthfully (in the guest and from its disk image
//! on the host), and leaves nothing behind when a test panics.

mod nfs4;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use openvaai_testkit::guest::{FileView, Knfsd};
use openvaai_testkit::{require_fs_tests, FsKind, TestFs};

use nfs4::*;

/// One guest at a time: they share 2 cores with everything else.
static ONE_GUEST: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

fn one_guest() -> std::sync::MutexGuard<'static, ()> {
    ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn knfsd_guest_serves_each_filesystem_with_the_servers_truth() {
    let _one = one_guest();
    let started = Instant::now();
    // XFS needs 300 MiB at least.
    let Some(mut nfs) = Knfsd::each_fs(320 * MIB)
        .secure_disk("secure", FsKind::Ext4, 64 * MIB)
        .program(Path::new("/usr/bin/cp"), "/usr/bin/cp")
        .start()
    else {
        return;
    };
    exports_each_filesystem(&nfs);
    answers_rpc_from_the_host(&nfs);
    clones_and_allocates_through_its_own_client(&nfs);
    secure_export_wants_a_reserved_port(&nfs);
    nfs.power_off().expect("power off");
    // The server's truth from its disks, loop-mounted on the host.
    if let Some(reason) = TestFs::unavailable(FsKind::Xfs) {
        assert!(
            !require_fs_tests(),
            "cannot inspect the guest's disks: {reason}"
        );
        eprintln!("not inspecting the guest's disks on the host: {reason}");
    } else {
        for name in ["xfs", "btrfs"] {
            let disk = nfs.inspect(name).expect("loop-mount the guest's disk");
            check_clone(name, &disk.view("b").unwrap(), &disk.view("a").unwrap());
            check_allocated(name, &disk.view("c").unwrap());
        }
        let disk = nfs.inspect("ext4").expect("loop-mount the guest's disk");
        check_allocated("ext4", &disk.view("c").unwrap());
    }
    eprintln!(
        "knfsd guest fixture test: {:.1} s (boot {:.1} s)",
        started.elapsed().as_secs_f64(),
        nfs.boot_time().as_secs_f64()
    );
}

fn exports_each_filesystem(nfs: &Knfsd) {
    let exports = nfs.run("exportfs -v").unwrap();
    let mounts = nfs.run("cat /proc/mounts").unwrap();
    for (name, fstype, port) in [
        ("xfs", "xfs", "insecure"),
        ("btrfs", "btrfs", "insecure"),
        ("ext4", "ext4", "insecure"),
        ("secure", "ext4", "secure"),
    ] {
        let export = nfs.export(name);
        let line = exports
            .split("\n/")
            .find(|e| e.trim_start_matches('/').starts_with(&export[1..]))
            .unwrap_or_else(|| panic!("{export} not exported:\n{exports}"));
        let opts: Vec<&str> = line.split(['(', ')', ',']).map(str::trim).collect();
        for want in ["rw", "sync", "no_root_squash", port] {
            assert!(opts.contains(&want), "{export} lacks {want}: {line}");
        }
        assert!(
            mounts.lines().any(
                |m| m.split(' ').nth(1) == Some(&export) && m.split(' ').nth(2) == Some(fstype)
            ),
            "{export} is not a {fstype} mount:\n{mounts}"
        );
    }
    assert!(nfs.run("uname -r").unwrap().contains("cloud-amd64"));
}

fn answers_rpc_from_the_host(nfs: &Knfsd) {
    let mut c = Conn::connect(nfs.nfs_addr()).expect("connect to the guest's port 2049");
    c.null().expect("RPC NULL");
    for name in ["xfs", "btrfs", "ext4"] {
        let r = c.lookup_type(0, &["export", name]).expect("COMPOUND");
        assert_eq!(r.status, NFS4_OK, "{name}: {r:?}");
        assert_eq!(r.ops.len(), 4, "{r:?}");
        assert_eq!(r.ftype, Some(NF4DIR), "{name}: {r:?}");
    }
    // A name that is not there fails at its LOOKUP, not before.
    let r = c.lookup_type(0, &["export", "nothing"]).unwrap();
    assert_eq!(r.ops.len(), 3, "{r:?}");
    assert_ne!(r.status, NFS4_OK);
    // NFSv4.2 is served: a COMPOUND without SEQUENCE is refused for wanting a session, not
    // for its minor version; 4.3 does not exist.
    let r = c.lookup_type(2, &[]).unwrap();
    assert_eq!(r.status, NFS4ERR_OP_NOT_IN_SESSION, "{r:?}");
    let r = c.lookup_type(3, &[]).unwrap();
    assert_eq!(r.status, NFS4ERR_MINOR_VERS_MISMATCH, "{r:?}");
}

/// On each export, through the guest's NFSv4.2 mount of it: `a` written, `b` its reflink
/// (CLONE, where the filesystem has reflinks), `c` fallocated (ALLOCATE).
fn clones_and_allocates_through_its_own_client(nfs: &Knfsd) {
    for name in ["xfs", "btrfs", "ext4"] {
        let export = nfs.export(name);
        nfs.run(&format!(
            "mkdir -p /mnt/{name} && mount -t nfs4 -o vers=4.2 127.0.0.1:{export} /mnt/{name} && \
             dd if=/dev/urandom of=/mnt/{name}/a bs=64k count=16 2>/dev/null && \
             fallocate -l 4M /mnt/{name}/c && sync && grep ' /mnt/{name} nfs4 .*vers=4.2' /proc/mounts"
        ))
        .unwrap();
        let clone = nfs.exec(&format!(
            "cp --reflink=always /mnt/{name}/a /mnt/{name}/b && sync"
        ));
        let clone = clone.unwrap();
        if name == "ext4" {
            assert_ne!(clone.status, 0, "ext4 cannot clone: {}", clone.text);
        } else {
            assert_eq!(clone.status, 0, "{name}: {}", clone.text);
            let a = nfs.view(&format!("{export}/a")).unwrap();
            check_clone(name, &nfs.view(&format!("{export}/b")).unwrap(), &a);
        }
        check_allocated(name, &nfs.view(&format!("{export}/c")).unwrap());
        nfs.run(&format!("umount /mnt/{name}")).unwrap();
    }
}

fn check_clone(name: &str, clone: &FileView, source: &FileView) {
    assert_eq!(clone.size, MIB, "{name}: {clone:?}");
    assert_eq!(clone.mapped_bytes(), MIB, "{name}: {clone:?}");
    assert_eq!(
        clone.shared_bytes(),
        MIB,
        "{name}: the clone is not shared: {clone:?}"
    );
    assert_eq!(
        source.shared_bytes(),
        MIB,
        "{name}: the source is not shared: {source:?}"
    );
}

fn check_allocated(name: &str, f: &FileView) {
    assert_eq!(f.size, 4 * MIB, "{name}: {f:?}");
    assert!(f.allocated >= 4 * MIB, "{name}: {f:?}");
    assert_eq!(f.unwritten_bytes(), 4 * MIB, "{name}: not unwritten: {f:?}");
    assert!(f.holes().is_empty(), "{name}: {f:?}");
}

/// The `secure` export refuses a client on a port above 1024 (`noresvport`) and serves one on
/// a reserved port.
fn secure_export_wants_a_reserved_port(nfs: &Knfsd) {
    let export = nfs.export("secure");
    let high = nfs
        .exec(&format!(
            "mkdir -p /mnt/hi && timeout 30 mount -t nfs4 -o vers=4.2,noresvport,soft,retrans=1,timeo=50 \
             127.0.0.1:{export} /mnt/hi && ls /mnt/hi"
        ))
        .unwrap();
    assert_ne!(high.status, 0, "served from a high port: {}", high.text);
    nfs.run(&format!(
        "umount /mnt/hi 2>/dev/null; mkdir -p /mnt/lo && mount -t nfs4 -o vers=4.2 127.0.0.1:{export} /mnt/lo && \
         echo hi > /mnt/lo/f && sync && umount /mnt/lo && cat {export}/f"
    ))
    .unwrap();
}

#[test]
fn a_panicking_test_leaves_no_guest_behind() {
    let _one = one_guest();
    // What a test killed mid-way leaves: a run directory whose owner is gone.
    let runs = openvaai_testkit::guest::guest_dir().join("run");
    let stale = runs.join("4294967-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("owner.pid"), "4294967").unwrap();
    std::fs::write(stale.join("disk-x.img"), "leftover").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let Some(nfs) = Knfsd::builder()
            .disk("ext4", FsKind::Ext4, 64 * MIB)
            .start()
        else {
            return;
        };
        let pid: u32 = std::fs::read_to_string(nfs.dir().join("qemu.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        tx.send((pid, nfs.dir().to_owned())).unwrap();
        panic!("a test failing with the guest up");
    })
    .join();
    let Ok((pid, dir)) = rx.recv() else {
        assert!(outcome.is_ok(), "the guest did not start");
        return; // skipped
    };
    assert!(outcome.is_err(), "the test thread should have panicked");
    assert!(!stale.exists(), "the stale run directory is still there");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "qemu (pid {pid}) still runs"
    );
    assert!(!dir.exists(), "{} is still there", dir.display());
}

//! Capability probes.

use openvaai_engine::Export;

use crate::util::*;

mod capabilities_match_the_filesystem_and_leave_nothing {
    use super::*;
    per_fs!(SMALL, |env: &Env| {
        let caps = env.export.capabilities();
        assert_eq!(caps.fs_type, env.kind().name());
        assert_eq!(caps.reflink, env.kind().reflinks(), "{caps:?}");
        if env.zfs() {
            // No FIEMAP, and fallocate checks the free space and allocates nothing
            // (docs/engine.md, On ZFS): no RESVSPACE, no unwritten extents.
            assert!(
                !caps.fallocate && !caps.fiemap && !caps.unwritten_extents,
                "{caps:?}"
            );
            assert!(caps.may_share_blocks(), "snapshots share blocks: {caps:?}");
        } else {
            assert!(
                caps.fallocate && caps.fiemap && caps.unwritten_extents,
                "{caps:?}"
            );
        }
        let dev =
            std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(env.export.root()).unwrap());
        assert_eq!(caps.same_fs_id, dev);
        assert!(
            names(env.export.root()).is_empty(),
            "the probe left files behind"
        );
        // Opening a file as an export is refused.
        std::fs::write(env.fs.path().join("file"), b"x").unwrap();
        let e = Export::open(&env.fs.path().join("file")).unwrap_err();
        assert_eq!(e.kind(), openvaai_engine::ErrorKind::IncorrectFileType);
        let e = Export::open(&env.fs.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), openvaai_engine::ErrorKind::NotFound);
    });
}

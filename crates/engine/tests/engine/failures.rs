//! A full filesystem: DiskFull, no partial file, source intact.

use std::fs;

use openvaai_engine::ErrorKind;

use crate::util::*;

fn free_bytes(env: &Env) -> u64 {
    let s = rustix::fs::statvfs(env.export.root()).unwrap();
    s.f_bavail * s.f_frsize
}

mod full_filesystem_gives_disk_full_and_no_partial_file {
    use super::*;
    per_fs!(320 << 20, |env: &Env| {
        let data = free_bytes(env) * 6 / 10 / MIB * MIB;
        write_layout(&env.p("src"), &[Run::Data(data), Run::Hole(MIB)], 13).unwrap();
        let sum = checksum(&env.p("src"));
        for (guarded, skip) in [(true, false), (false, true)] {
            let e = env
                .clone("src", "dst", flags(guarded, false, false, skip))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DiskFull, "{e}");
            assert_eq!(names(env.export.root()), vec!["src"]);
        }
        assert_eq!(checksum(&env.p("src")), sum);
        // The space came back: a small clone still fits.
        fs::write(env.p("small"), vec![1u8; 1 << 20]).unwrap();
        env.clone("small", "small2", flags(true, false, false, false))
            .unwrap();
        assert_same_content(&env.p("small"), &env.p("small2"));
    });
}

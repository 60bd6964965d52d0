//! The harness end to end at MiB sizes (`openvaai-bench --smoke`): every row is there and
//! every operation succeeded. Targets are not judged here: at these sizes and with warm
//! caches they say nothing.

use std::process::Command;

use openvaai_testkit::{require_fs_tests, FsKind, TestFs};

/// The row ids of a complete run (`ROW_IDS` in src/table.rs).
const ROWS: &[&str] = &[
    "rtt",
    "full-cp",
    "full-host",
    "limit",
    "cpu-per-gib",
    "checkpoints",
    "full-nfs-10g",
    "full-nfs-1g",
    "thin-cp",
    "thin-data",
    "lazy",
    "lazy-frag",
    "reserve-fallocate",
    "reserve-dd",
    "statx-frag",
    "load-throughput",
    "load-p50",
    "load-p99",
    "load-failed",
    "daemon-rss-idle",
    "daemon-rss-load",
    "plugin-rss",
    "pool-16",
    "pool-16-threads",
    "pool-16-spread",
    "pool-16-rss",
    "pool-16-cpu",
    "storm-1000",
    "storm-1000-p99",
    "storm-1000-max",
    "storm-1000-failed",
    "statx-1m",
    "statx-1m-rss",
    // Skipped in a smoke run (they boot a qemu guest), but in the report.
    "backends-lazy",
    "backends-full",
    "backends-thin",
    "backends-reserve",
    "backends-statx",
];

#[test]
fn smoke_run_has_every_row_and_no_failed_operation() {
    if let Some(reason) = TestFs::unavailable(FsKind::Xfs) {
        assert!(
            !require_fs_tests(),
            "OPENVAAI_REQUIRE_FS_TESTS=1 but the bench cannot run: {reason}"
        );
        eprintln!("skipping the bench smoke test: {reason}");
        return;
    }
    let out = std::env::temp_dir().join(format!("openvaai-bench-smoke-{}.md", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_openvaai-bench"))
        .arg("--smoke")
        .arg("--out")
        .arg(&out)
        .output()
        .expect("running openvaai-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "openvaai-bench --smoke: {}\n{stdout}\n{stderr}",
        run.status
    );
    let report = std::fs::read_to_string(&out).expect("the --out file");
    let _ = std::fs::remove_file(&out);
    for id in ROWS {
        assert!(
            report.contains(&format!("| `{id}` |")),
            "row {id} missing:\n{report}"
        );
    }
    assert!(!report.contains("FAILED"), "a failed operation:\n{report}");
    assert!(report.contains("| `load-failed` |") && report.contains("0 of 32"));
    assert!(
        report.contains("0 of 64 failed, 0 wrong"),
        "the storm's clones all made and verified:\n{report}"
    );
    for fact in ["CPU:", "memory:", "kernel:", "disk under the image:"] {
        assert!(report.contains(fact), "{fact} missing:\n{report}");
    }
}

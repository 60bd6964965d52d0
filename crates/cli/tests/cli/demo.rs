//! `openvaai demo`, end to end, as a newcomer runs it.

use crate::util::*;

#[test]
fn the_demo_runs_every_offload_and_cleans_up() {
    let out = openvaai(&["demo", "--size", "256M", "--data", "32M", "--json"]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", stderr(&out));
    let steps = v["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["lazy clone", "full clone", "thin clone", "reserve"]);
    let as_root = openvaai_testkit::TestFs::unavailable(openvaai_testkit::FsKind::Xfs).is_none();
    for s in steps {
        if s["step"] == "lazy clone" && !as_root {
            continue;
        }
        assert_eq!(s["status"], "VIX_OK", "{s}");
    }
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    let by_name = |n: &str| files.iter().find(|f| f["file"] == n).unwrap().clone();
    assert_eq!(by_name("web01-thin.vmdk")["alloced_bytes"], 32 << 20);
    assert_eq!(by_name("db01-flat.vmdk")["alloc_type"], "lazy-zeroed thick");
    assert!(v["host_copy_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_demo_in_text_explains_where_it_runs() {
    let out = openvaai(&["demo", "--size", "64M", "--data", "8M", "--no-image"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("a temporary directory on the local filesystem"),
        "{text}"
    );
    assert!(
        text.contains("cleaned up: openvaaid stopped (exit 0)"),
        "{text}"
    );
    assert!(text.contains("host copy"), "{text}");
}

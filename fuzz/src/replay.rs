//! Every corpus through its target, on stable and without libFuzzer: the CI's quick check
//! that no input ever kept in `corpus/` (seeds, what campaigns found, regressions) fails.

use std::path::Path;

use crate::TARGETS;

#[test]
fn every_corpus_replays_through_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}: every target has a corpus", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for f in &files {
            let data = std::fs::read(f).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                panic!("{name}: {} fails (see the panic above)", f.display());
            }
        }
        println!("{name}: {} inputs", files.len());
        total += files.len();
    }
    println!("{total} inputs in {} corpora", TARGETS.len());
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz_targets");
    for (name, _) in TARGETS {
        let text = std::fs::read_to_string(dir.join(format!("{name}.rs"))).unwrap();
        assert!(
            text.contains(&format!("openvaai_fuzz::{name}(data)")),
            "{name}"
        );
    }
}

//! What a crash may leave, written once: one function per primitive, used for every
//! filesystem and both backends. `done` says whether the primitive's "returned" mark
//! precedes the crash point: from then on its work must be complete and durable; before
//! that it may be absent, or complete, never partial.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use openvaai_testkit::replay::CrashPoint;

use crate::workload::{Kind, EXPORT_A, EXPORT_B, SOURCES};

/// A file of the crash state: `None` when it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// How `got` differs from `want`, in a few words.
fn differs(got: &[u8], want: &[u8]) -> String {
    if got.len() != want.len() {
        return format!("{} bytes instead of {}", got.len(), want.len());
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
    let zeros = got.iter().all(|&b| b == 0);
    format!(
        "its {} bytes differ from byte {at} on{}",
        got.len(),
        if zeros { " (all zeros)" } else { "" }
    )
}

/// A clone to a new name (lazy, full, thin, thick, GUARDED, cross-export): once returned,
/// identical to its source; before, absent or identical.
pub fn clone(dst: &Path, src: &[u8], done: bool) -> Result<(), String> {
    match (read(dst)?, done) {
        (Some(got), _) if got == src => Ok(()),
        (None, false) => Ok(()),
        (None, true) => Err(format!(
            "{}: missing after the clone returned",
            dst.display()
        )),
        (Some(got), true) => Err(format!(
            "{}: after the clone returned, {}",
            dst.display(),
            differs(&got, src)
        )),
        (Some(got), false) => Err(format!(
            "{}: a partial clone is visible: {}",
            dst.display(),
            differs(&got, src)
        )),
    }
}

/// A clone over an existing file: the old file or the new one, never a mix; the new one
/// once returned.
pub fn overwrite(dst: &Path, old: &[u8], new: &[u8], done: bool) -> Result<(), String> {
    match read(dst)? {
        Some(got) if got == new => Ok(()),
        Some(got) if got == old && !done => Ok(()),
        Some(got) if got == old => Err(format!(
            "{}: still the old file after the overwrite returned",
            dst.display()
        )),
        Some(got) => Err(format!(
            "{}: neither the old file nor the new: {} (new), {} (old)",
            dst.display(),
            differs(&got, new),
            differs(&got, old)
        )),
        None => Err(format!("{}: the overwritten file is gone", dst.display())),
    }
}

/// A primitive that must not change `file` (a source, a GUARDED clone's existing
/// destination): its bytes as they were, always.
pub fn untouched(file: &Path, want: &[u8]) -> Result<(), String> {
    match read(file)? {
        Some(got) if got == want => Ok(()),
        Some(got) => Err(format!(
            "{}: changed: {}",
            file.display(),
            differs(&got, want)
        )),
        None => Err(format!("{}: gone", file.display())),
    }
}

/// A clone refused (LAZY where nothing reflinks): no file, ever.
pub fn absent(dst: &Path) -> Result<(), String> {
    match read(dst)? {
        None => Ok(()),
        Some(got) => Err(format!(
            "{}: a refused clone left a file of {} bytes",
            dst.display(),
            got.len()
        )),
    }
}

/// RESVSPACE: size and data unchanged, reserved or not (what is reserved is not data a
/// crash can lose).
pub fn resvspace(file: &Path, want: &[u8]) -> Result<(), String> {
    untouched(file, want).map_err(|e| format!("RESVSPACE: {e}"))
}

/// The sources' bytes, made on the host from the same layouts.
pub struct Expected {
    bytes: HashMap<&'static str, Vec<u8>>,
}

impl Expected {
    pub fn new(dir: &Path) -> Expected {
        crate::workload::write_sources(dir);
        let bytes = SOURCES
            .iter()
            .map(|s| (s.name, std::fs::read(dir.join(s.name)).unwrap()))
            .collect();
        Expected { bytes }
    }

    fn of(&self, name: &str) -> &[u8] {
        &self.bytes[name]
    }
}

/// Judges one crash state, mounted at `root` (the filesystem holding exports `a` and `b`)
/// against every step: all that is wrong, or `Ok`. With `durable` false a step's return
/// promises nothing across a crash (atomicity only: absent or complete, old or new).
pub fn judge(
    root: &Path,
    point: &CrashPoint,
    want: &Expected,
    durable: bool,
) -> Result<(), String> {
    let a = |n: &str| -> PathBuf { root.join(EXPORT_A).join(n) };
    let mut wrong = Vec::new();
    // Sources: untouched at every point (`over.vmdk`, `taken.vmdk` and `resv.vmdk` are judged
    // by their steps).
    for s in SOURCES {
        if !matches!(s.name, "over.vmdk" | "taken.vmdk" | "resv.vmdk") {
            wrong.extend(untouched(&a(s.name), want.of(s.name)).err());
        }
    }
    for step in crate::workload::STEPS {
        let done = durable && point.after(&format!("{}:ok", step.name));
        let refused = point.after(&format!("{}:refused", step.name));
        let judged = match step.kind {
            Kind::Clone { dst, .. } if refused => absent(&a(dst)),
            Kind::Clone { src, dst, .. } => clone(&a(dst), want.of(src), done),
            Kind::Overwrite { src, dst } => overwrite(&a(dst), want.of(dst), want.of(src), done),
            Kind::GuardedTaken { dst, .. } => untouched(&a(dst), want.of(dst)),
            Kind::Cross { src, dst } => clone(&root.join(EXPORT_B).join(dst), want.of(src), done),
            Kind::Reserve { file } => resvspace(&a(file), want.of(file)),
        };
        if let Err(e) = judged {
            wrong.push(format!("{}: {e}", step.name));
        }
    }
    match wrong.is_empty() {
        true => Ok(()),
        false => Err(wrong.join("; ")),
    }
}

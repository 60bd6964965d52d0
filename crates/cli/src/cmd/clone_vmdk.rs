//! `openvaai clone-vmdk`: what `vmkfstools -i` does on NFS with an offloading NAS. Parses the
//! descriptor, offload-clones each flat extent, then writes the new descriptor (new extent
//! names, new content ID, parent CID kept). The descriptor is written last, atomically: a
//! failed clone leaves no half disk, and the extents it made are removed.

use crate::out::outln;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use openvaai_abi::{clone_flag, vix};
use serde_json::json;

use crate::fail::Failed;
use crate::target::{plugin_log, DatastoreArgs, Target};
use crate::vmdk::{Descriptor, MAX_DESCRIPTOR};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ds: DatastoreArgs,
    /// The source descriptor: absolute, or relative to the datastore.
    pub src: String,
    /// The new descriptor, in the same datastore.
    pub dst: String,
    /// Copy-on-write clones of the extents (a linked-clone-like copy, instant).
    #[arg(long)]
    pub lazy: bool,
    /// Keep the clone thin (SKIPZEROES); without it the extents are thick.
    #[arg(long)]
    pub thin: bool,
    /// Replace existing destination files. Without it an existing descriptor or extent is
    /// refused and left alone (the extents are cloned GUARDED).
    #[arg(long)]
    pub force: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn read_descriptor(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    f.take(MAX_DESCRIPTOR + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{} is not a text descriptor", path.display()))?;
    if text.len() as u64 > MAX_DESCRIPTOR {
        bail!("{} is larger than a descriptor can be", path.display());
    }
    Ok(text)
}

/// An existing destination, refused as `clone` refuses one (FILE_ALREADY_EXISTS, exit
/// code 1, the hint to pass --force).
fn exists(path: &Path) -> anyhow::Error {
    Failed::vix(
        &format!("clone-vmdk: {} exists", path.display()),
        vix::E_FILE_ALREADY_EXISTS,
        &[],
    )
}

fn random() -> impl FnMut() -> u64 {
    let state = std::collections::hash_map::RandomState::new();
    let mut n = 0u64;
    move || {
        let mut h = state.build_hasher();
        h.write_u64(n);
        n += 1;
        h.finish()
    }
}

/// Writes `text` to `path` atomically: a temporary in the same directory, fsync, rename.
fn write_atomic(path: &Path, text: &str, replace: bool) -> Result<()> {
    if !replace && path.exists() {
        return Err(exists(path));
    }
    let dir = path.parent().context("no directory")?;
    // The engine's temporary prefix: a descriptor left half-written by a crash is one more
    // stray temporary that openvaaid removes at its next start.
    let tmp = dir.join(format!(
        "{}{}",
        openvaai_proto::layout::TEMP_PREFIX,
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("descriptor")
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

pub fn run(args: &Args) -> Result<u8> {
    let target = Target::open(&args.ds)?;
    let src = PathBuf::from(target.file(&args.src));
    let dst = PathBuf::from(target.file(&args.dst));
    let src_dir = src.parent().context("source has no directory")?.to_owned();
    let dst_dir = dst
        .parent()
        .context("destination has no directory")?
        .to_owned();
    let stem = dst
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".vmdk"))
        .context("the destination must be a .vmdk file name")?
        .to_owned();
    let descriptor =
        Descriptor::parse(&read_descriptor(&src)?).with_context(|| format!("{}", src.display()))?;
    for e in &descriptor.extents {
        let p = src_dir.join(&e.file);
        if !p.is_file() {
            bail!("extent {} of {} is missing", p.display(), src.display());
        }
    }
    if !dst_dir.is_dir() {
        bail!(
            "the destination directory {} does not exist: create it first",
            dst_dir.display()
        );
    }
    let n = descriptor.extents.len();
    let name = |i: usize| {
        if n == 1 {
            format!("{stem}-flat.vmdk")
        } else {
            format!("{stem}-f{:03}.vmdk", i + 1)
        }
    };
    if !args.force {
        for p in std::iter::once(dst.clone()).chain((0..n).map(|i| dst_dir.join(name(i)))) {
            if p.exists() {
                return Err(exists(&p));
            }
        }
    }
    let mut flags = if args.force { 0 } else { clone_flag::GUARDED };
    if args.lazy {
        flags |= clone_flag::LAZY;
    }
    if args.thin {
        flags |= clone_flag::SKIPZEROES;
    }
    let mut clone = descriptor.for_clone(name, &mut random());
    // A lazy clone shares the source's blocks and so its thinness; a full one is what was
    // asked for.
    if !args.lazy {
        clone.set_thin(args.thin);
    }
    let t = std::time::Instant::now();
    let mut done: Vec<PathBuf> = Vec::new();
    let mut reports = Vec::new();
    for (e, new) in descriptor.extents.iter().zip(&clone.extents) {
        let from = src_dir.join(&e.file);
        let to = dst_dir.join(&new.file);
        let (status, _) = super::clone::clone_with_meter(
            &target,
            from.to_str().context("path not UTF-8")?,
            to.to_str().context("path not UTF-8")?,
            flags,
            None,
            &new.file,
            !args.json,
        )?;
        reports.push(json!({ "src": from, "dst": to, "status": super::vix_name(status) }));
        if status != vix::OK {
            // Leave no half disk: the extents made so far go.
            for p in &done {
                let _ = std::fs::remove_file(p);
            }
            if args.json {
                return super::finish(
                    true,
                    json!({ "operation": "clone-vmdk", "extents": reports, "status": super::vix_name(status), "code": status }),
                    "CLONEFILE",
                    status,
                    &[],
                );
            }
            return Err(Failed::vix(
                &format!("CLONEFILE of extent {} to {}", from.display(), to.display()),
                status,
                &plugin_log(),
            ));
        }
        done.push(to);
    }
    if let Err(err) = write_atomic(&dst, &clone.render(), args.force) {
        for p in &done {
            let _ = std::fs::remove_file(p);
        }
        return Err(err);
    }
    let took = t.elapsed();
    if args.json {
        let report = json!({
            "operation": "clone-vmdk",
            "src": src,
            "dst": dst,
            "extents": reports,
            "cid": clone.get("CID"),
            "status": "VIX_OK",
            "code": 0,
            "seconds": super::secs(took),
        });
        return super::finish(true, report, "clone-vmdk", vix::OK, &[]);
    }
    outln!(
        "cloned {} -> {} ({} extent(s), {}{}) in {:.3} s; new CID {}",
        src.display(),
        dst.display(),
        n,
        if args.lazy { "lazy" } else { "full" },
        if args.thin { ", thin" } else { "" },
        took.as_secs_f64(),
        clone.get("CID").unwrap_or("?")
    );
    Ok(crate::exit::OK)
}

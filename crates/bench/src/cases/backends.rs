//! openvaaid against the standard NFSv4.2 backend (docs/nfs42.md), on one machine and one
//! disk, so that the ratio between the two means something: a knfsd guest
//! (`openvaai_testkit::guest`, qemu under software emulation) with one XFS disk (reflink)
//! holding two sibling directories of one filesystem: `vaai/`, which an `openvaaid` in the
//! guest serves (`.openvaai/access`), and `nfs/`, a directory of knfsd's export `/export/xfs`
//! holding the `.openvaai/nfs42` marker. The plugin runs in the guest too (this program,
//! copied in and run with `--probe-backends`), talking to openvaaid and to knfsd on
//! 127.0.0.1: both backends pay the same emulated CPU. The sources are one file each,
//! hard-linked into both directories (the same extents).
//!
//! Each pair (lazy, full and thin clones, a reservation, STATX) is raced as the other cases
//! are ([`Bench::race`]: interleaved, guest caches dropped before each run), and every output
//! is checked before it is removed (same bytes, shared or not, holes, allocation; STATX's
//! figures against the file's own), so a fast wrong answer fails its row. Rows are
//! informational: software emulation says how the two compare, not what hardware does.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use openvaai_abi::{alloc, clone_flag, CloneFlags};
use openvaai_host::{Datastore, Plugin};
use openvaai_testkit::guest::{local_view, FileView, Knfsd};
use openvaai_testkit::{daemon_bin, plugin_so, vix_name, write_layout, Daemon, FsKind, Run};
use serde_json::{json, Value};

use super::{compare, Bench, Contender};
use crate::client::{self, Session};
use crate::measure::{s, size};
use crate::plan::{Plan, GIB, MIB};
use crate::table::{Row, Table, Verdict};

/// The rows, in order.
pub const ROWS: [&str; 5] = [
    "backends-lazy",
    "backends-full",
    "backends-thin",
    "backends-reserve",
    "backends-statx",
];

/// Where the programs go in the guest (the testkit finds the daemon and the plugin beside
/// this program).
const GUEST_BIN: &str = "/opt/openvaai";
/// The guest's disk and its export.
const DISK: &str = "xfs";
/// Marks a row in the guest's output.
const ROW_MARK: &str = "openvaai-bench-row ";
/// The two directories of the disk.
const OURS_DIR: &str = "vaai";
const NFS_DIR: &str = "nfs";
/// The sources (hard-linked into both directories) and the outputs.
const DENSE: &str = "dense-flat.vmdk";
const THIN: &str = "thin-flat.vmdk";
const RESERVE: &str = "reserve-flat.vmdk";
const OUT: &str = "clone-flat.vmdk";
/// The standard backend's session timeout: generous, the server runs under emulation.
const TIMEOUT_MS: u64 = 60_000;
/// The bound on the whole measurement in the guest.
const GUEST_BOUND: Duration = Duration::from_secs(3600);

const PEER: &str =
    "the standard backend: the plugin's NFSv4.2 client to knfsd on 127.0.0.1:2049 (same guest, same disk)";
const EMULATED: &str = "plugin and servers in one qemu guest under software emulation (TCG)";

/// The sizes: small, the guest is emulated.
struct Sizes {
    /// The dense source of the lazy and full clones.
    dense: u64,
    /// The thin source: its size, its data, in this many runs.
    thin: u64,
    thin_data: u64,
    thin_runs: u64,
    /// RESVSPACE on a sparse file of this size.
    reserve: u64,
    /// STATX calls per timed run.
    statx_calls: u32,
}

fn sizes(plan: &Plan) -> Sizes {
    if plan.name == "quick" {
        Sizes {
            dense: 64 * MIB,
            thin: 256 * MIB,
            thin_data: 8 * MIB,
            thin_runs: 8,
            reserve: 256 * MIB,
            statx_calls: 20,
        }
    } else {
        Sizes {
            dense: 128 * MIB,
            thin: GIB,
            thin_data: 16 * MIB,
            thin_runs: 16,
            reserve: GIB,
            statx_calls: 20,
        }
    }
}

/// What each row measures.
fn titles(z: &Sizes) -> [String; 5] {
    [
        format!("lazy clone of a {} file; {EMULATED}", size(z.dense)),
        format!(
            "full clone of a {} file (knfsd's COPY reflinks on XFS: its copy shares the \
             source's blocks, openvaaid's is an independent physical copy); {EMULATED}",
            size(z.dense)
        ),
        format!(
            "thin clone (SKIPZEROES) of a {} disk holding {} of data; {EMULATED}",
            size(z.thin),
            size(z.thin_data)
        ),
        format!("RESVSPACE of a sparse {} file; {EMULATED}", size(z.reserve)),
        format!(
            "STATX of the thin disk, per call (median run of {} calls); {EMULATED}",
            z.statx_calls
        ),
    ]
}

/// The host's half: boots the guest, runs this program in it, and adds the rows it prints;
/// skipped rows (with the reason) in a smoke run or where the guest cannot start.
pub fn backends(b: &mut Bench<'_>) -> Result<()> {
    let z = sizes(&b.plan);
    let builder = Knfsd::builder()
        .disk(DISK, FsKind::Xfs, 4 * GIB)
        .memory_mib(1536);
    let skip = if b.plan.name == "smoke" {
        Some("skipped in a smoke run (boots a qemu guest: minutes under emulation)".to_owned())
    } else {
        builder
            .unavailable()
            .map(|why| format!("skipped: a knfsd guest cannot run here: {why}"))
    };
    if let Some(why) = skip {
        for (id, what) in ROWS.iter().zip(titles(&z)) {
            b.push(Row::new(id, what).peer(PEER, why.clone()));
        }
        return Ok(());
    }
    let me = std::env::current_exe().context("this program's path")?;
    let at = |name: &str| format!("{GUEST_BIN}/{name}");
    println!("  (booting the knfsd guest for the backends case: software emulation)");
    let nfs = builder
        .program(&me, &at("openvaai-bench"))
        .program(&daemon_bin(), &at("openvaaid"))
        .program(&plugin_so(), &at("libopenvaai.so"))
        .try_start()
        .map_err(|e| anyhow!("starting the knfsd guest: {e}"))?;
    let quick = if b.plan.name == "quick" {
        " --quick"
    } else {
        ""
    };
    let script = format!(
        "cd {export} && {bench} --probe-backends {export} --runs {runs}{quick} 2>&1",
        export = nfs.export(DISK),
        bench = at("openvaai-bench"),
        runs = b.plan.runs,
    );
    let out = nfs
        .exec_timeout(&script, GUEST_BOUND)
        .map_err(|e| anyhow!("running the backends case in the guest: {e}"))?;
    let mut seen = 0;
    for line in out.text.lines() {
        match line.strip_prefix(ROW_MARK) {
            Some(json) => {
                b.push(row_from_json(json)?);
                seen += 1;
            }
            // The guest's own table lines: the rows above say the same.
            None if ROWS.iter().any(|id| line.trim_start().starts_with(id)) => {}
            None => println!("  guest| {line}"),
        }
    }
    if out.status != 0 || seen != ROWS.len() {
        bail!(
            "the backends case in the guest ({}) exited {} with {seen} of {} rows:\n{}",
            nfs.kernel_package(),
            out.status,
            ROWS.len(),
            out.text
        );
    }
    Ok(())
}

fn row_to_json(r: &Row) -> String {
    let failed = match &r.verdict {
        Verdict::Failed(why) => Some(why.clone()),
        _ => None,
    };
    json!({
        "id": r.id, "measure": r.measure, "ours": r.ours, "peer": r.peer,
        "peer_figure": r.peer_figure, "ratio": r.ratio, "failed": failed,
    })
    .to_string()
}

fn row_from_json(text: &str) -> Result<Row> {
    let v: Value = serde_json::from_str(text).with_context(|| format!("a row: {text}"))?;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let id = ROWS
        .iter()
        .find(|id| **id == field("id"))
        .ok_or_else(|| anyhow!("an unknown row from the guest: {text}"))?;
    let row = Row::new(id, field("measure"))
        .ours(field("ours"))
        .peer(field("peer"), field("peer_figure"))
        .ratio(field("ratio"));
    Ok(match v["failed"].as_str() {
        Some(why) => row.failed(why),
        None => row,
    })
}

/// The guest's half (`--probe-backends ROOT`, ROOT the XFS disk knfsd exports): both
/// backends on two directories of it, each pair raced and checked; prints the rows.
pub fn probe(root: &Path, quick: bool, runs: Option<usize>) -> Result<()> {
    let mut plan = if quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = runs {
        plan.runs = n.max(1);
    }
    let z = sizes(&plan);
    let (ours, nfs) = (root.join(OURS_DIR), root.join(NFS_DIR));
    std::fs::create_dir_all(&ours)?;
    let marker = openvaai_client::datastore::nfs42_path(&nfs);
    std::fs::create_dir_all(marker.parent().expect("the marker is in a directory"))?;
    std::fs::write(&marker, "")?;
    write_layout(&ours.join(DENSE), &[Run::Data(z.dense)], 21)?;
    let piece = z.thin_data / z.thin_runs;
    let hole = z.thin / z.thin_runs - piece;
    let thin: Vec<Run> = (0..z.thin_runs)
        .flat_map(|_| [Run::Data(piece), Run::Hole(hole)])
        .collect();
    write_layout(&ours.join(THIN), &thin, 22)?;
    for name in [DENSE, THIN] {
        let _ = std::fs::remove_file(nfs.join(name));
        std::fs::hard_link(ours.join(name), nfs.join(name))
            .with_context(|| format!("linking {name} into {}", nfs.display()))?;
    }
    rustix::fs::sync();

    let daemon = Daemon::builder()
        .export(&ours)
        .try_start()
        .map_err(|e| anyhow!("starting openvaaid in the guest: {e}"))?;
    let plugin = client::load()?;
    let session = Session::start(&plugin, &ours)?;
    let standard = start_standard(&plugin, &nfs)?;
    let mut b = Bench {
        plan,
        mount: root.to_owned(),
        export: ours,
        plugin: &plugin,
        session,
        daemon_pid: daemon.pid(),
        daemon_start_kib: 0,
        table: Table::default(),
        rtt: Duration::ZERO,
    };
    let [lazy, full, thin, reserve, statx] = titles(&z);
    let thin_view = local_view(&b.p(THIN)).map_err(|e| anyhow!(e))?;
    let errors = [
        clone_pair(&mut b, &standard, ROWS[0], lazy, clone_flag::LAZY, DENSE),
        clone_pair(&mut b, &standard, ROWS[1], full, 0, DENSE),
        clone_pair(
            &mut b,
            &standard,
            ROWS[2],
            thin,
            clone_flag::SKIPZEROES,
            THIN,
        ),
        reserve_pair(&mut b, &standard, reserve, z.reserve),
        statx_pair(&mut b, &standard, statx, &thin_view, z.statx_calls),
    ];
    for r in &b.table.rows {
        println!("{ROW_MARK}{}", row_to_json(r));
    }
    drop(standard);
    drop(b);
    drop(daemon);
    let errors: Vec<String> = errors
        .into_iter()
        .filter_map(|e| e.err().map(|e| format!("{e:#}")))
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

/// A session of the standard backend on `dir` (a directory of knfsd's export holding the
/// marker, seen here as it is on the server: the datastore's local and remote paths alike).
fn start_standard<'p>(plugin: &'p Plugin, dir: &Path) -> Result<Session<'p>> {
    let path = s(dir).to_owned();
    let ds = Datastore {
        fs_type: "NFS41".into(),
        fs_version: 41,
        remote_ip: Some("127.0.0.1".into()),
        remote_mount_point: Some(path.clone()),
        local_mount_point: Some(path),
    };
    let _ = openvaai_host::take_log();
    let id = plugin.start_session(&ds, Some(TIMEOUT_MS));
    let log: Vec<String> = openvaai_host::take_log()
        .into_iter()
        .map(|l| l.text)
        .collect();
    let id = id.map_err(|e| {
        anyhow!(
            "StartSession of the standard backend on {}: {} {}",
            dir.display(),
            vix_name(e),
            log.join("; ")
        )
    })?;
    let line = log
        .iter()
        .find(|l| l.contains("standard backend"))
        .cloned()
        .unwrap_or_default();
    println!("standard backend session: {line}");
    let session = Session {
        plugin,
        id,
        root: dir.to_owned(),
    };
    if !line.contains("CLONE yes, COPY yes, SEEK yes, ALLOCATE yes") {
        bail!("the standard backend's probe did not find every operation: {line:?}");
    }
    Ok(session)
}

/// Whose output a check reads.
struct Check<'a> {
    /// The directory (one of the two).
    dir: &'a Path,
    /// Which side: openvaaid (`true`) or the standard backend.
    ours: bool,
}

/// Races openvaaid (`b.session`) against the standard backend on one operation: `run` in
/// each side's directory, `check` of its output before `prepare` makes the next run's
/// input (and removes the output). A wrong output fails that side's figure.
#[allow(clippy::too_many_arguments)]
fn pair(
    b: &mut Bench<'_>,
    standard: &Session<'_>,
    id: &'static str,
    what: String,
    bytes: Option<u64>,
    per: u32,
    run: &dyn Fn(&Session<'_>) -> Result<()>,
    check: &dyn Fn(&Check<'_>) -> Result<()>,
    prepare: &dyn Fn(&Path) -> Result<()>,
) -> Result<()> {
    let dirs: [PathBuf; 2] = [b.export.clone(), standard.root.clone()];
    let done = [Cell::new(false), Cell::new(false)];
    let wrong: [RefCell<Option<String>>; 2] = Default::default();
    let ours = &b.session;
    let timed = |i: usize, session: &Session<'_>| {
        let r = run(session);
        done[i].set(r.is_ok());
        r
    };
    let mut contenders: Vec<Contender<'_>> =
        vec![Box::new(|| timed(0, ours)), Box::new(|| timed(1, standard))];
    let mut reset = || {
        for i in 0..2 {
            let mut bad = wrong[i].borrow_mut();
            if done[i].replace(false) && bad.is_none() {
                let c = Check {
                    dir: &dirs[i],
                    ours: i == 0,
                };
                if let Err(e) = check(&c) {
                    *bad = Some(format!("wrong result: {e:#}"));
                }
            }
            if let Err(e) = prepare(&dirs[i]) {
                bad.get_or_insert(format!("preparing {}: {e:#}", dirs[i].display()));
            }
        }
    };
    let times = b.race(&mut contenders, &mut reset)?;
    drop(contenders);
    let figures: Vec<Result<Duration, String>> = times
        .into_iter()
        .zip(&wrong)
        .map(|(t, w)| match w.borrow().clone() {
            Some(e) => Err(e),
            None => t.map(|d| d / per),
        })
        .collect();
    b.push(compare(
        id,
        what,
        &figures[0],
        PEER,
        &figures[1],
        bytes,
        "",
        |_, _| true,
    ));
    Ok(())
}

/// A clone of `src` to the output, checked: the same bytes; LAZY shares every byte of the
/// source; openvaaid's full and thin clones share none; the thin clone has the source's
/// holes exactly.
fn clone_pair(
    b: &mut Bench<'_>,
    standard: &Session<'_>,
    id: &'static str,
    what: String,
    flags: CloneFlags,
    src: &str,
) -> Result<()> {
    let bytes = std::fs::metadata(b.p(src))?.len();
    let source = local_view(&b.p(src)).map_err(|e| anyhow!(e))?;
    let shared_by_standard = Cell::new(None::<u64>);
    let check = |c: &Check<'_>| -> Result<()> {
        let out = c.dir.join(OUT);
        same_bytes(&c.dir.join(src), &out)?;
        let v: FileView = local_view(&out).map_err(|e| anyhow!(e))?;
        let shared = v.shared_bytes();
        if flags & clone_flag::LAZY != 0 {
            if shared < source.mapped_bytes() {
                bail!("a lazy clone shares {shared} of {} bytes", v.size);
            }
        } else if c.ours && shared != 0 {
            bail!("openvaaid's full clone shares {shared} bytes with its source");
        }
        if flags & clone_flag::SKIPZEROES != 0 && v.holes() != source.holes() {
            bail!(
                "the thin clone's holes {:?} are not the source's {:?}",
                v.holes(),
                source.holes()
            );
        }
        if flags & clone_flag::SKIPZEROES == 0 && !v.holes().is_empty() {
            bail!("the clone has holes: {:?}", v.holes());
        }
        if !c.ours {
            shared_by_standard.set(Some(shared));
        }
        Ok(())
    };
    let prepare = |dir: &Path| -> Result<()> {
        super::rm(dir, &[OUT]);
        Ok(())
    };
    let run = |session: &Session<'_>| session.clone_file(src, OUT, flags, bytes);
    let data = if flags & clone_flag::SKIPZEROES != 0 {
        source.mapped_bytes()
    } else {
        bytes
    };
    pair(b, standard, id, what, Some(data), 1, &run, &check, &prepare)?;
    if let (Some(shared), Some(row)) = (shared_by_standard.get(), b.table.rows.last_mut()) {
        row.measure.push_str(&format!(
            "; the standard backend's clone shares {}",
            size(shared)
        ));
    }
    Ok(())
}

/// RESVSPACE of a new sparse file, checked: its size kept, no hole left, every byte
/// allocated.
fn reserve_pair(b: &mut Bench<'_>, standard: &Session<'_>, what: String, bytes: u64) -> Result<()> {
    let check = |c: &Check<'_>| -> Result<()> {
        let v = local_view(&c.dir.join(RESERVE)).map_err(|e| anyhow!(e))?;
        if v.size != bytes || !v.holes().is_empty() || v.allocated < bytes {
            bail!(
                "after RESVSPACE: size {}, {} allocated, holes {:?}",
                v.size,
                v.allocated,
                v.holes()
            );
        }
        Ok(())
    };
    let prepare = |dir: &Path| -> Result<()> {
        super::rm(dir, &[RESERVE]);
        File::create(dir.join(RESERVE))?.set_len(bytes)?;
        Ok(())
    };
    let run = |session: &Session<'_>| session.reserve(RESERVE, bytes);
    let r = pair(
        b,
        standard,
        ROWS[3],
        what,
        Some(bytes),
        1,
        &run,
        &check,
        &prepare,
    );
    super::rm(&b.export, &[RESERVE]);
    super::rm(&standard.root, &[RESERVE]);
    r
}

/// `calls` STATX of the thin disk per run, each checked against the file's own figures
/// (`view`): size, allocation, THIN.
fn statx_pair(
    b: &mut Bench<'_>,
    standard: &Session<'_>,
    what: String,
    view: &FileView,
    calls: u32,
) -> Result<()> {
    let run = |session: &Session<'_>| -> Result<()> {
        for _ in 0..calls {
            let r = session.statx(THIN)?;
            if (r.total_bytes, r.alloced_bytes, r.alloc_type)
                != (view.size, view.allocated, alloc::THIN)
            {
                bail!(
                    "STATX said size {}, {} allocated, type {}; the file has {}, {}, THIN ({})",
                    r.total_bytes,
                    r.alloced_bytes,
                    r.alloc_type,
                    view.size,
                    view.allocated,
                    alloc::THIN
                );
            }
        }
        Ok(())
    };
    let check = |_: &Check<'_>| Ok(());
    let prepare = |_: &Path| Ok(());
    pair(
        b, standard, ROWS[4], what, None, calls, &run, &check, &prepare,
    )
}

/// Fails unless `a` and `b` hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<()> {
    let open = |p: &Path| File::open(p).with_context(|| format!("opening {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (la, lb) = (fa.metadata()?.len(), fb.metadata()?.len());
    if la != lb {
        bail!("{} has {la} bytes, {} {lb}", a.display(), b.display());
    }
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut at = 0u64;
    while at < la {
        let n = (la - at).min(MIB) as usize;
        fa.read_exact(&mut ba[..n])?;
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            bail!(
                "{} differs from {} in the MiB at {at}",
                b.display(),
                a.display()
            );
        }
        at += n as u64;
    }
    Ok(())
}

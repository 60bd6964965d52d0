//! The demo's second part: the standard NFSv4.2 backend (docs/nfs42.md), offload with
//! nothing installed on the NAS. A qemu guest (software emulation) runs Linux knfsd exporting
//! an XFS disk; the plugin on this host is its NFSv4.2 client, through the guest's NFS port
//! forwarded to 127.0.0.1, chosen by the `.openvaai/nfs42` marker. What happened is then read
//! on the server itself (`stat` and FIEMAP in the guest).

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use indicatif::HumanBytes;
use openvaai_abi::{clone_flag, vix, CloneFlags};
use openvaai_testkit::guest::Knfsd;
use openvaai_testkit::FsKind;
use serde_json::{json, Value};

use super::{statx_table, steps_json, steps_table, support, support_json, Args, Step};
use crate::target::{plugin_log, DatastoreArgs, Target};

const MIB: u64 = 1 << 20;
/// The sample's size and its data (8 runs between holes): small, the guest is emulated.
const SIZE: u64 = 64 * MIB;
const DATA: u64 = 8 * MIB;
/// The session timeout (ESXi's timeoutMS): generous, the server runs under emulation.
const TIMEOUT_MS: u64 = 60_000;

const SAMPLE: &str = "web01-flat.vmdk";

pub fn part(args: &Args, say: &dyn Fn(String)) -> Result<Value> {
    say(
        "\nthe standard NFSv4.2 backend: the same offloads with nothing installed on the NAS"
            .into(),
    );
    let builder = Knfsd::builder().disk("xfs", FsKind::Xfs, 1 << 30);
    if let Some(why) = builder.unavailable() {
        say(format!(
            "skipped    a knfsd guest cannot run here: {why} (--no-nfs42 skips this part)"
        ));
        return Ok(json!({ "skipped": why }));
    }
    say(
        "server     booting Linux knfsd in a qemu guest (software emulation: a minute or so)"
            .into(),
    );
    let nfs = builder
        .try_start()
        .map_err(|e| anyhow!("starting the knfsd guest: {e}"))?;
    let export = nfs.export("xfs");
    say(format!(
        "server     knfsd ({}) exporting {export} (XFS with reflink) on {}",
        nfs.kernel_package(),
        nfs.nfs_addr()
    ));
    let result = story(args, &nfs, &export, say);
    drop(nfs);
    let report = result?;
    say("cleaned up: session ended, guest powered off".into());
    Ok(report)
}

fn story(args: &Args, nfs: &Knfsd, export: &str, say: &dyn Fn(String)) -> Result<Value> {
    // On the NAS: the marker that chooses this backend, and a thin sample disk.
    let runs = 8;
    let stride = SIZE / runs;
    nfs.run(&format!(
        "set -e; cd {export}; mkdir -p .openvaai; : > .openvaai/nfs42
         truncate -s {SIZE} {SAMPLE}
         for i in $(seq 0 {last}); do
             dd if=/dev/urandom of={SAMPLE} bs=1M count={per} seek=$((i * {stride_mib})) \
                conv=notrunc,fsync 2>/dev/null
         done
         truncate -s {SIZE} db01-flat.vmdk; sync",
        last = runs - 1,
        per = DATA / runs / MIB,
        stride_mib = stride / MIB,
    ))
    .map_err(|e| anyhow!("writing the sample on the server: {e}"))?;
    say(format!(
        "sample     {SAMPLE}: a {} thin disk holding {} of data, on the server",
        HumanBytes(SIZE),
        HumanBytes(DATA)
    ));

    // On "ESXi": the datastore's mount point, where the plugin finds the marker. (A host with
    // no NFS mount of its own: a directory holding the marker, with the guest's NFS port.)
    let local = nfs
        .esxi_mount("openvaai-demo-nfs42-")
        .context("a temporary directory for the datastore's mount")?;
    let _ = plugin_log();
    let target = Target::open(&DatastoreArgs {
        datastore: local.path().to_str().context("path not UTF-8")?.to_owned(),
        nas_ip: Some("127.0.0.1".into()),
        nas_path: Some(export.to_owned()),
        timeout_ms: TIMEOUT_MS,
        plugin: args.plugin.clone(),
    })?;
    let session = plugin_log()
        .into_iter()
        .find(|l| l.contains("standard backend"))
        .unwrap_or_default();
    say(format!("session    {session}"));
    let support = support(&target, say);

    let mut steps = Vec::new();
    let mut step = |name: &'static str, file: &'static str, flags: Option<CloneFlags>| {
        let t = Instant::now();
        let status = match flags {
            Some(flags) => target.plugin.clone_file(
                target.id,
                &target.file(SAMPLE),
                &target.file(file),
                flags,
                None,
                None,
            ),
            None => target.plugin.reserve(target.id, &target.file(file), None),
        };
        steps.push(Step {
            name,
            file,
            status: status.unwrap_or(vix::E_FAIL),
            took: t.elapsed(),
            bytes: SIZE,
        });
    };
    step("lazy clone", "web01-lazy.vmdk", Some(clone_flag::LAZY));
    step("full clone", "web01-full.vmdk", Some(0));
    step(
        "thin clone",
        "web01-thin.vmdk",
        Some(clone_flag::SKIPZEROES),
    );
    step("reserve", "db01-flat.vmdk", None);
    steps_table(&steps, say);

    // The sample and what the steps made.
    let names: Vec<&str> = std::iter::once(SAMPLE)
        .chain(steps.iter().filter(|s| s.status == vix::OK).map(|s| s.file))
        .collect();
    let files = statx_table(&target, &names, say)?;

    // The server's own view of each file: what the NFS server's filesystem holds.
    say(format!(
        "\non the server (stat and FIEMAP in the guest, {export}):"
    ));
    let mut server = Vec::new();
    for &name in &names {
        match nfs.view(&format!("{export}/{name}")) {
            Ok(v) => {
                say(format!(
                    "{name:<19} {:>11} allocated, {:>11} shared with another file",
                    HumanBytes(v.allocated).to_string(),
                    HumanBytes(v.shared_bytes()).to_string()
                ));
                server.push(json!({
                    "file": name,
                    "size": v.size,
                    "allocated_bytes": v.allocated,
                    "shared_bytes": v.shared_bytes(),
                }));
            }
            Err(e) => say(format!("{name:<19} {e}")),
        }
    }

    // What the server does not offer is NOT_SUPPORTED, the honest answer (ESXi then copies
    // itself), not a failure of the demo; anything else is.
    if let Some(f) = steps
        .iter()
        .find(|s| s.status != vix::OK && s.status != vix::E_NOT_SUPPORTED)
    {
        return Err(crate::fail::Failed::vix(f.name, f.status, &plugin_log()));
    }
    if steps.iter().any(|s| s.status == vix::E_NOT_SUPPORTED) {
        say("\nnote: NOT_SUPPORTED is what this backend answers where the server lacks the operation (docs/nfs42.md)".into());
    }
    Ok(json!({
        "server": format!("knfsd {}", nfs.kernel_package()),
        "session": session,
        "support": support_json(&support),
        "steps": steps_json(&steps),
        "files": files,
        "server_view": server,
    }))
}

//! `openvaai check`: the doctor an admin runs before installing on ESXi. Everything ESXi
//! will do with the datastore, step by step, each failure with its cause and the fix; the
//! verdict in `vmkfstools -Ph`'s words.

use crate::out::outln;
use std::time::Instant;

use anyhow::Result;
use openvaai_abi::{prim, vix};
use serde_json::{json, Value};

use crate::fail::hint;
use crate::target::{load_plugin, plugin_log, DatastoreArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ds: DatastoreArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

struct Report {
    steps: Vec<Value>,
    json: bool,
}

impl Report {
    fn step(&mut self, name: &str, ok: bool, detail: String, fix: Option<&str>) {
        if !self.json {
            let mark = if ok { "ok  " } else { "FAIL" };
            outln!("{mark} {name:<14} {detail}");
            if let (false, Some(f)) = (ok, fix) {
                outln!("     {:<14} fix: {f}", "");
            }
        }
        let mut step = json!({ "step": name, "ok": ok, "detail": detail });
        if let (false, Some(f)) = (ok, fix) {
            step["fix"] = json!(f);
        }
        self.steps.push(step);
    }
}

pub fn run(args: &Args) -> Result<u8> {
    let ds = args.ds.datastore()?;
    let mut r = Report {
        steps: Vec::new(),
        json: args.json,
    };
    let mount = ds.local_mount_point.clone().unwrap_or_default();
    let nas = format!(
        "{}:{}",
        ds.remote_ip.as_deref().unwrap_or("?"),
        ds.remote_mount_point.as_deref().unwrap_or("?")
    );
    if !args.json {
        // Found and a directory (`datastore()` checked it): a step like the others.
        outln!("ok   {:<14} {mount} (NFS {nas})", "datastore");
    }

    // 1. The plugin loads as disklib loads it.
    let plugin = match load_plugin(&args.ds.plugin) {
        Ok(p) => {
            let t = &p.tables()[0];
            r.step(
                "plugin",
                true,
                format!(
                    "{} ({:?}, NAS interface {}.{})",
                    p.path().display(),
                    t.name.as_deref().unwrap_or("?"),
                    t.major_version,
                    t.minor_version
                ),
                None,
            );
            p
        }
        Err(e) => {
            r.step(
                "plugin",
                false,
                format!("{e:#}"),
                Some("build it (cargo build --release) or pass --plugin"),
            );
            return verdict(r, false);
        }
    };

    // 2. Which backend StartSession picks, by the markers (as the plugin's backend::claim).
    let access_path = openvaai_client::datastore::access_path(std::path::Path::new(&mount));
    let nfs42_path = openvaai_client::datastore::nfs42_path(std::path::Path::new(&mount));
    let standard = !access_path.is_file() && nfs42_path.is_file();
    // As another user than root, `.openvaai` (0700, root's) cannot be looked into: the
    // access file's step says so, and nothing here guesses at what is inside.
    let hidden = std::fs::metadata(&access_path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    let (found, line) = if access_path.is_file() {
        (
            true,
            format!("openvaaid: {} is there", access_path.display()),
        )
    } else if standard {
        (
            true,
            format!(
                "the standard NFSv4.2 backend (the server's own CLONE/COPY/SEEK): {} is there \
                 and {} is not",
                nfs42_path.display(),
                access_path.display()
            ),
        )
    } else {
        (
            false,
            format!(
                "none: neither {} nor {} is there, so the plugin declines the datastore",
                access_path.display(),
                nfs42_path.display()
            ),
        )
    };
    if !hidden {
        r.step(
            "backend",
            found,
            line,
            Some("run openvaaid on the NAS, or create .openvaai/nfs42 at the export's root for the standard NFSv4.2 backend"),
        );
    }

    // 2b. The access file the daemon writes, read through the mount as ESXi would.
    let access = std::fs::read(&access_path)
        .map_err(|e| access_failure(&e))
        .and_then(|b| {
            openvaai_proto::access::AccessFile::parse(&b).map_err(|e| {
                (
                    e.to_string(),
                    "the file is not an openvaaid access file (a newer format, or foreign): \
                     restart openvaaid, or update this plugin",
                )
            })
        });
    match &access {
        _ if standard => {}
        Ok(a) => {
            r.step(
                "access file",
                true,
                format!(
                    "{}: port {}, certificate sha256 {}…",
                    access_path.display(),
                    a.port,
                    &openvaai_proto::access::sha256_hex(&a.cert_sha256)[..16]
                ),
                None,
            );
            // A daemon that is gone is said at once, not after the session's timeout.
            if let Some(detail) = gone(std::path::Path::new(&mount), &ds, a) {
                r.step("daemon", false, detail, Some(START_IT));
                return verdict(r, false);
            }
        }
        Err((e, fix)) => r.step(
            "access file",
            false,
            format!("{}: {e}", access_path.display()),
            Some(fix),
        ),
    }

    // 3. StartSession through the plugin, as disklib calls it for every NFS datastore.
    let t = Instant::now();
    let started = plugin.start_session(&ds, args.ds.timeout());
    let took = t.elapsed();
    let id = match started {
        Ok(id) => {
            r.step(
                "session",
                true,
                format!("StartSession: VIX_OK in {:.1} ms", took.as_secs_f64() * 1e3),
                None,
            );
            id
        }
        Err(e) => {
            let why = plugin_log().into_iter().last().unwrap_or_default();
            let why = why.trim_start_matches("openvaai: ");
            r.step(
                "session",
                false,
                format!("StartSession: {} — {why}", super::vix_name(e)),
                hint("StartSession", e, why),
            );
            return verdict(r, false);
        }
    };

    // 4. What the daemon says about the export.
    let raw_ds = openvaai_client::RawDataStore {
        fs_type: Some(ds.fs_type.as_bytes()),
        fs_version: ds.fs_version,
        remote_ip: ds.remote_ip.as_deref().map(str::as_bytes),
        remote_mount_point: ds.remote_mount_point.as_deref().map(str::as_bytes),
        local_mount_point: ds.local_mount_point.as_deref().map(str::as_bytes),
    };
    let mut lazy = false;
    let mut full = true;
    let timeout = openvaai_client::timeout::effective_timeout(args.ds.timeout());
    let probed = if standard {
        Err(openvaai_client::Failure::new(vix::OK, ""))
    } else {
        openvaai_client::probe(&raw_ds, timeout)
    };
    if standard {
        // The plugin's session line says which operations the server offers.
        let said = plugin_log();
        let line = said.iter().find(|l| l.contains("standard backend"));
        // LAZY clones are CLONE, full clones COPY (the probe's findings in that line).
        lazy = line.is_some_and(|l| l.contains("CLONE yes"));
        full = line.is_some_and(|l| l.contains("COPY yes"));
        r.step(
            "server",
            line.is_some(),
            line.map_or("the plugin did not describe the session".into(), |l| {
                l.trim_start_matches("openvaai: ").to_owned()
            }),
            None,
        );
    }
    match probed {
        Err(_) if standard => {}
        Ok(p) => {
            let c = &p.capabilities;
            lazy = c.reflink;
            let yes = |b: bool| if b { "yes" } else { "no" };
            r.step(
                "daemon",
                true,
                format!(
                    "openvaaid {} at {}",
                    p.server_version,
                    p.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            );
            r.step(
                "filesystem",
                true,
                format!(
                    "{}: reflink {}, fallocate {}, fiemap {}, unwritten extents {}, read-only {}",
                    c.fs_type,
                    yes(c.reflink),
                    yes(c.fallocate),
                    yes(c.fiemap),
                    yes(c.unwritten_extents),
                    yes(c.read_only)
                ),
                None,
            );
        }
        Err(failure) => r.step(
            "daemon",
            false,
            format!("{}: {}", super::vix_name(failure.vix), failure.detail),
            hint("StartSession", failure.vix, &failure.detail),
        ),
    }

    // 5. SupportStatus for each primitive, as ESXi asks before offloading.
    let mut all = true;
    for (p, name, fix) in [
        (
            prim::CLONEFILE,
            "CLONEFILE",
            "the export is read-only in openvaaid's configuration",
        ),
        (
            prim::RESVSPACE,
            "RESVSPACE",
            "the filesystem cannot reserve space (no fallocate, or, as on ZFS, one that \
             allocates nothing: reserve for the dataset with a refreservation instead), or \
             the export is read-only",
        ),
        (prim::STATX, "STATX", "the daemon refused the export"),
    ] {
        let st = plugin.support_status(id, p);
        let ok = st == vix::OK;
        all &= ok;
        let detail = match (p, ok) {
            (prim::CLONEFILE, true) if lazy && !full => "supported: lazy (copy-on-write) clones; full clones need COPY on the server".to_owned(),
            (prim::CLONEFILE, true) if lazy => "supported: full and lazy (copy-on-write) clones".to_owned(),
            (prim::CLONEFILE, true) => "supported: full clones; lazy clones need reflink (XFS -m reflink=1, Btrfs, ZFS 2.2+)".to_owned(),
            (_, true) => "supported".to_owned(),
            (_, false) => super::vix_name(st).to_owned(),
        };
        r.step(name, ok, detail, Some(fix));
    }
    plugin.end_session(id);
    verdict(r, all)
}

/// What to do about a daemon that is not running.
const START_IT: &str = "start openvaaid on the NAS: systemctl start openvaaid (journalctl -u \
                        openvaaid says why it stopped), or openvaaid --config FILE";

/// Whether openvaaid is plainly gone: the address and port of the access file refuse a
/// connection from here (a second at most). What was found, with what the export's lock says
/// of the daemon that wrote it (on the NAS itself); `None` when something answers or the answer is not known in
/// time, and StartSession says the rest.
fn gone(
    mount: &std::path::Path,
    ds: &openvaai_host::Datastore,
    a: &openvaai_proto::access::AccessFile,
) -> Option<String> {
    use std::net::{IpAddr, SocketAddr, TcpStream};
    let ip: IpAddr = match a.addresses.first() {
        Some(ip) => *ip,
        None => ds.remote_ip.as_deref()?.parse().ok()?,
    };
    let addr = SocketAddr::new(ip, a.port);
    match TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Ok(_) | Err(_) => return None,
    }
    // The lock says `pid N, listening on ...` (see openvaaid's access module).
    let lock = std::fs::read_to_string(
        mount
            .join(openvaai_proto::layout::PRIVATE_DIR)
            .join(LOCK_FILE),
    )
    .unwrap_or_default();
    let pid = lock
        .strip_prefix("pid ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    // Its pid means something only on the NAS itself: the datastore given as on loopback.
    let here = ds
        .remote_ip
        .as_deref()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .is_some_and(|a| a.is_loopback());
    Some(match pid.filter(|_| here) {
        Some(p) if rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH) => {
            format!(
                "openvaaid is not running: the export's lock names pid {}, which is gone, and \
                 {addr} (the access file's) refuses connections",
                p.as_raw_nonzero()
            )
        }
        Some(_) | None => format!(
            "openvaaid is not listening at {addr} (the access file's): connections are refused"
        ),
    })
}

/// The daemon's lock in the private directory.
const LOCK_FILE: &str = "lock";

/// Why the access file cannot be read, and the fix: a missing file means no daemon wrote it;
/// a permission error means it is there but root's (mode 0600, in a 0700 directory).
fn access_failure(e: &std::io::Error) -> (String, &'static str) {
    let fix = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the access file exists but only root can read it: run openvaai check as root \
             (ESXi's plugin reads it as root)"
        }
        _ => {
            "start openvaaid on the NAS with this export (openvaaid --export <export path>); \
             it writes the file at start"
        }
    };
    let what = match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!("{e} (it exists, but is root's)"),
        _ => e.to_string(),
    };
    (what, fix)
}

fn verdict(r: Report, supported: bool) -> Result<u8> {
    let word = if supported { "YES" } else { "NO" };
    if r.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "nas_vaai_supported": supported, "steps": r.steps })
            )?
        );
    } else {
        outln!("NAS VAAI Supported: {word}");
    }
    Ok(if supported {
        crate::exit::OK
    } else {
        crate::exit::FAILED
    })
}

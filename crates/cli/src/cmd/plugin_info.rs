//! `openvaai plugin-info PATH`: what disklib would find in a plugin library.

use crate::out::{out, outln};
use std::path::PathBuf;

use anyhow::Result;
use openvaai_abi::{prim, vix};

use openvaai_host::{self as loader, Plugin};

#[derive(clap::Args)]
pub struct Args {
    /// The plugin library, e.g. /usr/lib/vmware/nas_plugins/lib64/libopenvaai.so
    path: PathBuf,
    /// Also offer it a datastore, as ESXi does for each NFS mount: its local mount point.
    #[arg(long, short = 'd', value_name = "DIR")]
    datastore: Option<String>,
    /// The NAS address of that datastore (remoteIP). Default: 127.0.0.1, as for every
    /// command.
    #[arg(long, value_name = "IP", requires = "datastore")]
    nas_ip: Option<String>,
    /// The path the NAS exports for that datastore (remoteMountPoint). Default: the mount
    /// point itself, as for every command.
    #[arg(long, value_name = "PATH", requires = "datastore")]
    nas_path: Option<String>,
    /// The datastore's file-system type as ESXi names it.
    #[arg(long, default_value = "NFS", requires = "datastore")]
    fs_type: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// What StartSession said for the offered datastore.
#[derive(serde::Serialize)]
struct SessionReport {
    status: &'static str,
    code: u64,
    support: Vec<(&'static str, &'static str)>,
}

fn offer(plugin: &Plugin, args: &Args, local: &str) -> SessionReport {
    // The defaults of every other command (see `DatastoreArgs`): a shell on the NAS.
    let local = std::path::absolute(local)
        .ok()
        .and_then(|p| p.to_str().map(|s| s.trim_end_matches('/').to_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| local.to_owned());
    let ds = loader::Datastore {
        fs_type: args.fs_type.clone(),
        fs_version: 3,
        remote_ip: Some(args.nas_ip.clone().unwrap_or_else(|| "127.0.0.1".into())),
        remote_mount_point: Some(args.nas_path.clone().unwrap_or_else(|| local.clone())),
        local_mount_point: Some(local),
    };
    match plugin.start_session(&ds, None) {
        Ok(id) => {
            let support = [prim::CLONEFILE, prim::RESVSPACE, prim::STATX]
                .into_iter()
                .map(|p| {
                    let st = plugin.support_status(id, p);
                    (
                        prim::name(p).unwrap_or("?"),
                        vix::name(st).unwrap_or("unknown"),
                    )
                })
                .collect();
            plugin.end_session(id);
            SessionReport {
                status: "VIX_OK",
                code: 0,
                support,
            }
        }
        Err(err) => SessionReport {
            status: vix::name(err).unwrap_or("unknown VixError"),
            code: err,
            support: Vec::new(),
        },
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    path: String,
    tables: &'a [loader::TableInfo],
    init: &'static str,
    session: Option<SessionReport>,
    log: Vec<String>,
}

pub fn run(args: &Args) -> Result<u8> {
    let mut plugin = Plugin::load(&args.path)?;
    let init = plugin.init();
    let init_name = vix::name(init).unwrap_or("unknown VixError");
    let session = match (&args.datastore, init) {
        (Some(local), vix::OK) => Some(offer(&plugin, args, local)),
        _ => None,
    };
    let log: Vec<String> = loader::take_log().into_iter().map(|l| l.text).collect();
    let failed = init != vix::OK || session.as_ref().is_some_and(|s| s.code != vix::OK);
    if args.json {
        let report = Report {
            path: plugin.path().display().to_string(),
            tables: plugin.tables(),
            init: init_name,
            session,
            log,
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("plugin    {}", plugin.path().display());
        outln!(
            "entry     {} ({} table(s))",
            openvaai_abi::ENTRYPOINT_NAME,
            plugin.tables().len()
        );
        for t in plugin.tables() {
            outln!(
                "table {}   name {:?}, type {} ({}), interface {}.{}",
                t.index,
                t.name.as_deref().unwrap_or("(none)"),
                t.type_name,
                t.plugin_type,
                t.major_version,
                t.minor_version
            );
            let yes = |b: bool| if b { "yes" } else { "NO" };
            out!("          Init {}, Done {}", yes(t.init), yes(t.done));
            if let (Some(s), Some(e), Some(x), Some(p)) = (
                t.start_session,
                t.end_session,
                t.exec_primitive,
                t.support_status,
            ) {
                out!(
                    ", StartSession {}, EndSession {}, ExecPrimitive {}, SupportStatus {}",
                    yes(s),
                    yes(e),
                    yes(x),
                    yes(p)
                );
            }
            outln!();
        }
        outln!("init      {init_name} ({init})");
        if let Some(s) = &session {
            outln!("session   StartSession: {} ({})", s.status, s.code);
            for (p, st) in &s.support {
                outln!("          SupportStatus {p}: {st}");
            }
        }
        for line in &log {
            outln!("log       {line}");
        }
    }
    Ok(if failed {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    })
}

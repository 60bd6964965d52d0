//! `cargo xtask vib`: the ESXi package, from open tools only.
//!
//! A VIB is an `ar` archive of three members, in this order: `descriptor.xml` (the package's
//! metadata), `sig.pkcs7` (empty: unsigned, acceptance level community) and the payload, a
//! gzip tar named like the descriptor's `<payload name>`. The offline bundle is the zip depot
//! `esxcli software vib install -d` and `esxcli software component apply -d` read:
//! `index.xml` → `vendor-index.xml` → `metadata.zip` (`vmware.xml`, `bulletins/`, `vibs/`)
//! and the VIB under `vib20/`. There is one VIB and one bundle per ESXi major release (see
//! [`Flavour`]).

mod bundle;
mod check;
mod descriptor;
mod payload;
#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::pkg::{self, xml_text};

pub use bundle::build_bundle;
pub use check::{check_bundle, unpack_vib};
use descriptor::{descriptor, PayloadSums};
use payload::payload_files;

pub const NAME: &str = "openvaai";
pub const VENDOR: &str = "openvaai";
/// The payload's name, which is also its ar member name. At most 8 characters (ESXi keeps
/// payloads under that name in the bootbank), and ours alone.
pub const PAYLOAD: &str = "openvaai";
pub const PLUGIN_PATH: &str = "usr/lib/vmware/nas_plugins/lib64/libopenvaai.so";
pub const FIREWALL_PATH: &str = "etc/vmware/firewall/openvaai.xml";
/// One VIB per ESXi major release: the plugin is the same (glibc 2.17 userworlds), the
/// payload checksums are not. ESXi 8.0 refuses a payload without a `sha-256`
/// `verify-process="gunzip"` checksum, while earlier releases fail hand-built `tgz` payloads
/// that carry one ("Calculated digest at EOF does not match"), so the ESXi 7.0 VIB has only
/// the `sha-256` of the gzip and the `sha-1` of the tar, like VIBs from VMware's old VIB
/// Author. Each VIB depends on its release (`esx-version`) and has its own version, the
/// package version plus `.700` or `.800` as VMware's partner VIBs do, so an ESXi 8.0 VIB
/// updates an ESXi 7.0 one.
#[derive(Debug)]
pub struct Flavour {
    /// `esx7`, `esx8`: for messages and docs.
    pub tag: &'static str,
    /// Appended to the package version: `0.1.0-1` becomes `0.1.0-1.800`.
    pub release: &'static str,
    /// `esx-version >= esx_min` and `esx-version << esx_below`.
    pub esx_min: &'static str,
    pub esx_below: &'static str,
    /// The software platform version pattern of the bulletin and the depot index.
    pub platform: &'static str,
    /// Whether the payload carries the SHA-256 of the gunzipped tar.
    pub gunzip_sha256: bool,
}

pub const ESX7: Flavour = Flavour {
    tag: "esx7",
    release: "700",
    esx_min: "7.0.0",
    esx_below: "8.0.0",
    platform: "7.*",
    gunzip_sha256: false,
};

pub const ESX8: Flavour = Flavour {
    tag: "esx8",
    release: "800",
    esx_min: "8.0.0",
    esx_below: "9.0.0",
    platform: "8.*",
    gunzip_sha256: true,
};

pub const FLAVOURS: [&Flavour; 2] = [&ESX7, &ESX8];

impl Flavour {
    /// The VIB version: the package version and the release, `0.1.0-1.800`.
    pub fn version(&self, package_version: &str) -> String {
        format!("{package_version}.{}", self.release)
    }
}

const SUMMARY: &str = "openvaai: VAAI-NAS offloads to Linux NFS servers running openvaaid";
const DESCRIPTION: &str = "The openvaai NAS plugin for disklib (libopenvaai.so): offloads \
    full and copy-on-write file clones, space reservation for thick disks and extended file \
    statistics on NFS datastores to the openvaaid daemon on the NAS (XFS, Btrfs, ZFS, ext4), \
    over ONC RPC and TLS on TCP port 7443. Includes a firewall rule opening that port \
    outbound. Datastores whose export has no openvaaid access file are declined at once.";

/// The VIB's ID as ESXi shows it: `vendor_type_name_version`.
pub fn vib_id(version: &str) -> String {
    format!("{VENDOR}_bootbank_{NAME}_{version}")
}

pub fn vib_file_name(version: &str) -> String {
    format!("{NAME}-{version}.vib")
}

pub fn bundle_file_name(version: &str) -> String {
    format!("{NAME}-{version}-offline-bundle.zip")
}

/// A VIB and the parts the bundle needs again.
pub struct Vib {
    pub flavour: &'static Flavour,
    pub version: String,
    pub date: u64,
    pub descriptor: String,
    pub bytes: Vec<u8>,
}

/// Packages `plugin` (the bytes of libopenvaai.so) as the VIB for `flavour`, version
/// `package_version` plus the flavour's release. Deterministic: the same inputs give the same
/// bytes.
pub fn build_vib(
    plugin: &[u8],
    flavour: &'static Flavour,
    package_version: &str,
    date: u64,
) -> Result<Vib> {
    let version = &flavour.version(package_version);
    let files = payload_files(plugin);
    let tar = pkg::tar(&pkg::with_parents(&files, ""), date)?;
    let tgz = pkg::gzip(&tar, date)?;
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    let descriptor = descriptor(flavour, version, date, &paths, &PayloadSums::of(&tgz, &tar));
    let bytes = archive(descriptor.as_bytes(), &tgz, date)?;
    Ok(Vib {
        flavour,
        version: version.to_owned(),
        date,
        descriptor,
        bytes,
    })
}

/// The VIB's `ar` archive: `descriptor.xml`, an empty `sig.pkcs7` and the payload, in that
/// order.
pub fn archive(descriptor: &[u8], payload: &[u8], date: u64) -> Result<Vec<u8>> {
    crate::ar::write(
        &[
            crate::ar::Member {
                name: "descriptor.xml",
                data: descriptor,
            },
            crate::ar::Member {
                name: "sig.pkcs7",
                data: b"",
            },
            crate::ar::Member {
                name: PAYLOAD,
                data: payload,
            },
        ],
        date,
    )
}

/// Builds the ESXi plugin, packages it without debug sections, writes the VIB and the bundle
/// to `target/vib/`, and checks both (including the packaged plugin's glibc versions).
pub fn run() -> Result<()> {
    let package_version = pkg::package_version()?;
    let so = crate::esxi::build()?;
    let out = pkg::out_dir("vib")?;
    let plugin = pkg::strip_debug(&so, &out.join("stripped"))?;
    let date = pkg::source_date_epoch();
    let mut written = Vec::new();
    for flavour in FLAVOURS {
        let vib = build_vib(&plugin, flavour, &package_version, date)?;
        let bundle = build_bundle(&vib)?;
        let vib_path = out.join(vib_file_name(&vib.version));
        let bundle_path = out.join(bundle_file_name(&vib.version));
        std::fs::write(&vib_path, &vib.bytes)?;
        std::fs::write(&bundle_path, &bundle)?;
        println!(
            "{} ({}): for ESXi >= {} and < {}",
            vib.version, flavour.tag, flavour.esx_min, flavour.esx_below
        );
        written.push(vib_path);
        written.push(bundle_path);
    }
    check_files(&written)
}

/// `cargo xtask check-vib FILE...`: takes VIBs and bundles apart, checks every size, checksum
/// and path, and that the packaged plugin needs no glibc newer than 2.17.
pub fn check_files<P: AsRef<Path>>(files: &[P]) -> Result<()> {
    for f in files {
        let f = f.as_ref();
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let unpacked = if bytes.starts_with(crate::ar::MAGIC) {
            unpack_vib(&bytes)
        } else {
            check_bundle(&bytes)
        }
        .with_context(|| format!("checking {}", f.display()))?;
        let plugin = unpacked
            .files
            .iter()
            .find(|p| p.path == PLUGIN_PATH)
            .with_context(|| format!("{}: no {PLUGIN_PATH}", f.display()))?;
        ensure!(
            plugin.mode == 0o755,
            "{PLUGIN_PATH} has mode {:o}",
            plugin.mode
        );
        let dir = pkg::out_dir("vib/check")?;
        let so = dir.join("libopenvaai.so");
        std::fs::write(&so, &plugin.data)?;
        let (ma, mi, p) = crate::glibc::check(&so)
            .with_context(|| format!("the plugin packaged in {}", f.display()))?;
        println!(
            "{}: {} {} ({} bytes), {} payload files, packaged plugin needs at most GLIBC_{ma}.{mi}.{p}",
            f.display(),
            xml_text(&unpacked.descriptor, "version").unwrap_or_default(),
            if bytes.starts_with(crate::ar::MAGIC) { "VIB" } else { "offline bundle" },
            bytes.len(),
            unpacked.files.len(),
        );
    }
    Ok(())
}

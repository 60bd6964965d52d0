//! `cargo xtask oci`: the daemon as a container image, for hosts that run containers next to
//! (or as) the NFS server: TrueNAS SCALE apps, any docker or podman host.
//!
//! One layer: the portable openvaaid and openvaai (glibc 2.17 symbols at most), the plugin
//! for `openvaai check`, their man pages and completions, the default configuration, and the
//! few shared libraries they need (glibc's and libgcc_s, copied from the build machine,
//! found with `ldd`): no shell, no package manager. It runs as root with host networking and
//! the exports bind-mounted at the same paths (packaging/compose.yaml). Written directly:
//! an OCI image layout in `target/oci/openvaai/` and, for `docker load` / `podman load`,
//! `target/oci/openvaai-<version>.tar` (the layout plus Docker's `manifest.json`).

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::deb::{self, CONFFILE};
use crate::pkg::{self, Entry};

pub const IMAGE: &str = "openvaai";

/// The shared libraries (and the dynamic loader) `binaries` load, by `ldd`, at their paths.
fn runtime_libraries(binaries: &[&Path]) -> Result<Vec<Entry>> {
    let mut paths = std::collections::BTreeSet::new();
    for b in binaries {
        let out = Command::new("ldd").arg(b).output().context("running ldd")?;
        ensure!(
            out.status.success(),
            "ldd {}: {}",
            b.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line
                    .split_whitespace()
                    .next()
                    .filter(|p| p.starts_with('/')),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                paths.insert(p.to_owned());
            }
        }
    }
    ensure!(
        paths.iter().any(|p| p.contains("ld-linux")),
        "ldd named no dynamic loader"
    );
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).with_context(|| format!("reading {p}"))?;
            Ok(Entry::file(&p[1..], 0o755, data))
        })
        .collect()
}

/// Every file of the image's one layer.
pub fn layer_files(i: &deb::Inputs, libs: Vec<Entry>) -> Vec<Entry> {
    let mut files = vec![
        Entry::file("usr/bin/openvaaid", 0o755, i.openvaaid.clone()),
        Entry::file("usr/bin/openvaai", 0o755, i.openvaai.clone()),
        Entry::file("usr/lib/openvaai/libopenvaai.so", 0o644, i.plugin.clone()),
        Entry::file(&CONFFILE[1..], 0o644, deb::DEFAULT_CONFIG),
    ];
    files.extend(i.manual.iter().cloned());
    files.extend(libs);
    files
}

/// The layer tar: the files, their parents, and `tmp/` (1777) and `var/lib/openvaaid/` (0700).
pub fn layer_tar(files: &[Entry], mtime: u64) -> Result<Vec<u8>> {
    let mut entries = pkg::with_parents(files, "");
    for (path, mode) in [
        ("tmp/", 0o1777),
        ("var/", 0o755),
        ("var/lib/", 0o755),
        ("var/lib/openvaaid/", 0o700),
    ] {
        entries.retain(|e| e.path != path);
        entries.push(Entry {
            path: path.into(),
            mode,
            data: None,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    pkg::tar(&entries, mtime)
}

/// A content-addressed blob.
pub struct Blob {
    pub media_type: &'static str,
    pub data: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        format!("sha256:{}", pkg::sha256_hex(&self.data))
    }
    pub fn path(&self) -> String {
        format!("blobs/sha256/{}", pkg::sha256_hex(&self.data))
    }
    fn descriptor(&self) -> String {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            self.media_type,
            self.digest(),
            self.data.len()
        )
    }
}

/// The image: `(files of the layout, in order)`, each `(path, bytes)`.
pub fn image(layer: &[u8], version: &str, mtime: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let gz = Blob {
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        data: pkg::gzip(layer, mtime)?,
    };
    let created = pkg::iso8601(mtime);
    let config = Blob {
        media_type: "application/vnd.oci.image.config.v1+json",
        data: format!(
            r#"{{"created":"{created}","architecture":"amd64","os":"linux","config":{{"User":"0:0","Env":["PATH=/usr/bin","RUST_LOG=info"],"Entrypoint":["/usr/bin/openvaaid"],"Cmd":["--config","{CONFFILE}"],"Volumes":{{"/var/lib/openvaaid":{{}}}},"Labels":{{"org.opencontainers.image.title":"openvaai","org.opencontainers.image.version":"{version}","org.opencontainers.image.licenses":"Apache-2.0"}}}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}},"history":[{{"created":"{created}","created_by":"cargo xtask oci"}}]}}"#,
            pkg::sha256_hex(layer)
        )
        .into_bytes(),
    };
    let manifest = Blob {
        media_type: "application/vnd.oci.image.manifest.v1+json",
        data: format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
            config.descriptor(),
            gz.descriptor()
        )
        .into_bytes(),
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{version}","io.containerd.image.name":"{IMAGE}:{version}"}}}}]}}"#,
        manifest.media_type,
        manifest.digest(),
        manifest.data.len()
    );
    let docker = format!(
        r#"[{{"Config":"{}","RepoTags":["{IMAGE}:{version}"],"Layers":["{}"]}}]"#,
        config.path(),
        gz.path()
    );
    Ok(vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index.into_bytes()),
        ("manifest.json".into(), docker.into_bytes()),
        (config.path(), config.data),
        (manifest.path(), manifest.data),
        (gz.path(), gz.data),
    ])
}

/// `cargo xtask oci`.
pub fn run() -> Result<()> {
    let version = pkg::package_version()?;
    let portable = crate::portable::build()?;
    let out = pkg::out_dir("oci")?;
    let inputs = deb::inputs(
        &portable,
        crate::manual::Layout::Debian,
        &out.join("stripped"),
    )?;
    let libs = runtime_libraries(&portable.binaries())?;
    let mtime = pkg::source_date_epoch();
    let layer = layer_tar(&layer_files(&inputs, libs), mtime)?;
    let files = image(&layer, &version, mtime)?;
    let layout = out.join(IMAGE);
    if layout.exists() {
        std::fs::remove_dir_all(&layout)?;
    }
    let mut tar_entries = Vec::new();
    for (path, data) in &files {
        let p = layout.join(path);
        std::fs::create_dir_all(p.parent().context("parent")?)?;
        std::fs::write(&p, data)?;
        tar_entries.push(Entry::file(path, 0o644, data.clone()));
    }
    let tarball = out.join(format!("{IMAGE}-{version}.tar"));
    std::fs::write(
        &tarball,
        pkg::tar(&pkg::with_parents(&tar_entries, ""), mtime)?,
    )?;
    println!(
        "{}: OCI layout ({} MiB layer); {}: for docker/podman load, as {IMAGE}:{version}",
        layout.display(),
        files[5].1.len() >> 20,
        tarball.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_content_addressed_and_names_the_entrypoint() {
        let i = crate::deb::tests::inputs();
        let layer = layer_tar(&layer_files(&i, vec![]), 1).unwrap();
        let files = image(&layer, "0.1.0-1", 1).unwrap();
        for (path, data) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(hex, pkg::sha256_hex(data));
            }
        }
        let text = |name: &str| {
            String::from_utf8(files.iter().find(|f| f.0 == name).unwrap().1.clone()).unwrap()
        };
        assert!(text("index.json").contains("openvaai:0.1.0-1"));
        assert!(text("manifest.json").contains(r#""RepoTags":["openvaai:0.1.0-1"]"#));
        let config = files
            .iter()
            .find(|f| String::from_utf8_lossy(&f.1).contains("diff_ids"))
            .unwrap();
        let config = String::from_utf8_lossy(&config.1);
        assert!(config.contains(&format!("sha256:{}", pkg::sha256_hex(&layer))));
        assert!(config.contains(r#""Entrypoint":["/usr/bin/openvaaid"]"#));
        let mut a = tar::Archive::new(layer.as_slice());
        let modes: Vec<(String, u32)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert!(modes.contains(&("usr/bin/openvaaid".into(), 0o755)));
        assert!(
            modes.contains(&("tmp/".into(), 0o1777)) || modes.contains(&("tmp".into(), 0o1777))
        );
        assert!(modes
            .iter()
            .any(|m| m.0.starts_with("var/lib/openvaaid") && m.1 == 0o700));
    }
}

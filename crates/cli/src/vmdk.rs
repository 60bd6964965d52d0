//! VMDK descriptors: enough of the text format to clone a disk whose data lives in flat
//! extents, as `vmkfstools -i` does on NFS, and to refuse clearly what is not that.
//!
//! ```text
//! # Disk DescriptorFile
//! version=1
//! CID=fffffffe
//! parentCID=ffffffff
//! createType="vmfs"
//!
//! # Extent description
//! RW 20971520 VMFS "disk-flat.vmdk"
//!
//! # The Disk Data Base
//! ddb.uuid = "60 00 C2 9a ..."
//! ddb.longContentID = "3f0a...e3"
//! ```
//! Every line other than those this module rewrites is kept as it is, in order.

use anyhow::{bail, Context, Result};

/// A descriptor is a small text file; anything larger is not one.
pub const MAX_DESCRIPTOR: u64 = 64 << 10;

/// One extent line: `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// Index of the line in the descriptor.
    pub line: usize,
    pub access: String,
    pub sectors: u64,
    pub kind: String,
    pub file: String,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    lines: Vec<String>,
    pub extents: Vec<Extent>,
}

/// Extent types whose data is a plain byte-for-byte file: these the NAS can clone.
const FLAT_KINDS: [&str; 2] = ["FLAT", "VMFS"];

fn key_value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once('=')?;
    Some((k.trim(), v.trim().trim_matches('"')))
}

impl Descriptor {
    /// Parses a descriptor and refuses disks it cannot clone by cloning flat files.
    pub fn parse(text: &str) -> Result<Descriptor> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if !lines
            .iter()
            .any(|l| l.trim().eq_ignore_ascii_case("# Disk DescriptorFile"))
        {
            bail!("not a VMDK descriptor (no \"# Disk DescriptorFile\" line); a binary sparse VMDK cannot be cloned by openvaai");
        }
        let mut extents = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            let Some(access) = ["RW ", "RDONLY ", "NOACCESS "]
                .iter()
                .find(|a| t.starts_with(*a))
            else {
                continue;
            };
            extents.push(parse_extent(i, access.trim(), &t[access.len()..])?);
        }
        if extents.is_empty() {
            bail!("the descriptor lists no extent");
        }
        for e in &extents {
            if !FLAT_KINDS.contains(&e.kind.as_str()) {
                bail!(
                    "extent {:?} is of type {}: only flat extents (VMFS, FLAT) are cloned by the NAS; \
                     snapshot deltas (VMFSSPARSE, SESPARSE), hosted sparse disks and raw device \
                     mappings are not",
                    e.file,
                    e.kind
                );
            }
        }
        let d = Descriptor { lines, extents };
        if let Some(parent) = d.get("parentFileNameHint") {
            bail!("the disk is a delta of {parent:?}: clone its parent chain with ESXi, not with openvaai");
        }
        Ok(d)
    }

    /// The value of `key=value` at the top level (not a `ddb.` entry unless asked).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .filter_map(|l| key_value(l))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn set(&mut self, key: &str, value: &str, quoted: bool) {
        let v = if quoted {
            format!("\"{value}\"")
        } else {
            value.to_owned()
        };
        for l in &mut self.lines {
            if key_value(l).is_some_and(|(k, _)| k == key) {
                let spaced = l.contains(" = ");
                *l = if spaced {
                    format!("{key} = {v}")
                } else {
                    format!("{key}={v}")
                };
                return;
            }
        }
    }

    /// The clone's descriptor: extents renamed with `name(i)`, a new content ID (CID and
    /// `ddb.longContentID`), a new `ddb.uuid`; `parentCID` and everything else kept.
    pub fn for_clone(
        &self,
        name: impl Fn(usize) -> String,
        random: &mut impl FnMut() -> u64,
    ) -> Descriptor {
        let mut d = self.clone();
        for (i, e) in self.extents.iter().enumerate() {
            let mut line = format!("{} {} {} \"{}\"", e.access, e.sectors, e.kind, name(i));
            if let Some(off) = e.offset {
                line.push_str(&format!(" {off}"));
            }
            d.lines[e.line] = line;
            d.extents[i].file = name(i);
        }
        let long = format!("{:016x}{:016x}", random(), random());
        // The CID is the low 32 bits of the long content ID, as ESXi writes them.
        let cid = &long[24..];
        d.set("CID", cid, false);
        if d.get("ddb.longContentID").is_some() {
            d.set("ddb.longContentID", &long, true);
        }
        if d.get("ddb.uuid").is_some() {
            let bytes: Vec<String> = format!("{:016x}{:016x}", random(), random())
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let uuid = format!("{}-{}", bytes[..8].join(" "), bytes[8..].join(" "));
            d.set("ddb.uuid", &uuid, true);
        }
        d
    }

    /// Says whether the disk is thin (`ddb.thinProvisioned = "1"`) to match its extents: the
    /// key is set for a thin disk (added to the disk database if absent) and removed for a
    /// thick one, as ESXi writes them.
    pub fn set_thin(&mut self, thin: bool) {
        const KEY: &str = "ddb.thinProvisioned";
        if !thin {
            self.remove(KEY);
            return;
        }
        if self.get(KEY).is_some() {
            self.set(KEY, "1", true);
            return;
        }
        let at = self
            .lines
            .iter()
            .rposition(|l| l.trim_start().starts_with("ddb."))
            .map_or(self.lines.len(), |i| i + 1);
        self.insert_line(at, format!("{KEY} = \"1\""));
    }

    /// Drops every line setting `key`.
    fn remove(&mut self, key: &str) {
        while let Some(i) = self
            .lines
            .iter()
            .position(|l| key_value(l).is_some_and(|(k, _)| k == key))
        {
            self.lines.remove(i);
            for e in &mut self.extents {
                if e.line > i {
                    e.line -= 1;
                }
            }
        }
    }

    /// Inserts a line before index `at`, keeping the extents' line numbers right.
    fn insert_line(&mut self, at: usize, line: String) {
        self.lines.insert(at, line);
        for e in &mut self.extents {
            if e.line >= at {
                e.line += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

fn parse_extent(line: usize, access: &str, rest: &str) -> Result<Extent> {
    let what = || format!("extent line {}: {rest:?}", line + 1);
    let mut parts = rest.trim().splitn(3, ' ');
    let sectors: u64 = parts.next().unwrap_or("").parse().with_context(what)?;
    let kind = parts.next().with_context(what)?.to_owned();
    let tail = parts.next().unwrap_or("").trim();
    let (file, after) = if kind == "ZERO" {
        (String::new(), "")
    } else {
        let inner = tail.strip_prefix('"').with_context(what)?;
        let end = inner.find('"').with_context(what)?;
        (inner[..end].to_owned(), inner[end + 1..].trim())
    };
    let offset = match after {
        "" => None,
        o => Some(o.parse().with_context(what)?),
    };
    if file.contains('/') {
        bail!(
            "{}: extent files outside the descriptor's directory are not supported",
            what()
        );
    }
    Ok(Extent {
        line,
        access: access.to_owned(),
        sectors,
        kind,
        file,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const THICK: &str = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=9a8b7c6d\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW 83886080 VMFS \"web01-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"5221\"\nddb.longContentID = \"0f1e2d3c4b5a69788796a5b49a8b7c6d\"\nddb.uuid = \"60 00 C2 9a 3b 2c 1d 0e-4f 5e 6d 7c 8b 9a a9 b8\"\nddb.virtualHWVersion = \"19\"\n";

    const SPLIT: &str = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\n\n# Extent description\nRW 4192256 FLAT \"db-f001.vmdk\" 0\nRW 4192256 FLAT \"db-f002.vmdk\" 0\nRW 2048 FLAT \"db-f003.vmdk\" 0\n\nddb.adapterType = \"ide\"\n";

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0x1111_2222_3333_4444u64;
        move || {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
            n
        }
    }

    #[test]
    fn a_thick_vmfs_disk_round_trips_with_new_ids() {
        let d = Descriptor::parse(THICK).unwrap();
        assert_eq!(d.extents.len(), 1);
        assert_eq!(d.extents[0].sectors, 83886080);
        assert_eq!(d.extents[0].file, "web01-flat.vmdk");
        assert_eq!(
            Descriptor::parse(&d.render()).unwrap(),
            d,
            "render is lossless"
        );

        let c = d.for_clone(|_| "web02-flat.vmdk".into(), &mut counter());
        let text = c.render();
        assert!(
            text.contains("RW 83886080 VMFS \"web02-flat.vmdk\"\n"),
            "{text}"
        );
        assert!(text.contains("parentCID=ffffffff\n"), "parent CID kept");
        assert!(
            text.contains("ddb.adapterType = \"lsilogic\"\n"),
            "the rest kept"
        );
        let cid = c.get("CID").unwrap();
        assert_ne!(cid, "9a8b7c6d");
        assert_eq!(cid.len(), 8);
        let long = c.get("ddb.longContentID").unwrap();
        assert_eq!(long.len(), 32);
        assert!(
            long.ends_with(cid),
            "CID is the low 32 bits of the long content ID"
        );
        assert_ne!(c.get("ddb.uuid"), d.get("ddb.uuid"));
        assert_eq!(
            c.get("ddb.uuid").unwrap().len(),
            d.get("ddb.uuid").unwrap().len()
        );
        assert_eq!(text.lines().count(), THICK.lines().count());
    }

    #[test]
    fn thin_provisioning_follows_what_was_made() {
        let thin_text = THICK.replace(
            "ddb.virtualHWVersion",
            "ddb.thinProvisioned = \"1\"\nddb.virtualHWVersion",
        );
        let mut d = Descriptor::parse(&thin_text).unwrap();
        d.set_thin(false);
        assert_eq!(d.get("ddb.thinProvisioned"), None);
        assert_eq!(Descriptor::parse(&d.render()).unwrap(), d);
        d.set_thin(true);
        assert_eq!(d.get("ddb.thinProvisioned"), Some("1"));
        assert!(d.render().contains("ddb.thinProvisioned = \"1\"\n"));
        assert_eq!(Descriptor::parse(&d.render()).unwrap(), d);
        let mut thick = Descriptor::parse(THICK).unwrap();
        thick.set_thin(false);
        assert_eq!(thick.render(), THICK, "a thick descriptor stays as it was");
    }

    #[test]
    fn a_split_flat_disk_keeps_offsets_and_renames_each_extent() {
        let d = Descriptor::parse(SPLIT).unwrap();
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[2].offset, Some(0));
        let c = d.for_clone(|i| format!("copy-f{:03}.vmdk", i + 1), &mut counter());
        let text = c.render();
        assert!(
            text.contains("RW 4192256 FLAT \"copy-f002.vmdk\" 0\n"),
            "{text}"
        );
        assert!(
            !text.contains("ddb.longContentID"),
            "not added where absent"
        );
    }

    #[test]
    fn what_cannot_be_cloned_is_refused_with_a_reason() {
        let sparse = THICK.replace(
            "VMFS \"web01-flat.vmdk\"",
            "VMFSSPARSE \"web01-delta.vmdk\"",
        );
        let e = Descriptor::parse(&sparse).unwrap_err().to_string();
        assert!(e.contains("VMFSSPARSE") && e.contains("snapshot"), "{e}");
        let se = THICK.replace(
            "VMFS \"web01-flat.vmdk\"",
            "SESPARSE \"web01-sesparse.vmdk\"",
        );
        assert!(Descriptor::parse(&se)
            .unwrap_err()
            .to_string()
            .contains("SESPARSE"));
        let delta = format!("{THICK}parentFileNameHint=\"base.vmdk\"\n");
        assert!(Descriptor::parse(&delta)
            .unwrap_err()
            .to_string()
            .contains("delta"));
        assert!(Descriptor::parse("KDMV binary")
            .unwrap_err()
            .to_string()
            .contains("not a VMDK descriptor"));
        let no_extent = "# Disk DescriptorFile\nversion=1\n";
        assert!(Descriptor::parse(no_extent)
            .unwrap_err()
            .to_string()
            .contains("no extent"));
        let outside = THICK.replace("\"web01-flat.vmdk\"", "\"../x/web01-flat.vmdk\"");
        assert!(Descriptor::parse(&outside).is_err());
    }
}

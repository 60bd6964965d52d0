//! `descriptor.xml`: the VIB's metadata, written and read back.

use anyhow::{ensure, Context, Result};

use crate::pkg::{self, xml_attr, xml_escape, xml_text};

use super::{Flavour, DESCRIPTION, NAME, PAYLOAD, SUMMARY, VENDOR};

/// The payload's facts the descriptor records.
pub struct PayloadSums {
    /// The gzip's size and SHA-256.
    pub size: usize,
    pub sha256: String,
    /// SHA-256 and SHA-1 of the tar inside (`verify-process="gunzip"`).
    pub tar_sha256: String,
    pub tar_sha1: String,
}

impl PayloadSums {
    pub fn of(tgz: &[u8], tar: &[u8]) -> PayloadSums {
        PayloadSums {
            size: tgz.len(),
            sha256: pkg::sha256_hex(tgz),
            tar_sha256: pkg::sha256_hex(tar),
            tar_sha1: pkg::sha1_hex(tar),
        }
    }
}

pub fn descriptor(
    f: &Flavour,
    version: &str,
    date: u64,
    files: &[&str],
    p: &PayloadSums,
) -> String {
    let gunzip_sha256 = if f.gunzip_sha256 {
        format!(
            "\n      <checksum checksum-type=\"sha-256\" verify-process=\"gunzip\">{}</checksum>",
            p.tar_sha256
        )
    } else {
        String::new()
    };
    let file_list: String = files
        .iter()
        .map(|f| format!("    <file>{}</file>\n", xml_escape(f)))
        .collect();
    format!(
        r#"<vib version="5.0">
  <type>bootbank</type>
  <name>{NAME}</name>
  <version>{version}</version>
  <vendor>{VENDOR}</vendor>
  <summary>{summary}</summary>
  <description>{description}</description>
  <release-date>{date}</release-date>
  <urls/>
  <relationships>
    <depends>
      <constraint name="esx-version" relation="&gt;=" version="{esx_min}"/>
      <constraint name="esx-version" relation="&lt;&lt;" version="{esx_below}"/>
    </depends>
    <conflicts/>
    <replaces/>
    <provides/>
    <compatibleWith/>
  </relationships>
  <software-tags/>
  <system-requires>
    <maintenance-mode>false</maintenance-mode>
  </system-requires>
  <file-list>
{file_list}  </file-list>
  <acceptance-level>community</acceptance-level>
  <live-install-allowed>true</live-install-allowed>
  <live-remove-allowed>true</live-remove-allowed>
  <cimom-restart>false</cimom-restart>
  <stateless-ready>true</stateless-ready>
  <overlay>false</overlay>
  <payloads>
    <payload name="{PAYLOAD}" type="tgz" size="{size}">
      <checksum checksum-type="sha-256">{sha256}</checksum>{gunzip_sha256}
      <checksum checksum-type="sha-1" verify-process="gunzip">{tar_sha1}</checksum>
    </payload>
  </payloads>
</vib>
"#,
        summary = xml_escape(SUMMARY),
        description = xml_escape(DESCRIPTION),
        date = pkg::iso8601(date),
        esx_min = f.esx_min,
        esx_below = f.esx_below,
        size = p.size,
        sha256 = p.sha256,
        tar_sha1 = p.tar_sha1,
    )
}

/// The opening tag of the (single) `<payload ...>` element.
pub fn payload_tag(descriptor: &str) -> Result<&str> {
    let payloads = xml_text(descriptor, "payloads").context("no payloads")?;
    ensure!(
        payloads.matches("<payload ").count() == 1,
        "expected exactly one payload"
    );
    let start = payloads.find("<payload ").context("no payload")?;
    let end = start + payloads[start..].find('>').context("bad payload tag")?;
    Ok(&payloads[start..end])
}

/// `(checksum-type, verify-process, value)` for each `<checksum>` of the payload.
pub fn checksums(descriptor: &str) -> Result<Vec<(String, Option<String>, String)>> {
    let payloads = xml_text(descriptor, "payloads").context("no payloads")?;
    let mut out = Vec::new();
    for part in payloads.split("<checksum ").skip(1) {
        let (tag, rest) = part.split_once('>').context("bad checksum tag")?;
        let value = rest.split("</checksum>").next().unwrap_or_default();
        out.push((
            xml_attr(&format!(" {tag}"), "checksum-type")
                .context("checksum without type")?
                .to_owned(),
            xml_attr(&format!(" {tag}"), "verify-process").map(str::to_owned),
            value.trim().to_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vib::tests::vib;

    #[test]
    fn descriptor_fields() {
        let v = vib();
        let d = &v.descriptor;
        assert!(d.starts_with("<vib version=\"5.0\">"));
        for (tag, want) in [
            ("type", "bootbank"),
            ("name", "openvaai"),
            ("version", "0.1.0-1.800"),
            ("vendor", "openvaai"),
            ("release-date", "2026-01-01T00:00:00+00:00"),
            ("acceptance-level", "community"),
            ("live-install-allowed", "true"),
            ("live-remove-allowed", "true"),
            ("stateless-ready", "true"),
            ("cimom-restart", "false"),
            ("overlay", "false"),
            ("maintenance-mode", "false"),
        ] {
            assert_eq!(xml_text(d, tag), Some(want), "<{tag}>");
        }
        assert!(!xml_text(d, "summary").unwrap().is_empty());
        assert!(xml_text(d, "description").unwrap().contains("7443"));
        let depends = xml_text(d, "depends").unwrap();
        assert!(depends
            .contains(r#"<constraint name="esx-version" relation="&gt;=" version="8.0.0"/>"#));
        assert!(depends
            .contains(r#"<constraint name="esx-version" relation="&lt;&lt;" version="9.0.0"/>"#));
        assert_eq!(
            xml_text(d, "file-list").unwrap(),
            "\n    <file>etc/vmware/firewall/openvaai.xml</file>\n    \
             <file>usr/lib/vmware/nas_plugins/lib64/libopenvaai.so</file>\n  "
        );
        // Size and checksums, computed here independently of unpack_vib.
        let m = crate::ar::read(&v.bytes).unwrap();
        let tgz = &m[2].data;
        let tar = pkg::gunzip(tgz).unwrap();
        let tag = payload_tag(d).unwrap();
        assert_eq!(
            tag,
            format!(
                "<payload name=\"openvaai\" type=\"tgz\" size=\"{}\"",
                tgz.len()
            )
        );
        let hex = |alg, data: &[u8]| -> String {
            ring::digest::digest(alg, data)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let sha256 = hex(&ring::digest::SHA256, tgz);
        let tar_sha256 = hex(&ring::digest::SHA256, &tar);
        let tar_sha1 = hex(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &tar);
        assert!(d.contains(&format!(
            "<checksum checksum-type=\"sha-256\">{sha256}</checksum>"
        )));
        assert!(d.contains(&format!(
            "<checksum checksum-type=\"sha-256\" verify-process=\"gunzip\">{tar_sha256}</checksum>"
        )));
        assert!(d.contains(&format!(
            "<checksum checksum-type=\"sha-1\" verify-process=\"gunzip\">{tar_sha1}</checksum>"
        )));
        assert_eq!(sha256.len(), 64);
        assert_eq!(tar_sha1.len(), 40);
    }
}

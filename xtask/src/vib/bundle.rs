//! The offline bundle: the zip depot around a VIB and its metadata (index, vendor index,
//! bulletin, `vmware.xml` and the depot's copy of the descriptor).

use anyhow::Result;

use crate::pkg::{self, xml_escape, xml_text};

use super::{vib_file_name, vib_id, Flavour, Vib, DESCRIPTION, NAME, SUMMARY, VENDOR};

fn bulletin_id(version: &str) -> String {
    format!("{NAME}_{version}")
}

fn vib_relative_path(version: &str) -> String {
    format!("vib20/{NAME}/{}", vib_file_name(version))
}

fn platform(f: &Flavour, indent: &str, element: &str) -> String {
    format!(
        "{indent}<{element} locale=\"\" productLineID=\"embeddedEsx\" version=\"{}\"/>\n",
        f.platform
    )
}

/// The bulletin's fields up to its platforms, each line indented by `indent`: the same in
/// `bulletins/` and in `vmware.xml`.
fn bulletin_head(vib: &Vib, indent: &str) -> String {
    let fields = [
        format!("<id>{}</id>", bulletin_id(&vib.version)),
        format!("<vendor>{VENDOR}</vendor>"),
        format!("<summary>{}</summary>", xml_escape(SUMMARY)),
        "<severity>general</severity>".to_owned(),
        "<category>enhancement</category>".to_owned(),
        "<urgency>general</urgency>".to_owned(),
        "<releaseType>extension</releaseType>".to_owned(),
        format!("<description>{}</description>", xml_escape(DESCRIPTION)),
        "<kbUrl></kbUrl>".to_owned(),
        format!("<contact>{VENDOR}</contact>"),
        format!("<releaseDate>{}</releaseDate>", pkg::iso8601(vib.date)),
        "<platforms>".to_owned(),
    ];
    let mut head: String = fields.iter().map(|f| format!("{indent}{f}\n")).collect();
    head.push_str(&platform(
        vib.flavour,
        &format!("{indent}  "),
        "softwarePlatform",
    ));
    head.push_str(&format!("{indent}</platforms>\n"));
    head
}

/// The bulletin (an ESXi 7.0+ component: name and version specs) listing the VIB.
pub fn bulletin(vib: &Vib) -> String {
    let v = &vib.version;
    format!(
        "<bulletin>
{head}  <vibList>
    <vibID>{vib_id}</vibID>
  </vibList>
  <componentNameSpec name=\"{NAME}\" uiString=\"{NAME}\"/>
  <componentVersionSpec version=\"{v}\" uiString=\"{v}\"/>
</bulletin>
",
        head = bulletin_head(vib, "  "),
        vib_id = vib_id(v),
    )
}

/// `vibs/<name>-<version>.xml`: the descriptor plus where the VIB is in the depot, its size
/// and its SHA-256.
pub fn depot_vib_xml(vib: &Vib) -> String {
    let body = vib
        .descriptor
        .trim_end()
        .strip_suffix("</vib>")
        .expect("descriptor ends with </vib>");
    format!(
        "{body}  <relative-path>{path}</relative-path>
  <packed-size>{size}</packed-size>
  <checksum checksum-type=\"sha-256\">{sha}</checksum>
</vib>
",
        path = vib_relative_path(&vib.version),
        size = vib.bytes.len(),
        sha = pkg::sha256_hex(&vib.bytes),
    )
}

/// `vmware.xml`: the legacy (metadata 3.0) view of the bulletin with its VIB inline.
pub fn vmware_xml(vib: &Vib) -> String {
    let v = &vib.version;
    let inner = |tag: &str| {
        xml_text(&vib.descriptor, tag)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    format!(
        "<metadataResponse>
  <version>3.0</version>
  <timestamp>{date}</timestamp>
  <bulletin>
{head}    <componentNameSpec name=\"{NAME}\" uiString=\"{NAME}\"/>
    <componentVersionSpec version=\"{v}\" uiString=\"{v}\"/>
    <vibList>
      <vib>
        <vibVersion>1.4.5</vibVersion>
        <vibID>{vib_id}</vibID>
        <name>{NAME}</name>
        <version>{v}</version>
        <vendor>{VENDOR}</vendor>
        <vibType>bootbank</vibType>
        <summary>{summary}</summary>
        <systemReqs>
          {system_requires}
{swplatforms}        </systemReqs>
        <relationships>
          {relationships}
        </relationships>
        <postInstall>
          <rebootRequired>false</rebootRequired>
          <hostdRestart>false</hostdRestart>
        </postInstall>
        <softwareTags></softwareTags>
        <vibFile>
          <sourceUrl></sourceUrl>
          <relativePath>{path}</relativePath>
          <packedSize>{size}</packedSize>
          <checksum>
            <checksumType>sha-256</checksumType>
            <checksum>{sha}</checksum>
          </checksum>
        </vibFile>
      </vib>
    </vibList>
  </bulletin>
</metadataResponse>
",
        date = pkg::iso8601(vib.date),
        head = bulletin_head(vib, "    "),
        summary = xml_escape(SUMMARY),
        vib_id = vib_id(v),
        system_requires = inner("system-requires"),
        swplatforms = platform(vib.flavour, "          ", "swPlatform"),
        relationships = inner("relationships"),
        path = vib_relative_path(v),
        size = vib.bytes.len(),
        sha = pkg::sha256_hex(&vib.bytes),
    )
}

pub fn index_xml() -> String {
    format!(
        "<vendorList>
  <vendor>
    <name>{VENDOR}</name>
    <code>{VENDOR}</code>
    <indexfile>vendor-index.xml</indexfile>
    <patchUrl></patchUrl>
    <relativePath></relativePath>
    <content>
      <name>VMware ESX</name>
      <type>http://www.vmware.com/depotmanagement/esx</type>
    </content>
  </vendor>
</vendorList>
"
    )
}

pub fn vendor_index_xml(f: &Flavour) -> String {
    format!(
        "<metaList>
  <metadata>
    <productId>embeddedEsx</productId>
    <version>{}</version>
    <locale></locale>
    <patchUrl></patchUrl>
    <url>metadata.zip</url>
    <channelName>default</channelName>
  </metadata>
</metaList>
",
        f.platform
    )
}

/// The offline bundle (a zip depot) holding `vib`.
pub fn build_bundle(vib: &Vib) -> Result<Vec<u8>> {
    let v = &vib.version;
    let vendor_index = vendor_index_xml(vib.flavour);
    let metadata = crate::zip::write(
        &[
            ("vmware.xml", vmware_xml(vib).as_bytes()),
            (&format!("bulletins/{NAME}.xml"), bulletin(vib).as_bytes()),
            (
                &format!("vibs/{NAME}-{v}.xml"),
                depot_vib_xml(vib).as_bytes(),
            ),
            ("vendor-index.xml", vendor_index.as_bytes()),
        ],
        vib.date,
    )?;
    crate::zip::write(
        &[
            ("index.xml", index_xml().as_bytes()),
            ("vendor-index.xml", vendor_index.as_bytes()),
            ("metadata.zip", &metadata),
            (&vib_relative_path(v), &vib.bytes),
        ],
        vib.date,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vib::check_bundle;
    use crate::vib::tests::{vib, PLUGIN};

    #[test]
    fn bundle_layout_and_metadata() {
        let v = vib();
        let z = build_bundle(&v).unwrap();
        let members = crate::zip::read(&z).unwrap();
        let names: Vec<_> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "index.xml",
                "vendor-index.xml",
                "metadata.zip",
                "vib20/openvaai/openvaai-0.1.0-1.800.vib"
            ]
        );
        assert_eq!(members[3].1, v.bytes);
        let index = String::from_utf8(members[0].1.clone()).unwrap();
        assert_eq!(xml_text(&index, "indexfile"), Some("vendor-index.xml"));
        assert_eq!(xml_text(&index, "code"), Some("openvaai"));
        let vi = String::from_utf8(members[1].1.clone()).unwrap();
        assert_eq!(xml_text(&vi, "productId"), Some("embeddedEsx"));
        assert_eq!(xml_text(&vi, "url"), Some("metadata.zip"));
        assert_eq!(vi.matches("<metadata>").count(), 1);
        assert_eq!(xml_text(&vi, "version"), Some("8.*"));

        let meta = crate::zip::read(&members[2].1).unwrap();
        let names: Vec<_> = meta.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "vmware.xml",
                "bulletins/openvaai.xml",
                "vibs/openvaai-0.1.0-1.800.xml",
                "vendor-index.xml"
            ]
        );
        let meta_text = |i: usize| String::from_utf8(meta[i].1.clone()).unwrap();
        let bulletin = meta_text(1);
        assert_eq!(xml_text(&bulletin, "id"), Some("openvaai_0.1.0-1.800"));
        assert_eq!(
            xml_text(&bulletin, "vibID"),
            Some("openvaai_bootbank_openvaai_0.1.0-1.800")
        );
        assert!(bulletin.contains("<componentNameSpec name=\"openvaai\""));
        assert!(bulletin.contains("<componentVersionSpec version=\"0.1.0-1.800\""));
        assert!(bulletin.contains("version=\"8.*\"") && !bulletin.contains("version=\"7.*\""));
        let vib_xml = meta_text(2);
        let body = v.descriptor.trim_end().strip_suffix("</vib>").unwrap();
        assert!(vib_xml.starts_with(body));
        assert_eq!(
            xml_text(&vib_xml, "relative-path"),
            Some("vib20/openvaai/openvaai-0.1.0-1.800.vib")
        );
        assert_eq!(
            xml_text(&vib_xml, "packed-size"),
            Some(v.bytes.len().to_string().as_str())
        );
        assert!(vib_xml.contains(&format!(
            "<checksum checksum-type=\"sha-256\">{}</checksum>\n</vib>",
            pkg::sha256_hex(&v.bytes)
        )));
        let vmware = meta_text(0);
        assert_eq!(xml_text(&vmware, "version"), Some("3.0"));
        assert_eq!(
            xml_text(&vmware, "packedSize"),
            Some(v.bytes.len().to_string().as_str())
        );
        assert_eq!(meta[3].1, members[1].1);

        let u = check_bundle(&z).unwrap();
        assert_eq!(u.files[1].data, PLUGIN);
    }
}

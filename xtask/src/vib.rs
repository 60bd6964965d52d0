//! `cargo xtask vib`: the ESXi package, from open tools only.
//!
//! A VIB is an `ar` archive of three members, in this order: `descriptor.xml` (the package's
//! metadata), `sig.pkcs7` (empty: unsigned, acceptance level community) and the payload, a
//! gzip tar named like the descriptor's `<payload name>`. The offline bundle is the zip depot
//! `esxcli software vib install -d` and `esxcli software component apply -d` read:
//! `index.xml` → `vendor-index.xml` → `metadata.zip` (`vmware.xml`, `bulletins/`, `vibs/`)
//! and the VIB under `vib20/`. There is one VIB and one bundle per ESXi major release (see
//! [`Flavour`]).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::pkg::{self, xml_attr, xml_escape, xml_text, Entry};

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

/// The ESXi firewall ruleset: TCP to the daemon's port, outbound.
pub fn firewall_xml(port: u16) -> String {
    format!(
        "<!-- openvaai: the NAS plugin connects to openvaaid on the NAS over TCP. -->
<ConfigRoot>
  <service id=\"0000\">
    <id>{NAME}</id>
    <rule id=\"0000\">
      <direction>outbound</direction>
      <protocol>tcp</protocol>
      <porttype>dst</porttype>
      <port>{port}</port>
    </rule>
    <enabled>true</enabled>
    <required>false</required>
  </service>
</ConfigRoot>
"
    )
}

/// What the payload installs: the plugin (0755) and the firewall rule (0644).
pub fn payload_files(plugin: &[u8]) -> Vec<Entry> {
    vec![
        Entry::file(PLUGIN_PATH, 0o755, plugin),
        Entry::file(FIREWALL_PATH, 0o644, firewall_xml(pkg::DAEMON_PORT)),
    ]
}

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
    let bytes = crate::ar::write(
        &[
            crate::ar::Member {
                name: "descriptor.xml",
                data: descriptor.as_bytes(),
            },
            crate::ar::Member {
                name: "sig.pkcs7",
                data: b"",
            },
            crate::ar::Member {
                name: PAYLOAD,
                data: &tgz,
            },
        ],
        date,
    )?;
    Ok(Vib {
        flavour,
        version: version.to_owned(),
        date,
        descriptor,
        bytes,
    })
}

/// A file found in a payload.
#[derive(Debug)]
pub struct PayloadFile {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// A VIB taken apart and checked.
#[derive(Debug)]
pub struct Unpacked {
    pub descriptor: String,
    /// Regular files of the payload, in archive order.
    pub files: Vec<PayloadFile>,
    /// Every payload path (directories end in `/`), in archive order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub paths: Vec<String>,
}

/// Takes a VIB apart and checks what ESXi checks: the member order, an empty signature, the
/// payload's size and every checksum, and that the file list is the payload's files. Also
/// that every payload entry belongs to root, has a relative path and is a file or directory.
pub fn unpack_vib(vib: &[u8]) -> Result<Unpacked> {
    let members = crate::ar::read(vib)?;
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let Ok([desc, sig, payload]) = <[_; 3]>::try_from(members) else {
        bail!("VIB members are {names:?}, not descriptor.xml, sig.pkcs7 and a payload");
    };
    ensure!(
        desc.name == "descriptor.xml" && sig.name == "sig.pkcs7",
        "VIB members are {names:?}"
    );
    ensure!(sig.data.is_empty(), "sig.pkcs7 is not empty");
    let descriptor = String::from_utf8(desc.data).context("descriptor.xml is not UTF-8")?;

    let ptag = payload_tag(&descriptor)?;
    ensure!(
        xml_attr(ptag, "name") == Some(payload.name.as_str()),
        "the payload member `{}` is not the descriptor's payload name",
        payload.name
    );
    ensure!(
        xml_attr(ptag, "type") == Some("tgz"),
        "payload type is not tgz"
    );
    let size: usize = xml_attr(ptag, "size")
        .context("payload without size")?
        .parse()?;
    ensure!(
        size == payload.data.len(),
        "payload size {size} in the descriptor, {} in the archive",
        payload.data.len()
    );
    let tar = pkg::gunzip(&payload.data)?;
    let sums = checksums(&descriptor)?;
    let want = [
        (
            ("sha-256", None),
            pkg::sha256_hex(&payload.data),
            "payload SHA-256",
        ),
        (
            ("sha-256", Some("gunzip")),
            pkg::sha256_hex(&tar),
            "gunzipped payload SHA-256",
        ),
        (
            ("sha-1", Some("gunzip")),
            pkg::sha1_hex(&tar),
            "gunzipped payload SHA-1",
        ),
    ];
    for ((kind, process), value, what) in want {
        match sums
            .iter()
            .find(|(k, p, _)| *k == kind && p.as_deref() == process)
        {
            Some(found) => ensure!(
                found.2 == value,
                "{what}: descriptor {} actual {value}",
                found.2
            ),
            // Only the ESXi 8.0 VIB has the SHA-256 of the tar (see Flavour).
            None if process.is_some() && kind == "sha-256" => {}
            None => bail!("no {what} in the descriptor"),
        }
    }
    let esx_min_major = xml_text(&descriptor, "depends")
        .unwrap_or_default()
        .split("<constraint ")
        .filter(|c| {
            xml_attr(&format!(" {c}"), "name") == Some("esx-version")
                && xml_attr(&format!(" {c}"), "relation") == Some("&gt;=")
        })
        .filter_map(|c| {
            xml_attr(&format!(" {c}"), "version")?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .context("no esx-version >= constraint")?;
    ensure!(
        esx_min_major < 8
            || sums
                .iter()
                .any(|(k, p, _)| k == "sha-256" && p.as_deref() == Some("gunzip")),
        "a VIB for ESXi {esx_min_major} needs the gunzipped payload's SHA-256"
    );
    let distinct: std::collections::BTreeSet<_> = sums.iter().map(|(k, p, _)| (k, p)).collect();
    ensure!(
        distinct.len() == sums.len()
            && sums.iter().all(|(k, p, _)| {
                (k == "sha-256" || k == "sha-1") && matches!(p.as_deref(), None | Some("gunzip"))
            }),
        "unexpected or repeated payload checksums: {sums:?}"
    );

    let mut files = Vec::new();
    let mut paths = Vec::new();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let h = entry.header();
        let path = String::from_utf8(entry.path_bytes().into_owned())?;
        ensure!(
            !path.starts_with('/') && !path.split('/').any(|c| c == ".."),
            "payload path {path} is not relative"
        );
        ensure!(
            h.uid()? == 0 && h.gid()? == 0,
            "payload entry {path} is not owned by root"
        );
        let mode = h.mode()?;
        match h.entry_type() {
            tar::EntryType::Directory => {}
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data)?;
                files.push(PayloadFile {
                    path: path.clone(),
                    mode,
                    data,
                });
            }
            t => bail!("payload entry {path} has type {t:?}"),
        }
        paths.push(path);
    }
    let listed: Vec<&str> = xml_text(&descriptor, "file-list")
        .context("no file-list")?
        .split("<file>")
        .skip(1)
        .map(|f| f.split("</file>").next().unwrap_or_default())
        .collect();
    let mut in_payload: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    in_payload.sort_unstable();
    ensure!(
        listed == in_payload,
        "file-list {listed:?} is not the payload's files {in_payload:?}"
    );
    Ok(Unpacked {
        descriptor,
        files,
        paths,
    })
}

/// The opening tag of the (single) `<payload ...>` element.
fn payload_tag(descriptor: &str) -> Result<&str> {
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
fn checksums(descriptor: &str) -> Result<Vec<(String, Option<String>, String)>> {
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

/// The bulletin (an ESXi 7.0+ component: name and version specs) listing the VIB.
pub fn bulletin(vib: &Vib) -> String {
    let v = &vib.version;
    format!(
        "<bulletin>
  <id>{id}</id>
  <vendor>{VENDOR}</vendor>
  <summary>{summary}</summary>
  <severity>general</severity>
  <category>enhancement</category>
  <urgency>general</urgency>
  <releaseType>extension</releaseType>
  <description>{description}</description>
  <kbUrl></kbUrl>
  <contact>{VENDOR}</contact>
  <releaseDate>{date}</releaseDate>
  <platforms>
{platforms}  </platforms>
  <vibList>
    <vibID>{vib_id}</vibID>
  </vibList>
  <componentNameSpec name=\"{NAME}\" uiString=\"{NAME}\"/>
  <componentVersionSpec version=\"{v}\" uiString=\"{v}\"/>
</bulletin>
",
        id = bulletin_id(v),
        summary = xml_escape(SUMMARY),
        description = xml_escape(DESCRIPTION),
        date = pkg::iso8601(vib.date),
        platforms = platform(vib.flavour, "    ", "softwarePlatform"),
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
    <id>{id}</id>
    <vendor>{VENDOR}</vendor>
    <summary>{summary}</summary>
    <severity>general</severity>
    <category>enhancement</category>
    <urgency>general</urgency>
    <releaseType>extension</releaseType>
    <description>{description}</description>
    <kbUrl></kbUrl>
    <contact>{VENDOR}</contact>
    <releaseDate>{date}</releaseDate>
    <platforms>
{platforms}    </platforms>
    <componentNameSpec name=\"{NAME}\" uiString=\"{NAME}\"/>
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
        id = bulletin_id(v),
        summary = xml_escape(SUMMARY),
        description = xml_escape(DESCRIPTION),
        platforms = platform(vib.flavour, "      ", "softwarePlatform"),
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

/// Checks a bundle against the VIB it must carry: the index chain, the metadata's VIB
/// location, size and SHA-256, the bulletin's VIB ID, and the VIB itself.
pub fn check_bundle(bundle: &[u8]) -> Result<Unpacked> {
    let members = crate::zip::read(bundle)?;
    let get = |list: &[(String, Vec<u8>)], name: &str| -> Result<Vec<u8>> {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .with_context(|| format!("no {name} in the zip"))
    };
    let text = |d: Vec<u8>| String::from_utf8(d).context("not UTF-8");
    let index = text(get(&members, "index.xml")?)?;
    let vendor_index_name = xml_text(&index, "indexfile").context("index.xml: no indexfile")?;
    let vendor_index = text(get(&members, vendor_index_name)?)?;
    let metadata_name = xml_text(&vendor_index, "url").context("vendor index: no url")?;
    let metadata = crate::zip::read(&get(&members, metadata_name)?)?;
    let vib_xml_name = metadata
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| n.starts_with("vibs/"))
        .context("metadata.zip: no vibs/")?
        .to_owned();
    let vib_xml = text(get(&metadata, &vib_xml_name)?)?;
    let rel = xml_text(&vib_xml, "relative-path").context("no relative-path")?;
    let vib = get(&members, rel)?;
    let size: usize = xml_text(&vib_xml, "packed-size")
        .context("no packed-size")?
        .parse()?;
    ensure!(
        size == vib.len(),
        "packed-size {size}, VIB {} bytes",
        vib.len()
    );
    let tail = &vib_xml[vib_xml.find("</payloads>").context("no payloads")?..];
    ensure!(
        xml_text(tail, "checksum") == Some(pkg::sha256_hex(&vib).as_str()),
        "{vib_xml_name}: the VIB's SHA-256 differs"
    );
    let unpacked = unpack_vib(&vib)?;
    ensure!(
        vib_xml.starts_with(
            unpacked
                .descriptor
                .trim_end()
                .strip_suffix("</vib>")
                .context("descriptor does not end with </vib>")?
        ),
        "{vib_xml_name} is not the VIB's descriptor"
    );
    let d = &unpacked.descriptor;
    let id = format!(
        "{}_{}_{}_{}",
        xml_text(d, "vendor").unwrap_or_default(),
        xml_text(d, "type").unwrap_or_default(),
        xml_text(d, "name").unwrap_or_default(),
        xml_text(d, "version").unwrap_or_default()
    );
    let bulletin_name = metadata
        .iter()
        .map(|(n, _)| n.as_str())
        .find(|n| n.starts_with("bulletins/"))
        .context("metadata.zip: no bulletins/")?
        .to_owned();
    let bulletin = text(get(&metadata, &bulletin_name)?)?;
    ensure!(
        xml_text(&bulletin, "vibID") == Some(id.as_str()),
        "{bulletin_name} does not list {id}"
    );
    let vmware = text(get(&metadata, "vmware.xml")?)?;
    ensure!(
        xml_text(&vmware, "vibID") == Some(id.as_str())
            && xml_text(&vmware, "relativePath") == Some(rel),
        "vmware.xml does not describe {id} at {rel}"
    );
    Ok(unpacked)
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

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const PLUGIN: &[u8] = b"\x7fELF not really a plugin, but bytes are bytes";

    fn vib() -> Vib {
        build_vib(PLUGIN, &ESX8, "0.1.0-1", DATE).unwrap()
    }

    #[test]
    fn vib_members_in_order_with_empty_signature() {
        let v = vib();
        let m = crate::ar::read(&v.bytes).unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["descriptor.xml", "sig.pkcs7", PAYLOAD]);
        assert!(PAYLOAD.len() <= 8);
        assert_eq!(m[0].data, v.descriptor.as_bytes());
        assert!(m[1].data.is_empty());
        assert!(m
            .iter()
            .all(|m| m.uid == 0 && m.gid == 0 && m.mtime == DATE));
        // gzip magic
        assert_eq!(&m[2].data[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn payload_paths_modes_and_contents() {
        let u = unpack_vib(&vib().bytes).unwrap();
        assert_eq!(
            u.paths,
            [
                "etc/",
                "etc/vmware/",
                "etc/vmware/firewall/",
                "etc/vmware/firewall/openvaai.xml",
                "usr/",
                "usr/lib/",
                "usr/lib/vmware/",
                "usr/lib/vmware/nas_plugins/",
                "usr/lib/vmware/nas_plugins/lib64/",
                "usr/lib/vmware/nas_plugins/lib64/libopenvaai.so",
            ]
        );
        let so = &u.files[1];
        assert_eq!(so.path, "usr/lib/vmware/nas_plugins/lib64/libopenvaai.so");
        assert_eq!(so.mode, 0o755);
        assert_eq!(so.data, PLUGIN);
        let fw = &u.files[0];
        assert_eq!(fw.mode, 0o644);
        let fw = String::from_utf8(fw.data.clone()).unwrap();
        let service = xml_text(&fw, "service").unwrap();
        assert_eq!(xml_text(service, "id"), Some("openvaai"));
        assert_eq!(xml_text(service, "direction"), Some("outbound"));
        assert_eq!(xml_text(service, "protocol"), Some("tcp"));
        assert_eq!(xml_text(service, "porttype"), Some("dst"));
        assert_eq!(xml_text(service, "port"), Some("7443"));
        assert_eq!(xml_text(service, "enabled"), Some("true"));
        assert_eq!(xml_text(service, "required"), Some("false"));

        // Every tar header: root, fixed time, ustar.
        let m = crate::ar::read(&vib().bytes).unwrap();
        let tar = pkg::gunzip(&m[2].data).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.mtime().unwrap(), DATE);
            assert!(h.as_ustar().is_some());
            if h.entry_type().is_dir() {
                assert_eq!(h.mode().unwrap(), 0o755);
            }
        }
    }

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

    /// ESXi 7.0 gets the same payload without the gunzipped SHA-256, for its own releases,
    /// at a lower version than the ESXi 8.0 VIB.
    #[test]
    fn esx7_flavour() {
        let v7 = build_vib(PLUGIN, &ESX7, "0.1.0-1", DATE).unwrap();
        let v8 = vib();
        let d = &v7.descriptor;
        assert_eq!(v7.version, "0.1.0-1.700");
        assert!(v7.version < v8.version);
        assert!(!d.contains(r#"checksum-type="sha-256" verify-process"#));
        let sums = checksums(d).unwrap();
        let kinds: Vec<_> = sums
            .iter()
            .map(|(k, p, _)| (k.as_str(), p.as_deref()))
            .collect();
        assert_eq!(kinds, [("sha-256", None), ("sha-1", Some("gunzip"))]);
        let kinds8: Vec<_> = checksums(&v8.descriptor)
            .unwrap()
            .into_iter()
            .map(|(k, p, _)| (k, p))
            .collect();
        assert_eq!(kinds8.len(), 3);
        assert!(kinds8.contains(&("sha-256".to_owned(), Some("gunzip".to_owned()))));
        let depends = xml_text(d, "depends").unwrap();
        assert!(depends
            .contains(r#"<constraint name="esx-version" relation="&gt;=" version="7.0.0"/>"#));
        assert!(depends
            .contains(r#"<constraint name="esx-version" relation="&lt;&lt;" version="8.0.0"/>"#));
        // Same payload bytes in both.
        let p7 = crate::ar::read(&v7.bytes).unwrap().remove(2).data;
        let p8 = crate::ar::read(&v8.bytes).unwrap().remove(2).data;
        assert_eq!(p7, p8);
        let u = unpack_vib(&v7.bytes).unwrap();
        assert_eq!(u.files[1].data, PLUGIN);
        let z = build_bundle(&v7).unwrap();
        check_bundle(&z).unwrap();
        let m = crate::zip::read(&z).unwrap();
        assert_eq!(m[3].0, "vib20/openvaai/openvaai-0.1.0-1.700.vib");
        let vi = String::from_utf8(m[1].1.clone()).unwrap();
        assert_eq!(xml_text(&vi, "version"), Some("7.*"));
    }

    /// An ESXi 8.0 VIB without the gunzipped SHA-256 is refused by the checks, as by ESXi.
    #[test]
    fn esx8_vib_needs_the_gunzip_sha256() {
        let v7 = build_vib(PLUGIN, &ESX7, "0.1.0-1", DATE).unwrap();
        let m = crate::ar::read(&v7.bytes).unwrap();
        let d = v7
            .descriptor
            .replace("version=\"7.0.0\"", "version=\"8.0.0\"");
        let forged = crate::ar::write(
            &[
                crate::ar::Member {
                    name: "descriptor.xml",
                    data: d.as_bytes(),
                },
                crate::ar::Member {
                    name: "sig.pkcs7",
                    data: b"",
                },
                crate::ar::Member {
                    name: PAYLOAD,
                    data: &m[2].data,
                },
            ],
            DATE,
        )
        .unwrap();
        let err = unpack_vib(&forged).unwrap_err().to_string();
        assert!(
            err.contains("needs the gunzipped payload's SHA-256"),
            "{err}"
        );
    }

    #[test]
    fn builds_are_reproducible() {
        assert_eq!(vib().bytes, vib().bytes);
        assert_eq!(build_bundle(&vib()).unwrap(), build_bundle(&vib()).unwrap());
        assert_ne!(
            build_vib(b"other", &ESX8, "0.1.0-1", DATE).unwrap().bytes,
            vib().bytes
        );
    }

    #[test]
    fn tampering_is_caught() {
        let good = vib().bytes;
        // A flipped byte in the payload's gzip: checksum (or gzip CRC) failure.
        let mut bad = good.clone();
        let last = bad.len() - 20;
        bad[last] ^= 0xff;
        assert!(unpack_vib(&bad).is_err());
        // Members in another order.
        let m = crate::ar::read(&good).unwrap();
        let swapped = crate::ar::write(
            &[
                crate::ar::Member {
                    name: "sig.pkcs7",
                    data: &m[1].data,
                },
                crate::ar::Member {
                    name: "descriptor.xml",
                    data: &m[0].data,
                },
                crate::ar::Member {
                    name: PAYLOAD,
                    data: &m[2].data,
                },
            ],
            0,
        )
        .unwrap();
        assert!(unpack_vib(&swapped).is_err());
    }

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

    /// The packages also come apart with the standard tools: GNU ar, tar and Python's zipfile.
    #[test]
    fn standard_tools_agree() {
        let dir = pkg::test_dir("vib");
        let v = vib();
        std::fs::write(dir.join("x.vib"), &v.bytes).unwrap();
        std::fs::write(dir.join("b.zip"), build_bundle(&v).unwrap()).unwrap();
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(&dir)
                .output()
                .unwrap()
        };
        if sh("command -v ar && command -v tar").status.success() {
            let out = sh("ar t x.vib && ar p x.vib openvaai | tar tzvf -");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.starts_with("descriptor.xml\nsig.pkcs7\nopenvaai\n"),
                "{out}"
            );
            assert!(out.contains("-rwxr-xr-x root/root"), "{out}");
            assert!(out.contains("usr/lib/vmware/nas_plugins/lib64/libopenvaai.so"));
        } else {
            eprintln!("skipping the ar/tar half: binutils or tar missing");
        }
        let py = "import io, sys, zipfile\nz = zipfile.ZipFile('b.zip')\nassert z.testzip() is None\nm = zipfile.ZipFile(io.BytesIO(z.read('metadata.zip')))\nassert m.testzip() is None\nprint(sorted(m.namelist()))";
        if sh("command -v python3").status.success() {
            let out = sh(&format!("python3 -c \"{py}\""));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "['bulletins/openvaai.xml', 'vendor-index.xml', 'vibs/openvaai-0.1.0-1.800.xml', 'vmware.xml']\n"
            );
        } else {
            eprintln!("skipping the zipfile half: python3 missing");
        }
    }
}

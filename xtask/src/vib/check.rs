//! Taking VIBs and offline bundles apart and checking them as ESXi would.

use anyhow::{bail, ensure, Context, Result};

use crate::pkg::{self, xml_attr, xml_text};

use super::descriptor::{checksums, payload_tag};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vib::tests::{vib, DATE, PLUGIN};
    use crate::vib::{archive, build_vib, ESX7, PAYLOAD};

    /// An ESXi 8.0 VIB without the gunzipped SHA-256 is refused by the checks, as by ESXi.
    #[test]
    fn esx8_vib_needs_the_gunzip_sha256() {
        let v7 = build_vib(PLUGIN, &ESX7, "0.1.0-1", DATE).unwrap();
        let m = crate::ar::read(&v7.bytes).unwrap();
        let d = v7
            .descriptor
            .replace("version=\"7.0.0\"", "version=\"8.0.0\"");
        let forged = archive(d.as_bytes(), &m[2].data, DATE).unwrap();
        let err = unpack_vib(&forged).unwrap_err().to_string();
        assert!(
            err.contains("needs the gunzipped payload's SHA-256"),
            "{err}"
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
}

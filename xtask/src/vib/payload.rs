//! The VIB's payload: the plugin and the ESXi firewall rule opening the daemon's port.

use crate::pkg::{self, Entry};

use super::{FIREWALL_PATH, NAME, PLUGIN_PATH};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkg::xml_text;
    use crate::vib::tests::{vib, DATE, PLUGIN};
    use crate::vib::unpack_vib;

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
}

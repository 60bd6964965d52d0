//! What disklib tells the plugin about a datastore, and whether the datastore is ours.
//!
//! disklib offers every NFS datastore to every NAS plugin. The plugin claims only those whose
//! NAS runs openvaaid: the daemon leaves an access file at the root of each export it serves,
//! so a datastore without `<localMountPoint>/.openvaai/access` is declined at once, without
//! touching the network.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use openvaai_abi::{vix, VixError, FSTYPE_NFS, FSTYPE_NFS41};

/// Where the daemon leaves the access file, relative to the root of an export.
pub const ACCESS_FILE: &str = ".openvaai/access";

/// A datastore as `VixDiskLibNasPluginDataStoreParams` describes it, with every string that
/// the plugin needs present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStore {
    pub fs_type: String,
    pub fs_version: u32,
    /// The NAS's address as ESXi mounted it.
    pub remote_ip: String,
    /// The path the NAS exports: how the daemon knows the export.
    pub remote_mount_point: String,
    /// Where ESXi mounts it, e.g. `/vmfs/volumes/<uuid>`.
    pub local_mount_point: PathBuf,
}

/// The fields of a `DataStoreParams`, as byte strings from C (`None` for NULL).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDataStore<'a> {
    pub fs_type: Option<&'a [u8]>,
    pub fs_version: u32,
    pub remote_ip: Option<&'a [u8]>,
    pub remote_mount_point: Option<&'a [u8]>,
    pub local_mount_point: Option<&'a [u8]>,
}

/// Why a datastore is not ours. Each maps to `VIX_E_NOT_SUPPORTED` for disklib.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// Not NFS (VMFS, vSAN, ...).
    FsType(String),
    /// A NAS field disklib left NULL or empty.
    Missing(&'static str),
    /// A field that is not UTF-8 (ESXi's NFS paths and addresses always are).
    NotUtf8(&'static str),
    /// The local mount point is not an absolute path.
    NotAbsolute,
    /// No openvaaid serves this export.
    NoAccessFile(PathBuf),
}

impl std::fmt::Display for Decline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decline::FsType(t) => write!(f, "file-system type {t:?} is not NFS"),
            Decline::Missing(field) => write!(f, "{field} is not given"),
            Decline::NotUtf8(field) => write!(f, "{field} is not UTF-8"),
            Decline::NotAbsolute => write!(f, "the local mount point is not an absolute path"),
            Decline::NoAccessFile(p) => {
                write!(
                    f,
                    "no openvaaid serves this export ({} is absent)",
                    p.display()
                )
            }
        }
    }
}

impl Decline {
    pub fn vix_error(&self) -> VixError {
        vix::E_NOT_SUPPORTED
    }
}

fn text<'a>(field: Option<&'a [u8]>, name: &'static str) -> Result<&'a str, Decline> {
    match field {
        None | Some([]) => Err(Decline::Missing(name)),
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| Decline::NotUtf8(name)),
    }
}

impl DataStore {
    /// Checks the fields, cheapest first, and that an openvaaid access file is there. Costs at
    /// most one `stat` of a file under the local mount point.
    pub fn claim(raw: &RawDataStore<'_>) -> Result<DataStore, Decline> {
        let ds = DataStore::from_raw(raw)?;
        let access = ds.access_file();
        match std::fs::metadata(&access) {
            Ok(m) if m.is_file() => Ok(ds),
            _ => Err(Decline::NoAccessFile(access)),
        }
    }

    /// Checks the fields without looking at any file.
    pub fn from_raw(raw: &RawDataStore<'_>) -> Result<DataStore, Decline> {
        let fs_type = match raw.fs_type {
            None => return Err(Decline::Missing("fsType")),
            Some(t) => String::from_utf8_lossy(t).into_owned(),
        };
        if fs_type != FSTYPE_NFS && fs_type != FSTYPE_NFS41 {
            return Err(Decline::FsType(fs_type));
        }
        let remote_ip = text(raw.remote_ip, "remoteIP")?.to_owned();
        let remote_mount_point = text(raw.remote_mount_point, "remoteMountPoint")?.to_owned();
        let local = text(raw.local_mount_point, "localMountPoint")?;
        let local_mount_point = PathBuf::from(OsStr::from_bytes(local.as_bytes()));
        if !local_mount_point.is_absolute() {
            return Err(Decline::NotAbsolute);
        }
        Ok(DataStore {
            fs_type,
            fs_version: raw.fs_version,
            remote_ip,
            remote_mount_point,
            local_mount_point,
        })
    }

    /// `<localMountPoint>/.openvaai/access`.
    pub fn access_file(&self) -> PathBuf {
        self.local_mount_point.join(ACCESS_FILE)
    }

    /// The mount point, for messages.
    pub fn mount(&self) -> &Path {
        &self.local_mount_point
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(fs: &'a str, ip: &'a str, remote: &'a str, local: &'a str) -> RawDataStore<'a> {
        RawDataStore {
            fs_type: Some(fs.as_bytes()),
            fs_version: 3,
            remote_ip: Some(ip.as_bytes()),
            remote_mount_point: Some(remote.as_bytes()),
            local_mount_point: Some(local.as_bytes()),
        }
    }

    #[test]
    fn vmfs_is_declined_before_anything_else() {
        let r = raw("VMFS", "", "", "");
        assert_eq!(DataStore::from_raw(&r), Err(Decline::FsType("VMFS".into())));
    }

    #[test]
    fn nfs_and_nfs41_are_accepted_when_complete() {
        for fs in ["NFS", "NFS41"] {
            let ds =
                DataStore::from_raw(&raw(fs, "10.0.0.5", "/srv/ds1", "/vmfs/volumes/ds1")).unwrap();
            assert_eq!(ds.remote_mount_point, "/srv/ds1");
            assert_eq!(
                ds.access_file(),
                Path::new("/vmfs/volumes/ds1/.openvaai/access")
            );
        }
    }

    #[test]
    fn missing_and_empty_fields_are_named() {
        let mut r = raw("NFS", "10.0.0.5", "/srv/ds1", "/vmfs/volumes/ds1");
        r.remote_ip = None;
        assert_eq!(DataStore::from_raw(&r), Err(Decline::Missing("remoteIP")));
        let mut r = raw("NFS", "10.0.0.5", "", "/vmfs/volumes/ds1");
        assert_eq!(
            DataStore::from_raw(&r),
            Err(Decline::Missing("remoteMountPoint"))
        );
        r.remote_mount_point = Some(b"/srv\xff");
        assert_eq!(
            DataStore::from_raw(&r),
            Err(Decline::NotUtf8("remoteMountPoint"))
        );
        let r = raw("NFS", "10.0.0.5", "/srv", "relative/path");
        assert_eq!(DataStore::from_raw(&r), Err(Decline::NotAbsolute));
    }

    #[test]
    fn a_datastore_without_access_file_is_declined() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().to_str().unwrap();
        let r = raw("NFS", "127.0.0.1", "/srv/x", local);
        match DataStore::claim(&r) {
            Err(Decline::NoAccessFile(p)) => assert!(p.ends_with(".openvaai/access")),
            other => panic!("expected NoAccessFile, got {other:?}"),
        }
        std::fs::create_dir(dir.path().join(".openvaai")).unwrap();
        std::fs::write(dir.path().join(ACCESS_FILE), "x").unwrap();
        assert!(DataStore::claim(&r).is_ok());
    }
}

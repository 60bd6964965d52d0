//! What disklib tells the plugin about a datastore, and whether the datastore is ours.
//!
//! disklib offers every NFS datastore to every NAS plugin. The plugin claims only those whose
//! NAS runs openvaaid: the daemon leaves an access file at the root of each export it serves,
//! so a datastore without `<localMountPoint>/.openvaai/access` is declined at once, without
//! touching the network.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::io::Read;

use openvaai_abi::{vix, VixError, FSTYPE_NFS, FSTYPE_NFS41};
use openvaai_proto::access::{AccessFile, ACCESS_DIR, ACCESS_FILE, MAX_ACCESS_FILE};

use crate::conn::Failure;

/// `<mount>/.openvaai/access`: where the daemon leaves the access file of the export mounted
/// at `mount`.
pub fn access_path(mount: &Path) -> PathBuf {
    mount.join(ACCESS_DIR).join(ACCESS_FILE)
}

/// The name of the marker that puts an export on the standard NFSv4.2 backend.
pub const NFS42_FILE: &str = "nfs42";

/// `<mount>/.openvaai/nfs42`: the marker an administrator leaves for the standard backend.
pub fn nfs42_path(mount: &Path) -> PathBuf {
    mount.join(ACCESS_DIR).join(NFS42_FILE)
}

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

/// Why a datastore is not taken. Each maps to `VIX_E_NOT_SUPPORTED` for disklib, but for an
/// access file that is there and cannot be read (`VIX_E_FILE_ACCESS_ERROR`).
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
    /// Neither marker is there: no openvaaid, and no standard NFSv4.2 backend asked for.
    NoMarker { access: PathBuf, nfs42: PathBuf },
    /// The access file (or its directory) is there but this process may not read it: the
    /// file is root's, and ESXi runs the plugin as root.
    Unreadable(PathBuf),
    /// A marker, or the directory holding it, is a symbolic link: whoever can write to the
    /// export may have planted it to point anywhere on the host.
    Symlink(PathBuf),
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
            Decline::NoMarker { access, nfs42 } => write!(
                f,
                "no openvaaid serves this export ({} is absent) and the standard NFSv4.2 \
                 backend is not asked for ({} is absent; create it to offload with the \
                 server's own NFSv4.2 operations)",
                access.display(),
                nfs42.display()
            ),
            Decline::Symlink(p) => write!(
                f,
                "{} is a symbolic link, which openvaai never follows for its markers: make it \
                 a regular file (in a real directory) on the export",
                p.display()
            ),
            Decline::Unreadable(p) => {
                write!(
                    f,
                    "{} exists but cannot be read (permission denied): it is root's; run as \
                     root, as ESXi does",
                    p.display()
                )
            }
        }
    }
}

impl Decline {
    pub fn vix_error(&self) -> VixError {
        match self {
            Decline::Unreadable(_) => vix::E_FILE_ACCESS_ERROR,
            _ => vix::E_NOT_SUPPORTED,
        }
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
        match marker(&access)? {
            true => Ok(ds),
            false => Err(Decline::NoAccessFile(access)),
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
        access_path(&self.local_mount_point)
    }

    /// Reads and parses the access file (at most [`MAX_ACCESS_FILE`] bytes are read).
    pub fn read_access(&self) -> Result<AccessFile, Failure> {
        let path = self.access_file();
        let bytes = read_marker(&path, MAX_ACCESS_FILE)?;
        AccessFile::parse(&bytes).map_err(|e| {
            Failure::new(
                vix::E_NOT_SUPPORTED,
                format!(
                    "{}: {e} (is openvaaid newer than this plugin?)",
                    path.display()
                ),
            )
        })
    }

    /// The mount point, for messages.
    pub fn mount(&self) -> &Path {
        &self.local_mount_point
    }

    /// The path of an ESXi file relative to the export root, as the daemon takes it: the file
    /// must lie under the local mount point by whole components; `.` and repeated slashes
    /// are dropped; `..`, a path that names the mount point itself, and non-UTF-8 are refused.
    pub fn relative(&self, esx_path: &[u8]) -> Result<String, PathError> {
        let path = std::str::from_utf8(esx_path).map_err(|_| PathError::NotUtf8)?;
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        let mount = self.local_mount_point.to_str().ok_or(PathError::NotUtf8)?;
        let mut mount_parts = components(mount);
        let mut parts = components(path);
        for m in mount_parts.by_ref() {
            if m == ".." {
                return Err(PathError::DotDot);
            }
            match parts.next() {
                Some(p) if p == m => {}
                _ => return Err(PathError::OutsideMount),
            }
        }
        let mut rest = Vec::new();
        for p in parts {
            if p == ".." {
                return Err(PathError::DotDot);
            }
            rest.push(p);
        }
        if rest.is_empty() {
            return Err(PathError::NoFile);
        }
        Ok(rest.join("/"))
    }
}

/// Whether the marker file `path` is there (two `lstat`s, following no network): a regular
/// file is; anything else, or nothing, is not; a permission error is [`Decline::Unreadable`];
/// the marker or its directory (`.openvaai`) a symbolic link is [`Decline::Symlink`].
///
/// The `lstat`s go through ESXi's NFS mount, like every access of the plugin to a datastore's
/// files: a server that stops answering stalls them as long as the host's NFS client waits
/// (the plugin runs no thread that could give up on them); they are the only file accesses
/// of a StartSession before its network calls, each bounded by the session timeout.
pub fn marker(path: &Path) -> Result<bool, Decline> {
    if let Some(dir) = path.parent() {
        if is_symlink(dir)? {
            return Err(Decline::Symlink(dir.to_owned()));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Decline::Symlink(path.to_owned())),
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Decline::Unreadable(path.to_owned()))
        }
        Err(_) => Ok(false),
    }
}

/// Whether `path` is a symbolic link (`lstat`); absent is not.
fn is_symlink(path: &Path) -> Result<bool, Decline> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_symlink()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Decline::Unreadable(path.to_owned()))
        }
        Err(_) => Ok(false),
    }
}

/// Reads a marker file of at most `max` bytes (more is refused). Non-blocking and not through
/// a symlink: whoever can write to the export could put a FIFO or a link there, and opening a
/// FIFO would block the caller for good.
pub fn read_marker(path: &Path, max: usize) -> Result<Vec<u8>, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |e: std::io::Error| {
        Failure::new(
            vix::E_FILE_ACCESS_ERROR,
            format!("reading {}: {e}", path.display()),
        )
    };
    if let Some(dir) = path.parent() {
        if is_symlink(dir).unwrap_or(false) {
            return Err(Failure::new(
                vix::E_NOT_SUPPORTED,
                Decline::Symlink(dir.to_owned()).to_string(),
            ));
        }
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(unreadable)?;
    if !file.metadata().map_err(unreadable)?.is_file() {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() > max {
        return Err(Failure::new(
            vix::E_NOT_SUPPORTED,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// The components of a path, without empty ones and `.`.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Why a file path cannot be sent to the daemon. All are `VIX_E_INVALID_ARG` for disklib.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotUtf8,
    NotAbsolute,
    OutsideMount,
    DotDot,
    NoFile,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::NotUtf8 => "the path is not UTF-8",
            PathError::NotAbsolute => "the path is not absolute",
            PathError::OutsideMount => "the path is not under the datastore's mount point",
            PathError::DotDot => "the path has a '..' component",
            PathError::NoFile => "the path names the datastore itself, not a file in it",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_or_its_directory_that_is_a_symlink_is_refused() {
        let root = std::env::temp_dir().join(format!("openvaai-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (real, planted, linked) =
            (root.join("real"), root.join("planted"), root.join("linked"));
        for d in [&real, &planted, &linked] {
            std::fs::create_dir_all(d.join(".openvaai")).unwrap();
        }
        std::fs::write(real.join(".openvaai/nfs42"), "").unwrap();
        assert_eq!(marker(&nfs42_path(&real)), Ok(true));
        // The marker a link to a file elsewhere (on ESXi: anywhere on the host).
        std::os::unix::fs::symlink(
            real.join(".openvaai/nfs42"),
            planted.join(".openvaai/nfs42"),
        )
        .unwrap();
        let p = nfs42_path(&planted);
        assert_eq!(marker(&p), Err(Decline::Symlink(p.clone())));
        assert!(read_marker(&p, 64).is_err());
        // Its directory a link.
        std::fs::remove_dir(linked.join(".openvaai")).unwrap();
        std::os::unix::fs::symlink(real.join(".openvaai"), linked.join(".openvaai")).unwrap();
        let p = nfs42_path(&linked);
        let dir = p.parent().unwrap().to_owned();
        assert_eq!(marker(&p), Err(Decline::Symlink(dir.clone())));
        let e = read_marker(&p, 64).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(Decline::Symlink(dir).to_string().contains("never follows"));
        std::fs::remove_dir_all(&root).unwrap();
    }

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
    fn paths_map_under_the_mount_by_whole_components() {
        let ds =
            DataStore::from_raw(&raw("NFS", "10.0.0.5", "/srv/ds1", "/vmfs/volumes/ds1")).unwrap();
        let rel = |p: &str| ds.relative(p.as_bytes());
        assert_eq!(
            rel("/vmfs/volumes/ds1/vm/vm-flat.vmdk"),
            Ok("vm/vm-flat.vmdk".into())
        );
        assert_eq!(
            rel("/vmfs/volumes/ds1//vm/./a.vmdk"),
            Ok("vm/a.vmdk".into())
        );
        assert_eq!(
            rel("/vmfs/volumes/ds10/vm/a.vmdk"),
            Err(PathError::OutsideMount)
        );
        assert_eq!(
            rel("/vmfs/volumes/ds2/a.vmdk"),
            Err(PathError::OutsideMount)
        );
        assert_eq!(rel("/vmfs/volumes/ds1/../ds2/a"), Err(PathError::DotDot));
        assert_eq!(rel("/vmfs/volumes/ds1/vm/../../x"), Err(PathError::DotDot));
        assert_eq!(rel("/vmfs/volumes/ds1/"), Err(PathError::NoFile));
        assert_eq!(rel("vmfs/volumes/ds1/a"), Err(PathError::NotAbsolute));
        assert_eq!(
            ds.relative(b"/vmfs/volumes/ds1/\xff"),
            Err(PathError::NotUtf8)
        );
        assert_eq!(rel("/vmfs"), Err(PathError::OutsideMount));
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
        std::fs::create_dir(dir.path().join(ACCESS_DIR)).unwrap();
        std::fs::write(dir.path().join(ACCESS_DIR).join(ACCESS_FILE), "x").unwrap();
        assert!(DataStore::claim(&r).is_ok());
    }
}

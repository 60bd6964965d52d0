//! An export: a directory opened once, its capabilities, and the primitives on it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::caps::{self, Capabilities};
use crate::error::Error;
use crate::path::RelPath;
use crate::progress::{CancelToken, Progress};
use crate::resolve::{open_regular, Protected};
use crate::statx::StatX;

/// An export root directory, held open: every path on the API resolves beneath it.
#[derive(Debug)]
pub struct Export {
    pub(crate) root_fd: OwnedFd,
    root: PathBuf,
    caps: Capabilities,
}

impl Export {
    /// Opens an export root directory (must be a directory) and probes its capabilities.
    ///
    /// `open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)` — the descriptor is kept, so a later
    /// rename of `root` does not move the export.
    pub fn open(root: &Path) -> Result<Export, Error> {
        const OP: &str = "open export";
        let shown = root.display().to_string();
        let root_fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::sys(OP, &shown, e))?;
        let caps = caps::probe(root_fd.as_fd());
        Ok(Export {
            root_fd,
            root: root.to_owned(),
            caps,
        })
    }

    /// The path the export was opened with.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the export's filesystem supports (probed at [`open`](Self::open)).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// `fallocate(0, 0, size)` keeping data; the file must exist, be regular, and have
    /// `size > 0` (else [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)). Afterwards it has no holes.
    pub fn reserve(
        &self,
        path: &str,
        progress: &mut dyn FnMut(Progress),
        cancel: &CancelToken,
    ) -> Result<(), Error> {
        const OP: &str = "reserve";
        let rel = RelPath::parse(OP, path)?;
        cancel.check(OP, path)?;
        let (fd, st) = open_regular(self.root_fd.as_fd(), rel.as_str(), true, OP)?;
        Protected::load(self.root_fd.as_fd()).check(&st, OP, path)?;
        crate::reserve::reserve(fd.as_fd(), st.st_size as u64, path, progress, cancel)
    }

    /// Sizes, unique bytes and allocation type of a regular file.
    pub fn statx(&self, path: &str) -> Result<StatX, Error> {
        const OP: &str = "statx";
        let rel = RelPath::parse(OP, path)?;
        let (fd, st) = open_regular(self.root_fd.as_fd(), rel.as_str(), false, OP)?;
        Protected::load(self.root_fd.as_fd()).check(&st, OP, path)?;
        crate::statx::statx(fd.as_fd(), &st, path)
    }

    /// Removes whatever a crash may have left (named temporaries `.openvaai-tmp-*` of the
    /// fallback publish path) anywhere in the export; returns how many were removed.
    ///
    /// Call it when no clone is running on this export (at daemon start): a replace in
    /// progress briefly owns such a name.
    pub fn cleanup_stale(&self) -> Result<usize, Error> {
        crate::cleanup::cleanup(self.root_fd.as_fd())
    }

    /// Same filesystem check used by LAZY clones.
    pub(crate) fn fs_id(&self) -> u64 {
        self.caps.same_fs_id
    }
}

impl Export {
    /// Whether LAZY clones from `src` to `self` can work: both reflink, one filesystem.
    pub(crate) fn lazy_possible(&self, src: &Export) -> bool {
        self.caps.reflink && src.caps.reflink && self.fs_id() == src.fs_id()
    }
}

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
    /// Roots of the other exports served beside this one, whose private directories are
    /// protected here too (see [`guard_private_dir_of`](Self::guard_private_dir_of)).
    others: Vec<OwnedFd>,
    /// The private directory, once opened: it is opened once, so that a swap of the name
    /// afterwards cannot redirect what the daemon writes.
    private: std::sync::OnceLock<crate::PrivateDir>,
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
            others: Vec::new(),
            private: std::sync::OnceLock::new(),
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
        self.protected().check(&st, OP, path)?;
        let private = self.private_dir()?;
        crate::reserve::reserve(fd.as_fd(), &st, rel.as_str(), private, progress, cancel)
    }

    /// Gives back what reservations interrupted by a crash had allocated (see
    /// [`reserve`](Self::reserve)) and says what it did. Call it at start, before any job.
    pub fn recover_reserves(&self) -> crate::RecoveryReport {
        const OP: &str = "recover reserve";
        let private = match self.private_dir() {
            Ok(p) => p,
            Err(e) => {
                return crate::RecoveryReport {
                    problems: vec![e.to_string()],
                    ..Default::default()
                }
            }
        };
        let protected = self.protected();
        crate::journal::recover(private, |entry| {
            // An entry is checked like any path a client sends: a relative path, beneath the
            // export, not into (or hard-linked from) a private directory, and still the very
            // file the reservation was made on.
            let refused = |why: String| format!("nothing given back: {why}");
            let rel = RelPath::parse(OP, &entry.path).map_err(|e| refused(e.to_string()))?;
            let (fd, st) = open_regular(self.root_fd.as_fd(), rel.as_str(), true, OP)
                .map_err(|e| refused(e.to_string()))?;
            protected
                .check(&st, OP, &entry.path)
                .map_err(|e| refused(e.to_string()))?;
            let born = crate::journal::birth(fd.as_fd());
            if (st.st_dev, st.st_ino) != (entry.dev, entry.ino)
                || (born.is_some() && born != entry.born)
            {
                return Err(refused("another file has that name now".into()));
            }
            crate::reserve::undo(fd.as_fd(), entry).map_err(|e| e.to_string())
        })
    }

    /// Sizes, unique bytes and allocation type of a regular file.
    pub fn statx(&self, path: &str) -> Result<StatX, Error> {
        const OP: &str = "statx";
        let rel = RelPath::parse(OP, path)?;
        let (fd, st) = open_regular(self.root_fd.as_fd(), rel.as_str(), false, OP)?;
        self.protected().check(&st, OP, path)?;
        crate::statx::statx(fd.as_fd(), &st, path, self.caps.may_share_blocks())
    }

    /// Removes whatever a crash may have left (named temporaries `.openvaai-tmp-*` of the
    /// fallback publish path) anywhere in the export, and says what it removed and what it
    /// could not look at or remove.
    ///
    /// Call it when no clone is running on this export (at daemon start): a replace in
    /// progress briefly owns such a name.
    pub fn cleanup_stale(&self) -> crate::CleanupReport {
        crate::cleanup::cleanup(&self.root_fd)
    }

    /// Protects `other`'s private directory from this export's clients too: no file in it
    /// can be read or written through this export, even by a hard link.
    pub fn guard_private_dir_of(&mut self, other: &Export) -> Result<(), Error> {
        let fd = rustix::io::dup(&other.root_fd)
            .map_err(|e| Error::sys("guard export", &other.root.display().to_string(), e))?;
        self.others.push(fd);
        Ok(())
    }

    /// The inodes no path of this export may reach: every served export's private directory.
    pub(crate) fn protected(&self) -> Protected {
        Protected::load(
            std::iter::once(self.root_fd.as_fd()).chain(self.others.iter().map(|f| f.as_fd())),
        )
    }

    /// The export's private directory `.openvaai`, opened safely (made if missing) the first
    /// time and held from then on: see [`PrivateDir`](crate::PrivateDir).
    pub fn private_dir(&self) -> Result<&crate::PrivateDir, Error> {
        if let Some(p) = self.private.get() {
            return Ok(p);
        }
        let opened = crate::private::PrivateDir::open(&self.root_fd)?;
        Ok(self.private.get_or_init(|| opened))
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

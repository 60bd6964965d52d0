//! The peer's files: an in-memory tree with what the backend reads and writes (names, data,
//! mode, owner, opens), and the NFSv4.2 operations on it, executed as a server would.

use std::collections::BTreeMap;

use openvaai_nfs4::basic::{ChangeInfo, Stateid, Verifier};
use openvaai_nfs4::ops::dir::{DirEntry, ReaddirArgs, ReaddirOk};
use openvaai_nfs4::ops::open::{Delegation, OpenArgs, OpenClaim, OpenHow, OpenOk};
use openvaai_nfs4::ops::v42::{
    Content, CopyRequirements, CopyRes, SeekOk, StableHow, WriteResponse,
};
use openvaai_nfs4::ops::OpRes;
use openvaai_nfs4::Status;

/// The fileid of the pseudo-root.
pub const ROOT: u64 = 1;
/// The server's write verifier.
pub const VERF: Verifier = Verifier(*b"peerverf");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir(BTreeMap<String, u64>),
    File(Vec<u8>),
    Symlink,
}

/// One open state: stateid's `other`, share_access, share_deny, open owner.
pub type Open = ([u8; 12], u32, u32, (u64, Vec<u8>));

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub owner: String,
    pub group: String,
    /// Bytes ALLOCATEd (besides the data).
    pub allocated: u64,
    /// Opens: stateid's `other`, share_access, share_deny, and the open owner (client id
    /// and owner): one open state per owner and file, as a server keeps them.
    pub opens: Vec<Open>,
}

/// The tree, by fileid.
#[derive(Debug, Clone)]
pub struct Fs {
    pub nodes: BTreeMap<u64, Node>,
    next: u64,
    /// Executions of each operation that changes the tree, by opcode.
    pub changes: BTreeMap<u32, usize>,
}

fn cinfo() -> ChangeInfo {
    ChangeInfo {
        atomic: true,
        before: 1,
        after: 2,
    }
}

impl Fs {
    /// A pseudo-root holding `/export/.openvaai/nfs42` (`marker`) and the files given.
    pub fn new(marker: &[u8], files: &[(&str, Vec<u8>)]) -> Fs {
        let mut fs = Fs {
            nodes: BTreeMap::new(),
            next: ROOT,
            changes: BTreeMap::new(),
        };
        let root = fs.add(Kind::Dir(BTreeMap::new()), 0o755);
        assert_eq!(root, ROOT);
        let export = fs.link_new(root, "export", Kind::Dir(BTreeMap::new()), 0o755);
        let private = fs.link_new(export, ".openvaai", Kind::Dir(BTreeMap::new()), 0o755);
        fs.link_new(private, "nfs42", Kind::File(marker.to_vec()), 0o644);
        for (path, data) in files {
            fs.put(path, data.clone());
        }
        fs
    }

    fn add(&mut self, kind: Kind, mode: u32) -> u64 {
        let id = self.next;
        self.next += 1;
        self.nodes.insert(
            id,
            Node {
                kind,
                mode,
                owner: "0".into(),
                group: "0".into(),
                allocated: 0,
                opens: Vec::new(),
            },
        );
        id
    }

    fn link_new(&mut self, dir: u64, name: &str, kind: Kind, mode: u32) -> u64 {
        let id = self.add(kind, mode);
        self.children(dir).unwrap().insert(name.to_owned(), id);
        id
    }

    /// Makes `path` (under `/export`, directories created) a file holding `data`.
    pub fn put(&mut self, path: &str, data: Vec<u8>) -> u64 {
        let mut dir = self.find("export").unwrap();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            dir = match self.lookup(dir, part) {
                Ok(id) => id,
                Err(_) => self.link_new(dir, part, Kind::Dir(BTreeMap::new()), 0o755),
            };
        }
        self.link_new(dir, parts[parts.len() - 1], Kind::File(data), 0o644)
    }

    /// Makes `path` (under `/export`) a symbolic link.
    pub fn symlink(&mut self, path: &str) {
        let dir = self.find("export").unwrap();
        self.link_new(dir, path, Kind::Symlink, 0o777);
    }

    /// The fileid at `path` from the pseudo-root.
    pub fn find(&self, path: &str) -> Option<u64> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(ROOT, |d, c| self.lookup(d, c).ok())
    }

    /// The data of the file at `path` (under `/export`).
    pub fn data(&self, path: &str) -> Option<&[u8]> {
        match &self.nodes.get(&self.find(&format!("export/{path}"))?)?.kind {
            Kind::File(d) => Some(d),
            Kind::Dir(_) | Kind::Symlink => None,
        }
    }

    /// The names in `/export/<dir>`.
    pub fn names(&self, dir: &str) -> Vec<String> {
        let id = self.find(&format!("export/{dir}")).unwrap();
        match &self.nodes[&id].kind {
            Kind::Dir(c) => c.keys().cloned().collect(),
            Kind::File(_) | Kind::Symlink => Vec::new(),
        }
    }

    fn children(&mut self, dir: u64) -> Result<&mut BTreeMap<String, u64>, Status> {
        match self.nodes.get_mut(&dir).map(|n| &mut n.kind) {
            Some(Kind::Dir(c)) => Ok(c),
            Some(Kind::File(_) | Kind::Symlink) => Err(Status::Notdir),
            None => Err(Status::Stale),
        }
    }

    pub fn lookup(&self, dir: u64, name: &str) -> Result<u64, Status> {
        match self.nodes.get(&dir).map(|n| &n.kind) {
            Some(Kind::Dir(c)) => c.get(name).copied().ok_or(Status::Noent),
            Some(Kind::Symlink) => Err(Status::Symlink),
            Some(Kind::File(_)) => Err(Status::Notdir),
            None => Err(Status::Stale),
        }
    }

    fn file(&mut self, id: u64) -> Result<&mut Vec<u8>, Status> {
        match self.nodes.get_mut(&id).map(|n| &mut n.kind) {
            Some(Kind::File(d)) => Ok(d),
            Some(Kind::Dir(_)) => Err(Status::Isdir),
            Some(Kind::Symlink) => Err(Status::Inval),
            None => Err(Status::Stale),
        }
    }

    fn changed(&mut self, opcode: u32) {
        *self.changes.entry(opcode).or_default() += 1;
    }

    /// How many times the operation `opcode` changed the tree.
    pub fn changes_of(&self, opcode: u32) -> usize {
        self.changes.get(&opcode).copied().unwrap_or(0)
    }

    pub fn open(&mut self, dir: u64, a: &OpenArgs) -> Result<(u64, OpenOk), Status> {
        use openvaai_nfs4::ops::opcode::OPEN;
        let OpenClaim::Null(name) = &a.claim else {
            return Err(Status::Notsupp);
        };
        let found = self.lookup(dir, name.as_str());
        let id = match (&a.how, found) {
            (OpenHow::NoCreate, r) => r?,
            (OpenHow::Guarded(_), Ok(_)) => return Err(Status::Exist),
            (OpenHow::Guarded(attrs), Err(Status::Noent)) => {
                self.changed(OPEN);
                let id = self.link_new(dir, name.as_str(), Kind::File(Vec::new()), 0o644);
                if let Some(m) = attrs.mode {
                    self.nodes.get_mut(&id).unwrap().mode = m;
                }
                id
            }
            (_, r) => r?,
        };
        self.file(id)?;
        let node = self.nodes.get_mut(&id).unwrap();
        let (access, deny) = (a.share_access & 3, a.share_deny & 3);
        let owner = (a.owner.clientid, a.owner.owner.clone());
        if node
            .opens
            .iter()
            .filter(|o| o.3 != owner)
            .any(|&(_, acc, den, _)| acc & deny != 0 || den & access != 0)
        {
            return Err(Status::ShareDenied);
        }
        // The same owner opening the file again gets its open state back (upgraded).
        let other = match node.opens.iter_mut().find(|o| o.3 == owner) {
            Some(o) => {
                o.1 |= access;
                o.2 |= deny;
                o.0
            }
            None => {
                let mut other = [0u8; 12];
                other[..8].copy_from_slice(&id.to_be_bytes());
                other[8..].copy_from_slice(&(node.opens.len() as u32 + 1).to_be_bytes());
                node.opens.push((other, access, deny, owner));
                other
            }
        };
        Ok((
            id,
            OpenOk {
                stateid: Stateid { seqid: 1, other },
                cinfo: cinfo(),
                rflags: 0,
                attrset: Default::default(),
                delegation: Delegation::None,
            },
        ))
    }

    pub fn close(&mut self, id: u64, s: &Stateid) -> OpRes {
        match self.nodes.get_mut(&id) {
            Some(n) if n.opens.iter().any(|o| o.0 == s.other) => {
                n.opens.retain(|o| o.0 != s.other);
                OpRes::Close(Ok(*s))
            }
            Some(_) => OpRes::Close(Err(Status::BadStateid)),
            None => OpRes::Close(Err(Status::Stale)),
        }
    }

    pub fn remove(&mut self, dir: u64, name: &str) -> Result<ChangeInfo, Status> {
        use openvaai_nfs4::ops::opcode::REMOVE;
        self.children(dir)?.remove(name).ok_or(Status::Noent)?;
        self.changed(REMOVE);
        Ok(cinfo())
    }

    /// LINK of `file` as `name` in `dir` (NFS4ERR_EXIST when taken).
    pub fn link(&mut self, file: u64, dir: u64, name: &str) -> Result<ChangeInfo, Status> {
        use openvaai_nfs4::ops::opcode::LINK;
        let c = self.children(dir)?;
        if c.contains_key(name) {
            return Err(Status::Exist);
        }
        c.insert(name.to_owned(), file);
        self.changed(LINK);
        Ok(cinfo())
    }

    /// RENAME of `old` in `from` to `new` in `to` (replacing it).
    pub fn rename(&mut self, from: u64, old: &str, to: u64, new: &str) -> Result<(), Status> {
        use openvaai_nfs4::ops::opcode::RENAME;
        let id = self.children(from)?.remove(old).ok_or(Status::Noent)?;
        self.children(to)?.insert(new.to_owned(), id);
        self.changed(RENAME);
        Ok(())
    }

    /// COPY of `count` bytes (0: to the end) at `off` from `src` to `dst`, at most 4 MiB.
    pub fn copy(&mut self, src: u64, dst: u64, off: u64, dst_off: u64, count: u64) -> CopyRes {
        let data = match self.file(src) {
            Ok(d) => d.clone(),
            Err(s) => return CopyRes::Err(s),
        };
        let end = match count {
            0 => data.len() as u64,
            n => (off + n).min(data.len() as u64).min(off + (4 << 20)),
        };
        let part = data
            .get(off as usize..end.max(off) as usize)
            .unwrap_or(&[])
            .to_vec();
        let out = match self.file(dst) {
            Ok(d) => d,
            Err(s) => return CopyRes::Err(s),
        };
        let need = dst_off as usize + part.len();
        if out.len() < need {
            out.resize(need, 0);
        }
        out[dst_off as usize..need].copy_from_slice(&part);
        CopyRes::Ok {
            response: WriteResponse {
                callback_id: None,
                count: part.len() as u64,
                committed: StableHow::Unstable,
                writeverf: VERF,
            },
            requirements: CopyRequirements {
                consecutive: true,
                synchronous: true,
            },
        }
    }

    pub fn clone_file(&mut self, src: u64, dst: u64) -> Status {
        match self.file(src).cloned() {
            Ok(d) if src == dst => {
                let _ = d;
                Status::Ok
            }
            Ok(d) => match self.file(dst) {
                Ok(out) => {
                    *out = d;
                    Status::Ok
                }
                Err(s) => s,
            },
            Err(s) => s,
        }
    }

    /// SEEK in a file that is data from 0 to its size.
    pub fn seek(&mut self, id: u64, off: u64, what: Content) -> Result<SeekOk, Status> {
        let size = self.file(id)?.len() as u64;
        if off >= size {
            return Err(Status::Nxio);
        }
        Ok(SeekOk {
            eof: false,
            offset: match what {
                Content::Data => off,
                Content::Hole => size,
            },
        })
    }

    pub fn set_size(&mut self, id: u64, size: u64) -> Status {
        match self.file(id) {
            Ok(d) => {
                d.resize(size as usize, 0);
                Status::Ok
            }
            Err(s) => s,
        }
    }

    /// READDIR of `dir`: the entry at position `i` has cookie `i + 3`.
    pub fn readdir(&mut self, dir: u64, a: &ReaddirArgs) -> Result<ReaddirOk, Status> {
        let names: Vec<String> = self.children(dir)?.keys().cloned().collect();
        let from = a.cookie.saturating_sub(2) as usize;
        let entries: Vec<DirEntry> = names
            .iter()
            .enumerate()
            .skip(from)
            .take(64)
            .map(|(i, n)| DirEntry {
                cookie: i as u64 + 3,
                name: n.clone().into_bytes(),
            })
            .collect();
        Ok(ReaddirOk {
            cookieverf: Verifier([1; 8]),
            eof: from + entries.len() >= names.len(),
            entries,
        })
    }
}

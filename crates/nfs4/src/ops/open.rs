//! OPEN and CLOSE (RFC 8881 §18.16, §18.2). NFSv4.1 has no OPEN_CONFIRM: `seqid` is 0 and
//! ignored, and a session's client id stands for the owner's client.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::attr::SetAttrs;
use crate::basic::{bad, Bitmap, ChangeInfo, Component, Stateid, Verifier};
use crate::limits::{MAX_OPAQUE, MAX_OWNER};

/// `OPEN4_SHARE_ACCESS_READ`.
pub const SHARE_ACCESS_READ: u32 = 0x1;
/// `OPEN4_SHARE_ACCESS_WRITE`.
pub const SHARE_ACCESS_WRITE: u32 = 0x2;
/// `OPEN4_SHARE_ACCESS_BOTH`.
pub const SHARE_ACCESS_BOTH: u32 = 0x3;
/// `OPEN4_SHARE_ACCESS_WANT_NO_DELEG`: this client has no callback channel to return one.
pub const SHARE_ACCESS_WANT_NO_DELEG: u32 = 0x0400;
/// `OPEN4_SHARE_DENY_NONE`.
pub const SHARE_DENY_NONE: u32 = 0x0;
/// `OPEN4_SHARE_DENY_WRITE`: refused (NFS4ERR_SHARE_DENIED) while another open writes.
pub const SHARE_DENY_WRITE: u32 = 0x2;

/// ```text
/// struct state_owner4 {
///         clientid4       clientid;
///         opaque          owner<NFS4_OPAQUE_LIMIT>;
/// };
/// typedef state_owner4 open_owner4;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOwner {
    pub clientid: u64,
    pub owner: Vec<u8>,
}

impl Xdr for StateOwner {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.clientid);
        w.opaque(&self.owner);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<StateOwner> {
        Ok(StateOwner {
            clientid: r.u64()?,
            owner: r.opaque(MAX_OPAQUE)?.to_vec(),
        })
    }
}

/// ```text
/// enum opentype4 {
///         OPEN4_NOCREATE  = 0,
///         OPEN4_CREATE    = 1
/// };
/// union openflag4 switch (opentype4 opentype) {
///  case OPEN4_CREATE:
///          createhow4     how;
///  default:
///          void;
/// };
/// enum createmode4 {
///         UNCHECKED4      = 0,
///         GUARDED4        = 1,
///         /* Deprecated in NFSv4.1 */
///         EXCLUSIVE4      = 2,
///         EXCLUSIVE4_1    = 3
/// };
/// struct creatverfattr {
///          verifier4      cva_verf;
///          fattr4         cva_attrs;
/// };
/// union createhow4 switch (createmode4 mode) {
///  case UNCHECKED4:
///  case GUARDED4:
///          fattr4         createattrs;
///  case EXCLUSIVE4:
///          verifier4      createverf;
///  case EXCLUSIVE4_1:
///          creatverfattr  ch_createboth;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenHow {
    /// Open an existing file.
    NoCreate,
    /// Create, or open if it exists.
    Unchecked(SetAttrs),
    /// Create; NFS4ERR_EXIST if the name exists.
    Guarded(SetAttrs),
    /// Create exactly once (a retry with the same verifier opens what the first made).
    Exclusive(Verifier),
    /// EXCLUSIVE4_1: exclusive, with attributes (NFSv4.1).
    Exclusive41(Verifier, SetAttrs),
}

impl Xdr for OpenHow {
    fn encode(&self, w: &mut Encoder) {
        match self {
            OpenHow::NoCreate => w.u32(0),
            OpenHow::Unchecked(a) => {
                w.u32(1);
                w.u32(0);
                a.encode(w);
            }
            OpenHow::Guarded(a) => {
                w.u32(1);
                w.u32(1);
                a.encode(w);
            }
            OpenHow::Exclusive(v) => {
                w.u32(1);
                w.u32(2);
                v.encode(w);
            }
            OpenHow::Exclusive41(v, a) => {
                w.u32(1);
                w.u32(3);
                v.encode(w);
                a.encode(w);
            }
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<OpenHow> {
        match r.u32()? {
            0 => return Ok(OpenHow::NoCreate),
            1 => {}
            v => return Err(bad(format!("opentype4 {v}"))),
        }
        Ok(match r.u32()? {
            0 => OpenHow::Unchecked(SetAttrs::decode(r)?),
            1 => OpenHow::Guarded(SetAttrs::decode(r)?),
            2 => OpenHow::Exclusive(Verifier::decode(r)?),
            3 => OpenHow::Exclusive41(Verifier::decode(r)?, SetAttrs::decode(r)?),
            v => return Err(bad(format!("createmode4 {v}"))),
        })
    }
}

/// ```text
/// union open_claim4 switch (open_claim_type4 claim) {
///  case CLAIM_NULL:
///         /* CURRENT_FH: directory */
///         component4      file;
///  ...
///  case CLAIM_FH: /* New to NFSv4.1 */
///         /* CURRENT_FH: regular file to open */
///         void;
///  ...
/// };
/// ```
/// The two claims of a client that reclaims nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenClaim {
    /// `CLAIM_NULL = 0`: `file` in the current (directory) file handle.
    Null(Component),
    /// `CLAIM_FH = 4`: the current file handle itself.
    Fh,
}

impl Xdr for OpenClaim {
    fn encode(&self, w: &mut Encoder) {
        match self {
            OpenClaim::Null(c) => {
                w.u32(0);
                c.encode(w);
            }
            OpenClaim::Fh => w.u32(4),
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<OpenClaim> {
        match r.u32()? {
            0 => Ok(OpenClaim::Null(Component::decode(r)?)),
            4 => Ok(OpenClaim::Fh),
            v => Err(bad(format!("open_claim_type4 {v}"))),
        }
    }
}

/// ```text
/// struct OPEN4args {
///         seqid4          seqid;
///         uint32_t        share_access;
///         uint32_t        share_deny;
///         open_owner4     owner;
///         openflag4       openhow;
///         open_claim4     claim;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenArgs {
    pub seqid: u32,
    pub share_access: u32,
    pub share_deny: u32,
    pub owner: StateOwner,
    pub how: OpenHow,
    pub claim: OpenClaim,
}

impl Xdr for OpenArgs {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.seqid);
        w.u32(self.share_access);
        w.u32(self.share_deny);
        self.owner.encode(w);
        self.how.encode(w);
        self.claim.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<OpenArgs> {
        Ok(OpenArgs {
            seqid: r.u32()?,
            share_access: r.u32()?,
            share_deny: r.u32()?,
            owner: StateOwner::decode(r)?,
            how: OpenHow::decode(r)?,
            claim: OpenClaim::decode(r)?,
        })
    }
}

/// ```text
/// struct nfsace4 {
///         acetype4        type;
///         aceflag4        flag;
///         acemask4        access_mask;
///         utf8str_mixed   who;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ace {
    pub ace_type: u32,
    pub flag: u32,
    pub access_mask: u32,
    pub who: String,
}

impl Xdr for Ace {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.ace_type);
        w.u32(self.flag);
        w.u32(self.access_mask);
        w.string(&self.who);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Ace> {
        Ok(Ace {
            ace_type: r.u32()?,
            flag: r.u32()?,
            access_mask: r.u32()?,
            who: r.string(MAX_OWNER)?,
        })
    }
}

/// ```text
/// union nfs_space_limit4 switch (limit_by4 limitby) {
///  /* Limit specified as file size */
///  case NFS_LIMIT_SIZE:
///          uint64_t               filesize;
///  /* Limit specified by number of blocks */
///  case NFS_LIMIT_BLOCKS:
///          nfs_modified_limit4    mod_blocks;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceLimit {
    Size(u64),
    Blocks {
        num_blocks: u32,
        bytes_per_block: u32,
    },
}

/// ```text
/// union open_none_delegation4 /* New to NFSv4.1 */
///  switch (why_no_delegation4 ond_why) {
///          case WND4_CONTENTION:
///                  bool ond_server_will_push_deleg;
///          case WND4_RESOURCE:
///                  bool ond_server_will_signal_avail;
///          default:
///                  void;
/// };
/// union open_delegation4
///  switch (open_delegation_type4 delegation_type) {
///          case OPEN_DELEGATE_NONE:
///                  void;
///          case OPEN_DELEGATE_READ:
///                  open_read_delegation4 read;
///          case OPEN_DELEGATE_WRITE:
///                  open_write_delegation4 write;
///          case OPEN_DELEGATE_NONE_EXT: /* New to NFSv4.1 */
///                  open_none_delegation4 od_whynone;
/// };
/// struct open_read_delegation4 {
///  stateid4 stateid;    /* Stateid for delegation */
///  bool     recall;     /* Pre-recalled flag */
///  nfsace4 permissions; /* Defines users who don't need an ACCESS call */
/// };
/// struct open_write_delegation4 {
///  stateid4 stateid;      /* Stateid for delegation */
///  bool     recall;       /* Pre-recalled flag */
///  nfs_space_limit4
///            space_limit; /* Defines condition that the client must check */
///  nfsace4   permissions; /* Defines users who don't need an ACCESS call */
/// };
/// ```
/// Without a back channel a server grants none; one granted anyway is decoded, so the
/// caller can return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegation {
    None,
    Read {
        stateid: Stateid,
        recall: bool,
        permissions: Ace,
    },
    Write {
        stateid: Stateid,
        recall: bool,
        space_limit: SpaceLimit,
        permissions: Ace,
    },
    /// OPEN_DELEGATE_NONE_EXT: why not (`why_no_delegation4`), and for WND4_CONTENTION and
    /// WND4_RESOURCE the server's promise.
    NoneExt {
        why: u32,
        will_push_or_signal: Option<bool>,
    },
}

impl Xdr for Delegation {
    fn encode(&self, w: &mut Encoder) {
        match self {
            Delegation::None => w.u32(0),
            Delegation::Read {
                stateid,
                recall,
                permissions,
            } => {
                w.u32(1);
                stateid.encode(w);
                w.bool(*recall);
                permissions.encode(w);
            }
            Delegation::Write {
                stateid,
                recall,
                space_limit,
                permissions,
            } => {
                w.u32(2);
                stateid.encode(w);
                w.bool(*recall);
                match *space_limit {
                    SpaceLimit::Size(s) => {
                        w.u32(1);
                        w.u64(s);
                    }
                    SpaceLimit::Blocks {
                        num_blocks,
                        bytes_per_block,
                    } => {
                        w.u32(2);
                        w.u32(num_blocks);
                        w.u32(bytes_per_block);
                    }
                }
                permissions.encode(w);
            }
            Delegation::NoneExt {
                why,
                will_push_or_signal,
            } => {
                w.u32(3);
                w.u32(*why);
                if let Some(b) = will_push_or_signal {
                    w.bool(*b);
                }
            }
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Delegation> {
        Ok(match r.u32()? {
            0 => Delegation::None,
            1 => Delegation::Read {
                stateid: Stateid::decode(r)?,
                recall: r.bool()?,
                permissions: Ace::decode(r)?,
            },
            2 => Delegation::Write {
                stateid: Stateid::decode(r)?,
                recall: r.bool()?,
                space_limit: match r.u32()? {
                    1 => SpaceLimit::Size(r.u64()?),
                    2 => SpaceLimit::Blocks {
                        num_blocks: r.u32()?,
                        bytes_per_block: r.u32()?,
                    },
                    v => return Err(bad(format!("limit_by4 {v}"))),
                },
                permissions: Ace::decode(r)?,
            },
            3 => {
                let why = r.u32()?;
                // WND4_CONTENTION = 1, WND4_RESOURCE = 2 carry a bool.
                let will_push_or_signal = if matches!(why, 1 | 2) {
                    Some(r.bool()?)
                } else {
                    None
                };
                Delegation::NoneExt {
                    why,
                    will_push_or_signal,
                }
            }
            v => return Err(bad(format!("open_delegation_type4 {v}"))),
        })
    }
}

/// ```text
/// struct OPEN4resok {
///  stateid4         stateid;      /* Stateid for open */
///  change_info4     cinfo;        /* Directory change info */
///  uint32_t         rflags;       /* Result flags */
///  bitmap4          attrset;      /* Attribute set for create */
///  open_delegation4 delegation;   /* Info on any open delegation */
/// };
/// union OPEN4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          /* New CURRENT_FH: opened file */
///          OPEN4resok      resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOk {
    pub stateid: Stateid,
    pub cinfo: ChangeInfo,
    pub rflags: u32,
    pub attrset: Bitmap,
    pub delegation: Delegation,
}

impl Xdr for OpenOk {
    fn encode(&self, w: &mut Encoder) {
        self.stateid.encode(w);
        self.cinfo.encode(w);
        w.u32(self.rflags);
        self.attrset.encode(w);
        self.delegation.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<OpenOk> {
        Ok(OpenOk {
            stateid: Stateid::decode(r)?,
            cinfo: ChangeInfo::decode(r)?,
            rflags: r.u32()?,
            attrset: Bitmap::decode(r)?,
            delegation: Delegation::decode(r)?,
        })
    }
}

/// ```text
/// struct CLOSE4args {
///         /* CURRENT_FH: object */
///         seqid4          seqid;
///         stateid4        open_stateid;
/// };
/// union CLOSE4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          stateid4       open_stateid;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseArgs {
    pub seqid: u32,
    pub open_stateid: Stateid,
}

impl Xdr for CloseArgs {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.seqid);
        self.open_stateid.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CloseArgs> {
        Ok(CloseArgs {
            seqid: r.u32()?,
            open_stateid: Stateid::decode(r)?,
        })
    }
}

//! Operations on files and directories with arguments of their own: ACCESS, COMMIT,
//! SETATTR, RENAME (RFC 8881 §18.1, §18.3, §18.30, §18.26). The ops whose argument is one
//! value (PUTFH, LOOKUP, LINK, REMOVE, GETATTR) carry it directly in `Op`, with their `.x`.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::attr::SetAttrs;
use crate::basic::{ChangeInfo, Component, Stateid};

/// `ACCESS4_READ`.
pub const ACCESS4_READ: u32 = 0x01;
/// `ACCESS4_LOOKUP`.
pub const ACCESS4_LOOKUP: u32 = 0x02;
/// `ACCESS4_MODIFY`.
pub const ACCESS4_MODIFY: u32 = 0x04;
/// `ACCESS4_EXTEND`.
pub const ACCESS4_EXTEND: u32 = 0x08;
/// `ACCESS4_DELETE`.
pub const ACCESS4_DELETE: u32 = 0x10;
/// `ACCESS4_EXECUTE`.
pub const ACCESS4_EXECUTE: u32 = 0x20;

/// ```text
/// struct ACCESS4resok {
///         uint32_t        supported;
///         uint32_t        access;
/// };
/// union ACCESS4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          ACCESS4resok    resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessOk {
    pub supported: u32,
    pub access: u32,
}

impl Xdr for AccessOk {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.supported);
        w.u32(self.access);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<AccessOk> {
        Ok(AccessOk {
            supported: r.u32()?,
            access: r.u32()?,
        })
    }
}

/// ```text
/// struct COMMIT4args {
///         /* CURRENT_FH: file */
///         offset4         offset;
///         count4          count;
/// };
/// struct COMMIT4resok {
///         verifier4       writeverf;
/// };
/// union COMMIT4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          COMMIT4resok   resok4;
///  default:
///          void;
/// };
/// ```
/// A `count` of 0 commits from `offset` to the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitArgs {
    pub offset: u64,
    pub count: u32,
}

impl Xdr for CommitArgs {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.offset);
        w.u32(self.count);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CommitArgs> {
        Ok(CommitArgs {
            offset: r.u64()?,
            count: r.u32()?,
        })
    }
}

/// ```text
/// struct SETATTR4args {
///         /* CURRENT_FH: target object */
///         stateid4        stateid;
///         fattr4          obj_attributes;
/// };
/// struct SETATTR4res {
///         nfsstat4        status;
///         bitmap4         attrsset;
/// };
/// ```
/// Setting the size needs an open stateid for writing (or the anonymous one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetattrArgs {
    pub stateid: Stateid,
    pub attrs: SetAttrs,
}

impl Xdr for SetattrArgs {
    fn encode(&self, w: &mut Encoder) {
        self.stateid.encode(w);
        self.attrs.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SetattrArgs> {
        Ok(SetattrArgs {
            stateid: Stateid::decode(r)?,
            attrs: SetAttrs::decode(r)?,
        })
    }
}

/// ```text
/// struct RENAME4args {
///         /* SAVED_FH: source directory */
///         component4      oldname;
///         /* CURRENT_FH: target directory */
///         component4      newname;
/// };
/// ```
/// Replaces `newname` atomically if it exists (a regular file over a regular file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameArgs {
    pub oldname: Component,
    pub newname: Component,
}

impl Xdr for RenameArgs {
    fn encode(&self, w: &mut Encoder) {
        self.oldname.encode(w);
        self.newname.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<RenameArgs> {
        Ok(RenameArgs {
            oldname: Component::decode(r)?,
            newname: Component::decode(r)?,
        })
    }
}

/// ```text
/// struct RENAME4resok {
///         change_info4    source_cinfo;
///         change_info4    target_cinfo;
/// };
/// union RENAME4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          RENAME4resok    resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenameOk {
    pub source_cinfo: ChangeInfo,
    pub target_cinfo: ChangeInfo,
}

impl Xdr for RenameOk {
    fn encode(&self, w: &mut Encoder) {
        self.source_cinfo.encode(w);
        self.target_cinfo.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<RenameOk> {
        Ok(RenameOk {
            source_cinfo: ChangeInfo::decode(r)?,
            target_cinfo: ChangeInfo::decode(r)?,
        })
    }
}

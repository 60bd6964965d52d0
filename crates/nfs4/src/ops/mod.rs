//! The operations of a COMPOUND: [`Op`] (`nfs_argop4`) and [`OpRes`] (`nfs_resop4`), each
//! with an arm for what this crate does not know. Argument and result types live beside
//! the operations they belong to, each with its `.x` text (RFC 7863) above it.
//!
//! ```text
//! union nfs_argop4 switch (nfs_opnum4 argop) {
//!  case OP_ACCESS:         ACCESS4args opaccess;
//!  ...
//!  case OP_ILLEGAL:        void;
//! };
//! union nfs_resop4 switch (nfs_opnum4 resop) {
//!  case OP_ACCESS:         ACCESS4res opaccess;
//!  ...
//!  case OP_ILLEGAL:        ILLEGAL4res opillegal;
//! };
//! ```

pub mod dir;
pub mod file;
pub mod open;
pub mod session;
pub mod v42;

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::attr::Fattr;
use crate::basic::{bad, Bitmap, ChangeInfo, Component, Fh, SessionId, Stateid, Verifier};
use crate::status::Status;
use dir::{ReaddirArgs, ReaddirOk};
use file::{AccessOk, CommitArgs, RenameArgs, RenameOk, SetattrArgs};
use open::{CloseArgs, OpenArgs, OpenOk};
use session::{
    CreateSessionArgs, CreateSessionOk, ExchangeIdArgs, ExchangeIdOk, SequenceArgs, SequenceOk,
};
use v42::{CloneArgs, CopyArgs, CopyRes, RangeArgs, SeekArgs, SeekOk};

/// `enum nfs_opnum4`: the operation numbers this crate encodes (RFC 7863).
pub mod opcode {
    pub const ACCESS: u32 = 3;
    pub const CLOSE: u32 = 4;
    pub const COMMIT: u32 = 5;
    pub const GETATTR: u32 = 9;
    pub const GETFH: u32 = 10;
    pub const LINK: u32 = 11;
    pub const LOOKUP: u32 = 15;
    pub const OPEN: u32 = 18;
    pub const PUTFH: u32 = 22;
    pub const PUTROOTFH: u32 = 24;
    pub const READDIR: u32 = 26;
    pub const REMOVE: u32 = 28;
    pub const RENAME: u32 = 29;
    pub const RESTOREFH: u32 = 31;
    pub const SAVEFH: u32 = 32;
    pub const SETATTR: u32 = 34;
    pub const EXCHANGE_ID: u32 = 42;
    pub const CREATE_SESSION: u32 = 43;
    pub const DESTROY_SESSION: u32 = 44;
    pub const SEQUENCE: u32 = 53;
    pub const DESTROY_CLIENTID: u32 = 57;
    pub const RECLAIM_COMPLETE: u32 = 58;
    pub const ALLOCATE: u32 = 59;
    pub const COPY: u32 = 60;
    pub const DEALLOCATE: u32 = 62;
    pub const SEEK: u32 = 69;
    pub const CLONE: u32 = 71;
    pub const ILLEGAL: u32 = 10044;

    /// The `.x` name of an operation number, for messages.
    pub fn name(op: u32) -> &'static str {
        match op {
            ACCESS => "ACCESS",
            CLOSE => "CLOSE",
            COMMIT => "COMMIT",
            GETATTR => "GETATTR",
            GETFH => "GETFH",
            LINK => "LINK",
            LOOKUP => "LOOKUP",
            OPEN => "OPEN",
            PUTFH => "PUTFH",
            PUTROOTFH => "PUTROOTFH",
            READDIR => "READDIR",
            REMOVE => "REMOVE",
            RENAME => "RENAME",
            RESTOREFH => "RESTOREFH",
            SAVEFH => "SAVEFH",
            SETATTR => "SETATTR",
            EXCHANGE_ID => "EXCHANGE_ID",
            CREATE_SESSION => "CREATE_SESSION",
            DESTROY_SESSION => "DESTROY_SESSION",
            SEQUENCE => "SEQUENCE",
            DESTROY_CLIENTID => "DESTROY_CLIENTID",
            RECLAIM_COMPLETE => "RECLAIM_COMPLETE",
            ALLOCATE => "ALLOCATE",
            COPY => "COPY",
            DEALLOCATE => "DEALLOCATE",
            SEEK => "SEEK",
            CLONE => "CLONE",
            ILLEGAL => "ILLEGAL",
            _ => "an operation unknown to this client",
        }
    }
}

/// One operation of a COMPOUND call (`nfs_argop4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// ```text
    /// struct ACCESS4args {
    ///         /* CURRENT_FH: object */
    ///         uint32_t        access;
    /// };
    /// ```
    Access(u32),
    /// ALLOCATE4args: see [`RangeArgs`].
    Allocate(RangeArgs),
    Clone(CloneArgs),
    Close(CloseArgs),
    Commit(CommitArgs),
    Copy(CopyArgs),
    CreateSession(CreateSessionArgs),
    /// DEALLOCATE4args: see [`RangeArgs`].
    Deallocate(RangeArgs),
    /// ```text
    /// struct DESTROY_CLIENTID4args {
    ///         clientid4       dca_clientid;
    /// };
    /// ```
    DestroyClientid(u64),
    /// ```text
    /// struct DESTROY_SESSION4args {
    ///         sessionid4      dsa_sessionid;
    /// };
    /// ```
    DestroySession(SessionId),
    ExchangeId(ExchangeIdArgs),
    /// ```text
    /// struct GETATTR4args {
    ///         /* CURRENT_FH: object */
    ///         bitmap4         attr_request;
    /// };
    /// ```
    Getattr(Bitmap),
    /// `case OP_GETFH: void;`
    Getfh,
    /// ```text
    /// struct LINK4args {
    ///         /* SAVED_FH: source object */
    ///         /* CURRENT_FH: target directory */
    ///         component4      newname;
    /// };
    /// ```
    Link(Component),
    /// ```text
    /// struct LOOKUP4args {
    ///         /* CURRENT_FH: directory */
    ///         component4      objname;
    /// };
    /// ```
    Lookup(Component),
    Open(OpenArgs),
    /// ```text
    /// struct PUTFH4args {
    ///         nfs_fh4         object;
    /// };
    /// ```
    Putfh(Fh),
    /// `case OP_PUTROOTFH: void;`
    Putrootfh,
    Readdir(ReaddirArgs),
    /// ```text
    /// struct RECLAIM_COMPLETE4args {
    ///         bool            rca_one_fs;
    /// };
    /// ```
    ReclaimComplete(bool),
    /// ```text
    /// struct REMOVE4args {
    ///         /* CURRENT_FH: directory */
    ///         component4      target;
    /// };
    /// ```
    Remove(Component),
    Rename(RenameArgs),
    /// `case OP_RESTOREFH: void;`
    Restorefh,
    /// `case OP_SAVEFH: void;`
    Savefh,
    Seek(SeekArgs),
    Sequence(SequenceArgs),
    Setattr(SetattrArgs),
    /// `case OP_ILLEGAL: void;` (a server answers it with NFS4ERR_OP_ILLEGAL).
    Illegal,
    /// Any other operation, with its arguments already in XDR (a multiple of 4 bytes).
    Unknown {
        opcode: u32,
        args: Vec<u8>,
    },
}

impl Op {
    pub fn opcode(&self) -> u32 {
        use opcode::*;
        match self {
            Op::Access(_) => ACCESS,
            Op::Allocate(_) => ALLOCATE,
            Op::Clone(_) => CLONE,
            Op::Close(_) => CLOSE,
            Op::Commit(_) => COMMIT,
            Op::Copy(_) => COPY,
            Op::CreateSession(_) => CREATE_SESSION,
            Op::Deallocate(_) => DEALLOCATE,
            Op::DestroyClientid(_) => DESTROY_CLIENTID,
            Op::DestroySession(_) => DESTROY_SESSION,
            Op::ExchangeId(_) => EXCHANGE_ID,
            Op::Getattr(_) => GETATTR,
            Op::Getfh => GETFH,
            Op::Link(_) => LINK,
            Op::Lookup(_) => LOOKUP,
            Op::Open(_) => OPEN,
            Op::Putfh(_) => PUTFH,
            Op::Putrootfh => PUTROOTFH,
            Op::Readdir(_) => READDIR,
            Op::ReclaimComplete(_) => RECLAIM_COMPLETE,
            Op::Remove(_) => REMOVE,
            Op::Rename(_) => RENAME,
            Op::Restorefh => RESTOREFH,
            Op::Savefh => SAVEFH,
            Op::Seek(_) => SEEK,
            Op::Sequence(_) => SEQUENCE,
            Op::Setattr(_) => SETATTR,
            Op::Illegal => ILLEGAL,
            Op::Unknown { opcode, .. } => *opcode,
        }
    }
}

impl Xdr for Op {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.opcode());
        match self {
            Op::Access(a) => w.u32(*a),
            Op::Allocate(a) | Op::Deallocate(a) => a.encode(w),
            Op::Clone(a) => a.encode(w),
            Op::Close(a) => a.encode(w),
            Op::Commit(a) => a.encode(w),
            Op::Copy(a) => a.encode(w),
            Op::CreateSession(a) => a.encode(w),
            Op::DestroyClientid(id) => w.u64(*id),
            Op::DestroySession(id) => id.encode(w),
            Op::ExchangeId(a) => a.encode(w),
            Op::Getattr(b) => b.encode(w),
            Op::Link(c) | Op::Lookup(c) | Op::Remove(c) => c.encode(w),
            Op::Open(a) => a.encode(w),
            Op::Putfh(fh) => fh.encode(w),
            Op::Readdir(a) => a.encode(w),
            Op::ReclaimComplete(one_fs) => w.bool(*one_fs),
            Op::Rename(a) => a.encode(w),
            Op::Seek(a) => a.encode(w),
            Op::Sequence(a) => a.encode(w),
            Op::Setattr(a) => a.encode(w),
            Op::Getfh | Op::Putrootfh | Op::Restorefh | Op::Savefh | Op::Illegal => {}
            Op::Unknown { args, .. } => w.raw(args),
        }
    }

    /// Decodes an operation this crate knows (the server's view; for tests and fuzzing).
    fn decode(r: &mut Decoder<'_>) -> WireResult<Op> {
        use opcode::*;
        Ok(match r.u32()? {
            ACCESS => Op::Access(r.u32()?),
            ALLOCATE => Op::Allocate(RangeArgs::decode(r)?),
            CLONE => Op::Clone(CloneArgs::decode(r)?),
            CLOSE => Op::Close(CloseArgs::decode(r)?),
            COMMIT => Op::Commit(CommitArgs::decode(r)?),
            COPY => Op::Copy(CopyArgs::decode(r)?),
            CREATE_SESSION => Op::CreateSession(CreateSessionArgs::decode(r)?),
            DEALLOCATE => Op::Deallocate(RangeArgs::decode(r)?),
            DESTROY_CLIENTID => Op::DestroyClientid(r.u64()?),
            DESTROY_SESSION => Op::DestroySession(SessionId::decode(r)?),
            EXCHANGE_ID => Op::ExchangeId(ExchangeIdArgs::decode(r)?),
            GETATTR => Op::Getattr(Bitmap::decode(r)?),
            GETFH => Op::Getfh,
            LINK => Op::Link(Component::decode(r)?),
            LOOKUP => Op::Lookup(Component::decode(r)?),
            OPEN => Op::Open(OpenArgs::decode(r)?),
            PUTFH => Op::Putfh(Fh::decode(r)?),
            PUTROOTFH => Op::Putrootfh,
            READDIR => Op::Readdir(ReaddirArgs::decode(r)?),
            RECLAIM_COMPLETE => Op::ReclaimComplete(r.bool()?),
            REMOVE => Op::Remove(Component::decode(r)?),
            RENAME => Op::Rename(RenameArgs::decode(r)?),
            RESTOREFH => Op::Restorefh,
            SAVEFH => Op::Savefh,
            SEEK => Op::Seek(SeekArgs::decode(r)?),
            SEQUENCE => Op::Sequence(SequenceArgs::decode(r)?),
            SETATTR => Op::Setattr(SetattrArgs::decode(r)?),
            ILLEGAL => Op::Illegal,
            other => return Err(bad(format!("argument of operation {other}"))),
        })
    }
}

/// The result of one operation (`nfs_resop4`). `Err(status)` arms never hold `Status::Ok`.
// A reply holds at most MAX_OPS results, decoded once: boxing the large arms buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpRes {
    Access(Result<AccessOk, Status>),
    Allocate(Status),
    Clone(Status),
    Close(Result<Stateid, Status>),
    /// `COMMIT4resok { verifier4 writeverf; }`
    Commit(Result<Verifier, Status>),
    Copy(CopyRes),
    CreateSession(Result<CreateSessionOk, Status>),
    Deallocate(Status),
    DestroyClientid(Status),
    DestroySession(Status),
    ExchangeId(Result<ExchangeIdOk, Status>),
    /// ```text
    /// struct GETATTR4resok {
    ///         fattr4          obj_attributes;
    /// };
    /// union GETATTR4res switch (nfsstat4 status) {
    ///  case NFS4_OK:
    ///          GETATTR4resok  resok4;
    ///  default:
    ///          void;
    /// };
    /// ```
    Getattr(Result<Fattr, Status>),
    /// ```text
    /// struct GETFH4resok {
    ///         nfs_fh4         object;
    /// };
    /// union GETFH4res switch (nfsstat4 status) {
    ///  case NFS4_OK:
    ///          GETFH4resok     resok4;
    ///  default:
    ///          void;
    /// };
    /// ```
    Getfh(Result<Fh, Status>),
    /// ```text
    /// struct LINK4resok {
    ///         change_info4    cinfo;
    /// };
    /// union LINK4res switch (nfsstat4 status) {
    ///  case NFS4_OK:
    ///          LINK4resok resok4;
    ///  default:
    ///          void;
    /// };
    /// ```
    Link(Result<ChangeInfo, Status>),
    /// `struct LOOKUP4res { nfsstat4 status; };` (new CURRENT_FH: the object)
    Lookup(Status),
    Open(Result<OpenOk, Status>),
    Putfh(Status),
    Putrootfh(Status),
    Readdir(Result<ReaddirOk, Status>),
    ReclaimComplete(Status),
    /// ```text
    /// struct REMOVE4resok {
    ///         change_info4    cinfo;
    /// };
    /// union REMOVE4res switch (nfsstat4 status) {
    ///  case NFS4_OK:
    ///          REMOVE4resok   resok4;
    ///  default:
    ///          void;
    /// };
    /// ```
    Remove(Result<ChangeInfo, Status>),
    Rename(Result<RenameOk, Status>),
    Restorefh(Status),
    Savefh(Status),
    Seek(Result<SeekOk, Status>),
    Sequence(Result<SequenceOk, Status>),
    /// `struct SETATTR4res { nfsstat4 status; bitmap4 attrsset; };` (both, whatever the
    /// status).
    Setattr {
        status: Status,
        attrsset: Bitmap,
    },
    /// `struct ILLEGAL4res { nfsstat4 status; };`: the server did not know the operation.
    Illegal(Status),
    /// The result of an [`Op::Unknown`] with a number this crate cannot decode: kept raw.
    /// Only possible as the last result, where the rest of the reply is its body.
    Unknown {
        opcode: u32,
        status: Status,
        body: Vec<u8>,
    },
}

/// `union X switch (nfsstat4 status) { case NFS4_OK: T; default: void; }`.
fn ok_or<T: Xdr>(r: &mut Decoder<'_>) -> WireResult<Result<T, Status>> {
    match Status::decode(r)? {
        Status::Ok => Ok(Ok(T::decode(r)?)),
        s => Ok(Err(s)),
    }
}

fn encode_ok_or<T: Xdr>(w: &mut Encoder, v: &Result<T, Status>) {
    match v {
        Ok(x) => {
            Status::Ok.encode(w);
            x.encode(w);
        }
        Err(s) => s.encode(w),
    }
}

impl OpRes {
    /// The status of the operation.
    pub fn status(&self) -> Status {
        fn of<T>(r: &Result<T, Status>) -> Status {
            match r {
                Ok(_) => Status::Ok,
                Err(s) => *s,
            }
        }
        match self {
            OpRes::Access(r) => of(r),
            OpRes::Close(r) => of(r),
            OpRes::Commit(r) => of(r),
            OpRes::Copy(c) => c.status(),
            OpRes::CreateSession(r) => of(r),
            OpRes::ExchangeId(r) => of(r),
            OpRes::Getattr(r) => of(r),
            OpRes::Getfh(r) => of(r),
            OpRes::Link(r) | OpRes::Remove(r) => of(r),
            OpRes::Open(r) => of(r),
            OpRes::Readdir(r) => of(r),
            OpRes::Rename(r) => of(r),
            OpRes::Seek(r) => of(r),
            OpRes::Sequence(r) => of(r),
            OpRes::Allocate(s)
            | OpRes::Clone(s)
            | OpRes::Deallocate(s)
            | OpRes::DestroyClientid(s)
            | OpRes::DestroySession(s)
            | OpRes::Lookup(s)
            | OpRes::Putfh(s)
            | OpRes::Putrootfh(s)
            | OpRes::ReclaimComplete(s)
            | OpRes::Restorefh(s)
            | OpRes::Savefh(s)
            | OpRes::Illegal(s) => *s,
            OpRes::Setattr { status, .. } | OpRes::Unknown { status, .. } => *status,
        }
    }

    /// The operation number on the wire (`resop`).
    pub fn opcode(&self) -> u32 {
        use opcode::*;
        match self {
            OpRes::Access(_) => ACCESS,
            OpRes::Allocate(_) => ALLOCATE,
            OpRes::Clone(_) => CLONE,
            OpRes::Close(_) => CLOSE,
            OpRes::Commit(_) => COMMIT,
            OpRes::Copy(_) => COPY,
            OpRes::CreateSession(_) => CREATE_SESSION,
            OpRes::Deallocate(_) => DEALLOCATE,
            OpRes::DestroyClientid(_) => DESTROY_CLIENTID,
            OpRes::DestroySession(_) => DESTROY_SESSION,
            OpRes::ExchangeId(_) => EXCHANGE_ID,
            OpRes::Getattr(_) => GETATTR,
            OpRes::Getfh(_) => GETFH,
            OpRes::Link(_) => LINK,
            OpRes::Lookup(_) => LOOKUP,
            OpRes::Open(_) => OPEN,
            OpRes::Putfh(_) => PUTFH,
            OpRes::Putrootfh(_) => PUTROOTFH,
            OpRes::Readdir(_) => READDIR,
            OpRes::ReclaimComplete(_) => RECLAIM_COMPLETE,
            OpRes::Remove(_) => REMOVE,
            OpRes::Rename(_) => RENAME,
            OpRes::Restorefh(_) => RESTOREFH,
            OpRes::Savefh(_) => SAVEFH,
            OpRes::Seek(_) => SEEK,
            OpRes::Sequence(_) => SEQUENCE,
            OpRes::Setattr { .. } => SETATTR,
            OpRes::Illegal(_) => ILLEGAL,
            OpRes::Unknown { opcode, .. } => *opcode,
        }
    }

    /// Decodes the result of operation `op` (its `resop` already read). `last`: this is the
    /// final result of the reply, so an unknown operation may take the rest as its body.
    pub(crate) fn decode_for(op: u32, r: &mut Decoder<'_>, last: bool) -> WireResult<OpRes> {
        use opcode::*;
        Ok(match op {
            ACCESS => OpRes::Access(ok_or(r)?),
            ALLOCATE => OpRes::Allocate(Status::decode(r)?),
            CLONE => OpRes::Clone(Status::decode(r)?),
            CLOSE => OpRes::Close(ok_or(r)?),
            COMMIT => OpRes::Commit(ok_or(r)?),
            COPY => OpRes::Copy(CopyRes::decode(r)?),
            CREATE_SESSION => OpRes::CreateSession(ok_or(r)?),
            DEALLOCATE => OpRes::Deallocate(Status::decode(r)?),
            DESTROY_CLIENTID => OpRes::DestroyClientid(Status::decode(r)?),
            DESTROY_SESSION => OpRes::DestroySession(Status::decode(r)?),
            EXCHANGE_ID => OpRes::ExchangeId(ok_or(r)?),
            GETATTR => OpRes::Getattr(ok_or(r)?),
            GETFH => OpRes::Getfh(ok_or(r)?),
            LINK => OpRes::Link(ok_or(r)?),
            LOOKUP => OpRes::Lookup(Status::decode(r)?),
            OPEN => OpRes::Open(ok_or(r)?),
            PUTFH => OpRes::Putfh(Status::decode(r)?),
            PUTROOTFH => OpRes::Putrootfh(Status::decode(r)?),
            READDIR => OpRes::Readdir(ok_or(r)?),
            RECLAIM_COMPLETE => OpRes::ReclaimComplete(Status::decode(r)?),
            REMOVE => OpRes::Remove(ok_or(r)?),
            RENAME => OpRes::Rename(ok_or(r)?),
            RESTOREFH => OpRes::Restorefh(Status::decode(r)?),
            SAVEFH => OpRes::Savefh(Status::decode(r)?),
            SEEK => OpRes::Seek(ok_or(r)?),
            SEQUENCE => OpRes::Sequence(ok_or(r)?),
            SETATTR => OpRes::Setattr {
                status: Status::decode(r)?,
                attrsset: Bitmap::decode(r)?,
            },
            ILLEGAL => OpRes::Illegal(Status::decode(r)?),
            other if last => {
                let status = Status::decode(r)?;
                // The rest of the reply is its body; the compound decoder stops here.
                let body = r.rest().to_vec();
                OpRes::Unknown {
                    opcode: other,
                    status,
                    body,
                }
            }
            other => {
                return Err(bad(format!(
                    "result of operation {other}, unknown to this client, before the last"
                )))
            }
        })
    }
}

impl Xdr for OpRes {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.opcode());
        match self {
            OpRes::Access(r) => encode_ok_or(w, r),
            OpRes::Close(r) => encode_ok_or(w, r),
            OpRes::Commit(r) => encode_ok_or(w, r),
            OpRes::Copy(c) => c.encode(w),
            OpRes::CreateSession(r) => encode_ok_or(w, r),
            OpRes::ExchangeId(r) => encode_ok_or(w, r),
            OpRes::Getattr(r) => encode_ok_or(w, r),
            OpRes::Getfh(r) => encode_ok_or(w, r),
            OpRes::Link(r) | OpRes::Remove(r) => encode_ok_or(w, r),
            OpRes::Open(r) => encode_ok_or(w, r),
            OpRes::Readdir(r) => encode_ok_or(w, r),
            OpRes::Rename(r) => encode_ok_or(w, r),
            OpRes::Seek(r) => encode_ok_or(w, r),
            OpRes::Sequence(r) => encode_ok_or(w, r),
            OpRes::Setattr { status, attrsset } => {
                status.encode(w);
                attrsset.encode(w);
            }
            OpRes::Unknown { status, body, .. } => {
                status.encode(w);
                w.raw(body);
            }
            OpRes::Allocate(s)
            | OpRes::Clone(s)
            | OpRes::Deallocate(s)
            | OpRes::DestroyClientid(s)
            | OpRes::DestroySession(s)
            | OpRes::Lookup(s)
            | OpRes::Putfh(s)
            | OpRes::Putrootfh(s)
            | OpRes::ReclaimComplete(s)
            | OpRes::Restorefh(s)
            | OpRes::Savefh(s)
            | OpRes::Illegal(s) => s.encode(w),
        }
    }

    /// Decodes one result on its own (the result of an unknown operation cannot be).
    fn decode(r: &mut Decoder<'_>) -> WireResult<OpRes> {
        let op = r.u32()?;
        OpRes::decode_for(op, r, false)
    }
}

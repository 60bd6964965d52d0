//! The NFSv4.2 operations the backend offloads with (RFC 7862 §15): CLONE, COPY (intra-
//! server, synchronous), ALLOCATE, DEALLOCATE, SEEK.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::basic::{bad, Stateid, Verifier};
use crate::limits::MAX_CALLBACK_IDS;
use crate::status::Status;

/// ```text
/// struct CLONE4args {
///         /* SAVED_FH: source file */
///         /* CURRENT_FH: destination file */
///         stateid4        cl_src_stateid;
///         stateid4        cl_dst_stateid;
///         offset4         cl_src_offset;
///         offset4         cl_dst_offset;
///         length4         cl_count;
/// };
/// struct CLONE4res {
///         nfsstat4        cl_status;
/// };
/// ```
/// A `count` of 0 clones to the end of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneArgs {
    pub src_stateid: Stateid,
    pub dst_stateid: Stateid,
    pub src_offset: u64,
    pub dst_offset: u64,
    pub count: u64,
}

impl Xdr for CloneArgs {
    fn encode(&self, w: &mut Encoder) {
        self.src_stateid.encode(w);
        self.dst_stateid.encode(w);
        w.u64(self.src_offset);
        w.u64(self.dst_offset);
        w.u64(self.count);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CloneArgs> {
        Ok(CloneArgs {
            src_stateid: Stateid::decode(r)?,
            dst_stateid: Stateid::decode(r)?,
            src_offset: r.u64()?,
            dst_offset: r.u64()?,
            count: r.u64()?,
        })
    }
}

/// ```text
/// struct COPY4args {
///         /* SAVED_FH: source file */
///         /* CURRENT_FH: destination file */
///         stateid4        ca_src_stateid;
///         stateid4        ca_dst_stateid;
///         offset4         ca_src_offset;
///         offset4         ca_dst_offset;
///         length4         ca_count;
///         bool            ca_consecutive;
///         bool            ca_synchronous;
///         netloc4         ca_source_server<>;
/// };
/// ```
/// Intra-server only: `ca_source_server` is always empty. A `count` of 0 copies to the end
/// of the source. The server may copy less than asked (knfsd: 4 MiB per synchronous COPY);
/// the caller loops on `wr_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyArgs {
    pub src_stateid: Stateid,
    pub dst_stateid: Stateid,
    pub src_offset: u64,
    pub dst_offset: u64,
    pub count: u64,
    pub consecutive: bool,
    pub synchronous: bool,
}

impl Xdr for CopyArgs {
    fn encode(&self, w: &mut Encoder) {
        self.src_stateid.encode(w);
        self.dst_stateid.encode(w);
        w.u64(self.src_offset);
        w.u64(self.dst_offset);
        w.u64(self.count);
        w.bool(self.consecutive);
        w.bool(self.synchronous);
        w.u32(0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CopyArgs> {
        let a = CopyArgs {
            src_stateid: Stateid::decode(r)?,
            dst_stateid: Stateid::decode(r)?,
            src_offset: r.u64()?,
            dst_offset: r.u64()?,
            count: r.u64()?,
            consecutive: r.bool()?,
            synchronous: r.bool()?,
        };
        if r.u32()? != 0 {
            return Err(bad("COPY from another server"));
        }
        Ok(a)
    }
}

/// ```text
/// enum stable_how4 {
///         UNSTABLE4       = 0,
///         DATA_SYNC4      = 1,
///         FILE_SYNC4      = 2
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StableHow {
    /// The data may be lost in a server crash until a COMMIT answers the same verifier.
    Unstable,
    DataSync,
    FileSync,
    Unknown(u32),
}

impl StableHow {
    fn from_u32(v: u32) -> StableHow {
        match v {
            0 => StableHow::Unstable,
            1 => StableHow::DataSync,
            2 => StableHow::FileSync,
            v => StableHow::Unknown(v),
        }
    }
    fn to_u32(self) -> u32 {
        match self {
            StableHow::Unstable => 0,
            StableHow::DataSync => 1,
            StableHow::FileSync => 2,
            StableHow::Unknown(v) => v,
        }
    }
}

/// ```text
/// struct write_response4 {
///         stateid4        wr_callback_id<1>;
///         length4         wr_count;
///         stable_how4     wr_committed;
///         verifier4       wr_writeverf;
/// };
/// ```
/// `callback_id` is set only for an asynchronous copy (which this client never asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResponse {
    pub callback_id: Option<Stateid>,
    pub count: u64,
    pub committed: StableHow,
    pub writeverf: Verifier,
}

impl Xdr for WriteResponse {
    fn encode(&self, w: &mut Encoder) {
        crate::basic::encode_opt(w, self.callback_id.as_ref());
        w.u64(self.count);
        w.u32(self.committed.to_u32());
        self.writeverf.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<WriteResponse> {
        let ids: Vec<Stateid> = r.array(MAX_CALLBACK_IDS, 16)?;
        Ok(WriteResponse {
            callback_id: ids.into_iter().next(),
            count: r.u64()?,
            committed: StableHow::from_u32(r.u32()?),
            writeverf: Verifier::decode(r)?,
        })
    }
}

/// ```text
/// struct copy_requirements4 {
///         bool            cr_consecutive;
///         bool            cr_synchronous;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRequirements {
    pub consecutive: bool,
    pub synchronous: bool,
}

impl Xdr for CopyRequirements {
    fn encode(&self, w: &mut Encoder) {
        w.bool(self.consecutive);
        w.bool(self.synchronous);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CopyRequirements> {
        Ok(CopyRequirements {
            consecutive: r.bool()?,
            synchronous: r.bool()?,
        })
    }
}

/// ```text
/// struct COPY4resok {
///         write_response4         cr_response;
///         copy_requirements4      cr_requirements;
/// };
/// union COPY4res switch (nfsstat4 cr_status) {
///  case NFS4_OK:
///          COPY4resok              cr_resok4;
///  case NFS4ERR_OFFLOAD_NO_REQS:
///          copy_requirements4      cr_requirements;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyRes {
    Ok {
        response: WriteResponse,
        requirements: CopyRequirements,
    },
    /// NFS4ERR_OFFLOAD_NO_REQS: the server cannot copy as asked, and says what it can.
    NoReqs(CopyRequirements),
    /// Any other failure.
    Err(Status),
}

impl CopyRes {
    pub fn status(&self) -> Status {
        match self {
            CopyRes::Ok { .. } => Status::Ok,
            CopyRes::NoReqs(_) => Status::OffloadNoReqs,
            CopyRes::Err(s) => *s,
        }
    }
}

impl Xdr for CopyRes {
    fn encode(&self, w: &mut Encoder) {
        self.status().encode(w);
        match self {
            CopyRes::Ok {
                response,
                requirements,
            } => {
                response.encode(w);
                requirements.encode(w);
            }
            CopyRes::NoReqs(req) => req.encode(w),
            CopyRes::Err(_) => {}
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CopyRes> {
        Ok(match Status::decode(r)? {
            Status::Ok => CopyRes::Ok {
                response: WriteResponse::decode(r)?,
                requirements: CopyRequirements::decode(r)?,
            },
            Status::OffloadNoReqs => CopyRes::NoReqs(CopyRequirements::decode(r)?),
            s => CopyRes::Err(s),
        })
    }
}

/// ```text
/// struct ALLOCATE4args {
///         /* CURRENT_FH: file */
///         stateid4        aa_stateid;
///         offset4         aa_offset;
///         length4         aa_length;
/// };
/// struct ALLOCATE4res {
///         nfsstat4        ar_status;
/// };
/// struct DEALLOCATE4args {
///         /* CURRENT_FH: file */
///         stateid4        da_stateid;
///         offset4         da_offset;
///         length4         da_length;
/// };
/// struct DEALLOCATE4res {
///         nfsstat4        dr_status;
/// };
/// ```
/// The arguments of ALLOCATE (reserve, keeping data) and DEALLOCATE (punch a hole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeArgs {
    pub stateid: Stateid,
    pub offset: u64,
    pub length: u64,
}

impl Xdr for RangeArgs {
    fn encode(&self, w: &mut Encoder) {
        self.stateid.encode(w);
        w.u64(self.offset);
        w.u64(self.length);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<RangeArgs> {
        Ok(RangeArgs {
            stateid: Stateid::decode(r)?,
            offset: r.u64()?,
            length: r.u64()?,
        })
    }
}

/// ```text
/// enum data_content4 {
///         NFS4_CONTENT_DATA = 0,
///         NFS4_CONTENT_HOLE = 1
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Data,
    Hole,
}

/// ```text
/// struct SEEK4args {
///         /* CURRENT_FH: file */
///         stateid4        sa_stateid;
///         offset4         sa_offset;
///         data_content4   sa_what;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekArgs {
    pub stateid: Stateid,
    pub offset: u64,
    pub what: Content,
}

impl Xdr for SeekArgs {
    fn encode(&self, w: &mut Encoder) {
        self.stateid.encode(w);
        w.u64(self.offset);
        w.u32(match self.what {
            Content::Data => 0,
            Content::Hole => 1,
        });
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SeekArgs> {
        Ok(SeekArgs {
            stateid: Stateid::decode(r)?,
            offset: r.u64()?,
            what: match r.u32()? {
                0 => Content::Data,
                1 => Content::Hole,
                v => return Err(bad(format!("data_content4 {v}"))),
            },
        })
    }
}

/// ```text
/// struct seek_res4 {
///         bool            sr_eof;
///         offset4         sr_offset;
/// };
/// union SEEK4res switch (nfsstat4 sa_status) {
///  case NFS4_OK:
///          seek_res4       resok4;
///  default:
///          void;
/// };
/// ```
/// Seeking data past the last data answers NFS4ERR_NXIO (knfsd, as `lseek` gives ENXIO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekOk {
    pub eof: bool,
    pub offset: u64,
}

impl Xdr for SeekOk {
    fn encode(&self, w: &mut Encoder) {
        w.bool(self.eof);
        w.u64(self.offset);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SeekOk> {
        Ok(SeekOk {
            eof: r.bool()?,
            offset: r.u64()?,
        })
    }
}

//! COMPOUND (RFC 8881 §16.2): a tag, a minor version and a list of operations; the reply
//! has a status, the tag again and one result per operation *executed* — the server stops
//! at the first that fails, and the status of the COMPOUND is that operation's.
//!
//! ```text
//! struct COMPOUND4args {
//!         utf8str_cs       tag;
//!         uint32_t         minorversion;
//!         nfs_argop4       argarray<>;
//! };
//! struct COMPOUND4res {
//!         nfsstat4         status;
//!         utf8str_cs       tag;
//!         nfs_resop4       resarray<>;
//! };
//! ```
//! [`decode_reply`] checks a reply against the call's operations: no more results than
//! operations, each result for the operation at its place (or OP_ILLEGAL), every result
//! but the last successful, the last one's status the COMPOUND's, and a short reply only
//! with a failure. A reply that breaks any of these is refused whole.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::basic::bad;
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{MAX_OPS, MAX_TAG};
use crate::ops::{opcode, Op, OpRes};
use crate::status::Status;

/// The arguments of NFSPROC4_COMPOUND.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundArgs {
    pub tag: String,
    pub minorversion: u32,
    pub ops: Vec<Op>,
}

impl CompoundArgs {
    /// Encodes the call's arguments, refusing what a server must refuse anyway (a tag
    /// over [`MAX_TAG`] bytes, more than [`MAX_OPS`] operations).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.tag.len() > MAX_TAG {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("COMPOUND tag of {} bytes, limit {MAX_TAG}", self.tag.len()),
            ));
        }
        if self.ops.len() > MAX_OPS {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("COMPOUND of {} operations, limit {MAX_OPS}", self.ops.len()),
            ));
        }
        Ok(openvaai_proto::xdr::to_bytes(self))
    }
}

impl Xdr for CompoundArgs {
    fn encode(&self, w: &mut Encoder) {
        w.string(&self.tag);
        w.u32(self.minorversion);
        w.array(&self.ops);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CompoundArgs> {
        Ok(CompoundArgs {
            tag: r.string(MAX_TAG)?,
            minorversion: r.u32()?,
            ops: r.array(MAX_OPS, 4)?,
        })
    }
}

/// The reply of NFSPROC4_COMPOUND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundRes {
    pub status: Status,
    pub tag: String,
    pub results: Vec<OpRes>,
}

impl Xdr for CompoundRes {
    fn encode(&self, w: &mut Encoder) {
        self.status.encode(w);
        w.string(&self.tag);
        w.array(&self.results);
    }

    /// Decodes each result by its own `resop`; an operation unknown to this crate can only
    /// be the last (its body is the rest). Use [`decode_reply`] to also check the results
    /// against the call.
    fn decode(r: &mut Decoder<'_>) -> WireResult<CompoundRes> {
        let status = Status::decode(r)?;
        let tag = r.string(MAX_TAG)?;
        let n = r.u32()? as usize;
        if n > MAX_OPS {
            return Err(openvaai_proto::Error::new(
                openvaai_proto::ErrorKind::TooLarge,
                format!("COMPOUND reply with {n} results, limit {MAX_OPS}"),
            ));
        }
        // Each result takes at least 8 bytes (resop and status).
        if n.saturating_mul(8) > r.remaining() {
            return Err(bad(format!("COMPOUND reply of {n} results is truncated")));
        }
        let mut results = Vec::with_capacity(n);
        for i in 0..n {
            let op = r.u32()?;
            let res = OpRes::decode_for(op, r, i + 1 == n)?;
            let unknown = matches!(res, OpRes::Unknown { .. });
            results.push(res);
            if unknown {
                return Ok(CompoundRes {
                    status,
                    tag,
                    results,
                });
            }
        }
        r.finish()?;
        Ok(CompoundRes {
            status,
            tag,
            results,
        })
    }
}

impl CompoundRes {
    /// Checks the results against the operations `sent` (their numbers, in order).
    pub fn check_against(&self, sent: &[u32]) -> Result<()> {
        let unexpected = |d: String| Err(Error::new(ErrorKind::UnexpectedReply, d));
        let n = self.results.len();
        if n > sent.len() {
            return unexpected(format!(
                "{n} results for a COMPOUND of {} operations",
                sent.len()
            ));
        }
        for (i, (res, &op)) in self.results.iter().zip(sent).enumerate() {
            let got = res.opcode();
            if got == opcode::ILLEGAL {
                if res.status().is_ok() {
                    return unexpected(format!("OP_ILLEGAL result {i} with status NFS4_OK"));
                }
            } else if got != op {
                return unexpected(format!(
                    "result {i} is for {} ({got}), the call's operation {i} was {} ({op})",
                    opcode::name(got),
                    opcode::name(op)
                ));
            }
            let last = i + 1 == n;
            if !last && !res.status().is_ok() {
                return unexpected(format!(
                    "result {i} ({}) failed with {} but the server went on",
                    opcode::name(got),
                    res.status()
                ));
            }
            if last && res.status() != self.status {
                return unexpected(format!(
                    "COMPOUND status {} but its last result ({}) has {}",
                    self.status,
                    opcode::name(got),
                    res.status()
                ));
            }
        }
        if n < sent.len() && self.status.is_ok() {
            return unexpected(format!(
                "{n} results for {} operations, with status NFS4_OK",
                sent.len()
            ));
        }
        Ok(())
    }
}

/// Decodes the results of a COMPOUND whose operations were `sent` and checks them.
pub fn decode_reply(bytes: &[u8], sent: &[u32]) -> Result<CompoundRes> {
    let mut r = Decoder::new(bytes);
    let res = CompoundRes::decode(&mut r)?;
    res.check_against(sent)?;
    Ok(res)
}

//! ONC RPC v2 messages (RFC 5531 §9): call and reply headers.
//!
//! ```text
//! struct rpc_msg { unsigned int xid; union switch (msg_type mtype) {
//!     case CALL: call_body cbody; case REPLY: reply_body rbody; } body; };
//! struct call_body { unsigned int rpcvers; /* must be 2 */ unsigned int prog;
//!     unsigned int vers; unsigned int proc; opaque_auth cred; opaque_auth verf; };
//! ```
//! The server side ([`decode_call`]) turns a bad header into the reply RFC 5531 asks for:
//! RPC_MISMATCH, AUTH_ERROR, PROG_UNAVAIL, PROG_MISMATCH. PROC_UNAVAIL and GARBAGE_ARGS are
//! for the program layer, with [`accepted`].

use crate::error::{Error, ErrorKind, Result};
use crate::limits::MAX_AUTH_BODY;
use crate::xdr::{Decoder, Encoder, Xdr};
use crate::{PROGRAM, PROTOCOL_VERSION};

/// The only ONC RPC version.
pub const RPC_VERSION: u32 = 2;
/// `msg_type` CALL.
pub const MSG_CALL: u32 = 0;
/// `msg_type` REPLY.
pub const MSG_REPLY: u32 = 1;
/// `reply_stat` MSG_ACCEPTED.
pub const MSG_ACCEPTED: u32 = 0;
/// `reply_stat` MSG_DENIED.
pub const MSG_DENIED: u32 = 1;

/// `auth_flavor` AUTH_NONE.
pub const AUTH_NONE: u32 = 0;
/// `auth_flavor` AUTH_SYS (accepted, ignored: trust comes from the HELLO/AUTH handshake).
pub const AUTH_SYS: u32 = 1;

/// `auth_stat` AUTH_BADCRED: an unsupported credential flavor or a malformed credential.
pub const AUTH_BADCRED: u32 = 1;

/// An `opaque_auth`: a flavor and up to [`MAX_AUTH_BODY`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueAuth {
    pub flavor: u32,
    pub body: Vec<u8>,
}

impl OpaqueAuth {
    /// AUTH_NONE with an empty body.
    pub fn none() -> OpaqueAuth {
        OpaqueAuth::default()
    }
}

impl Xdr for OpaqueAuth {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.flavor);
        w.opaque(&self.body);
    }
    fn decode(r: &mut Decoder<'_>) -> Result<OpaqueAuth> {
        let flavor = r.u32()?;
        let body = r.opaque(MAX_AUTH_BODY)?.to_vec();
        Ok(OpaqueAuth { flavor, body })
    }
}

/// The header of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: OpaqueAuth,
    pub verf: OpaqueAuth,
}

/// `accept_stat`, with the data some of them carry. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    Success,
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
    Unknown(u32),
}

/// `reject_stat`, with its data. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStat {
    RpcMismatch { low: u32, high: u32 },
    AuthError(u32),
    Unknown(u32),
}

/// The body of a reply, up to (not including) the procedure's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Accepted { verf: OpaqueAuth, stat: AcceptStat },
    Denied(RejectStat),
}

/// An accepted reply with an AUTH_NONE verifier.
pub fn accepted(stat: AcceptStat) -> ReplyBody {
    ReplyBody::Accepted {
        verf: OpaqueAuth::none(),
        stat,
    }
}

/// A call as the server sees it: the header and the undecoded arguments.
#[derive(Debug)]
pub struct Call<'a> {
    pub header: CallHeader,
    pub args: &'a [u8],
}

/// Why [`decode_call`] did not yield a call.
#[derive(Debug)]
pub enum CallError {
    /// Not an RPC call at all (too short, or a reply): the stream is broken, drop it.
    Malformed(Error),
    /// A call to refuse with this reply (already encoded, ready for [`crate::record`]).
    Reject { xid: u32, reply: Vec<u8> },
}

/// Encodes a call to this program with AUTH_NONE credentials.
pub fn encode_call(xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    encode_call_with(
        xid,
        PROGRAM,
        PROTOCOL_VERSION,
        proc_,
        &OpaqueAuth::none(),
        args,
    )
}

/// Encodes a call to any program and version with the credential `cred` (the verifier is
/// AUTH_NONE). The NFSv4 client (`openvaai-nfs4`) calls program 100003 with AUTH_SYS.
pub fn encode_call_with(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred: &OpaqueAuth,
    args: &[u8],
) -> Vec<u8> {
    let mut w = Encoder::new();
    w.u32(xid);
    w.u32(MSG_CALL);
    w.u32(RPC_VERSION);
    w.u32(prog);
    w.u32(vers);
    w.u32(proc_);
    cred.encode(&mut w);
    OpaqueAuth::none().encode(&mut w);
    w.raw(args);
    w.into_bytes()
}

/// Decodes a call to this program and version. AUTH_NONE and AUTH_SYS credentials are
/// accepted and ignored; anything else is denied with AUTH_BADCRED.
pub fn decode_call(record: &[u8]) -> std::result::Result<Call<'_>, CallError> {
    let mut r = Decoder::new(record);
    let xid = r.u32().map_err(CallError::Malformed)?;
    let mtype = r.u32().map_err(CallError::Malformed)?;
    if mtype != MSG_CALL {
        return Err(CallError::Malformed(Error::new(
            ErrorKind::Decode,
            format!("msg_type {mtype} where a call was expected"),
        )));
    }
    let reject = |body: ReplyBody| CallError::Reject {
        xid,
        reply: encode_reply(xid, &body, &[]),
    };
    let rpcvers = r.u32().map_err(CallError::Malformed)?;
    if rpcvers != RPC_VERSION {
        return Err(reject(ReplyBody::Denied(RejectStat::RpcMismatch {
            low: RPC_VERSION,
            high: RPC_VERSION,
        })));
    }
    let fixed = (|| -> Result<(u32, u32, u32)> { Ok((r.u32()?, r.u32()?, r.u32()?)) })();
    let (prog, vers, proc_) = fixed.map_err(|_| reject(accepted(AcceptStat::GarbageArgs)))?;
    let bad_cred = || reject(ReplyBody::Denied(RejectStat::AuthError(AUTH_BADCRED)));
    let cred = OpaqueAuth::decode(&mut r).map_err(|_| bad_cred())?;
    let verf = OpaqueAuth::decode(&mut r).map_err(|_| bad_cred())?;
    if !matches!(cred.flavor, AUTH_NONE | AUTH_SYS) {
        return Err(bad_cred());
    }
    if prog != PROGRAM {
        return Err(reject(accepted(AcceptStat::ProgUnavail)));
    }
    if vers != PROTOCOL_VERSION {
        return Err(reject(accepted(AcceptStat::ProgMismatch {
            low: PROTOCOL_VERSION,
            high: PROTOCOL_VERSION,
        })));
    }
    Ok(Call {
        header: CallHeader {
            xid,
            prog,
            vers,
            proc_,
            cred,
            verf,
        },
        args: r.rest(),
    })
}

/// Encodes a reply. `results` (already XDR) follow only an accepted SUCCESS.
pub fn encode_reply(xid: u32, body: &ReplyBody, results: &[u8]) -> Vec<u8> {
    let mut w = Encoder::new();
    w.u32(xid);
    w.u32(MSG_REPLY);
    match body {
        ReplyBody::Accepted { verf, stat } => {
            w.u32(MSG_ACCEPTED);
            verf.encode(&mut w);
            match *stat {
                AcceptStat::Success => {
                    w.u32(0);
                    w.raw(results);
                }
                AcceptStat::ProgUnavail => w.u32(1),
                AcceptStat::ProgMismatch { low, high } => {
                    w.u32(2);
                    w.u32(low);
                    w.u32(high);
                }
                AcceptStat::ProcUnavail => w.u32(3),
                AcceptStat::GarbageArgs => w.u32(4),
                AcceptStat::SystemErr => w.u32(5),
                AcceptStat::Unknown(v) => w.u32(v),
            }
        }
        ReplyBody::Denied(rs) => {
            w.u32(MSG_DENIED);
            match *rs {
                RejectStat::RpcMismatch { low, high } => {
                    w.u32(0);
                    w.u32(low);
                    w.u32(high);
                }
                RejectStat::AuthError(s) => {
                    w.u32(1);
                    w.u32(s);
                }
                RejectStat::Unknown(v) => w.u32(v),
            }
        }
    }
    w.into_bytes()
}

/// How many replies with another xid (answers to calls given up on) a call skips before it
/// gives up on its own.
pub const MAX_STALE_REPLIES: usize = 16;

/// The reply that answers a call: its body and, for SUCCESS, its undecoded results.
#[derive(Debug)]
pub struct Answer {
    pub body: ReplyBody,
    record: Vec<u8>,
    results_at: usize,
}

impl Answer {
    /// The results (empty unless the call was accepted with SUCCESS).
    pub fn results(&self) -> &[u8] {
        &self.record[self.results_at..]
    }
}

/// Sends `call` (an encoded call with xid `xid`) as one record and reads replies until the
/// one with that xid, skipping up to [`MAX_STALE_REPLIES`] others. One call at a time per
/// stream; the stream's own deadline bounds the wait.
pub fn round_trip<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    xid: u32,
    call: &[u8],
) -> Result<Answer> {
    crate::record::write_record(stream, call)?;
    for _ in 0..=MAX_STALE_REPLIES {
        let Some(record) = crate::record::read_record(stream)? else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            )
            .into());
        };
        let (rxid, body, results) = decode_reply(&record)?;
        if rxid != xid {
            continue;
        }
        let results_at = record.len() - results.len();
        return Ok(Answer {
            body,
            record,
            results_at,
        });
    }
    Err(Error::new(
        ErrorKind::UnexpectedReply,
        format!("no reply with xid {xid} among {MAX_STALE_REPLIES} replies"),
    ))
}

/// Decodes a reply: its xid, its body and, for SUCCESS, the undecoded results.
pub fn decode_reply(record: &[u8]) -> Result<(u32, ReplyBody, &[u8])> {
    let mut r = Decoder::new(record);
    let xid = r.u32()?;
    let mtype = r.u32()?;
    if mtype != MSG_REPLY {
        return Err(Error::new(
            ErrorKind::UnexpectedReply,
            format!("msg_type {mtype} where a reply was expected"),
        ));
    }
    match r.u32()? {
        MSG_ACCEPTED => {
            let verf = OpaqueAuth::decode(&mut r)?;
            let stat = match r.u32()? {
                0 => AcceptStat::Success,
                1 => AcceptStat::ProgUnavail,
                2 => AcceptStat::ProgMismatch {
                    low: r.u32()?,
                    high: r.u32()?,
                },
                3 => AcceptStat::ProcUnavail,
                4 => AcceptStat::GarbageArgs,
                5 => AcceptStat::SystemErr,
                v => AcceptStat::Unknown(v),
            };
            let rest = if stat == AcceptStat::Success {
                r.rest()
            } else {
                r.finish()?;
                &[]
            };
            Ok((xid, ReplyBody::Accepted { verf, stat }, rest))
        }
        MSG_DENIED => {
            let rs = match r.u32()? {
                0 => RejectStat::RpcMismatch {
                    low: r.u32()?,
                    high: r.u32()?,
                },
                1 => RejectStat::AuthError(r.u32()?),
                v => RejectStat::Unknown(v),
            };
            Ok((xid, ReplyBody::Denied(rs), &[]))
        }
        v => Err(Error::new(ErrorKind::Decode, format!("reply_stat {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_bytes(rpcvers: u32, prog: u32, vers: u32, flavor: u32) -> Vec<u8> {
        let mut w = Encoder::new();
        for v in [7, MSG_CALL, rpcvers, prog, vers, 0, flavor, 0, 0, 0] {
            w.u32(v);
        }
        w.into_bytes()
    }

    fn reject_of(b: &[u8]) -> ReplyBody {
        match decode_call(b) {
            Err(CallError::Reject { xid, reply }) => {
                let (rx, body, rest) = decode_reply(&reply).unwrap();
                assert_eq!((rx, rest.len()), (xid, 0));
                body
            }
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    #[test]
    fn good_call_decodes() {
        let b = encode_call(9, 3, &[1, 2, 3, 4]);
        let c = decode_call(&b).unwrap();
        assert_eq!((c.header.xid, c.header.proc_), (9, 3));
        assert_eq!(c.args, &[1, 2, 3, 4]);
    }

    #[test]
    fn rpc_version_3_gets_rpc_mismatch() {
        let body = reject_of(&call_bytes(3, PROGRAM, 1, 0));
        assert_eq!(
            body,
            ReplyBody::Denied(RejectStat::RpcMismatch { low: 2, high: 2 })
        );
    }

    #[test]
    fn other_program_gets_prog_unavail() {
        let body = reject_of(&call_bytes(2, 100003, 1, 0));
        assert_eq!(body, accepted(AcceptStat::ProgUnavail));
    }

    #[test]
    fn other_version_gets_prog_mismatch() {
        let body = reject_of(&call_bytes(2, PROGRAM, 9, 0));
        assert_eq!(body, accepted(AcceptStat::ProgMismatch { low: 1, high: 1 }));
    }

    #[test]
    fn auth_sys_is_accepted_and_rpcsec_gss_is_denied() {
        assert!(decode_call(&call_bytes(2, PROGRAM, 1, AUTH_SYS)).is_ok());
        let body = reject_of(&call_bytes(2, PROGRAM, 1, 6));
        assert_eq!(body, ReplyBody::Denied(RejectStat::AuthError(AUTH_BADCRED)));
    }

    #[test]
    fn a_reply_where_a_call_is_expected_is_malformed() {
        let b = encode_reply(1, &accepted(AcceptStat::Success), &[]);
        assert!(matches!(decode_call(&b), Err(CallError::Malformed(_))));
        assert!(matches!(decode_call(&[0, 0]), Err(CallError::Malformed(_))));
    }
}

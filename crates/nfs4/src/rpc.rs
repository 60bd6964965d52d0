//! ONC RPC calls to program 100003 version 4, on `openvaai_proto`'s call/reply headers and
//! record marking: one call at a time, replies matched by xid (stale ones skipped).

use std::io::{Read, Write};

use openvaai_proto::rpc::{encode_call_with, round_trip, AcceptStat, OpaqueAuth, ReplyBody};

use crate::error::{Error, ErrorKind, Result};
use crate::{NFS4_PROGRAM, NFS_V4};

/// A stream, the next xid and the credential of every call.
#[derive(Debug)]
pub(crate) struct Transport<S> {
    pub(crate) stream: S,
    next_xid: u32,
    cred: OpaqueAuth,
}

impl<S: Read + Write> Transport<S> {
    /// The first xid is random, so that replies to an earlier connection's calls cannot be
    /// taken for this one's.
    pub(crate) fn new(stream: S, cred: OpaqueAuth) -> Transport<S> {
        Transport {
            stream,
            next_xid: u32::from_be_bytes(openvaai_proto::auth::random_bytes()),
            cred,
        }
    }

    /// Sends procedure `proc_` with `args` (XDR) and returns the results (XDR) of its reply.
    pub(crate) fn call(&mut self, proc_: u32, args: &[u8]) -> Result<Vec<u8>> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let call = encode_call_with(xid, NFS4_PROGRAM, NFS_V4, proc_, &self.cred, args);
        let answer = round_trip(&mut self.stream, xid, &call)?;
        match answer.body {
            ReplyBody::Accepted {
                stat: AcceptStat::Success,
                ..
            } => Ok(answer.results().to_vec()),
            other => Err(rejected(&other)),
        }
    }
}

/// Says what a refused call means for an NFS client.
fn rejected(body: &ReplyBody) -> Error {
    use openvaai_proto::rpc::RejectStat;
    let detail = match body {
        ReplyBody::Accepted { stat, .. } => match stat {
            AcceptStat::ProgUnavail => "no NFS service on this port (PROG_UNAVAIL)".to_owned(),
            AcceptStat::ProgMismatch { low, high } => format!(
                "the server speaks NFS versions {low} to {high}, not 4: enable NFSv4.2 on it"
            ),
            AcceptStat::ProcUnavail => "procedure unavailable (PROC_UNAVAIL)".to_owned(),
            AcceptStat::GarbageArgs => "the server could not decode the call".to_owned(),
            AcceptStat::SystemErr => "server system error (SYSTEM_ERR)".to_owned(),
            AcceptStat::Unknown(v) => format!("accept_stat {v}"),
            AcceptStat::Success => "success".to_owned(),
        },
        ReplyBody::Denied(RejectStat::AuthError(s)) => {
            format!("AUTH_SYS credential refused (auth_stat {s}): the export must allow sec=sys")
        }
        ReplyBody::Denied(RejectStat::RpcMismatch { low, high }) => {
            format!("RPC version mismatch (server {low}..{high})")
        }
        ReplyBody::Denied(RejectStat::Unknown(v)) => format!("reject_stat {v}"),
    };
    Error::new(ErrorKind::Rejected, detail)
}

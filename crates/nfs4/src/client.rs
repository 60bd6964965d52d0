//! A blocking NFSv4.1/4.2 client over any `Read + Write` stream (in practice
//! `openvaai_proto::deadline::DeadlineStream` over TCP, so every exchange is bounded by the
//! caller's deadline): COMPOUND calls, and the session a 4.1 client needs.
//!
//! Session set-up is EXCHANGE_ID → CREATE_SESSION → RECLAIM_COMPLETE ([`Nfs4Client::establish`]);
//! every later [`Nfs4Client::compound`] is prefixed with SEQUENCE on the session's one slot,
//! whose sequence id this client keeps. Retrying (NFS4ERR_DELAY, NFS4ERR_GRACE) and
//! re-establishing (a lost session, a lost connection) are the caller's, guided by
//! [`Error::is_retryable`], [`Error::is_session_lost`] and [`Error::is_connection_lost`].
//!
//! A call whose reply never came (a timeout, a reset) leaves the slot *in doubt*: the server
//! may or may not have executed it. The next compound first sends SEQUENCE alone with the
//! same sequence id: a server that executed the lost call answers it as a retry
//! (NFS4ERR_RETRY_UNCACHED_REP or NFS4ERR_SEQ_FALSE_RETRY, or the cached reply of a lone
//! SEQUENCE), one that did not executes it; either way the slot is in step again.

use std::io::{Read, Write};

use crate::auth::AuthSys;
use crate::basic::{ImplId, SessionId};
use crate::compound::{decode_reply, CompoundArgs, CompoundRes};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::MAX_OPS;
use crate::ops::session::{
    CbSecParms, ChannelAttrs, ClientOwner, CreateSessionArgs, ExchangeIdArgs, SequenceArgs,
    SequenceOk, ServerOwner,
};
use crate::ops::{opcode, Op, OpRes};
use crate::rpc::Transport;
use crate::status::Status;
use crate::{MINOR_VERSION, NFSPROC4_COMPOUND, NFSPROC4_NULL};

/// The callback program number a client without a back channel names (the .x's).
const CB_PROGRAM: u32 = 0x4000_0000;

/// What EXCHANGE_ID gave: the client id and who the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId {
    pub clientid: u64,
    pub flags: u32,
    pub server_owner: ServerOwner,
    pub server_scope: Vec<u8>,
    pub server_impl_id: Option<ImplId>,
    /// `csa_sequence` of the next CREATE_SESSION.
    create_sequence: u32,
}

/// A session and its one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub flags: u32,
    /// The fore channel as the server granted it (the limits of every COMPOUND).
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
    /// `sr_status_flags` of the last SEQUENCE (`SEQ4_STATUS_*`: state revoked, restart...).
    pub status_flags: u32,
    /// The sequence id the next call on slot 0 carries.
    seqid: u32,
    /// The last call on the slot got no reply: resynchronise before the next one.
    in_doubt: bool,
}

impl Session {
    pub fn next_seqid(&self) -> u32 {
        self.seqid
    }
    pub fn in_doubt(&self) -> bool {
        self.in_doubt
    }
}

/// A blocking NFSv4 client: one call at a time on one stream.
#[derive(Debug)]
pub struct Nfs4Client<S> {
    rpc: Transport<S>,
    cred_len: usize,
    minor_version: u32,
    client: Option<ClientId>,
    session: Option<Session>,
}

impl<S: Read + Write> Nfs4Client<S> {
    /// A client speaking NFSv4.2 over `stream`, with `auth` on every call.
    pub fn new(stream: S, auth: &AuthSys) -> Nfs4Client<S> {
        let cred = auth.to_opaque_auth();
        Nfs4Client {
            cred_len: cred.body.len(),
            rpc: Transport::new(stream, cred),
            minor_version: MINOR_VERSION,
            client: None,
            session: None,
        }
    }

    /// Speak minor version `minor` (1 or 2; 2 is the default and what the offload ops need).
    pub fn set_minor_version(&mut self, minor: u32) {
        self.minor_version = minor;
    }

    pub fn stream(&self) -> &S {
        &self.rpc.stream
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.rpc.stream
    }

    /// Carries on over a new connection (after [`Error::is_connection_lost`]); the client
    /// id and session stay (a 4.1 session outlives its connections). Returns the old one.
    pub fn replace_stream(&mut self, stream: S) -> S {
        std::mem::replace(&mut self.rpc.stream, stream)
    }

    pub fn client_id(&self) -> Option<&ClientId> {
        self.client.as_ref()
    }

    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Forgets the session and client id without telling the server (after
    /// [`Error::is_session_lost`], before [`establish`](Self::establish) again).
    pub fn forget_session(&mut self) {
        self.session = None;
        self.client = None;
    }

    /// NFSPROC4_NULL: a round trip that does nothing (is anything listening?).
    pub fn null(&mut self) -> Result<()> {
        let results = self.rpc.call(NFSPROC4_NULL, &[])?;
        if results.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Decode,
                format!("NULL reply with {} bytes of results", results.len()),
            ))
        }
    }

    /// One COMPOUND of `ops` as they are, without SEQUENCE: for EXCHANGE_ID,
    /// CREATE_SESSION, DESTROY_SESSION and DESTROY_CLIENTID, which stand alone.
    pub fn compound_without_session(&mut self, ops: Vec<Op>) -> Result<CompoundRes> {
        let sent: Vec<u32> = ops.iter().map(Op::opcode).collect();
        let args = CompoundArgs {
            tag: String::new(),
            minorversion: self.minor_version,
            ops,
        }
        .to_bytes()?;
        let results = self.rpc.call(NFSPROC4_COMPOUND, &args)?;
        decode_reply(&results, &sent)
    }

    /// EXCHANGE_ID for `owner` (SP4_NONE, no pNFS).
    pub fn exchange_id(&mut self, owner: ClientOwner) -> Result<&ClientId> {
        let args = ExchangeIdArgs {
            owner,
            flags: crate::ops::session::EXCHGID4_FLAG_USE_NON_PNFS,
            impl_id: Some(ImplId {
                domain: "openvaai.invalid".to_owned(),
                name: concat!("openvaai ", env!("CARGO_PKG_VERSION")).to_owned(),
                date: Default::default(),
            }),
        };
        let res = self.compound_without_session(vec![Op::ExchangeId(args)])?;
        let ok = match only_result(res, "EXCHANGE_ID")? {
            OpRes::ExchangeId(Ok(ok)) => ok,
            other => return Err(mismatched("EXCHANGE_ID", &other)),
        };
        self.session = None;
        Ok(self.client.insert(ClientId {
            clientid: ok.clientid,
            flags: ok.flags,
            server_owner: ok.server_owner,
            server_scope: ok.server_scope,
            server_impl_id: ok.server_impl_id,
            create_sequence: ok.sequenceid,
        }))
    }

    /// CREATE_SESSION on the client id of [`exchange_id`](Self::exchange_id): one slot, no
    /// back channel, records up to the record limit of `openvaai_proto`.
    pub fn create_session(&mut self) -> Result<&Session> {
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::NoSession, "CREATE_SESSION before EXCHANGE_ID"))?;
        let max = openvaai_proto::limits::MAX_RECORD as u32;
        let args = CreateSessionArgs {
            clientid: client.clientid,
            sequence: client.create_sequence,
            flags: 0,
            fore: ChannelAttrs {
                header_pad_size: 0,
                max_request_size: max,
                max_response_size: max,
                max_response_size_cached: 4096,
                max_operations: MAX_OPS as u32,
                max_requests: 1,
                rdma_ird: None,
            },
            // Never used, but knfsd checks these are large enough for a CB_RECALL.
            back: ChannelAttrs {
                header_pad_size: 0,
                max_request_size: 4096,
                max_response_size: 4096,
                max_response_size_cached: 0,
                max_operations: 2,
                max_requests: 1,
                rdma_ird: None,
            },
            cb_program: CB_PROGRAM,
            sec_parms: vec![CbSecParms::None],
        };
        let sent_sequence = args.sequence;
        let res = self.compound_without_session(vec![Op::CreateSession(args)])?;
        let ok = match only_result(res, "CREATE_SESSION")? {
            OpRes::CreateSession(Ok(ok)) => ok,
            other => return Err(mismatched("CREATE_SESSION", &other)),
        };
        if ok.sequence != sent_sequence {
            return Err(Error::new(
                ErrorKind::UnexpectedReply,
                format!(
                    "CREATE_SESSION answered sequence {} to {sent_sequence}",
                    ok.sequence
                ),
            ));
        }
        if ok.fore.max_requests == 0 || ok.fore.max_operations < 2 {
            return Err(Error::new(
                ErrorKind::UnexpectedReply,
                format!("the server granted an unusable fore channel: {:?}", ok.fore),
            ));
        }
        if let Some(c) = self.client.as_mut() {
            c.create_sequence = c.create_sequence.wrapping_add(1);
        }
        Ok(self.session.insert(Session {
            id: ok.sessionid,
            flags: ok.flags,
            fore: ok.fore,
            back: ok.back,
            status_flags: 0,
            seqid: 1,
            in_doubt: false,
        }))
    }

    /// RECLAIM_COMPLETE for all file systems (a client with nothing to reclaim says so at
    /// once, or the server keeps it in its grace period). NFS4ERR_COMPLETE_ALREADY is fine.
    ///
    /// A set-up tried again (after NFS4ERR_DELAY, say) may get the server's cached reply to
    /// its earlier CREATE_SESSION: the same session, whose slot has already seen the first
    /// sequence id. knfsd then answers the SEQUENCE as a replay and RECLAIM_COMPLETE with
    /// NFS4ERR_RETRY_UNCACHED_REP; the slot has moved on by then, and RECLAIM_COMPLETE,
    /// which does no harm twice, is sent once more with the next sequence id.
    pub fn reclaim_complete(&mut self) -> Result<()> {
        let mut res = self.compound(&[Op::ReclaimComplete(false)])?;
        if res.status == Status::RetryUncachedRep {
            res = self.compound(&[Op::ReclaimComplete(false)])?;
        }
        match res.status {
            Status::Ok | Status::CompleteAlready => Ok(()),
            s => Err(Error::status("RECLAIM_COMPLETE", s)),
        }
    }

    /// EXCHANGE_ID, CREATE_SESSION and RECLAIM_COMPLETE: ready for [`compound`](Self::compound).
    pub fn establish(&mut self, owner: ClientOwner) -> Result<()> {
        self.exchange_id(owner)?;
        self.create_session()?;
        self.reclaim_complete()
    }

    /// SEQUENCE then `ops`, in one COMPOUND. Returns the results of `ops` (SEQUENCE's taken
    /// off) and the COMPOUND's status; a failed SEQUENCE is an [`ErrorKind::Status`] error.
    pub fn compound(&mut self, ops: &[Op]) -> Result<CompoundRes> {
        let session = self
            .session
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::NoSession, "a COMPOUND before CREATE_SESSION"))?;
        if ops.len() + 1 > (session.fore.max_operations as usize).min(MAX_OPS) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{} operations and SEQUENCE exceed the session's {}",
                    ops.len(),
                    session.fore.max_operations
                ),
            ));
        }
        if session.in_doubt {
            self.resync()?;
        }
        let mut all = Vec::with_capacity(ops.len() + 1);
        all.push(self.sequence_op());
        all.extend_from_slice(ops);
        let mut res = self.sequenced(all)?;
        res.results.remove(0);
        Ok(res)
    }

    /// SEQUENCE alone: renews the lease (do it well within `lease_time`).
    pub fn renew(&mut self) -> Result<()> {
        self.compound(&[]).map(|_| ())
    }

    /// DESTROY_SESSION (alone in its COMPOUND); the session is forgotten whatever the answer.
    /// A session the server no longer knows (NFS4ERR_BADSESSION) counts as destroyed.
    pub fn destroy_session(&mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let res = self.compound_without_session(vec![Op::DestroySession(session.id)])?;
        match res.status {
            Status::Ok | Status::Badsession => Ok(()),
            s => Err(Error::status("DESTROY_SESSION", s)),
        }
    }

    /// DESTROY_CLIENTID (alone; after [`destroy_session`](Self::destroy_session)). A client id
    /// the server no longer knows (NFS4ERR_STALE_CLIENTID) counts as destroyed.
    pub fn destroy_clientid(&mut self) -> Result<()> {
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        let res = self.compound_without_session(vec![Op::DestroyClientid(client.clientid)])?;
        match res.status {
            Status::Ok | Status::StaleClientid => Ok(()),
            s => Err(Error::status("DESTROY_CLIENTID", s)),
        }
    }

    /// Both destroys: leaves no state on the server.
    pub fn shutdown(&mut self) -> Result<()> {
        self.destroy_session()?;
        self.destroy_clientid()
    }

    fn sequence_op(&self) -> Op {
        let s = self.session.as_ref().expect("checked by the caller");
        Op::Sequence(SequenceArgs {
            sessionid: s.id,
            sequenceid: s.seqid,
            slotid: 0,
            highest_slotid: 0,
            cachethis: false,
        })
    }

    /// Sends `ops` (SEQUENCE first) and keeps the slot's books.
    fn sequenced(&mut self, ops: Vec<Op>) -> Result<CompoundRes> {
        let Some(Op::Sequence(seq)) = ops.first().cloned() else {
            unreachable!("sequenced() is given SEQUENCE first");
        };
        let sent: Vec<u32> = ops.iter().map(Op::opcode).collect();
        let args = CompoundArgs {
            tag: String::new(),
            minorversion: self.minor_version,
            ops,
        }
        .to_bytes()?;
        let size = self.rpc_overhead() + args.len();
        let session = self.session.as_mut().expect("checked by the caller");
        let session_max = session.fore.max_request_size as usize;
        if size > session_max {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a call of {size} bytes exceeds the session's {session_max}"),
            ));
        }
        session.in_doubt = true;
        let results = self.rpc.call(NFSPROC4_COMPOUND, &args)?;
        let res = decode_reply(&results, &sent)?;
        let session = self.session.as_mut().expect("checked by the caller");
        match res.results.first() {
            Some(OpRes::Sequence(Ok(ok))) => {
                check_echo(ok, &seq)?;
                session.seqid = session.seqid.wrapping_add(1);
                session.in_doubt = false;
                session.status_flags = ok.status_flags;
                Ok(res)
            }
            // SEQUENCE failed: the slot did not move.
            Some(other) => {
                session.in_doubt = false;
                Err(Error::status("SEQUENCE", other.status()))
            }
            // No result at all (e.g. NFS4ERR_MINOR_VERS_MISMATCH): nothing was executed.
            None => {
                session.in_doubt = false;
                Err(Error::status("COMPOUND", res.status))
            }
        }
    }

    /// SEQUENCE alone with the in-doubt sequence id (see the module docs).
    fn resync(&mut self) -> Result<()> {
        let sent = vec![opcode::SEQUENCE];
        let args_seq = Some(self.sequence_op());
        let args = CompoundArgs {
            tag: String::new(),
            minorversion: self.minor_version,
            ops: args_seq.iter().cloned().collect(),
        }
        .to_bytes()?;
        let results = self.rpc.call(NFSPROC4_COMPOUND, &args)?;
        let res = decode_reply(&results, &sent)?;
        if let (Some(OpRes::Sequence(Ok(ok))), Some(Op::Sequence(seq))) =
            (res.results.first(), args_seq.as_ref())
        {
            check_echo(ok, seq)?;
        }
        let session = self.session.as_mut().expect("checked by the caller");
        match res.status {
            Status::Ok | Status::RetryUncachedRep | Status::SeqFalseRetry => {
                session.seqid = session.seqid.wrapping_add(1);
                session.in_doubt = false;
                Ok(())
            }
            s => Err(Error::status("SEQUENCE (resynchronising the slot)", s)),
        }
    }

    /// Bytes of a call besides its arguments: the header, credential and verifier.
    fn rpc_overhead(&self) -> usize {
        24 + 8 + self.cred_len.next_multiple_of(4) + 8
    }
}

/// A successful SEQUENCE must answer for the session, slot and sequence id it was sent.
fn check_echo(ok: &SequenceOk, sent: &SequenceArgs) -> Result<()> {
    if ok.sessionid == sent.sessionid
        && ok.sequenceid == sent.sequenceid
        && ok.slotid == sent.slotid
    {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnexpectedReply,
        format!(
            "SEQUENCE answered slot {} sequence {} to slot {} sequence {}",
            ok.slotid, ok.sequenceid, sent.slotid, sent.sequenceid
        ),
    ))
}

/// The one result of a COMPOUND of one operation, or the failure it reports.
fn only_result(res: CompoundRes, what: &str) -> Result<OpRes> {
    if !res.status.is_ok() {
        return Err(Error::status(what, res.status));
    }
    let mut results = res.results;
    match results.pop() {
        Some(r) if results.is_empty() => Ok(r),
        _ => Err(Error::new(
            ErrorKind::UnexpectedReply,
            format!("{what}: not exactly one result"),
        )),
    }
}

fn mismatched(what: &str, got: &OpRes) -> Error {
    Error::new(
        ErrorKind::UnexpectedReply,
        format!("{what} answered with {}", opcode::name(got.opcode())),
    )
}

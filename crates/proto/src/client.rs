//! A blocking client: one call at a time over any `Read + Write` stream (a rustls
//! `StreamOwned` in the plugin, a `TcpStream` in tests). Timeouts are the stream's.

use std::io::{Read, Write};

use crate::auth::{self, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::rpc::{encode_call, round_trip, AcceptStat, ReplyBody};
use crate::types::*;
use crate::xdr::{from_bytes, to_bytes, Xdr};

/// A blocking ONC RPC client of program [`crate::PROGRAM`].
#[derive(Debug)]
pub struct Client<S: Read + Write> {
    stream: S,
    next_xid: u32,
}

impl<S: Read + Write> Client<S> {
    /// Wraps a connected stream. The first xid is random, so replies to an earlier
    /// connection's calls cannot be mistaken for this one's.
    pub fn new(stream: S) -> Client<S> {
        Client {
            stream,
            next_xid: u32::from_be_bytes(auth::random_bytes()),
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Sends one call and waits for its reply (matched by xid; stale replies are skipped).
    pub fn call<A: Xdr, R: Xdr>(&mut self, proc_: u32, args: &A) -> Result<R> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let answer = round_trip(
            &mut self.stream,
            xid,
            &encode_call(xid, proc_, &to_bytes(args)),
        )?;
        match answer.body {
            ReplyBody::Accepted {
                stat: AcceptStat::Success,
                ..
            } => from_bytes(answer.results()),
            other => Err(Error::new(
                ErrorKind::Rejected,
                format!("procedure {proc_}: {other:?}"),
            )),
        }
    }

    /// NULL: a round trip that does nothing.
    pub fn null(&mut self) -> Result<()> {
        self.call(PROC_NULL, &())
    }

    /// HELLO then AUTH for `export`, and checks the server's proof. `Ok(Err(status))` is a
    /// refusal by the server (unknown export, network not allowed, wrong secret...);
    /// [`ErrorKind::ServerProof`] means the server does not know the secret.
    pub fn authenticate(
        &mut self,
        export: &str,
        secret: &Secret,
    ) -> Result<std::result::Result<HelloOk, Status>> {
        let nonce = auth::random_bytes();
        let hello: HelloRes = self.call(
            PROC_HELLO,
            &HelloArgs {
                export: export.to_owned(),
                client_nonce: nonce,
            },
        )?;
        let hello = match hello {
            Ok(h) => h,
            Err(s) => return Ok(Err(s)),
        };
        let proof = auth::client_proof(secret, &hello.server_challenge, &nonce, export);
        let res: AuthRes = self.call(
            PROC_AUTH,
            &AuthArgs {
                export: export.to_owned(),
                client_proof: proof,
            },
        )?;
        match res {
            Ok(Proof(p)) => {
                let want = auth::server_proof(secret, &hello.server_challenge, &nonce, export);
                if auth::proofs_equal(&p, &want) {
                    Ok(Ok(hello))
                } else {
                    Err(Error::new(ErrorKind::ServerProof, export.to_owned()))
                }
            }
            Err(s) => Ok(Err(s)),
        }
    }

    pub fn capabilities(&mut self, export: &str) -> Result<CapsRes> {
        self.call(
            PROC_CAPABILITIES,
            &ExportArgs {
                export: export.to_owned(),
            },
        )
    }

    pub fn clone_start(&mut self, args: &CloneArgs) -> Result<StartRes> {
        self.call(PROC_CLONE_START, args)
    }

    pub fn reserve_start(&mut self, export: &str, path: &str) -> Result<StartRes> {
        self.call(
            PROC_RESERVE_START,
            &PathArgs {
                export: export.to_owned(),
                path: path.to_owned(),
            },
        )
    }

    pub fn wait(&mut self, job: u64, threshold: u64, max_wait_ms: u32) -> Result<WaitRes> {
        self.call(
            PROC_WAIT,
            &WaitArgs {
                job,
                threshold,
                max_wait_ms,
            },
        )
    }

    pub fn cancel(&mut self, job: u64) -> Result<WaitRes> {
        self.call(PROC_CANCEL, &JobArgs { job })
    }

    /// Publishes a READY job (started with [`CLONE_HOLD`]) and returns its final state.
    pub fn commit(&mut self, job: u64) -> Result<WaitRes> {
        self.call(PROC_COMMIT, &JobArgs { job })
    }

    /// Which path a failed job concerns. A server older than this procedure answers
    /// PROC_UNAVAIL, an [`ErrorKind::Rejected`] error: the caller goes on without it.
    pub fn failure(&mut self, job: u64) -> Result<FailureRes> {
        self.call(PROC_FAILURE, &JobArgs { job })
    }

    pub fn statx(&mut self, export: &str, path: &str) -> Result<StatxRes> {
        self.call(
            PROC_STATX,
            &PathArgs {
                export: export.to_owned(),
                path: path.to_owned(),
            },
        )
    }
}

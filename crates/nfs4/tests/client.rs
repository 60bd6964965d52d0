//! The client's session bookkeeping against a scripted NFSv4.1 peer over loopback: the peer
//! keeps a slot as RFC 8881 §2.10.6.1 says (new request at slot + 1, retry at slot, else
//! NFS4ERR_SEQ_MISORDERED), and can swallow a reply to make the client's slot in doubt.
//! No real server here: the knfsd guest fixture will run these paths against knfsd.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openvaai_nfs4::basic::{Fh, SessionId, Verifier};
use openvaai_nfs4::ops::session::{ClientOwner, CreateSessionOk, ExchangeIdOk, SequenceOk};
use openvaai_nfs4::ops::session::{ServerOwner, StateProtect};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{AuthSys, CompoundArgs, CompoundRes, ErrorKind, Nfs4Client, Status};
use openvaai_proto::deadline::DeadlineStream;
use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{accepted, encode_reply, AcceptStat, OpaqueAuth};
use openvaai_proto::xdr::{from_bytes, to_bytes, Decoder, Xdr};

const SID: SessionId = SessionId([7; 16]);

/// The peer's state: one client, one session, one slot.
struct Peer {
    slot: u32,
    calls_seen: Vec<Vec<u32>>,
    knobs: Arc<Knobs>,
}

/// What a test can make the peer do.
#[derive(Default)]
struct Knobs {
    /// Execute the next call but send no reply.
    drop_next_reply: AtomicBool,
    /// Answer SEQUENCE with NFS4ERR_BADSESSION (as after a server restart).
    forget_session: AtomicBool,
    /// Answer SEQUENCE for another sequence id than was sent.
    wrong_echo: AtomicBool,
}

impl Peer {
    fn answer(&mut self, args: &CompoundArgs) -> CompoundRes {
        self.calls_seen
            .push(args.ops.iter().map(Op::opcode).collect());
        let mut results = Vec::new();
        let mut status = Status::Ok;
        for (i, op) in args.ops.iter().enumerate() {
            let res = match op {
                Op::ExchangeId(_) => OpRes::ExchangeId(Ok(ExchangeIdOk {
                    clientid: 0x42,
                    sequenceid: 1,
                    flags: 0x0001_0000,
                    state_protect: StateProtect::None,
                    server_owner: ServerOwner {
                        minor_id: 0,
                        major_id: b"peer".to_vec(),
                    },
                    server_scope: b"scope".to_vec(),
                    server_impl_id: None,
                })),
                Op::CreateSession(a) if a.clientid == 0x42 && a.sequence == 1 => {
                    let mut fore = a.fore;
                    fore.max_operations = fore.max_operations.min(16);
                    OpRes::CreateSession(Ok(CreateSessionOk {
                        sessionid: SID,
                        sequence: a.sequence,
                        flags: 0,
                        fore,
                        back: a.back,
                    }))
                }
                Op::CreateSession(_) => OpRes::CreateSession(Err(Status::SeqMisordered)),
                Op::Sequence(s) if i == 0 => {
                    if s.sessionid != SID || self.knobs.forget_session.load(Ordering::SeqCst) {
                        OpRes::Sequence(Err(Status::Badsession))
                    } else if s.sequenceid == self.slot.wrapping_add(1) {
                        self.slot = s.sequenceid;
                        let echo = if self.knobs.wrong_echo.swap(false, Ordering::SeqCst) {
                            s.sequenceid + 1000
                        } else {
                            s.sequenceid
                        };
                        OpRes::Sequence(Ok(SequenceOk {
                            sessionid: SID,
                            sequenceid: echo,
                            slotid: 0,
                            highest_slotid: 0,
                            target_highest_slotid: 0,
                            status_flags: 0,
                        }))
                    } else if s.sequenceid == self.slot {
                        OpRes::Sequence(Err(Status::RetryUncachedRep))
                    } else {
                        OpRes::Sequence(Err(Status::SeqMisordered))
                    }
                }
                Op::ReclaimComplete(false) => OpRes::ReclaimComplete(Status::Ok),
                Op::Putrootfh => OpRes::Putrootfh(Status::Ok),
                Op::Getfh => OpRes::Getfh(Ok(Fh::new(vec![1, 2, 3, 4]).unwrap())),
                Op::DestroySession(id) if *id == SID => OpRes::DestroySession(Status::Ok),
                Op::DestroyClientid(0x42) => OpRes::DestroyClientid(Status::Ok),
                other => OpRes::Unknown {
                    opcode: other.opcode(),
                    status: Status::Notsupp,
                    body: Vec::new(),
                },
            };
            status = res.status();
            results.push(res);
            if !status.is_ok() {
                break;
            }
        }
        CompoundRes {
            status,
            tag: args.tag.clone(),
            results,
        }
    }

    /// Serves one connection until the client closes it.
    fn serve(&mut self, mut s: TcpStream) {
        while let Ok(Some(record)) = read_record(&mut s) {
            let mut r = Decoder::new(&record);
            let xid = r.u32().unwrap();
            let head: Vec<u32> = (0..5).map(|_| r.u32().unwrap()).collect();
            assert_eq!(head, [0, 2, 100_003, 4, 1], "CALL, RPC 2, NFS 4, COMPOUND");
            let cred = OpaqueAuth::decode(&mut r).unwrap();
            let sys: AuthSys = from_bytes(&cred.body).unwrap();
            assert_eq!((cred.flavor, sys.uid, sys.gid), (1, 0, 0), "AUTH_SYS root");
            OpaqueAuth::decode(&mut r).unwrap();
            let args: CompoundArgs = from_bytes(r.rest()).unwrap();
            assert_eq!(args.minorversion, 2);
            let res = self.answer(&args);
            if self.knobs.drop_next_reply.swap(false, Ordering::SeqCst) {
                continue;
            }
            let reply = encode_reply(xid, &accepted(AcceptStat::Success), &to_bytes(&res));
            if write_record(&mut s, &reply).is_err() {
                return;
            }
        }
    }
}

/// A peer accepting `connections` connections in turn; returns what it saw.
fn peer(connections: usize) -> (std::net::SocketAddr, Arc<Knobs>, JoinHandle<Vec<Vec<u32>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let knobs = Arc::new(Knobs::default());
    let mut p = Peer {
        slot: 0,
        calls_seen: Vec::new(),
        knobs: knobs.clone(),
    };
    let t = std::thread::spawn(move || {
        for _ in 0..connections {
            let (s, _) = l.accept().unwrap();
            p.serve(s);
        }
        p.calls_seen
    });
    (addr, knobs, t)
}

fn connect(addr: std::net::SocketAddr) -> DeadlineStream {
    let s = DeadlineStream::new(TcpStream::connect(addr).unwrap());
    s.set_deadline(Instant::now() + Duration::from_millis(500));
    s
}

fn owner() -> ClientOwner {
    ClientOwner {
        verifier: Verifier([1; 8]),
        ownerid: b"openvaai-test".to_vec(),
    }
}

#[test]
fn establish_sequence_and_shutdown_keep_the_slot_in_step() {
    let (addr, _, t) = peer(1);
    let mut c = Nfs4Client::new(connect(addr), &AuthSys::root("esx-test"));
    c.establish(owner()).unwrap();
    assert_eq!(c.client_id().unwrap().clientid, 0x42);
    assert_eq!(c.session().unwrap().fore.max_operations, 16);
    // RECLAIM_COMPLETE used sequence id 1; the next call uses 2.
    assert_eq!(c.session().unwrap().next_seqid(), 2);
    let r = c.compound(&[Op::Putrootfh, Op::Getfh]).unwrap();
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.results.len(), 2, "SEQUENCE's result is taken off");
    c.renew().unwrap();
    assert_eq!(c.session().unwrap().next_seqid(), 4);
    c.shutdown().unwrap();
    assert!(c.session().is_none() && c.client_id().is_none());
    let e = c.compound(&[Op::Putrootfh]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSession);
    drop(c);
    let seen = t.join().unwrap();
    assert_eq!(
        seen,
        vec![
            vec![42],
            vec![43],
            vec![53, 58],
            vec![53, 24, 10],
            vec![53],
            vec![44],
            vec![57]
        ]
    );
}

#[test]
fn a_lost_reply_leaves_the_slot_in_doubt_and_the_next_call_resynchronises_it() {
    let (addr, knobs, t) = peer(2);
    let mut c = Nfs4Client::new(connect(addr), &AuthSys::root("esx-test"));
    c.establish(owner()).unwrap();
    knobs.drop_next_reply.store(true, Ordering::SeqCst);
    let e = c.compound(&[Op::Putrootfh]).unwrap_err();
    assert!(e.is_connection_lost() && e.is_timeout(), "{e}");
    assert!(c.session().unwrap().in_doubt());
    // A new connection; the session survives it.
    drop(c.replace_stream(connect(addr)));
    let r = c.compound(&[Op::Putrootfh, Op::Getfh]).unwrap();
    assert_eq!(r.status, Status::Ok);
    let s = c.session().unwrap();
    assert!(!s.in_doubt());
    // 1: RECLAIM_COMPLETE, 2: the lost call, probed again as 2, 3: the new call.
    assert_eq!(s.next_seqid(), 4);
    drop(c);
    let seen = t.join().unwrap();
    assert_eq!(&seen[3..], [vec![53, 24], vec![53], vec![53, 24, 10]]);
}

#[test]
fn a_failed_sequence_is_a_session_lost_error_and_does_not_move_the_slot() {
    let (addr, knobs, t) = peer(1);
    let mut c = Nfs4Client::new(connect(addr), &AuthSys::root("esx-test"));
    c.establish(owner()).unwrap();
    knobs.forget_session.store(true, Ordering::SeqCst);
    let e = c.compound(&[Op::Putrootfh]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Status);
    assert_eq!(e.nfs_status(), Some(Status::Badsession));
    assert!(e.is_session_lost() && !e.is_retryable(), "{e}");
    let s = c.session().unwrap();
    assert_eq!((s.next_seqid(), s.in_doubt()), (2, false));
    // The server's slot did not move either: the same sequence id goes through.
    knobs.forget_session.store(false, Ordering::SeqCst);
    c.compound(&[Op::Putrootfh]).unwrap();
    assert_eq!(c.session().unwrap().next_seqid(), 3);
    drop(c);
    t.join().unwrap();
}

#[test]
fn a_sequence_echo_for_another_sequence_id_is_refused_and_leaves_the_slot_in_doubt() {
    let (addr, knobs, t) = peer(1);
    let mut c = Nfs4Client::new(connect(addr), &AuthSys::root("esx-test"));
    c.establish(owner()).unwrap();
    knobs.wrong_echo.store(true, Ordering::SeqCst);
    let e = c.compound(&[Op::Putrootfh]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedReply, "{e}");
    assert!(c.session().unwrap().in_doubt());
    // The peer did execute it: the probe is answered as a retry, then all is in step.
    c.compound(&[Op::Putrootfh]).unwrap();
    assert_eq!(c.session().unwrap().next_seqid(), 4);
    drop(c);
    let seen = t.join().unwrap();
    assert_eq!(&seen[3..], [vec![53, 24], vec![53], vec![53, 24]]);
}

//! A hostile NFSv4.2 server on loopback: it accepts the plugin's TCP connections, decodes
//! each ONC RPC call and its COMPOUND with the protocol crate's own codec, and answers from
//! its in-memory tree ([`Fs`]) as a server keeping RFC 8881's sessions would (a client id per
//! EXCHANGE_ID, one slot per session, NFS4ERR_RETRY_UNCACHED_REP for a retry,
//! NFS4ERR_SEQ_MISORDERED otherwise), unless the test's hook says otherwise for an
//! operation: another answer, raw bytes, or a fault on the wire (the reply dropped after
//! the operation ran, never sent, trickled, with a wrong xid, or garbage).
//!
//! Everything it saw is kept for the test to judge: the operations of each COMPOUND, the
//! client ids and sessions still alive, how often each operation changed the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use openvaai_nfs4::attr::num;
use openvaai_nfs4::basic::{Bitmap, Fh, SessionId};
use openvaai_nfs4::ops::opcode;
use openvaai_nfs4::ops::session::{
    CreateSessionOk, ExchangeIdOk, SequenceOk, ServerOwner, StateProtect,
};
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::{CompoundArgs, Status};
use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{accepted, encode_reply, AcceptStat, OpaqueAuth};
use openvaai_proto::xdr::{from_bytes, Decoder, Encoder, Xdr};

use crate::fs::{Fs, Kind, ROOT, VERF};

/// What the hook makes of one operation.
// A few per COMPOUND, made by tests: boxing the large arm buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Fault {
    /// Execute it as a server would.
    Run,
    /// Answer this instead (not executed); a failed status ends the COMPOUND.
    Answer(OpRes),
    /// Answer these bytes (status included) for the operation; it is not executed.
    Raw(Vec<u8>),
    /// Execute it, then this on the wire with the reply.
    Wire(Wire),
}

/// A fault on the wire, for the reply of a COMPOUND that was executed.
#[derive(Debug, Clone)]
pub enum Wire {
    /// No reply; the connection is closed (a reset after the server ran the call).
    Drop,
    /// No reply, the connection kept open (a server that stopped answering).
    Hang,
    /// The reply one byte at a time, a pause before each.
    Trickle(Duration),
    /// The reply with another xid.
    WrongXid,
    /// A record holding these bytes instead of the reply.
    Garbage(Vec<u8>),
}

pub type Hook = Box<dyn FnMut(&Op, &mut Fs) -> Fault + Send>;

/// The peer's state, shared by its connections.
pub struct State {
    pub fs: Fs,
    /// The operations of every COMPOUND received, in order (SEQUENCE included).
    pub calls: Vec<Vec<u32>>,
    /// Client ids given and not destroyed.
    pub clients: BTreeSet<u64>,
    /// Live sessions, with their slot's last sequence id.
    pub sessions: BTreeMap<[u8; 16], u32>,
    /// Connections accepted.
    pub connections: usize,
    /// The length of the file handles given (at least 8).
    pub fh_len: usize,
    next_client: u64,
    /// Client records by owner: client id and verifier.
    owners: BTreeMap<Vec<u8>, (u64, [u8; 8])>,
    hook: Option<Hook>,
}

impl State {
    /// COMPOUNDs that held operation `op`.
    pub fn calls_with(&self, op: u32) -> usize {
        self.calls.iter().filter(|c| c.contains(&op)).count()
    }
}

/// The running peer; dropping it stops it.
pub struct Peer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Peer {
    /// Serves `fs` on a new loopback port.
    pub fn start(fs: Fs) -> Peer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            fs,
            calls: Vec::new(),
            clients: BTreeSet::new(),
            sessions: BTreeMap::new(),
            connections: 0,
            fh_len: 8,
            next_client: 0x100,
            owners: BTreeMap::new(),
            hook: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (st, sp, ss) = (state.clone(), stop.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        ss.lock().unwrap().push(s.try_clone().unwrap());
                        st.lock().unwrap().connections += 1;
                        let (st, sp) = (st.clone(), sp.clone());
                        std::thread::spawn(move || serve(s, &st, &sp));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Peer {
            addr,
            state,
            stop,
            streams,
            accept: Some(accept),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, every operation goes through `hook` first.
    pub fn hook(&self, hook: impl FnMut(&Op, &mut Fs) -> Fault + Send + 'static) {
        self.state().hook = Some(Box::new(hook));
    }

    pub fn unhook(&self) {
        self.state().hook = None;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One result: decoded, or raw bytes after the opcode.
#[allow(clippy::large_enum_variant)]
enum Out {
    Res(OpRes),
    Raw(u32, Status, Vec<u8>),
}

impl Out {
    fn status(&self) -> Status {
        match self {
            Out::Res(r) => r.status(),
            Out::Raw(_, s, _) => *s,
        }
    }
}

fn serve(mut s: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    while let Ok(Some(record)) = read_record(&mut s) {
        let mut r = Decoder::new(&record);
        let xid = r.u32().unwrap();
        let head: Vec<u32> = (0..5).map(|_| r.u32().unwrap()).collect();
        assert_eq!(head[..4], [0, 2, 100_003, 4], "CALL, RPC 2, NFS 4");
        OpaqueAuth::decode(&mut r).unwrap();
        OpaqueAuth::decode(&mut r).unwrap();
        let results = if head[4] == 0 {
            Vec::new()
        } else {
            let args: CompoundArgs = from_bytes(r.rest()).expect("a COMPOUND the codec decodes");
            let (res, wire) = {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                answer(&mut st, &args)
            };
            match wire {
                None => res,
                Some(Wire::Drop) => {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    return;
                }
                Some(Wire::Hang) => {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
                Some(Wire::Trickle(pause)) => {
                    let reply = encode_reply(xid, &accepted(AcceptStat::Success), &res);
                    let mut framed = ((reply.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
                    framed.extend(reply);
                    for b in framed {
                        std::thread::sleep(pause);
                        if stop.load(Ordering::SeqCst) || s.write_all(&[b]).is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Some(Wire::WrongXid) => {
                    let reply = encode_reply(xid ^ 0x5555, &accepted(AcceptStat::Success), &res);
                    if write_record(&mut s, &reply).is_err() {
                        return;
                    }
                    continue;
                }
                Some(Wire::Garbage(bytes)) => {
                    if write_record(&mut s, &bytes).is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        let reply = encode_reply(xid, &accepted(AcceptStat::Success), &results);
        if write_record(&mut s, &reply).is_err() {
            return;
        }
    }
}

/// Executes a COMPOUND: its reply's bytes, and the wire fault a hook asked for.
fn answer(st: &mut State, args: &CompoundArgs) -> (Vec<u8>, Option<Wire>) {
    st.calls.push(args.ops.iter().map(Op::opcode).collect());
    let mut outs = Vec::new();
    let mut wire = None;
    let mut cur: Option<u64> = None;
    let mut saved: Option<u64> = None;
    for (i, op) in args.ops.iter().enumerate() {
        let fault = match st.hook.as_mut() {
            Some(h) => h(op, &mut st.fs),
            None => Fault::Run,
        };
        let out = match fault {
            Fault::Answer(r) => Out::Res(r),
            Fault::Raw(bytes) => {
                let status = Status::decode(&mut Decoder::new(&bytes)).unwrap_or(Status::Ok);
                Out::Raw(op.opcode(), status, bytes)
            }
            Fault::Run | Fault::Wire(_) => {
                if let Fault::Wire(w) = fault {
                    wire = Some(w);
                }
                run(st, op, i, &mut cur, &mut saved)
            }
        };
        let failed = !out.status().is_ok();
        let status = out.status();
        outs.push(out);
        if failed {
            return (encode(status, &args.tag, &outs), wire);
        }
    }
    (encode(Status::Ok, &args.tag, &outs), wire)
}

fn encode(status: Status, tag: &str, outs: &[Out]) -> Vec<u8> {
    let mut w = Encoder::new();
    status.encode(&mut w);
    w.string(tag);
    w.u32(outs.len() as u32);
    for o in outs {
        match o {
            Out::Res(r) => r.encode(&mut w),
            Out::Raw(op, _, bytes) => {
                w.u32(*op);
                w.raw(bytes);
            }
        }
    }
    w.into_bytes()
}

fn fh_bytes(id: u64, len: usize) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.resize(len.max(8), 0xfe);
    b
}

fn fileid_of(fh: &Fh) -> Option<u64> {
    Some(u64::from_be_bytes(fh.as_bytes().get(..8)?.try_into().ok()?))
}

/// The attributes of `id` asked for in `want` (those this peer has), as `fattr4` after a
/// status of NFS4_OK.
fn getattr(fs: &Fs, id: u64, want: &Bitmap) -> Vec<u8> {
    let n = &fs.nodes[&id];
    let (ftype, size) = match &n.kind {
        Kind::File(d) => (1, d.len() as u64),
        Kind::Dir(_) => (2, 4096),
        Kind::Symlink => (5, 8),
    };
    let mut mask = Bitmap::default();
    let mut v = Encoder::new();
    for bit in want.iter() {
        match bit {
            num::TYPE => v.u32(ftype),
            num::SIZE => v.u64(size),
            num::FSID => {
                v.u64(1);
                v.u64(1)
            }
            num::FILEID => v.u64(id),
            num::MODE => v.u32(n.mode),
            num::OWNER => v.string(&n.owner),
            num::OWNER_GROUP => v.string(&n.group),
            num::SPACE_USED => v.u64(size.max(n.allocated).next_multiple_of(4096)),
            _ => continue,
        }
        mask.insert(bit);
    }
    let mut w = Encoder::new();
    Status::Ok.encode(&mut w);
    mask.encode(&mut w);
    w.opaque(&v.into_bytes());
    w.into_bytes()
}

/// One operation as a server executes it.
fn run(st: &mut State, op: &Op, i: usize, cur: &mut Option<u64>, saved: &mut Option<u64>) -> Out {
    use OpRes as R;
    let need = |c: &Option<u64>| c.ok_or(Status::Nofilehandle);
    let res = match op {
        Op::ExchangeId(a) => {
            // As a server keeps client records: the same owner and verifier get the same
            // client id; a new verifier is the client restarted, and the old record goes
            // with its sessions.
            let known = st.owners.get(&a.owner.ownerid).copied();
            let clientid = match known {
                Some((id, v)) if v == a.owner.verifier.0 && st.clients.contains(&id) => id,
                other => {
                    if let Some((old, _)) = other {
                        st.clients.remove(&old);
                        st.sessions.retain(|sid, _| sid[..8] != old.to_be_bytes());
                    }
                    st.next_client += 1;
                    st.owners.insert(
                        a.owner.ownerid.clone(),
                        (st.next_client, a.owner.verifier.0),
                    );
                    st.next_client
                }
            };
            st.clients.insert(clientid);
            R::ExchangeId(Ok(ExchangeIdOk {
                clientid,
                sequenceid: 1,
                flags: 0x0001_0000,
                state_protect: StateProtect::None,
                server_owner: ServerOwner {
                    minor_id: 0,
                    major_id: b"hostile".to_vec(),
                },
                server_scope: b"hostile".to_vec(),
                server_impl_id: None,
            }))
        }
        Op::CreateSession(a) if st.clients.contains(&a.clientid) => {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&a.clientid.to_be_bytes());
            st.next_client += 1;
            id[8..].copy_from_slice(&st.next_client.to_be_bytes());
            let sessionid = SessionId(id);
            st.sessions.insert(sessionid.0, 0);
            let mut fore = a.fore;
            fore.max_operations = fore.max_operations.min(16);
            fore.max_requests = 1;
            R::CreateSession(Ok(CreateSessionOk {
                sessionid,
                sequence: a.sequence,
                flags: 0,
                fore,
                back: a.back,
            }))
        }
        Op::CreateSession(_) => R::CreateSession(Err(Status::StaleClientid)),
        Op::DestroySession(id) => match st.sessions.remove(&id.0) {
            Some(_) => R::DestroySession(Status::Ok),
            None => R::DestroySession(Status::Badsession),
        },
        Op::DestroyClientid(c) => match st.clients.remove(c) {
            true => R::DestroyClientid(Status::Ok),
            false => R::DestroyClientid(Status::StaleClientid),
        },
        Op::Sequence(s) if i == 0 => match st.sessions.get_mut(&s.sessionid.0) {
            None => R::Sequence(Err(Status::Badsession)),
            Some(slot) if s.slotid != 0 => {
                let _ = slot;
                R::Sequence(Err(Status::Badslot))
            }
            Some(slot) if s.sequenceid == slot.wrapping_add(1) => {
                *slot = s.sequenceid;
                R::Sequence(Ok(SequenceOk {
                    sessionid: s.sessionid,
                    sequenceid: s.sequenceid,
                    slotid: 0,
                    highest_slotid: 0,
                    target_highest_slotid: 0,
                    status_flags: 0,
                }))
            }
            Some(slot) if s.sequenceid == *slot => R::Sequence(Err(Status::RetryUncachedRep)),
            Some(_) => R::Sequence(Err(Status::SeqMisordered)),
        },
        Op::Sequence(_) => R::Sequence(Err(Status::SequencePos)),
        Op::ReclaimComplete(_) => R::ReclaimComplete(Status::Ok),
        Op::Putrootfh => {
            *cur = Some(ROOT);
            R::Putrootfh(Status::Ok)
        }
        Op::Putfh(fh) => match fileid_of(fh).filter(|id| st.fs.nodes.contains_key(id)) {
            Some(id) => {
                *cur = Some(id);
                R::Putfh(Status::Ok)
            }
            None => R::Putfh(Status::Stale),
        },
        Op::Savefh => {
            *saved = *cur;
            R::Savefh(Status::Ok)
        }
        Op::Restorefh => {
            *cur = *saved;
            R::Restorefh(Status::Ok)
        }
        Op::Getfh => match need(cur) {
            Ok(id) => {
                let bytes = fh_bytes(id, st.fh_len);
                let mut w = Encoder::new();
                Status::Ok.encode(&mut w);
                w.opaque(&bytes);
                return Out::Raw(opcode::GETFH, Status::Ok, w.into_bytes());
            }
            Err(s) => R::Getfh(Err(s)),
        },
        Op::Getattr(want) => match need(cur) {
            Ok(id) => return Out::Raw(opcode::GETATTR, Status::Ok, getattr(&st.fs, id, want)),
            Err(s) => R::Getattr(Err(s)),
        },
        Op::Lookup(name) => match need(cur).and_then(|d| st.fs.lookup(d, name.as_str())) {
            Ok(id) => {
                *cur = Some(id);
                R::Lookup(Status::Ok)
            }
            Err(s) => R::Lookup(s),
        },
        Op::Open(a) => match need(cur).and_then(|d| st.fs.open(d, a)) {
            Ok((id, ok)) => {
                *cur = Some(id);
                R::Open(Ok(ok))
            }
            Err(s) => R::Open(Err(s)),
        },
        Op::Close(a) => match need(cur) {
            Ok(id) => st.fs.close(id, &a.open_stateid),
            Err(s) => R::Close(Err(s)),
        },
        Op::Setattr(a) => {
            let status = match need(cur) {
                Ok(id) => {
                    let mut status = Status::Ok;
                    if let Some(size) = a.attrs.size {
                        status = st.fs.set_size(id, size);
                    }
                    let n = st.fs.nodes.get_mut(&id).unwrap();
                    if let Some(o) = &a.attrs.owner {
                        n.owner = o.clone();
                    }
                    if let Some(g) = &a.attrs.owner_group {
                        n.group = g.clone();
                    }
                    if let Some(m) = a.attrs.mode {
                        n.mode = m;
                    }
                    status
                }
                Err(s) => s,
            };
            R::Setattr {
                status,
                attrsset: Bitmap::default(),
            }
        }
        Op::Remove(name) => R::Remove(need(cur).and_then(|d| st.fs.remove(d, name.as_str()))),
        Op::Link(name) => R::Link(
            need(saved).and_then(|f| need(cur).and_then(|d| st.fs.link(f, d, name.as_str()))),
        ),
        Op::Rename(a) => R::Rename(need(saved).and_then(|from| {
            need(cur).and_then(|to| {
                st.fs
                    .rename(from, a.oldname.as_str(), to, a.newname.as_str())
                    .map(|()| openvaai_nfs4::ops::file::RenameOk {
                        source_cinfo: Default::default(),
                        target_cinfo: Default::default(),
                    })
            })
        })),
        Op::Readdir(a) => R::Readdir(need(cur).and_then(|d| st.fs.readdir(d, a))),
        Op::Clone(_) => match (need(saved), need(cur)) {
            (Ok(src), Ok(dst)) => R::Clone(st.fs.clone_file(src, dst)),
            (Err(s), _) | (_, Err(s)) => R::Clone(s),
        },
        Op::Copy(a) => match (need(saved), need(cur)) {
            (Ok(src), Ok(dst)) if src == dst => R::Copy(openvaai_nfs4::ops::v42::CopyRes::Ok {
                response: openvaai_nfs4::ops::v42::WriteResponse {
                    callback_id: None,
                    count: 0,
                    committed: openvaai_nfs4::ops::v42::StableHow::Unstable,
                    writeverf: VERF,
                },
                requirements: openvaai_nfs4::ops::v42::CopyRequirements {
                    consecutive: true,
                    synchronous: true,
                },
            }),
            (Ok(src), Ok(dst)) => {
                R::Copy(st.fs.copy(src, dst, a.src_offset, a.dst_offset, a.count))
            }
            (Err(s), _) | (_, Err(s)) => R::Copy(openvaai_nfs4::ops::v42::CopyRes::Err(s)),
        },
        Op::Seek(a) => R::Seek(need(cur).and_then(|id| st.fs.seek(id, a.offset, a.what))),
        Op::Commit(_) => R::Commit(need(cur).map(|_| VERF)),
        Op::Allocate(a) => match need(cur) {
            Ok(id) => {
                let n = st.fs.nodes.get_mut(&id).unwrap();
                n.allocated = n.allocated.max(a.offset + a.length);
                R::Allocate(Status::Ok)
            }
            Err(s) => R::Allocate(s),
        },
        other => R::Unknown {
            opcode: other.opcode(),
            status: Status::Notsupp,
            body: Vec::new(),
        },
    };
    Out::Res(res)
}

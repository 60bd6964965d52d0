//! A hand-encoded minimal NFSv4 client: RPC NULL and COMPOUND (PUTROOTFH, LOOKUP, GETATTR of
//! the type) over one TCP connection, with AUTH_SYS root credentials, encoded with the
//! project's XDR and record marking.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use openvaai_proto::record::{read_record, write_record};
use openvaai_proto::rpc::{decode_reply, AcceptStat, ReplyBody, AUTH_SYS, MSG_CALL, RPC_VERSION};
use openvaai_proto::xdr::{Decoder, Encoder};

pub const NFS_PROGRAM: u32 = 100003;
pub const NFS_V4: u32 = 4;
pub const OP_GETATTR: u32 = 9;
pub const OP_LOOKUP: u32 = 15;
pub const OP_PUTROOTFH: u32 = 24;
pub const NFS4_OK: u32 = 0;
pub const NFS4ERR_MINOR_VERS_MISMATCH: u32 = 10021;
pub const NFS4ERR_OP_NOT_IN_SESSION: u32 = 10071;
/// `nfs_ftype4` NF4DIR.
pub const NF4DIR: u32 = 2;

pub struct Conn {
    stream: TcpStream,
    xid: u32,
}

/// What a COMPOUND returned: its status and, per operation, `(op, status, result bytes)`
/// (results kept only for the last operation, GETATTR's attributes).
#[derive(Debug)]
pub struct Compound {
    pub status: u32,
    pub ops: Vec<(u32, u32)>,
    /// `nfs_ftype4` from the GETATTR, when it succeeded.
    pub ftype: Option<u32>,
}

fn bad(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Conn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            stream,
            xid: 0x4f56_0000,
        })
    }

    fn call(&mut self, proc_: u32, args: &[u8]) -> io::Result<Vec<u8>> {
        self.xid += 1;
        let mut w = Encoder::new();
        for v in [self.xid, MSG_CALL, RPC_VERSION, NFS_PROGRAM, NFS_V4, proc_] {
            w.u32(v);
        }
        // AUTH_SYS: stamp, machine name, uid 0, gid 0, no more groups.
        let mut cred = Encoder::new();
        cred.u32(0);
        cred.string("openvaai-test");
        cred.u32(0);
        cred.u32(0);
        cred.u32(0);
        w.u32(AUTH_SYS);
        w.opaque(&cred.into_bytes());
        w.u32(0);
        w.u32(0);
        w.raw(args);
        write_record(&mut self.stream, &w.into_bytes()).map_err(bad)?;
        let reply = read_record(&mut self.stream)
            .map_err(bad)?
            .ok_or_else(|| bad("the server closed the connection"))?;
        let (xid, body, results) = decode_reply(&reply).map_err(bad)?;
        if xid != self.xid {
            return Err(bad(format!("reply xid {xid:#x} to call {:#x}", self.xid)));
        }
        match body {
            ReplyBody::Accepted {
                stat: AcceptStat::Success,
                ..
            } => Ok(results.to_vec()),
            other => Err(bad(format!("call not accepted: {other:?}"))),
        }
    }

    /// Procedure 0.
    pub fn null(&mut self) -> io::Result<()> {
        let results = self.call(0, &[])?;
        if results.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("NULL returned {} bytes", results.len())))
        }
    }

    /// COMPOUND (minor version `minor`): PUTROOTFH, LOOKUP of each of `path`, GETATTR(type).
    pub fn lookup_type(&mut self, minor: u32, path: &[&str]) -> io::Result<Compound> {
        let mut w = Encoder::new();
        w.string("openvaai");
        w.u32(minor);
        w.u32(2 + path.len() as u32);
        w.u32(OP_PUTROOTFH);
        for name in path {
            w.u32(OP_LOOKUP);
            w.string(name);
        }
        w.u32(OP_GETATTR);
        w.u32(1); // bitmap4 of one word
        w.u32(1 << 1); // FATTR4_TYPE
        let res = self.call(1, &w.into_bytes())?;
        let mut r = Decoder::new(&res);
        let status = r.u32().map_err(bad)?;
        r.opaque(1024).map_err(bad)?; // tag
        let n = r.u32().map_err(bad)?;
        let mut c = Compound {
            status,
            ops: Vec::new(),
            ftype: None,
        };
        for _ in 0..n {
            let op = r.u32().map_err(bad)?;
            let st = r.u32().map_err(bad)?;
            c.ops.push((op, st));
            if op == OP_GETATTR && st == NFS4_OK {
                let words = r.u32().map_err(bad)?;
                for _ in 0..words {
                    r.u32().map_err(bad)?;
                }
                let vals = r.opaque(4096).map_err(bad)?;
                c.ftype = Decoder::new(vals).u32().ok();
            }
        }
        Ok(c)
    }
}

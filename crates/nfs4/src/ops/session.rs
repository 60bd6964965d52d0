//! The session operations of NFSv4.1 (RFC 8881 §18.35–18.37, §18.46, §18.50–18.51):
//! EXCHANGE_ID, CREATE_SESSION, SEQUENCE, DESTROY_SESSION, DESTROY_CLIENTID,
//! RECLAIM_COMPLETE. The arguments of the last three are one value each (see `Op`).

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::auth::AuthSys;
use crate::basic::{bad, decode_opt, encode_opt, Bitmap, ImplId, SessionId, Verifier};
use crate::limits::{MAX_CB_SEC_PARMS, MAX_OPAQUE};

/// `EXCHGID4_FLAG_USE_NON_PNFS`: this client wants plain (non-pNFS) service.
pub const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x0001_0000;
/// `EXCHGID4_FLAG_CONFIRMED_R` (reply): the client id was already confirmed.
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;

/// ```text
/// struct client_owner4 {
///         verifier4       co_verifier;
///         opaque          co_ownerid<NFS4_OPAQUE_LIMIT>;
/// };
/// ```
/// `ownerid` names this client for ever (the server keys its state on it); `verifier`
/// changes when the client restarts, so the server drops the old incarnation's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOwner {
    pub verifier: Verifier,
    pub ownerid: Vec<u8>,
}

impl Xdr for ClientOwner {
    fn encode(&self, w: &mut Encoder) {
        self.verifier.encode(w);
        w.opaque(&self.ownerid);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ClientOwner> {
        Ok(ClientOwner {
            verifier: Verifier::decode(r)?,
            ownerid: r.opaque(MAX_OPAQUE)?.to_vec(),
        })
    }
}

/// ```text
/// struct EXCHANGE_ID4args {
///         client_owner4           eia_clientowner;
///         uint32_t                eia_flags;
///         state_protect4_a        eia_state_protect;
///         nfs_impl_id4            eia_client_impl_id<1>;
/// };
/// union state_protect4_a switch (state_protect_how4 spa_how) {
///         case SP4_NONE:
///                 void;
///         case SP4_MACH_CRED:
///                 state_protect_ops4      spa_mach_ops;
///         case SP4_SSV:
///                 ssv_sp_parms4           spa_ssv_parms;
/// };
/// ```
/// This client always asks for `SP4_NONE` (AUTH_SYS has nothing to protect state with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIdArgs {
    pub owner: ClientOwner,
    pub flags: u32,
    pub impl_id: Option<ImplId>,
}

const SP4_NONE: u32 = 0;
const SP4_MACH_CRED: u32 = 1;

impl Xdr for ExchangeIdArgs {
    fn encode(&self, w: &mut Encoder) {
        self.owner.encode(w);
        w.u32(self.flags);
        w.u32(SP4_NONE);
        encode_opt(w, self.impl_id.as_ref());
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ExchangeIdArgs> {
        let owner = ClientOwner::decode(r)?;
        let flags = r.u32()?;
        if r.u32()? != SP4_NONE {
            return Err(bad("state protection other than SP4_NONE"));
        }
        Ok(ExchangeIdArgs {
            owner,
            flags,
            impl_id: decode_opt(r)?,
        })
    }
}

/// ```text
/// struct state_protect_ops4 {
///         bitmap4 spo_must_enforce;
///         bitmap4 spo_must_allow;
/// };
/// union state_protect4_r switch (state_protect_how4 spr_how) {
///  case SP4_NONE:
///          void;
///  case SP4_MACH_CRED:
///          state_protect_ops4     spr_mach_ops;
///  case SP4_SSV:
///          ssv_prot_info4         spr_ssv_info;
/// };
/// ```
/// SP4_SSV is refused as undecodable: this client never asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateProtect {
    None,
    MachCred {
        must_enforce: Bitmap,
        must_allow: Bitmap,
    },
}

impl Xdr for StateProtect {
    fn encode(&self, w: &mut Encoder) {
        match self {
            StateProtect::None => w.u32(SP4_NONE),
            StateProtect::MachCred {
                must_enforce,
                must_allow,
            } => {
                w.u32(SP4_MACH_CRED);
                must_enforce.encode(w);
                must_allow.encode(w);
            }
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<StateProtect> {
        match r.u32()? {
            SP4_NONE => Ok(StateProtect::None),
            SP4_MACH_CRED => Ok(StateProtect::MachCred {
                must_enforce: Bitmap::decode(r)?,
                must_allow: Bitmap::decode(r)?,
            }),
            v => Err(bad(format!("state_protect4_r arm {v} was not asked for"))),
        }
    }
}

/// ```text
/// struct server_owner4 {
///  uint64_t       so_minor_id;
///  opaque         so_major_id<NFS4_OPAQUE_LIMIT>;
/// };
/// ```
/// Two addresses with the same `major_id` (and scope) are the same server: what
/// SRCDATASTORE_VALID needs to tell "another export of the same server".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerOwner {
    pub minor_id: u64,
    pub major_id: Vec<u8>,
}

impl Xdr for ServerOwner {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.minor_id);
        w.opaque(&self.major_id);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ServerOwner> {
        Ok(ServerOwner {
            minor_id: r.u64()?,
            major_id: r.opaque(MAX_OPAQUE)?.to_vec(),
        })
    }
}

/// ```text
/// struct EXCHANGE_ID4resok {
///  clientid4        eir_clientid;
///  sequenceid4      eir_sequenceid;
///  uint32_t         eir_flags;
///  state_protect4_r eir_state_protect;
///  server_owner4    eir_server_owner;
///  opaque           eir_server_scope<NFS4_OPAQUE_LIMIT>;
///  nfs_impl_id4     eir_server_impl_id<1>;
/// };
/// union EXCHANGE_ID4res switch (nfsstat4 eir_status) {
///  case NFS4_OK:
///          EXCHANGE_ID4resok      eir_resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeIdOk {
    pub clientid: u64,
    pub sequenceid: u32,
    pub flags: u32,
    pub state_protect: StateProtect,
    pub server_owner: ServerOwner,
    pub server_scope: Vec<u8>,
    pub server_impl_id: Option<ImplId>,
}

impl Xdr for ExchangeIdOk {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.clientid);
        w.u32(self.sequenceid);
        w.u32(self.flags);
        self.state_protect.encode(w);
        self.server_owner.encode(w);
        w.opaque(&self.server_scope);
        encode_opt(w, self.server_impl_id.as_ref());
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ExchangeIdOk> {
        Ok(ExchangeIdOk {
            clientid: r.u64()?,
            sequenceid: r.u32()?,
            flags: r.u32()?,
            state_protect: StateProtect::decode(r)?,
            server_owner: ServerOwner::decode(r)?,
            server_scope: r.opaque(MAX_OPAQUE)?.to_vec(),
            server_impl_id: decode_opt(r)?,
        })
    }
}

/// ```text
/// struct channel_attrs4 {
///         count4                  ca_headerpadsize;
///         count4                  ca_maxrequestsize;
///         count4                  ca_maxresponsesize;
///         count4                  ca_maxresponsesize_cached;
///         count4                  ca_maxoperations;
///         count4                  ca_maxrequests;
///         uint32_t                ca_rdma_ird<1>;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelAttrs {
    pub header_pad_size: u32,
    pub max_request_size: u32,
    pub max_response_size: u32,
    pub max_response_size_cached: u32,
    pub max_operations: u32,
    pub max_requests: u32,
    pub rdma_ird: Option<u32>,
}

impl Xdr for ChannelAttrs {
    fn encode(&self, w: &mut Encoder) {
        for v in [
            self.header_pad_size,
            self.max_request_size,
            self.max_response_size,
            self.max_response_size_cached,
            self.max_operations,
            self.max_requests,
        ] {
            w.u32(v);
        }
        encode_opt(w, self.rdma_ird.as_ref());
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ChannelAttrs> {
        Ok(ChannelAttrs {
            header_pad_size: r.u32()?,
            max_request_size: r.u32()?,
            max_response_size: r.u32()?,
            max_response_size_cached: r.u32()?,
            max_operations: r.u32()?,
            max_requests: r.u32()?,
            rdma_ird: decode_opt(r)?,
        })
    }
}

/// ```text
/// union callback_sec_parms4 switch (uint32_t cb_secflavor) {
///  case AUTH_NONE:
///          void;
///  case AUTH_SYS:
///          authsys_parms   cbsp_sys_cred; /* RFC 5531 */
///  case RPCSEC_GSS:
///          gss_cb_handles4 cbsp_gss_handles;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbSecParms {
    None,
    Sys(AuthSys),
}

impl Xdr for CbSecParms {
    fn encode(&self, w: &mut Encoder) {
        match self {
            CbSecParms::None => w.u32(openvaai_proto::rpc::AUTH_NONE),
            CbSecParms::Sys(a) => {
                w.u32(openvaai_proto::rpc::AUTH_SYS);
                a.encode(w);
            }
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CbSecParms> {
        match r.u32()? {
            openvaai_proto::rpc::AUTH_NONE => Ok(CbSecParms::None),
            openvaai_proto::rpc::AUTH_SYS => Ok(CbSecParms::Sys(AuthSys::decode(r)?)),
            v => Err(bad(format!("callback flavor {v}"))),
        }
    }
}

/// `CREATE_SESSION4_FLAG_PERSIST`.
pub const CREATE_SESSION4_FLAG_PERSIST: u32 = 0x1;
/// `CREATE_SESSION4_FLAG_CONN_BACK_CHAN`.
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;

/// ```text
/// struct CREATE_SESSION4args {
///         clientid4               csa_clientid;
///         sequenceid4             csa_sequence;
///
///         uint32_t                csa_flags;
///
///         channel_attrs4          csa_fore_chan_attrs;
///         channel_attrs4          csa_back_chan_attrs;
///
///         uint32_t                csa_cb_program;
///         callback_sec_parms4     csa_sec_parms<>;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionArgs {
    pub clientid: u64,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
    pub cb_program: u32,
    pub sec_parms: Vec<CbSecParms>,
}

impl Xdr for CreateSessionArgs {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.clientid);
        w.u32(self.sequence);
        w.u32(self.flags);
        self.fore.encode(w);
        self.back.encode(w);
        w.u32(self.cb_program);
        w.array(&self.sec_parms);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CreateSessionArgs> {
        Ok(CreateSessionArgs {
            clientid: r.u64()?,
            sequence: r.u32()?,
            flags: r.u32()?,
            fore: ChannelAttrs::decode(r)?,
            back: ChannelAttrs::decode(r)?,
            cb_program: r.u32()?,
            sec_parms: r.array(MAX_CB_SEC_PARMS, 4)?,
        })
    }
}

/// ```text
/// struct CREATE_SESSION4resok {
///         sessionid4              csr_sessionid;
///         sequenceid4             csr_sequence;
///
///         uint32_t                csr_flags;
///
///         channel_attrs4          csr_fore_chan_attrs;
///         channel_attrs4          csr_back_chan_attrs;
/// };
/// union CREATE_SESSION4res switch (nfsstat4 csr_status) {
///  case NFS4_OK:
///          CREATE_SESSION4resok   csr_resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSessionOk {
    pub sessionid: SessionId,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
}

impl Xdr for CreateSessionOk {
    fn encode(&self, w: &mut Encoder) {
        self.sessionid.encode(w);
        w.u32(self.sequence);
        w.u32(self.flags);
        self.fore.encode(w);
        self.back.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<CreateSessionOk> {
        Ok(CreateSessionOk {
            sessionid: SessionId::decode(r)?,
            sequence: r.u32()?,
            flags: r.u32()?,
            fore: ChannelAttrs::decode(r)?,
            back: ChannelAttrs::decode(r)?,
        })
    }
}

/// ```text
/// struct SEQUENCE4args {
///         sessionid4     sa_sessionid;
///         sequenceid4    sa_sequenceid;
///         slotid4        sa_slotid;
///         slotid4        sa_highest_slotid;
///         bool           sa_cachethis;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceArgs {
    pub sessionid: SessionId,
    pub sequenceid: u32,
    pub slotid: u32,
    pub highest_slotid: u32,
    pub cachethis: bool,
}

impl Xdr for SequenceArgs {
    fn encode(&self, w: &mut Encoder) {
        self.sessionid.encode(w);
        w.u32(self.sequenceid);
        w.u32(self.slotid);
        w.u32(self.highest_slotid);
        w.bool(self.cachethis);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SequenceArgs> {
        Ok(SequenceArgs {
            sessionid: SessionId::decode(r)?,
            sequenceid: r.u32()?,
            slotid: r.u32()?,
            highest_slotid: r.u32()?,
            cachethis: r.bool()?,
        })
    }
}

/// `SEQ4_STATUS_RESTART_RECLAIM_NEEDED`: the server restarted; reclaim (or start over).
pub const SEQ4_STATUS_RESTART_RECLAIM_NEEDED: u32 = 0x100;
/// `SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED`: the lease expired and every open is gone.
pub const SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED: u32 = 0x8;

/// ```text
/// struct SEQUENCE4resok {
///         sessionid4      sr_sessionid;
///         sequenceid4     sr_sequenceid;
///         slotid4         sr_slotid;
///         slotid4         sr_highest_slotid;
///         slotid4         sr_target_highest_slotid;
///         uint32_t        sr_status_flags;
/// };
/// union SEQUENCE4res switch (nfsstat4 sr_status) {
///  case NFS4_OK:
///          SEQUENCE4resok  sr_resok4;
///  default:
///          void;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceOk {
    pub sessionid: SessionId,
    pub sequenceid: u32,
    pub slotid: u32,
    pub highest_slotid: u32,
    pub target_highest_slotid: u32,
    pub status_flags: u32,
}

impl Xdr for SequenceOk {
    fn encode(&self, w: &mut Encoder) {
        self.sessionid.encode(w);
        for v in [
            self.sequenceid,
            self.slotid,
            self.highest_slotid,
            self.target_highest_slotid,
            self.status_flags,
        ] {
            w.u32(v);
        }
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SequenceOk> {
        Ok(SequenceOk {
            sessionid: SessionId::decode(r)?,
            sequenceid: r.u32()?,
            slotid: r.u32()?,
            highest_slotid: r.u32()?,
            target_highest_slotid: r.u32()?,
            status_flags: r.u32()?,
        })
    }
}

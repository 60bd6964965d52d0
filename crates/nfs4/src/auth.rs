//! The AUTH_SYS credential (RFC 5531 §14, formerly AUTH_UNIX of RFC 1831) this client puts
//! on every call: uid 0, gid 0, as ESXi's own NFS mount of the export does, so the backend
//! reaches nothing the host could not reach already.

use openvaai_proto::rpc::{OpaqueAuth, AUTH_SYS};
use openvaai_proto::xdr::{to_bytes, Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::limits::{MAX_AUTH_GIDS, MAX_MACHINE_NAME};

/// ```text
/// struct authsys_parms {
///    unsigned int stamp;
///    string machinename<255>;
///    unsigned int uid;
///    unsigned int gid;
///    unsigned int gids<16>;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine_name: String,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl AuthSys {
    /// Root (uid 0, gid 0, no supplementary groups) from `machine_name`, cut to the 255
    /// bytes the protocol allows (at a character boundary).
    pub fn root(machine_name: &str) -> AuthSys {
        let mut end = machine_name.len().min(MAX_MACHINE_NAME);
        while !machine_name.is_char_boundary(end) {
            end -= 1;
        }
        AuthSys {
            stamp: 0,
            machine_name: machine_name[..end].to_owned(),
            uid: 0,
            gid: 0,
            gids: Vec::new(),
        }
    }

    /// The `opaque_auth` of a call: flavor AUTH_SYS, this structure as the body.
    pub fn to_opaque_auth(&self) -> OpaqueAuth {
        OpaqueAuth {
            flavor: AUTH_SYS,
            body: to_bytes(self),
        }
    }
}

impl Xdr for AuthSys {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.stamp);
        w.string(&self.machine_name);
        w.u32(self.uid);
        w.u32(self.gid);
        w.array(&self.gids[..self.gids.len().min(MAX_AUTH_GIDS)]);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<AuthSys> {
        Ok(AuthSys {
            stamp: r.u32()?,
            machine_name: r.string(MAX_MACHINE_NAME)?,
            uid: r.u32()?,
            gid: r.u32()?,
            gids: r.array(MAX_AUTH_GIDS, 4)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_credential_bytes() {
        let a = AuthSys::root("esx1");
        let o = a.to_opaque_auth();
        assert_eq!(o.flavor, 1);
        // stamp 0, "esx1", uid 0, gid 0, gids<0>
        assert_eq!(
            o.body,
            [0, 0, 0, 0, 0, 0, 0, 4, b'e', b's', b'x', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn a_long_machine_name_is_cut_to_255_bytes_and_fits_the_rpc_limit() {
        let a = AuthSys::root(&"é".repeat(200));
        assert!(a.machine_name.len() <= 255);
        let body = a.to_opaque_auth().body;
        assert!(body.len() <= openvaai_proto::limits::MAX_AUTH_BODY);
        assert_eq!(
            openvaai_proto::xdr::from_bytes::<AuthSys>(&body).unwrap(),
            a
        );
    }
}

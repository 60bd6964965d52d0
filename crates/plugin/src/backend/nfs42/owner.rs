//! The clone's owner, group and mode follow the source's, as the daemon's do (`fchown`, then
//! `fchmod`), and set-id bits never outlive a change of owner.
//!
//! The temporary is created by this backend's AUTH_SYS root, so it is root's, with the
//! source's permission bits but no set-id bits ([`SourceAttrs::create_mode`]): a root-owned
//! set-user-ID copy of an unprivileged user's file must never exist, even out of sight.
//! Before it is published ([`SourceAttrs::apply`]), one COMPOUND sets the owner and group
//! (SETATTR of `owner` and `owner_group`, the strings the server gave for the source), then
//! the whole mode, set-id bits included, in a second SETATTR (the order of `fchown` then
//! `fchmod`: a change of owner clears set-id bits on Linux). Where the server refuses the
//! owner (a root-squashed export, an owner string it cannot map back), the clone stays
//! root's and gets the mode without its set-id bits, and the log says why.

use std::time::Instant;

use openvaai_abi::vix;
use openvaai_client::Failure;
use openvaai_nfs4::attr::{num, SetAttrs};
use openvaai_nfs4::basic::{Bitmap, Fh};
use openvaai_nfs4::ops::file::SetattrArgs;
use openvaai_nfs4::ops::{Op, OpRes};
use openvaai_nfs4::Status;

use super::conn::Conn;
use super::temp::{check, Temporary};

/// `S_ISUID | S_ISGID`.
const SET_ID: u32 = 0o6000;

/// The source's mode, owner and group, as its GETATTR gave them (`None`: not said).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAttrs {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub owner_group: Option<String>,
}

/// GETATTR of the source's mode, owner and group.
pub fn of_source(conn: &mut Conn, src: &Fh, deadline: Instant) -> Result<SourceAttrs, Failure> {
    let what = "GETATTR of the source's mode and owner";
    let res = conn.call(
        what,
        &[
            Op::Putfh(src.clone()),
            Op::Getattr(Bitmap::of(&[num::MODE, num::OWNER, num::OWNER_GROUP])),
        ],
        deadline,
    )?;
    check(&res, what)?;
    Ok(match res.results.last() {
        Some(OpRes::Getattr(Ok(a))) => SourceAttrs {
            mode: a.mode.map(|m| m & 0o7777),
            owner: a.owner.clone(),
            owner_group: a.owner_group.clone(),
        },
        _ => SourceAttrs::default(),
    })
}

impl SourceAttrs {
    /// The temporary's mode at its creation: the source's without set-id bits.
    pub fn create_mode(&self) -> Option<u32> {
        self.mode.map(|m| m & !SET_ID)
    }

    /// Gives the finished temporary the source's owner and group, then its mode; without
    /// its set-id bits where the owner could not be set (see the module's text). `shown`
    /// names the destination in the log.
    pub fn apply(
        &self,
        conn: &mut Conn,
        tmp: &Temporary,
        shown: &str,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let setattr = |attrs: SetAttrs| {
            Op::Setattr(SetattrArgs {
                stateid: tmp.stateid,
                attrs,
            })
        };
        let mode = |m: u32| SetAttrs {
            mode: Some(m),
            ..SetAttrs::default()
        };
        let mut ops = vec![Op::Putfh(tmp.fh.clone())];
        let owned = self.owner.is_some() || self.owner_group.is_some();
        if owned {
            ops.push(setattr(SetAttrs {
                owner: self.owner.clone(),
                owner_group: self.owner_group.clone(),
                ..SetAttrs::default()
            }));
        }
        if let Some(m) = self.mode {
            ops.push(setattr(mode(m)));
        }
        if ops.len() == 1 {
            return Ok(());
        }
        let what = "SETATTR of the clone's owner and mode";
        let res = conn.call(what, &ops, deadline)?;
        // Results come in order up to the failed one: PUTFH, then the owner's SETATTR.
        let owner_refused = owned && res.results.len() == 2 && !res.status.is_ok();
        if !owner_refused {
            return check(&res, what);
        }
        let refused = match res.results.last() {
            Some(OpRes::Setattr { status, .. }) => *status,
            _ => res.status,
        };
        if refused == Status::Ok {
            return check(&res, what);
        }
        crate::warning!(
            "{}: the server refused the source's owner {} and group {} ({}): the clone stays \
             root's{}",
            shown,
            self.owner.as_deref().unwrap_or("-"),
            self.owner_group.as_deref().unwrap_or("-"),
            refused.name(),
            match self.mode {
                Some(m) if m & SET_ID != 0 => ", without the source's set-id bits",
                _ => "",
            }
        );
        let Some(m) = self.mode else {
            return Ok(());
        };
        let res = conn.call(
            "SETATTR of the clone's mode",
            &[Op::Putfh(tmp.fh.clone()), setattr(mode(m & !SET_ID))],
            deadline,
        )?;
        if res.status.is_ok() {
            return Ok(());
        }
        Err(Failure::new(
            vix::E_FILE_ACCESS_ERROR,
            format!(
                "SETATTR of the clone's mode: {} (the clone is discarded)",
                res.status.name()
            ),
        ))
    }
}

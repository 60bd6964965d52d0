//! Finding 3: replies lost after the server ran an operation that is not idempotent (the
//! connection closed before the reply). The backend reconnects, checks what happened (the
//! destination's fileid against the temporary's, the temporary's name) and never sends the
//! operation again: the clone succeeds, once, with nothing left behind.

use openvaai_abi::clone_flag::GUARDED;
use openvaai_abi::vix;
use openvaai_nfs4::ops::open::OpenHow;
use openvaai_nfs4::ops::{opcode, Op};

use crate::peer::{Fault, Wire};
use crate::{assert_bounded, assert_vix, data, serial, Rig, MIB};

/// Drops the reply to the first operation `op` after it ran; the rest run as usual.
fn drop_reply_once(rig: &Rig, op: u32) {
    let mut once = true;
    rig.peer.hook(move |o, _| {
        let create = !matches!(o, Op::Open(a) if matches!(a.how, OpenHow::NoCreate));
        if o.opcode() == op && create && std::mem::take(&mut once) {
            Fault::Wire(Wire::Drop)
        } else {
            Fault::Run
        }
    });
}

/// After the clone: the destination holds the source's data, no temporary and no open is
/// left, and the session ends leaving nothing on the server.
fn check_after(rig: &Rig, id: openvaai_abi::SessionId) {
    rig.peer.unhook();
    {
        let s = rig.peer.state();
        assert_eq!(s.fs.data("dst"), s.fs.data("src"), "the destination's data");
        let opens: usize = s.fs.nodes.values().map(|n| n.opens.len()).sum();
        assert_eq!(opens, 0, "opens left on the server");
    }
    assert!(rig.temporaries().is_empty(), "{:?}", rig.temporaries());
    rig.end_and_check_nothing_left(id);
}

#[test]
fn a_guarded_link_whose_reply_was_lost_is_checked_not_sent_again() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(2 * MIB, 10))]);
    let id = rig.session();
    drop_reply_once(&rig, opcode::LINK);
    let (st, _, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_eq!(st, vix::OK, "{}: {:?}", crate::name(st), rig.log());
    assert_bounded(took, "a clone whose LINK reply was lost");
    assert_eq!(
        rig.peer.state().fs.changes_of(opcode::LINK),
        1,
        "LINK ran twice"
    );
    assert_eq!(
        rig.peer.state().calls_with(opcode::LINK),
        1,
        "LINK sent twice"
    );
    check_after(&rig, id);
}

#[test]
fn a_rename_whose_reply_was_lost_is_checked_not_sent_again() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(2 * MIB, 11)), ("dst", data(MIB, 12))]);
    let id = rig.session();
    drop_reply_once(&rig, opcode::RENAME);
    let (st, _, took) = rig.clone(id, "src", "dst", 0);
    assert_vix(st, vix::OK);
    assert_bounded(took, "a clone whose RENAME reply was lost");
    assert_eq!(
        rig.peer.state().calls_with(opcode::RENAME),
        1,
        "RENAME sent twice"
    );
    check_after(&rig, id);
}

#[test]
fn an_open_whose_reply_was_lost_leaves_no_orphan_temporary() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(2 * MIB, 13))]);
    let id = rig.session();
    let created = rig.peer.state().fs.changes_of(opcode::OPEN);
    drop_reply_once(&rig, opcode::OPEN);
    let (st, _, took) = rig.clone(id, "src", "dst", GUARDED);
    assert_vix(st, vix::OK);
    assert_bounded(took, "a clone whose OPEN reply was lost");
    assert_eq!(
        rig.peer.state().fs.changes_of(opcode::OPEN) - created,
        1,
        "more than one temporary created"
    );
    check_after(&rig, id);
}

//! Faults on the wire: a reply trickled past the deadline, garbage instead of a reply, a
//! reply with another xid, a file handle longer than the protocol's 128 bytes. Each call
//! ends within its session timeout, and the next call of the session works (a stream with
//! part of an old reply in it is never read again).

use std::time::Duration;

use openvaai_abi::vix;
use openvaai_nfs4::ops::Op;

use crate::peer::{Fault, Wire};
use crate::{assert_bounded, assert_vix, data, serial, Rig, MIB, TIMEOUT};

/// Finding 4: a reply that has not all come when the deadline passes.
#[test]
fn a_reply_trickled_past_the_deadline_is_never_read_by_the_next_call() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 7))]);
    let id = rig.session();
    // 40 ms a byte: a reply of a few hundred bytes takes longer than the timeout.
    let mut once = true;
    rig.peer.hook(move |op, _| match op {
        Op::Getattr(_) if std::mem::take(&mut once) => {
            Fault::Wire(Wire::Trickle(Duration::from_millis(40)))
        }
        _ => Fault::Run,
    });
    let (st, took) = rig.statx(id, "src");
    assert_ne!(st, vix::OK);
    assert_bounded(took, "STATX of a trickled reply");
    // The next call gets a clean stream: its answer, not the rest of the old one.
    let (st, took) = rig.statx(id, "src");
    assert_vix(st, vix::OK);
    assert!(took < TIMEOUT, "{took:?}");
    rig.peer.unhook();
    rig.end_and_check_nothing_left(id);
}

/// Finding 4: a record that is not a reply (garbage), then one with a wrong xid.
#[test]
fn garbage_and_wrong_xids_end_the_call_and_the_session_goes_on() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 8))]);
    let id = rig.session();
    for wire in [
        Wire::Garbage(b"\x00\x00\x00\x01garbage!".to_vec()),
        Wire::WrongXid,
        Wire::Drop,
    ] {
        let mut once = true;
        let w = wire.clone();
        rig.peer.hook(move |op, _| match op {
            Op::Getattr(_) if std::mem::take(&mut once) => Fault::Wire(w.clone()),
            _ => Fault::Run,
        });
        let (_, took) = rig.statx(id, "src");
        assert_bounded(took, &format!("STATX against {wire:?}"));
        let (st, _) = rig.statx(id, "src");
        assert_vix(st, vix::OK);
    }
    rig.peer.unhook();
    rig.end_and_check_nothing_left(id);
}

/// File handles of exactly 128 bytes work; past 128 they are refused, not allocated.
#[test]
fn file_handles_at_and_past_128_bytes() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 9))]);
    rig.peer.state().fh_len = 128;
    let id = rig.session();
    assert_vix(rig.statx(id, "src").0, vix::OK);
    rig.peer.state().fh_len = 129;
    let (st, took) = rig.statx(id, "src");
    assert_ne!(st, vix::OK);
    assert_bounded(took, "STATX with a 129-byte handle");
    rig.peer.state().fh_len = 128;
    assert_vix(rig.statx(id, "src").0, vix::OK);
    rig.end_and_check_nothing_left(id);
}

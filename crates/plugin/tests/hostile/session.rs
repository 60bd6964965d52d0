//! Finding 10: the first SEQUENCE of a new session refused (NFS4ERR_SEQ_MISORDERED, as a
//! StartSession among several started at once once met on knfsd), and slot errors on a live
//! session. A StartSession sets its session up again within its timeout, destroying the one
//! the server refused, and leaves nothing behind.

use openvaai_nfs4::ops::{opcode, Op, OpRes};
use openvaai_nfs4::Status;

use crate::peer::Fault;
use crate::{assert_bounded, assert_vix, data, serial, Rig, MIB};

/// Answers `status` to the first SEQUENCE of the first `times` new sessions.
fn refuse_first_sequence(rig: &Rig, status: Status, times: usize) {
    let mut left = times;
    rig.peer.hook(move |op, _| match op {
        Op::Sequence(s) if s.sequenceid == 1 && left > 0 => {
            left -= 1;
            Fault::Answer(OpRes::Sequence(Err(status)))
        }
        _ => Fault::Run,
    });
}

#[test]
fn a_new_session_whose_first_sequence_is_refused_is_set_up_again() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 15))]);
    for status in [
        Status::SeqMisordered,
        Status::Badsession,
        Status::SeqFalseRetry,
        Status::RetryUncachedRep,
    ] {
        refuse_first_sequence(&rig, status, 1);
        let t = std::time::Instant::now();
        let id = rig
            .start()
            .unwrap_or_else(|e| panic!("StartSession after {status:?}: {}", crate::name(e)));
        assert_bounded(t.elapsed(), "StartSession");
        rig.peer.unhook();
        assert_vix(rig.statx(id, "src").0, openvaai_abi::vix::OK);
        rig.end_and_check_nothing_left(id);
        let calls = std::mem::take(&mut rig.peer.state().calls);
        let exchanges = calls
            .iter()
            .filter(|c| c.contains(&opcode::EXCHANGE_ID))
            .count();
        assert_eq!(exchanges, 2, "{status:?}: {calls:?}");
    }
}

/// A server that refuses every new session's first SEQUENCE: StartSession gives up within
/// its timeout, and destroys what it made.
#[test]
fn a_server_refusing_every_first_sequence_fails_start_session_leaving_nothing() {
    let _one = serial();
    let rig = Rig::new(&[]);
    refuse_first_sequence(&rig, Status::SeqMisordered, usize::MAX);
    let t = std::time::Instant::now();
    let e = rig.start().unwrap_err();
    assert_bounded(t.elapsed(), "StartSession");
    assert_vix(e, openvaai_abi::vix::E_HOST_CONNECTION_LOST);
    let st = rig.peer.state();
    assert!(
        st.clients.is_empty() && st.sessions.is_empty(),
        "left: {:?} {:?}",
        st.clients,
        st.sessions.keys().collect::<Vec<_>>()
    );
}

/// A set-up whose reply never comes (the connection kept open, silent): StartSession gives
/// that connection up after part of its timeout and sets the session up on a new one.
#[test]
fn a_set_up_whose_reply_never_comes_is_tried_again_on_a_new_connection() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 17))]);
    let mut once = true;
    rig.peer.hook(move |op, _| match op {
        Op::CreateSession(_) if std::mem::take(&mut once) => {
            crate::peer::Fault::Wire(crate::peer::Wire::Hang)
        }
        _ => Fault::Run,
    });
    let t = std::time::Instant::now();
    let id = rig
        .start()
        .unwrap_or_else(|e| panic!("StartSession: {}", crate::name(e)));
    assert_bounded(t.elapsed(), "StartSession");
    rig.peer.unhook();
    assert!(rig.peer.state().connections >= 2);
    assert_vix(rig.statx(id, "src").0, openvaai_abi::vix::OK);
    rig.end_and_check_nothing_left(id);
}

/// A live session's SEQUENCE answered NFS4ERR_SEQ_MISORDERED (a slot out of step), once:
/// the call sets a new session up and succeeds, and the old session and client id, which
/// the server still holds, are destroyed rather than forgotten.
#[test]
fn a_live_session_out_of_step_is_replaced_and_the_old_one_destroyed() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 18))]);
    let id = rig.session();
    let mut once = true;
    rig.peer.hook(move |op, _| match op {
        Op::Sequence(s) if s.sequenceid > 1 && std::mem::take(&mut once) => {
            Fault::Answer(OpRes::Sequence(Err(Status::SeqMisordered)))
        }
        _ => Fault::Run,
    });
    let (st, took) = rig.statx(id, "src");
    assert_vix(st, openvaai_abi::vix::OK);
    assert_bounded(took, "STATX");
    rig.peer.unhook();
    assert_eq!(
        rig.peer.state().clients.len(),
        1,
        "the old client id is left"
    );
    rig.end_and_check_nothing_left(id);
}

/// A set-up tried again can meet its own earlier session: the server answers its first
/// RECLAIM_COMPLETE as an uncached replay (NFS4ERR_RETRY_UNCACHED_REP, as knfsd did once
/// among sixteen StartSessions at once). RECLAIM_COMPLETE is sent once more, with the next
/// sequence id, and the session starts.
#[test]
fn a_reclaim_complete_answered_as_an_uncached_replay_is_sent_once_more() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 18))]);
    let mut once = true;
    rig.peer.hook(move |op, _| match op {
        Op::ReclaimComplete(_) if std::mem::take(&mut once) => {
            Fault::Answer(OpRes::ReclaimComplete(Status::RetryUncachedRep))
        }
        _ => Fault::Run,
    });
    let id = rig.start().unwrap_or_else(|e| {
        panic!(
            "StartSession: {}: {:?}",
            crate::name(e),
            openvaai_host::take_log()
        )
    });
    rig.peer.unhook();
    assert_vix(rig.statx(id, "src").0, openvaai_abi::vix::OK);
    rig.end_and_check_nothing_left(id);
    let calls = std::mem::take(&mut rig.peer.state().calls);
    let reclaims = calls
        .iter()
        .filter(|c| c.contains(&opcode::RECLAIM_COMPLETE))
        .count();
    assert_eq!(reclaims, 2, "{calls:?}");
}

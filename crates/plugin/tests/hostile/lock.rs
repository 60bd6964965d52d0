//! Finding 5: calls queued behind a long one on the same session. A LAZY clone holds the
//! session's connection for most of a session timeout (the server takes its time over
//! CLONE), while four STATX and four RESVSPACE calls of the same session, from other
//! threads, each meet a slow GETATTR and ALLOCATE: each call still ends within its own
//! session timeout, the wait for the connection included (busy, or the connection a
//! timed-out call broke, when that wait used it up), instead of one after the other.

use std::time::{Duration, Instant};

use openvaai_abi::clone_flag::{GUARDED, LAZY};
use openvaai_abi::vix;
use openvaai_nfs4::ops::Op;

use crate::peer::Fault;
use crate::{assert_vix, data, name, serial, Rig, MIB, TIMEOUT};

#[test]
fn calls_queued_behind_a_long_one_end_within_their_own_session_timeout() {
    let _one = serial();
    let rig = Rig::new(&[("src", data(MIB, 14))]);
    let id = rig.session();
    rig.peer.hook(|op, _| {
        match op {
            Op::Clone(a) if a.count == 0 && a.src_offset == 0 => {
                std::thread::sleep(Duration::from_millis(1500))
            }
            Op::Getattr(_) | Op::Allocate(_) => std::thread::sleep(Duration::from_millis(250)),
            _ => {}
        }
        Fault::Run
    });
    let slack = Duration::from_millis(300);
    let rig = &rig;
    let (clone, statx): (_, Vec<_>) = std::thread::scope(|scope| {
        let clone = scope.spawn(|| rig.clone(id, "src", "dst", LAZY | GUARDED));
        std::thread::sleep(Duration::from_millis(100));
        let statx: Vec<_> = (0..8)
            .map(|i| {
                scope.spawn(move || {
                    let t = Instant::now();
                    // STATX is one lookup; RESVSPACE of this MiB a lookup and an ALLOCATE,
                    // each call within its own timeout (a reservation is bounded per call,
                    // not by the size of the disk).
                    let (st, calls) = match i % 2 {
                        0 => (
                            rig.plugin.statx(id, &rig.esx("src")).unwrap().common.status,
                            1,
                        ),
                        _ => (rig.plugin.reserve(id, &rig.esx("src"), None).unwrap(), 2),
                    };
                    (st, t.elapsed(), calls)
                })
            })
            .collect();
        (
            clone.join().unwrap(),
            statx.into_iter().map(|t| t.join().unwrap()).collect(),
        )
    });
    rig.peer.unhook();
    let (st, _, took) = clone;
    assert_vix(st, vix::OK);
    assert!(took <= TIMEOUT + slack, "the clone took {took:?}");
    for (st, took, calls) in &statx {
        assert!(
            *took <= TIMEOUT * *calls + slack,
            "a call queued behind the clone took {took:?} ({}), past its timeout {TIMEOUT:?}: \
             {statx:?}",
            name(*st)
        );
        assert!(
            [
                vix::OK,
                vix::E_OBJECT_IS_BUSY,
                vix::E_HOST_CONNECTION_LOST,
                vix::E_HOST_NOT_CONNECTED
            ]
            .contains(st),
            "{}",
            name(*st)
        );
    }
    // The session is usable afterwards.
    assert_vix(rig.statx(id, "src").0, vix::OK);
    rig.end_and_check_nothing_left(id);
}

//! Unit tests of the types of `types.rs`: values, unions, round trips.

use super::*;
use crate::xdr::{from_bytes, to_bytes};

#[test]
fn status_values_are_the_vix_error_codes() {
    assert_eq!(Status::AuthenticationFail.to_u32(), 35);
    assert_eq!(Status::NotSupportedOnRemoteObject.vix_code(), 20);
    assert_eq!(Status::from_u32(36), Status::HostConnectionLost);
    assert_eq!(Status::from_u32(14), Status::Unknown(14));
    assert_eq!(Status::Unknown(14).to_u32(), 14);
}

#[test]
fn alloc_type_unknown_is_minus_one() {
    assert_eq!(to_bytes(&AllocType::NotKnown), [0xff; 4]);
}

#[test]
fn clone_args_round_trip_with_and_without_source_export() {
    for src_export in [None, Some("/exports/b".to_owned())] {
        let a = CloneArgs {
            export: "/exports/a".into(),
            src_export,
            src: "vm/disk-flat.vmdk".into(),
            dst: "vm2/disk-flat.vmdk".into(),
            flags: CLONE_LAZY | CLONE_GUARDED,
        };
        assert_eq!(from_bytes::<CloneArgs>(&to_bytes(&a)).unwrap(), a);
    }
}

#[test]
fn result_union_round_trips() {
    let ok: WaitRes = Ok(JobInfo {
        state: JobState::Done,
        done: 5,
        total: 5,
        result: Status::Ok,
    });
    assert_eq!(from_bytes::<WaitRes>(&to_bytes(&ok)).unwrap(), ok);
    let err: WaitRes = Err(Status::ObjectNotFound);
    assert_eq!(to_bytes(&err), [0, 0, 0, 25]);
    assert_eq!(from_bytes::<WaitRes>(&to_bytes(&err)).unwrap(), err);
}

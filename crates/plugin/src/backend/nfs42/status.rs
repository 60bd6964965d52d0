//! Every `nfsstat4` as the `VixError` disklib sees: one exhaustive match, no catch-all arm
//! (a status added to `openvaai_nfs4::Status` does not compile until it is mapped here).
//! The table in `docs/errors.md` ("In the standard NFSv4.2 backend") is this match.

use openvaai_abi::{vix, VixError};
use openvaai_nfs4::Status;

/// The `VixError` for an operation that failed with `status`.
pub fn vix_of(status: Status) -> VixError {
    use Status as S;
    match status {
        S::Ok => vix::OK,
        // The file or a path component is not there (any more).
        S::Noent | S::Stale | S::Fhexpired | S::Badhandle => vix::E_FILE_NOT_FOUND,
        S::Exist => vix::E_FILE_ALREADY_EXISTS,
        // A symlink on the way is refused, as the daemon refuses one leaving the export.
        S::Perm | S::Access | S::Wrongsec | S::WrongCred | S::Symlink => vix::E_FILE_ACCESS_ERROR,
        S::Inval | S::Badxdr | S::BadRange | S::Badchar => vix::E_INVALID_ARG,
        S::Nametoolong | S::Badname => vix::E_FILE_NAME_INVALID,
        S::Notdir | S::Isdir | S::Badtype | S::WrongType | S::Notempty => {
            vix::E_INCORRECT_FILE_TYPE
        }
        S::Fbig => vix::E_FILE_TOO_BIG,
        S::Nospc | S::Dquot => vix::E_DISK_FULL,
        S::Rofs => vix::E_FILE_READ_ONLY,
        // The server cannot do it here: never a silent fallback.
        S::Notsupp
        | S::OpIllegal
        | S::Attrnotsupp
        | S::Xdev
        | S::UnionNotsupp
        | S::PartnerNotsupp
        | S::PartnerNoAuth
        | S::OffloadDenied
        | S::OffloadNoReqs
        | S::WrongLfs
        | S::Moved
        | S::MinorVersMismatch
        | S::HashAlgUnsupp
        | S::EncrAlgUnsupp
        | S::LockNotsupp => vix::E_NOT_SUPPORTED,
        // Busy: retried with backoff within the session timeout, this when time ran out.
        S::Delay
        | S::Grace
        | S::Locked
        | S::ShareDenied
        | S::Denied
        | S::Deadlock
        | S::FileOpen
        | S::LocksHeld
        | S::Openmode
        | S::Recallconflict
        | S::Returnconflict
        | S::Layouttrylater
        | S::DelegAlreadyWanted
        | S::BackChanBusy
        | S::ClientidBusy
        | S::ClidInuse => vix::E_OBJECT_IS_BUSY,
        // The session or its state is gone (re-established within the timeout; this when
        // that failed).
        S::Badsession
        | S::Deadsession
        | S::Badslot
        | S::BadHighSlot
        | S::SeqMisordered
        | S::SeqFalseRetry
        | S::RetryUncachedRep
        | S::ConnNotBoundToSession
        | S::StaleClientid
        | S::Expired
        | S::LeaseMoved
        | S::AdminRevoked
        | S::DelegRevoked
        | S::CbPathDown => vix::E_HOST_CONNECTION_LOST,
        S::Io | S::Nxio | S::Serverfault | S::Mlink | S::PnfsIoHole => vix::E_FILE_ERROR,
        S::Resource | S::ReqTooBig | S::RepTooBig | S::RepTooBigToCache | S::TooManyOps => {
            vix::E_OUT_OF_MEMORY
        }
        // READDIR of `.openvaai/` at StartSession (the cleanup of temporaries) with a cookie
        // gone stale or a page too small for one entry: that cleanup gives up, to the next
        // session; nothing else uses it.
        S::BadCookie | S::Toosmall => vix::E_FAIL,
        // Protocol states this client never creates (locks, reclaims, stateids it does not
        // use, pNFS, NVERIFY, labels): a bug on one side or the other.
        S::Same
        | S::NotSame
        | S::Nofilehandle
        | S::StaleStateid
        | S::OldStateid
        | S::BadStateid
        | S::BadSeqid
        | S::LockRange
        | S::Restorefh
        | S::NoGrace
        | S::ReclaimBad
        | S::ReclaimConflict
        | S::Badowner
        | S::Badiomode
        | S::Badlayout
        | S::BadSessionDigest
        | S::CompleteAlready
        | S::Layoutunavailable
        | S::NomatchingLayout
        | S::UnknownLayouttype
        | S::SequencePos
        | S::UnsafeCompound
        | S::OpNotInSession
        | S::PnfsNoLayout
        | S::NotOnlyOp
        | S::DirdelegUnavail
        | S::RejectDeleg
        | S::Badlabel
        | S::Unknown(_) => vix::E_FAIL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_maps_to_ok_and_the_offload_refusals_to_not_supported() {
        for &s in Status::ALL {
            assert_eq!(vix_of(s) == vix::OK, s == Status::Ok, "{}", s.name());
        }
        for s in [Status::Notsupp, Status::OpIllegal, Status::Xdev] {
            assert_eq!(vix_of(s), vix::E_NOT_SUPPORTED, "{}", s.name());
        }
        assert_eq!(vix_of(Status::Noent), vix::E_FILE_NOT_FOUND);
        assert_eq!(vix_of(Status::Unknown(99_999)), vix::E_FAIL);
    }
}

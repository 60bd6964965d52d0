//! `nfsstat4`: every status of RFC 8881 and RFC 7862, as an enum with an `Unknown` arm (a
//! value from the wire is never cast into the enum). The table below is the `.x` text of
//! `enum nfsstat4` (RFC 7863), one line per value with its comment.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};

macro_rules! statuses {
    ($($variant:ident = $value:literal, $wire:literal, $doc:literal;)*) => {
        /// `enum nfsstat4`. [`Status::Unknown`] keeps a value this crate does not know.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Status {
            $(#[doc = concat!("`", $wire, " = ", stringify!($value), "`: ", $doc)] $variant,)*
            /// A value defined after RFC 7862, or none at all.
            Unknown(u32),
        }

        impl Status {
            /// Every known status, in wire order (for tables and exhaustive tests).
            pub const ALL: &'static [Status] = &[$(Status::$variant,)*];

            pub fn from_u32(v: u32) -> Status {
                match v {
                    $($value => Status::$variant,)*
                    other => Status::Unknown(other),
                }
            }

            pub fn to_u32(self) -> u32 {
                match self {
                    $(Status::$variant => $value,)*
                    Status::Unknown(v) => v,
                }
            }

            /// The name of the .x, e.g. `NFS4ERR_NOTSUPP`; `NFS4ERR_UNKNOWN` for others.
            pub fn name(self) -> &'static str {
                match self {
                    $(Status::$variant => $wire,)*
                    Status::Unknown(_) => "NFS4ERR_UNKNOWN",
                }
            }
        }
    };
}

statuses! {
    Ok = 0, "NFS4_OK", "everything is okay";
    Perm = 1, "NFS4ERR_PERM", "caller not privileged";
    Noent = 2, "NFS4ERR_NOENT", "no such file/directory";
    Io = 5, "NFS4ERR_IO", "hard I/O error";
    Nxio = 6, "NFS4ERR_NXIO", "no such device";
    Access = 13, "NFS4ERR_ACCESS", "access denied";
    Exist = 17, "NFS4ERR_EXIST", "file already exists";
    Xdev = 18, "NFS4ERR_XDEV", "different file systems";
    Notdir = 20, "NFS4ERR_NOTDIR", "should be a directory";
    Isdir = 21, "NFS4ERR_ISDIR", "should not be a directory";
    Inval = 22, "NFS4ERR_INVAL", "invalid argument";
    Fbig = 27, "NFS4ERR_FBIG", "file exceeds server max";
    Nospc = 28, "NFS4ERR_NOSPC", "no space on file system";
    Rofs = 30, "NFS4ERR_ROFS", "read-only file system";
    Mlink = 31, "NFS4ERR_MLINK", "too many hard links";
    Nametoolong = 63, "NFS4ERR_NAMETOOLONG", "name exceeds server max";
    Notempty = 66, "NFS4ERR_NOTEMPTY", "directory not empty";
    Dquot = 69, "NFS4ERR_DQUOT", "hard quota limit reached";
    Stale = 70, "NFS4ERR_STALE", "file no longer exists";
    Badhandle = 10001, "NFS4ERR_BADHANDLE", "illegal filehandle";
    BadCookie = 10003, "NFS4ERR_BAD_COOKIE", "READDIR cookie is stale";
    Notsupp = 10004, "NFS4ERR_NOTSUPP", "operation not supported";
    Toosmall = 10005, "NFS4ERR_TOOSMALL", "response limit exceeded";
    Serverfault = 10006, "NFS4ERR_SERVERFAULT", "undefined server error";
    Badtype = 10007, "NFS4ERR_BADTYPE", "type invalid for CREATE";
    Delay = 10008, "NFS4ERR_DELAY", "file \"busy\" -- retry";
    Same = 10009, "NFS4ERR_SAME", "nverify says attrs same";
    Denied = 10010, "NFS4ERR_DENIED", "lock unavailable";
    Expired = 10011, "NFS4ERR_EXPIRED", "lock lease expired";
    Locked = 10012, "NFS4ERR_LOCKED", "I/O failed due to lock";
    Grace = 10013, "NFS4ERR_GRACE", "in grace period";
    Fhexpired = 10014, "NFS4ERR_FHEXPIRED", "filehandle expired";
    ShareDenied = 10015, "NFS4ERR_SHARE_DENIED", "share reserve denied";
    Wrongsec = 10016, "NFS4ERR_WRONGSEC", "wrong security flavor";
    ClidInuse = 10017, "NFS4ERR_CLID_INUSE", "client ID in use";
    Resource = 10018, "NFS4ERR_RESOURCE", "resource exhaustion (not valid in NFSv4.1)";
    Moved = 10019, "NFS4ERR_MOVED", "file system relocated";
    Nofilehandle = 10020, "NFS4ERR_NOFILEHANDLE", "current FH is not set";
    MinorVersMismatch = 10021, "NFS4ERR_MINOR_VERS_MISMATCH", "minor vers not supp";
    StaleClientid = 10022, "NFS4ERR_STALE_CLIENTID", "server has rebooted";
    StaleStateid = 10023, "NFS4ERR_STALE_STATEID", "server has rebooted";
    OldStateid = 10024, "NFS4ERR_OLD_STATEID", "state is out of sync";
    BadStateid = 10025, "NFS4ERR_BAD_STATEID", "incorrect stateid";
    BadSeqid = 10026, "NFS4ERR_BAD_SEQID", "request is out of seq.";
    NotSame = 10027, "NFS4ERR_NOT_SAME", "verify -- attrs not same";
    LockRange = 10028, "NFS4ERR_LOCK_RANGE", "overlapping lock range";
    Symlink = 10029, "NFS4ERR_SYMLINK", "should be file/directory";
    Restorefh = 10030, "NFS4ERR_RESTOREFH", "no saved filehandle";
    LeaseMoved = 10031, "NFS4ERR_LEASE_MOVED", "some file system moved";
    Attrnotsupp = 10032, "NFS4ERR_ATTRNOTSUPP", "recommended attr not supp";
    NoGrace = 10033, "NFS4ERR_NO_GRACE", "reclaim outside of grace";
    ReclaimBad = 10034, "NFS4ERR_RECLAIM_BAD", "reclaim error at server";
    ReclaimConflict = 10035, "NFS4ERR_RECLAIM_CONFLICT", "conflict on reclaim";
    Badxdr = 10036, "NFS4ERR_BADXDR", "XDR decode failed";
    LocksHeld = 10037, "NFS4ERR_LOCKS_HELD", "file locks held at CLOSE";
    Openmode = 10038, "NFS4ERR_OPENMODE", "conflict in OPEN and I/O";
    Badowner = 10039, "NFS4ERR_BADOWNER", "owner translation bad";
    Badchar = 10040, "NFS4ERR_BADCHAR", "UTF-8 char not supported";
    Badname = 10041, "NFS4ERR_BADNAME", "name not supported";
    BadRange = 10042, "NFS4ERR_BAD_RANGE", "lock range not supported";
    LockNotsupp = 10043, "NFS4ERR_LOCK_NOTSUPP", "no atomic up/downgrade";
    OpIllegal = 10044, "NFS4ERR_OP_ILLEGAL", "undefined operation";
    Deadlock = 10045, "NFS4ERR_DEADLOCK", "file-locking deadlock";
    FileOpen = 10046, "NFS4ERR_FILE_OPEN", "open file blocks op";
    AdminRevoked = 10047, "NFS4ERR_ADMIN_REVOKED", "lock-owner state revoked";
    CbPathDown = 10048, "NFS4ERR_CB_PATH_DOWN", "callback path down";
    Badiomode = 10049, "NFS4ERR_BADIOMODE", "(NFSv4.1)";
    Badlayout = 10050, "NFS4ERR_BADLAYOUT", "(NFSv4.1)";
    BadSessionDigest = 10051, "NFS4ERR_BAD_SESSION_DIGEST", "(NFSv4.1)";
    Badsession = 10052, "NFS4ERR_BADSESSION", "(NFSv4.1)";
    Badslot = 10053, "NFS4ERR_BADSLOT", "(NFSv4.1)";
    CompleteAlready = 10054, "NFS4ERR_COMPLETE_ALREADY", "(NFSv4.1)";
    ConnNotBoundToSession = 10055, "NFS4ERR_CONN_NOT_BOUND_TO_SESSION", "(NFSv4.1)";
    DelegAlreadyWanted = 10056, "NFS4ERR_DELEG_ALREADY_WANTED", "(NFSv4.1)";
    BackChanBusy = 10057, "NFS4ERR_BACK_CHAN_BUSY", "backchan reqs outstanding";
    Layouttrylater = 10058, "NFS4ERR_LAYOUTTRYLATER", "(NFSv4.1)";
    Layoutunavailable = 10059, "NFS4ERR_LAYOUTUNAVAILABLE", "(NFSv4.1)";
    NomatchingLayout = 10060, "NFS4ERR_NOMATCHING_LAYOUT", "(NFSv4.1)";
    Recallconflict = 10061, "NFS4ERR_RECALLCONFLICT", "(NFSv4.1)";
    UnknownLayouttype = 10062, "NFS4ERR_UNKNOWN_LAYOUTTYPE", "(NFSv4.1)";
    SeqMisordered = 10063, "NFS4ERR_SEQ_MISORDERED", "unexpected seq. ID in req";
    SequencePos = 10064, "NFS4ERR_SEQUENCE_POS", "(CB_)SEQ. op not 1st op";
    ReqTooBig = 10065, "NFS4ERR_REQ_TOO_BIG", "request too big";
    RepTooBig = 10066, "NFS4ERR_REP_TOO_BIG", "reply too big";
    RepTooBigToCache = 10067, "NFS4ERR_REP_TOO_BIG_TO_CACHE", "rep. not all cached";
    RetryUncachedRep = 10068, "NFS4ERR_RETRY_UNCACHED_REP", "retry + rep. uncached";
    UnsafeCompound = 10069, "NFS4ERR_UNSAFE_COMPOUND", "retry/recovery too hard";
    TooManyOps = 10070, "NFS4ERR_TOO_MANY_OPS", "too many ops in (CB_)COMP";
    OpNotInSession = 10071, "NFS4ERR_OP_NOT_IN_SESSION", "op needs (CB_)SEQ. op";
    HashAlgUnsupp = 10072, "NFS4ERR_HASH_ALG_UNSUPP", "hash alg. not supp";
    ClientidBusy = 10074, "NFS4ERR_CLIENTID_BUSY", "client ID has state";
    PnfsIoHole = 10075, "NFS4ERR_PNFS_IO_HOLE", "IO to _SPARSE file hole";
    SeqFalseRetry = 10076, "NFS4ERR_SEQ_FALSE_RETRY", "retry != original req";
    BadHighSlot = 10077, "NFS4ERR_BAD_HIGH_SLOT", "req has bad highest_slot";
    Deadsession = 10078, "NFS4ERR_DEADSESSION", "new req sent to dead sess";
    EncrAlgUnsupp = 10079, "NFS4ERR_ENCR_ALG_UNSUPP", "encr alg. not supp";
    PnfsNoLayout = 10080, "NFS4ERR_PNFS_NO_LAYOUT", "I/O without a layout";
    NotOnlyOp = 10081, "NFS4ERR_NOT_ONLY_OP", "addl ops not allowed";
    WrongCred = 10082, "NFS4ERR_WRONG_CRED", "op done by wrong cred";
    WrongType = 10083, "NFS4ERR_WRONG_TYPE", "op on wrong type object";
    DirdelegUnavail = 10084, "NFS4ERR_DIRDELEG_UNAVAIL", "delegation not avail.";
    RejectDeleg = 10085, "NFS4ERR_REJECT_DELEG", "cb rejected delegation";
    Returnconflict = 10086, "NFS4ERR_RETURNCONFLICT", "layout get before return";
    DelegRevoked = 10087, "NFS4ERR_DELEG_REVOKED", "deleg./layout revoked";
    PartnerNotsupp = 10088, "NFS4ERR_PARTNER_NOTSUPP", "s2s not supported (NFSv4.2)";
    PartnerNoAuth = 10089, "NFS4ERR_PARTNER_NO_AUTH", "s2s not authorized (NFSv4.2)";
    UnionNotsupp = 10090, "NFS4ERR_UNION_NOTSUPP", "arm of union not supp (NFSv4.2)";
    OffloadDenied = 10091, "NFS4ERR_OFFLOAD_DENIED", "dest not allowing copy (NFSv4.2)";
    WrongLfs = 10092, "NFS4ERR_WRONG_LFS", "LFS not supported (NFSv4.2)";
    Badlabel = 10093, "NFS4ERR_BADLABEL", "incorrect label (NFSv4.2)";
    OffloadNoReqs = 10094, "NFS4ERR_OFFLOAD_NO_REQS", "dest not meeting reqs (NFSv4.2)";
}

impl Status {
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }

    /// Worth trying again, unchanged, after a pause: the server is busy (NFS4ERR_DELAY) or in
    /// its grace period after a restart (NFS4ERR_GRACE, answered to every non-reclaim OPEN
    /// for 90 s by default on knfsd). The caller owns the backoff and the deadline.
    pub fn is_retryable(self) -> bool {
        matches!(self, Status::Delay | Status::Grace)
    }

    /// The session or the client id is gone or out of step: a server restart
    /// (STALE_CLIENTID, BADSESSION), an expired lease (DEADSESSION), a connection the
    /// server no longer ties to the session, or slot bookkeeping out of step
    /// (SEQ_MISORDERED, BADSLOT; SEQ_FALSE_RETRY and RETRY_UNCACHED_REP to a call that was
    /// not a retry: a set-up tried again that met its own earlier session, whose slot has
    /// moved on, as knfsd answered among 64 StartSessions at once). The cure is a new client
    /// id and session.
    pub fn is_session_lost(self) -> bool {
        matches!(
            self,
            Status::Badsession
                | Status::Deadsession
                | Status::ConnNotBoundToSession
                | Status::StaleClientid
                | Status::SeqMisordered
                | Status::Badslot
                | Status::SeqFalseRetry
                | Status::RetryUncachedRep
        )
    }

    /// Open or delegation state the server no longer honours (lease expired, restart,
    /// revoked): open the file again.
    pub fn is_state_lost(self) -> bool {
        matches!(
            self,
            Status::Expired
                | Status::StaleStateid
                | Status::BadStateid
                | Status::OldStateid
                | Status::AdminRevoked
                | Status::DelegRevoked
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Unknown(v) => write!(f, "NFS status {v}"),
            s => f.write_str(s.name()),
        }
    }
}

impl Xdr for Status {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.to_u32());
    }
    fn decode(r: &mut Decoder<'_>) -> openvaai_proto::Result<Status> {
        Ok(Status::from_u32(r.u32()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_status_round_trips_and_others_stay_unknown() {
        for &s in Status::ALL {
            assert_eq!(Status::from_u32(s.to_u32()), s);
            assert!(!matches!(s, Status::Unknown(_)));
        }
        assert_eq!(Status::ALL.len(), 111);
        assert_eq!(Status::from_u32(10073), Status::Unknown(10073));
        assert_eq!(Status::from_u32(19), Status::Unknown(19));
        assert_eq!(Status::from_u32(10004).name(), "NFS4ERR_NOTSUPP");
        assert_eq!(Status::from_u32(10094), Status::OffloadNoReqs);
    }

    #[test]
    fn classification() {
        assert!(Status::Grace.is_retryable() && Status::Delay.is_retryable());
        assert!(!Status::Notsupp.is_retryable());
        assert!(Status::Badsession.is_session_lost());
        assert!(!Status::Grace.is_session_lost());
        assert!(Status::StaleStateid.is_state_lost());
    }
}

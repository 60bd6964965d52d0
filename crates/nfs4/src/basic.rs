//! The basic data types of RFC 8881 §3 and RFC 7863 that the operations share.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::{Error as WireError, ErrorKind as WireKind, Result as WireResult};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{MAX_BITMAP_WORDS, MAX_COMPONENT, MAX_FH, MAX_IMPL_STRING};

/// A decode error of the codec (the codec's errors are `openvaai_proto`'s).
pub(crate) fn bad(detail: impl Into<String>) -> WireError {
    WireError::new(WireKind::Decode, detail)
}

/// ```text
/// typedef opaque  nfs_fh4<NFS4_FHSIZE>;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fh(Vec<u8>);

impl Fh {
    /// A file handle as the server gave it; at most [`MAX_FH`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Fh> {
        if bytes.len() > MAX_FH {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("file handle of {} bytes, limit {MAX_FH}", bytes.len()),
            ));
        }
        Ok(Fh(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Xdr for Fh {
    fn encode(&self, w: &mut Encoder) {
        w.opaque(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Fh> {
        Ok(Fh(r.opaque(MAX_FH)?.to_vec()))
    }
}

/// ```text
/// typedef utf8str_cs      component4;
/// ```
/// One name in a directory: non-empty, at most [`MAX_COMPONENT`] bytes, no `/` or NUL, and
/// neither `.` nor `..` (NFSv4 has no such entries; refusing them here keeps a lookup from
/// ever climbing out of an export).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Component(String);

impl Component {
    pub fn new(name: &str) -> Result<Component> {
        let why = if name.is_empty() {
            Some("is empty")
        } else if name.len() > MAX_COMPONENT {
            Some("is longer than 255 bytes")
        } else if name.contains('/') || name.contains('\0') {
            Some("contains '/' or NUL")
        } else if name == "." || name == ".." {
            Some("is '.' or '..'")
        } else {
            None
        };
        match why {
            Some(why) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("name {name:?} {why}: give one path component"),
            )),
            None => Ok(Component(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Xdr for Component {
    fn encode(&self, w: &mut Encoder) {
        w.string(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Component> {
        let s = r.string(MAX_COMPONENT)?;
        Component::new(&s).map_err(|e| bad(e.to_string()))
    }
}

/// ```text
/// typedef opaque  verifier4[NFS4_VERIFIER_SIZE];
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Verifier(pub [u8; 8]);

impl Xdr for Verifier {
    fn encode(&self, w: &mut Encoder) {
        w.fixed_opaque(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Verifier> {
        Ok(Verifier(r.fixed_opaque()?))
    }
}

/// ```text
/// typedef opaque  sessionid4[NFS4_SESSIONID_SIZE];
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionId(pub [u8; 16]);

impl Xdr for SessionId {
    fn encode(&self, w: &mut Encoder) {
        w.fixed_opaque(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<SessionId> {
        Ok(SessionId(r.fixed_opaque()?))
    }
}

/// ```text
/// struct stateid4 {
///         uint32_t        seqid;
///         opaque          other[NFS4_OTHER_SIZE];
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stateid {
    pub seqid: u32,
    pub other: [u8; 12],
}

impl Stateid {
    /// The anonymous stateid (all zeros, RFC 8881 §8.2.3): I/O without an OPEN.
    pub const ANONYMOUS: Stateid = Stateid {
        seqid: 0,
        other: [0; 12],
    };
    /// The "current stateid" (seqid 1, other zeros, RFC 8881 §16.2.3.1.2): the stateid the
    /// previous operation of the same COMPOUND produced (e.g. OPEN then COPY).
    pub const CURRENT: Stateid = Stateid {
        seqid: 1,
        other: [0; 12],
    };
}

impl Xdr for Stateid {
    fn encode(&self, w: &mut Encoder) {
        w.u32(self.seqid);
        w.fixed_opaque(&self.other);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Stateid> {
        Ok(Stateid {
            seqid: r.u32()?,
            other: r.fixed_opaque()?,
        })
    }
}

/// ```text
/// struct nfstime4 {
///         int64_t         seconds;
///         uint32_t        nseconds;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NfsTime {
    pub seconds: i64,
    pub nseconds: u32,
}

impl Xdr for NfsTime {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.seconds as u64);
        w.u32(self.nseconds);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<NfsTime> {
        Ok(NfsTime {
            seconds: r.u64()? as i64,
            nseconds: r.u32()?,
        })
    }
}

/// ```text
/// struct fsid4 {
///         uint64_t        major;
///         uint64_t        minor;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid {
    pub major: u64,
    pub minor: u64,
}

impl Xdr for Fsid {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.major);
        w.u64(self.minor);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Fsid> {
        Ok(Fsid {
            major: r.u64()?,
            minor: r.u64()?,
        })
    }
}

/// ```text
/// struct change_info4 {
///         bool            atomic;
///         changeid4       before;
///         changeid4       after;
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeInfo {
    pub atomic: bool,
    pub before: u64,
    pub after: u64,
}

impl Xdr for ChangeInfo {
    fn encode(&self, w: &mut Encoder) {
        w.bool(self.atomic);
        w.u64(self.before);
        w.u64(self.after);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ChangeInfo> {
        Ok(ChangeInfo {
            atomic: r.bool()?,
            before: r.u64()?,
            after: r.u64()?,
        })
    }
}

/// ```text
/// typedef uint32_t        bitmap4<>;
/// ```
/// A set of attribute (or operation) numbers: bit `n` is bit `n % 32` of word `n / 32`.
/// Decoding refuses more than [`MAX_BITMAP_WORDS`] words before allocating them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitmap(Vec<u32>);

impl Bitmap {
    /// The set of `bits` (each below `32 * MAX_BITMAP_WORDS`; larger ones are ignored).
    pub fn of(bits: &[u32]) -> Bitmap {
        let mut b = Bitmap::default();
        for &n in bits {
            b.insert(n);
        }
        b
    }

    pub fn insert(&mut self, bit: u32) {
        let word = (bit / 32) as usize;
        if word >= MAX_BITMAP_WORDS {
            return;
        }
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (bit % 32);
    }

    pub fn contains(&self, bit: u32) -> bool {
        self.0
            .get((bit / 32) as usize)
            .is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// The set bits, in increasing order (the order of the values in an `fattr4`).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            (0..32u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 32 + b)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn words(&self) -> &[u32] {
        &self.0
    }
}

impl Xdr for Bitmap {
    fn encode(&self, w: &mut Encoder) {
        w.array(&self.0);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<Bitmap> {
        Ok(Bitmap(r.array(MAX_BITMAP_WORDS, 4)?))
    }
}

/// ```text
/// struct nfs_impl_id4 {
///         utf8str_cis   nii_domain;
///         utf8str_cs    nii_name;
///         nfstime4      nii_date;
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImplId {
    pub domain: String,
    pub name: String,
    pub date: NfsTime,
}

impl Xdr for ImplId {
    fn encode(&self, w: &mut Encoder) {
        w.string(&self.domain);
        w.string(&self.name);
        self.date.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ImplId> {
        Ok(ImplId {
            domain: r.string(MAX_IMPL_STRING)?,
            name: r.string(MAX_IMPL_STRING)?,
            date: NfsTime::decode(r)?,
        })
    }
}

/// `T x<1>`: an optional value as a counted array of at most one.
pub(crate) fn encode_opt<T: Xdr>(w: &mut Encoder, v: Option<&T>) {
    match v {
        Some(x) => {
            w.u32(1);
            x.encode(w);
        }
        None => w.u32(0),
    }
}

pub(crate) fn decode_opt<T: Xdr>(r: &mut Decoder<'_>) -> WireResult<Option<T>> {
    match r.u32()? {
        0 => Ok(None),
        1 => Ok(Some(T::decode(r)?)),
        n => Err(WireError::new(
            WireKind::TooLarge,
            format!("array<1> of {n} elements"),
        )),
    }
}

//! File attributes: the `fattr4` codec for the attributes the backend reads (GETATTR) and
//! sets (SETATTR, OPEN's `createattrs`).
//!
//! ```text
//! struct fattr4 {
//!         bitmap4         attrmask;
//!         attrlist4       attr_vals;
//! };
//! ```
//! The values in `attr_vals` follow the set bits of `attrmask` in increasing order, each in
//! its own XDR type, with no length of its own: an attribute this crate cannot decode ends
//! the decoding with an error (it cannot be skipped). Servers return only attributes that
//! were asked for, so asking for [`Fattr`]'s attributes only is always decodable.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::basic::{bad, Bitmap, Fsid, NfsTime};
use crate::limits::{MAX_ATTR_VALS, MAX_OWNER};
use crate::status::Status;

/// `const FATTR4_*`: the attribute numbers this crate decodes (RFC 7863).
pub mod num {
    pub const SUPPORTED_ATTRS: u32 = 0;
    pub const TYPE: u32 = 1;
    pub const FH_EXPIRE_TYPE: u32 = 2;
    pub const CHANGE: u32 = 3;
    pub const SIZE: u32 = 4;
    pub const LINK_SUPPORT: u32 = 5;
    pub const SYMLINK_SUPPORT: u32 = 6;
    pub const NAMED_ATTR: u32 = 7;
    pub const FSID: u32 = 8;
    pub const UNIQUE_HANDLES: u32 = 9;
    pub const LEASE_TIME: u32 = 10;
    pub const RDATTR_ERROR: u32 = 11;
    pub const FILEID: u32 = 20;
    pub const MAXFILESIZE: u32 = 27;
    pub const MAXREAD: u32 = 30;
    pub const MAXWRITE: u32 = 31;
    pub const MODE: u32 = 33;
    pub const NUMLINKS: u32 = 35;
    pub const OWNER: u32 = 36;
    pub const OWNER_GROUP: u32 = 37;
    pub const SPACE_AVAIL: u32 = 42;
    pub const SPACE_FREE: u32 = 43;
    pub const SPACE_TOTAL: u32 = 44;
    pub const SPACE_USED: u32 = 45;
    pub const TIME_ACCESS: u32 = 47;
    pub const TIME_METADATA: u32 = 52;
    pub const TIME_MODIFY: u32 = 53;
    pub const SUPPATTR_EXCLCREAT: u32 = 75;
    pub const CLONE_BLKSIZE: u32 = 77;
}

/// ```text
/// enum nfs_ftype4 {
///         NF4REG       = 1,  /* Regular File */
///         NF4DIR       = 2,  /* Directory */
///         NF4BLK       = 3,  /* Special File -- block device */
///         NF4CHR       = 4,  /* Special File -- character device */
///         NF4LNK       = 5,  /* Symbolic Link */
///         NF4SOCK      = 6,  /* Special File -- socket */
///         NF4FIFO      = 7,  /* Special File -- fifo */
///         NF4ATTRDIR   = 8,  /* Attribute Directory */
///         NF4NAMEDATTR = 9   /* Named Attribute */
/// };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Regular,
    Directory,
    Block,
    Char,
    Symlink,
    Socket,
    Fifo,
    AttrDir,
    NamedAttr,
    Unknown(u32),
}

impl FileType {
    pub fn from_u32(v: u32) -> FileType {
        match v {
            1 => FileType::Regular,
            2 => FileType::Directory,
            3 => FileType::Block,
            4 => FileType::Char,
            5 => FileType::Symlink,
            6 => FileType::Socket,
            7 => FileType::Fifo,
            8 => FileType::AttrDir,
            9 => FileType::NamedAttr,
            v => FileType::Unknown(v),
        }
    }
}

/// The decoded attributes of one `fattr4`: each `Some` where the server returned it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fattr {
    pub supported_attrs: Option<Bitmap>,
    pub file_type: Option<FileType>,
    pub fh_expire_type: Option<u32>,
    pub change: Option<u64>,
    pub size: Option<u64>,
    pub link_support: Option<bool>,
    pub symlink_support: Option<bool>,
    pub named_attr: Option<bool>,
    pub fsid: Option<Fsid>,
    pub unique_handles: Option<bool>,
    pub lease_time: Option<u32>,
    pub rdattr_error: Option<Status>,
    pub fileid: Option<u64>,
    pub maxfilesize: Option<u64>,
    pub maxread: Option<u64>,
    pub maxwrite: Option<u64>,
    pub mode: Option<u32>,
    pub numlinks: Option<u32>,
    /// `utf8str_mixed`: `"0"` (knfsd with AUTH_SYS and id mapping off) or `"root@domain"`.
    pub owner: Option<String>,
    pub owner_group: Option<String>,
    pub space_avail: Option<u64>,
    pub space_free: Option<u64>,
    pub space_total: Option<u64>,
    /// Bytes the file occupies on the server (knfsd: `st_blocks << 9`).
    pub space_used: Option<u64>,
    pub time_access: Option<NfsTime>,
    pub time_metadata: Option<NfsTime>,
    pub time_modify: Option<NfsTime>,
    pub suppattr_exclcreat: Option<Bitmap>,
    pub clone_blksize: Option<u32>,
}

impl Fattr {
    /// The attributes this crate decodes: a GETATTR for any subset of these decodes.
    pub fn decodable() -> Bitmap {
        use num::*;
        Bitmap::of(&[
            SUPPORTED_ATTRS,
            TYPE,
            FH_EXPIRE_TYPE,
            CHANGE,
            SIZE,
            LINK_SUPPORT,
            SYMLINK_SUPPORT,
            NAMED_ATTR,
            FSID,
            UNIQUE_HANDLES,
            LEASE_TIME,
            RDATTR_ERROR,
            FILEID,
            MAXFILESIZE,
            MAXREAD,
            MAXWRITE,
            MODE,
            NUMLINKS,
            OWNER,
            OWNER_GROUP,
            SPACE_AVAIL,
            SPACE_FREE,
            SPACE_TOTAL,
            SPACE_USED,
            TIME_ACCESS,
            TIME_METADATA,
            TIME_MODIFY,
            SUPPATTR_EXCLCREAT,
            CLONE_BLKSIZE,
        ])
    }

    /// The owner as a numeric uid, where the server sent one (`"0"`).
    pub fn owner_id(&self) -> Option<u32> {
        self.owner.as_deref().and_then(|s| s.parse().ok())
    }

    /// The group as a numeric gid, where the server sent one.
    pub fn group_id(&self) -> Option<u32> {
        self.owner_group.as_deref().and_then(|s| s.parse().ok())
    }

    fn decode_value(&mut self, bit: u32, r: &mut Decoder<'_>) -> WireResult<()> {
        use num::*;
        match bit {
            SUPPORTED_ATTRS => self.supported_attrs = Some(Bitmap::decode(r)?),
            TYPE => self.file_type = Some(FileType::from_u32(r.u32()?)),
            FH_EXPIRE_TYPE => self.fh_expire_type = Some(r.u32()?),
            CHANGE => self.change = Some(r.u64()?),
            SIZE => self.size = Some(r.u64()?),
            LINK_SUPPORT => self.link_support = Some(r.bool()?),
            SYMLINK_SUPPORT => self.symlink_support = Some(r.bool()?),
            NAMED_ATTR => self.named_attr = Some(r.bool()?),
            FSID => self.fsid = Some(Fsid::decode(r)?),
            UNIQUE_HANDLES => self.unique_handles = Some(r.bool()?),
            LEASE_TIME => self.lease_time = Some(r.u32()?),
            RDATTR_ERROR => self.rdattr_error = Some(Status::decode(r)?),
            FILEID => self.fileid = Some(r.u64()?),
            MAXFILESIZE => self.maxfilesize = Some(r.u64()?),
            MAXREAD => self.maxread = Some(r.u64()?),
            MAXWRITE => self.maxwrite = Some(r.u64()?),
            MODE => self.mode = Some(r.u32()?),
            NUMLINKS => self.numlinks = Some(r.u32()?),
            OWNER => self.owner = Some(r.string(MAX_OWNER)?),
            OWNER_GROUP => self.owner_group = Some(r.string(MAX_OWNER)?),
            SPACE_AVAIL => self.space_avail = Some(r.u64()?),
            SPACE_FREE => self.space_free = Some(r.u64()?),
            SPACE_TOTAL => self.space_total = Some(r.u64()?),
            SPACE_USED => self.space_used = Some(r.u64()?),
            TIME_ACCESS => self.time_access = Some(NfsTime::decode(r)?),
            TIME_METADATA => self.time_metadata = Some(NfsTime::decode(r)?),
            TIME_MODIFY => self.time_modify = Some(NfsTime::decode(r)?),
            SUPPATTR_EXCLCREAT => self.suppattr_exclcreat = Some(Bitmap::decode(r)?),
            CLONE_BLKSIZE => self.clone_blksize = Some(r.u32()?),
            other => {
                return Err(bad(format!(
                    "attribute {other} returned, which this client cannot decode"
                )))
            }
        }
        Ok(())
    }
}

/// `fattr4` as GETATTR returns it.
impl Xdr for Fattr {
    fn encode(&self, w: &mut Encoder) {
        // Only what SETATTR can carry is encoded (see `SetAttrs`); a decoded Fattr is for
        // reading. Encoding what is set keeps the round trip testable.
        let mut vals = Encoder::new();
        let mut mask = Bitmap::default();
        if let Some(size) = self.size {
            mask.insert(num::SIZE);
            vals.u64(size);
        }
        if let Some(mode) = self.mode {
            mask.insert(num::MODE);
            vals.u32(mode);
        }
        if let Some(owner) = &self.owner {
            mask.insert(num::OWNER);
            vals.string(owner);
        }
        if let Some(group) = &self.owner_group {
            mask.insert(num::OWNER_GROUP);
            vals.string(group);
        }
        mask.encode(w);
        w.opaque(&vals.into_bytes());
    }

    fn decode(r: &mut Decoder<'_>) -> WireResult<Fattr> {
        let mask = Bitmap::decode(r)?;
        let vals = r.opaque(MAX_ATTR_VALS)?;
        let mut v = Decoder::new(vals);
        let mut out = Fattr::default();
        for bit in mask.iter() {
            out.decode_value(bit, &mut v)?;
        }
        v.finish()?;
        Ok(out)
    }
}

/// The attributes this client sets: SETATTR's `obj_attributes` and OPEN's `createattrs`.
/// An empty `SetAttrs` encodes an empty `fattr4` (mask of no words, no values).
///
/// Attributes go on the wire in the order of their numbers (size, mode, owner, group); a
/// server may apply them in any order, so a change of owner and a mode with set-id bits are
/// two SETATTRs (the owner first, as `fchown` before `fchmod`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetAttrs {
    /// `FATTR4_SIZE`: truncate or extend.
    pub size: Option<u64>,
    /// `FATTR4_MODE`: permission bits (`MODE4_*`, the low 12 bits of `st_mode`).
    pub mode: Option<u32>,
    /// `FATTR4_OWNER`: as the server wrote it in GETATTR (`"1000"` or `user@domain`).
    pub owner: Option<String>,
    /// `FATTR4_OWNER_GROUP`: likewise.
    pub owner_group: Option<String>,
}

impl Xdr for SetAttrs {
    fn encode(&self, w: &mut Encoder) {
        Fattr {
            size: self.size,
            mode: self.mode,
            owner: self.owner.clone(),
            owner_group: self.owner_group.clone(),
            ..Fattr::default()
        }
        .encode(w)
    }

    fn decode(r: &mut Decoder<'_>) -> WireResult<SetAttrs> {
        let f = Fattr::decode(r)?;
        Ok(SetAttrs {
            size: f.size,
            mode: f.mode,
            owner: f.owner,
            owner_group: f.owner_group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openvaai_proto::xdr::{from_bytes, to_bytes};

    #[test]
    fn setattrs_encode_size_then_mode() {
        let b = to_bytes(&SetAttrs {
            size: Some(0x1_0000_0002),
            mode: Some(0o644),
            ..SetAttrs::default()
        });
        // mask<2> = {1<<4, 1<<(33-32)}, vals<12> = size (hyper), mode
        let want: &[u32] = &[2, 0x10, 0x2, 12, 1, 2, 0o644];
        let want: Vec<u8> = want.iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(b, want);
        assert_eq!(to_bytes(&SetAttrs::default()), [0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn setattrs_encode_owner_then_group_as_strings() {
        let b = to_bytes(&SetAttrs {
            owner: Some("1000".into()),
            owner_group: Some("users@example".into()),
            ..SetAttrs::default()
        });
        // mask<2> = {0, 1<<(36-32) | 1<<(37-32)}, vals<28> = "1000", "users@example" (13, padded)
        let mut want: Vec<u8> = [2u32, 0, 0x30, 28, 4]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        want.extend_from_slice(b"1000");
        want.extend_from_slice(&13u32.to_be_bytes());
        want.extend_from_slice(b"users@example\0\0\0");
        assert_eq!(b, want);
        assert_eq!(
            from_bytes::<SetAttrs>(&b).unwrap().owner_group.as_deref(),
            Some("users@example")
        );
    }

    #[test]
    fn an_attribute_this_crate_cannot_decode_is_an_error_not_a_skip() {
        // mask {12 (acl)} with four bytes of values
        let b: Vec<u8> = [1u32, 1 << 12, 4, 0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert!(from_bytes::<Fattr>(&b).is_err());
    }

    #[test]
    fn values_shorter_or_longer_than_the_mask_says_are_refused() {
        let short: Vec<u8> = [1u32, 1 << 4, 4, 7]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert!(from_bytes::<Fattr>(&short).is_err());
        let long: Vec<u8> = [1u32, 1 << 4, 12, 0, 7, 9]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert!(from_bytes::<Fattr>(&long).is_err());
    }
}

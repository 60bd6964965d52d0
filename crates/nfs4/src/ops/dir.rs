//! READDIR (RFC 8881 §18.23), bounded: the backend lists one small directory of its own
//! (the export's `.openvaai/`, to find its temporaries), a page at a time, asking for no
//! attributes, and at most [`MAX_DIR_ENTRIES`] entries a reply. Names come back as bytes (a directory may hold names that are not UTF-8);
//! each entry's attributes are skipped, whatever the server sent.

use openvaai_proto::xdr::{Decoder, Encoder, Xdr};
use openvaai_proto::Result as WireResult;

use crate::basic::{bad, Bitmap, Verifier};
use crate::limits::{MAX_ATTR_VALS, MAX_COMPONENT, MAX_DIR_ENTRIES};

/// ```text
/// struct READDIR4args {
///         /* CURRENT_FH: directory */
///         nfs_cookie4     cookie;
///         verifier4       cookieverf;
///         count4          dircount;
///         count4          maxcount;
///         bitmap4         attr_request;
/// };
/// ```
/// `cookie` 0 (with a zero `cookieverf`) starts at the beginning; later pages give the last
/// entry's cookie and the verifier of the first reply. `maxcount` bounds the reply's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaddirArgs {
    pub cookie: u64,
    pub cookieverf: Verifier,
    pub dircount: u32,
    pub maxcount: u32,
    pub attr_request: Bitmap,
}

impl Xdr for ReaddirArgs {
    fn encode(&self, w: &mut Encoder) {
        w.u64(self.cookie);
        self.cookieverf.encode(w);
        w.u32(self.dircount);
        w.u32(self.maxcount);
        self.attr_request.encode(w);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ReaddirArgs> {
        Ok(ReaddirArgs {
            cookie: r.u64()?,
            cookieverf: Verifier::decode(r)?,
            dircount: r.u32()?,
            maxcount: r.u32()?,
            attr_request: Bitmap::decode(r)?,
        })
    }
}

/// ```text
/// struct entry4 {
///         nfs_cookie4     cookie;
///         component4      name;
///         fattr4          attrs;
///         entry4          *nextentry;
/// };
/// ```
/// The name as bytes (at most [`MAX_COMPONENT`]); the attributes are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub cookie: u64,
    pub name: Vec<u8>,
}

/// ```text
/// struct dirlist4 {
///         entry4          *entries;
///         bool            eof;
/// };
/// struct READDIR4resok {
///         verifier4       cookieverf;
///         dirlist4        reply;
/// };
/// union READDIR4res switch (nfsstat4 status) {
///  case NFS4_OK:
///          READDIR4resok  resok4;
///  default:
///          void;
/// };
/// ```
/// At most [`MAX_DIR_ENTRIES`] entries per reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaddirOk {
    pub cookieverf: Verifier,
    pub entries: Vec<DirEntry>,
    pub eof: bool,
}

impl Xdr for ReaddirOk {
    fn encode(&self, w: &mut Encoder) {
        self.cookieverf.encode(w);
        for e in &self.entries {
            w.bool(true);
            w.u64(e.cookie);
            w.opaque(&e.name);
            Bitmap::default().encode(w);
            w.opaque(&[]);
        }
        w.bool(false);
        w.bool(self.eof);
    }
    fn decode(r: &mut Decoder<'_>) -> WireResult<ReaddirOk> {
        let cookieverf = Verifier::decode(r)?;
        let mut entries = Vec::new();
        // `entry4 *`: an optional, then each entry's `nextentry` another one.
        while r.bool()? {
            if entries.len() >= MAX_DIR_ENTRIES {
                return Err(bad(format!(
                    "READDIR reply with more than {MAX_DIR_ENTRIES} entries"
                )));
            }
            let cookie = r.u64()?;
            let name = r.opaque(MAX_COMPONENT)?.to_vec();
            Bitmap::decode(r)?;
            r.opaque(MAX_ATTR_VALS)?;
            entries.push(DirEntry { cookie, name });
        }
        Ok(ReaddirOk {
            cookieverf,
            entries,
            eof: r.bool()?,
        })
    }
}

//! Record marking (RFC 5531 §11): a record is a sequence of fragments, each preceded by a
//! 4-byte big-endian header whose top bit marks the last fragment and whose low 31 bits are
//! the fragment's length.
//!
//! Works over any `std::io::Read`/`Write` (a `TcpStream`, a rustls `StreamOwned`, a test
//! buffer). Every fragment length is checked against [`MAX_FRAGMENT`] and the running record
//! length against [`MAX_RECORD`] before a byte of it is allocated.

use std::io::{Read, Write};

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{MAX_FRAGMENT, MAX_FRAGMENTS, MAX_RECORD};

const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Reads one whole record. Returns `Ok(None)` on a clean end of stream before a record starts;
/// an end of stream inside a record is an error.
pub fn read_record<R: Read + ?Sized>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut record: Vec<u8> = Vec::new();
    let mut fragments = 0usize;
    loop {
        let mut hdr = [0u8; 4];
        if fragments == 0 {
            if !read_first(r, &mut hdr)? {
                return Ok(None);
            }
        } else {
            r.read_exact(&mut hdr)?;
        }
        fragments += 1;
        let h = u32::from_be_bytes(hdr);
        let len = (h & !LAST_FRAGMENT) as usize;
        if len > MAX_FRAGMENT {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("fragment of {len} bytes, limit {MAX_FRAGMENT}"),
            ));
        }
        if record.len() + len > MAX_RECORD {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("record over {MAX_RECORD} bytes"),
            ));
        }
        if fragments > MAX_FRAGMENTS {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("record of more than {MAX_FRAGMENTS} fragments"),
            ));
        }
        let start = record.len();
        record.resize(start + len, 0);
        r.read_exact(&mut record[start..])?;
        if h & LAST_FRAGMENT != 0 {
            return Ok(Some(record));
        }
    }
}

/// Reads the first header; false on EOF before its first byte.
fn read_first<R: Read + ?Sized>(r: &mut R, hdr: &mut [u8; 4]) -> Result<bool> {
    let mut got = 0;
    while got < 4 {
        match r.read(&mut hdr[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Writes `record` as one or more fragments (each at most [`MAX_FRAGMENT`]) and flushes.
/// Refuses a record over [`MAX_RECORD`]: the peer would refuse it too.
pub fn write_record<W: Write + ?Sized>(w: &mut W, record: &[u8]) -> Result<()> {
    if record.len() > MAX_RECORD {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("record of {} bytes, limit {MAX_RECORD}", record.len()),
        ));
    }
    let mut out = Vec::with_capacity(record.len() + 8);
    let mut chunks = record.chunks(MAX_FRAGMENT).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&LAST_FRAGMENT.to_be_bytes());
    }
    while let Some(c) = chunks.next() {
        let last = if chunks.peek().is_none() {
            LAST_FRAGMENT
        } else {
            0
        };
        out.extend_from_slice(&(c.len() as u32 | last).to_be_bytes());
        out.extend_from_slice(c);
    }
    w.write_all(&out)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"hello").unwrap();
        write_record(&mut buf, b"").unwrap();
        assert_eq!(&buf[..4], &[0x80, 0, 0, 5]);
        let mut r = &buf[..];
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"hello");
        assert_eq!(read_record(&mut r).unwrap().unwrap(), b"");
        assert!(read_record(&mut r).unwrap().is_none());
    }

    #[test]
    fn multi_fragment_record_is_joined() {
        let buf = [0, 0, 0, 2, b'a', b'b', 0x80, 0, 0, 1, b'c'];
        assert_eq!(read_record(&mut &buf[..]).unwrap().unwrap(), b"abc");
    }

    #[test]
    fn eof_inside_a_record_is_an_error() {
        let buf = [0x80, 0, 0, 5, b'a'];
        assert_eq!(
            read_record(&mut &buf[..]).unwrap_err().kind(),
            ErrorKind::Io
        );
        let buf = [0x80, 0];
        assert!(read_record(&mut &buf[..]).is_err());
    }

    #[test]
    fn record_over_limit_across_fragments_is_refused() {
        let mut buf = Vec::new();
        let frag = vec![0u8; MAX_FRAGMENT];
        for _ in 0..2 {
            buf.extend_from_slice(&(MAX_FRAGMENT as u32).to_be_bytes());
            buf.extend_from_slice(&frag);
        }
        buf.extend_from_slice(&[0x80, 0, 0, 1, 0]);
        let e = read_record(&mut &buf[..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn too_many_empty_fragments_are_refused() {
        let buf = vec![0u8; 4 * (MAX_FRAGMENTS + 1)];
        let e = read_record(&mut &buf[..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn writing_an_oversized_record_is_refused() {
        let big = vec![0u8; MAX_RECORD + 1];
        let mut out = Vec::new();
        assert_eq!(
            write_record(&mut out, &big).unwrap_err().kind(),
            ErrorKind::TooLarge
        );
        assert!(out.is_empty());
    }
}

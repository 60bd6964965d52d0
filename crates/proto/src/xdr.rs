//! XDR (RFC 4506): a bounded decoder over a byte slice and an encoder into a `Vec<u8>`.
//!
//! The decoder never panics and never allocates more than the caller's bound: every
//! variable-length item is checked against its declared maximum and against the bytes that are
//! actually left *before* anything is allocated.

use crate::error::{Error, ErrorKind, Result};

/// A value with an XDR encoding.
pub trait Xdr: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Encoder);
    /// Reads one value.
    fn decode(r: &mut Decoder<'_>) -> Result<Self>;
}

/// Pads `len` up to a multiple of four.
const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// Reads XDR items from a byte slice.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails unless every byte was consumed (trailing garbage is a decode error).
    pub fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Decode,
                format!("{} trailing bytes", self.remaining()),
            ))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::new(
                ErrorKind::Decode,
                format!("need {n} bytes, {} left", self.remaining()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }

    pub fn u64(&mut self) -> Result<u64> {
        let hi = self.u32()? as u64;
        let lo = self.u32()? as u64;
        Ok(hi << 32 | lo)
    }

    /// An XDR `bool`: exactly 0 or 1.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::new(ErrorKind::Decode, format!("bool {v}"))),
        }
    }

    /// `opaque x[N]`: fixed length, padded.
    pub fn fixed_opaque<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(padded(N))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b[..N]);
        check_padding(&b[N..])?;
        Ok(out)
    }

    /// `opaque x<max>`, borrowed from the input.
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("opaque of {len} bytes, limit {max}"),
            ));
        }
        let b = self.take(padded(len))?;
        check_padding(&b[len..])?;
        Ok(&b[..len])
    }

    /// `string x<max>`, which must be UTF-8.
    pub fn string(&mut self, max: usize) -> Result<String> {
        let b = self.opaque(max)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Error::new(ErrorKind::Decode, "string is not UTF-8")),
        }
    }

    /// `T x<max>`: a counted array. Each element takes at least `min_elem` bytes, which
    /// bounds the allocation by the bytes present as well as by `max`.
    pub fn array<T: Xdr>(&mut self, max: usize, min_elem: usize) -> Result<Vec<T>> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("array of {len} elements, limit {max}"),
            ));
        }
        if len.saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(Error::new(ErrorKind::Decode, "array longer than its data"));
        }
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(T::decode(self)?);
        }
        Ok(v)
    }

    /// `T *x`: optional data.
    pub fn optional<T: Xdr>(&mut self) -> Result<Option<T>> {
        if self.bool()? {
            Ok(Some(T::decode(self)?))
        } else {
            Ok(None)
        }
    }
}

fn check_padding(pad: &[u8]) -> Result<()> {
    if pad.iter().all(|&b| b == 0) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Decode, "non-zero padding"))
    }
}

/// Writes XDR items into a growing buffer.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.u32(v as u32);
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.u32(v as u32);
    }

    /// `opaque x[N]`.
    pub fn fixed_opaque(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        self.pad(b.len());
    }

    /// `opaque x<>`. The caller keeps to the declared maximum (the types in this crate do).
    pub fn opaque(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.fixed_opaque(b);
    }

    pub fn string(&mut self, s: &str) {
        self.opaque(s.as_bytes());
    }

    pub fn array<T: Xdr>(&mut self, v: &[T]) {
        self.u32(v.len() as u32);
        for x in v {
            x.encode(self);
        }
    }

    pub fn optional<T: Xdr>(&mut self, v: Option<&T>) {
        match v {
            Some(x) => {
                self.bool(true);
                x.encode(self);
            }
            None => self.bool(false),
        }
    }

    /// Raw bytes already in XDR form.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn pad(&mut self, len: usize) {
        let n = padded(len) - len;
        self.buf.extend_from_slice(&[0u8; 3][..n]);
    }
}

impl Xdr for u32 {
    fn encode(&self, w: &mut Encoder) {
        w.u32(*self)
    }
    fn decode(r: &mut Decoder<'_>) -> Result<u32> {
        r.u32()
    }
}

impl Xdr for u64 {
    fn encode(&self, w: &mut Encoder) {
        w.u64(*self)
    }
    fn decode(r: &mut Decoder<'_>) -> Result<u64> {
        r.u64()
    }
}

impl Xdr for bool {
    fn encode(&self, w: &mut Encoder) {
        w.bool(*self)
    }
    fn decode(r: &mut Decoder<'_>) -> Result<bool> {
        r.bool()
    }
}

/// XDR `void`.
impl Xdr for () {
    fn encode(&self, _: &mut Encoder) {}
    fn decode(_: &mut Decoder<'_>) -> Result<()> {
        Ok(())
    }
}

/// Encodes one value into a fresh buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Vec<u8> {
    let mut w = Encoder::new();
    v.encode(&mut w);
    w.into_bytes()
}

/// Decodes exactly one value from `b` (trailing bytes are an error).
pub fn from_bytes<T: Xdr>(b: &[u8]) -> Result<T> {
    let mut r = Decoder::new(b);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_padded_and_round_trips() {
        let mut w = Encoder::new();
        w.string("abcde");
        let b = w.into_bytes();
        assert_eq!(b, [0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        let mut r = Decoder::new(&b);
        assert_eq!(r.string(5).unwrap(), "abcde");
        r.finish().unwrap();
    }

    #[test]
    fn opaque_over_limit_is_refused_before_reading() {
        let b = [0x7f, 0xff, 0xff, 0xff];
        let e = Decoder::new(&b).opaque(4096).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn opaque_longer_than_input_is_refused() {
        let b = [0, 0, 0, 8, 1, 2, 3, 4];
        let e = Decoder::new(&b).opaque(4096).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
    }

    #[test]
    fn array_count_larger_than_data_is_refused_before_allocating() {
        let b = [0, 0, 1, 0];
        let e = Decoder::new(&b).array::<u64>(1024, 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        let e = Decoder::new(&b).array::<u64>(16, 8).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn bool_other_than_zero_or_one_is_refused() {
        assert!(Decoder::new(&[0, 0, 0, 2]).bool().is_err());
    }

    #[test]
    fn non_zero_padding_is_refused() {
        let b = [0, 0, 0, 1, b'a', 0, 1, 0];
        assert!(Decoder::new(&b).opaque(10).is_err());
    }
}

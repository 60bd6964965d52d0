//! The declarative macros `types.rs` states the wire types with: an enum of XDR values (with
//! an `Unknown` arm, never a cast) and a struct whose fields go on the wire in declaration
//! order, each with its XDR kind. The codec is `xdr`'s; these only spare the hand-written
//! `encode`/`decode` pairs, which had to repeat every field twice in the same order.

/// `enum name { A = 0, B = 1, ... }` of the `.x` file: the variants, `Unknown(u32)` for any
/// other value, and its `Xdr` impl (an unsigned int on the wire).
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this version does not know, kept as is.
            Unknown(u32),
        }
        impl $name {
            /// The value on the wire.
            pub fn to_u32(self) -> u32 {
                match self { $($name::$var => $val,)* $name::Unknown(v) => v }
            }
            /// The variant for a wire value; unknown values are kept, never cast.
            pub fn from_u32(v: u32) -> $name {
                match v { $(x if x == $val => $name::$var,)* v => $name::Unknown(v) }
            }
        }
        impl Xdr for $name {
            fn encode(&self, w: &mut Encoder) { w.u32(self.to_u32()) }
            fn decode(r: &mut Decoder<'_>) -> Result<$name> { Ok($name::from_u32(r.u32()?)) }
        }
    };
}

/// `struct name { ... }` of the `.x` file: `pub field: RustType as kind,` per field, in wire
/// order. The kinds:
///
/// | kind | XDR | Rust |
/// |---|---|---|
/// | `path` | `ov_path` (`string<OV_MAX_PATH>`) | `String` |
/// | `short_string` | `ov_short_string` (`string<OV_MAX_SHORT_STRING>`) | `String` |
/// | `optional_path` | `ov_path *` | `Option<String>` |
/// | `fixed_opaque` | `opaque[N]` (`ov_nonce`, `ov_proof`) | `[u8; N]` |
/// | `uint` | `unsigned int` | `u32` |
/// | `hyper` | `unsigned hyper` | `u64` |
/// | `bool` | `bool` | `bool` |
/// | `item` | a type with its own `Xdr` impl (an enum) | that type |
macro_rules! wire_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $($(#[$fm:meta])* pub $field:ident: $ty:ty as $kind:ident,)*
        }
    ) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }
        impl Xdr for $name {
            fn encode(&self, w: &mut Encoder) {
                $(wire_field!(encode $kind, w, &self.$field);)*
            }
            fn decode(r: &mut Decoder<'_>) -> Result<$name> {
                Ok($name {
                    $($field: wire_field!(decode $kind, r, $ty),)*
                })
            }
        }
    };
}

/// One field of a [`wire_struct!`]: how its kind is encoded and decoded (strings bounded by
/// their `.x` limits before anything is allocated).
macro_rules! wire_field {
    (encode path, $w:ident, $v:expr) => {
        $w.string($v)
    };
    (encode short_string, $w:ident, $v:expr) => {
        $w.string($v)
    };
    (encode optional_path, $w:ident, $v:expr) => {
        $w.optional($v.clone().map(PathItem).as_ref())
    };
    (encode fixed_opaque, $w:ident, $v:expr) => {
        $w.fixed_opaque($v)
    };
    (encode uint, $w:ident, $v:expr) => {
        $w.u32(*$v)
    };
    (encode hyper, $w:ident, $v:expr) => {
        $w.u64(*$v)
    };
    (encode bool, $w:ident, $v:expr) => {
        $w.bool(*$v)
    };
    (encode item, $w:ident, $v:expr) => {
        Xdr::encode($v, $w)
    };
    (decode path, $r:ident, $ty:ty) => {
        $r.string(MAX_PATH)?
    };
    (decode short_string, $r:ident, $ty:ty) => {
        $r.string(MAX_SHORT_STRING)?
    };
    (decode optional_path, $r:ident, $ty:ty) => {
        $r.optional::<PathItem>()?.map(|p| p.0)
    };
    (decode fixed_opaque, $r:ident, $ty:ty) => {
        $r.fixed_opaque()?
    };
    (decode uint, $r:ident, $ty:ty) => {
        $r.u32()?
    };
    (decode hyper, $r:ident, $ty:ty) => {
        $r.u64()?
    };
    (decode bool, $r:ident, $ty:ty) => {
        $r.bool()?
    };
    (decode item, $r:ident, $ty:ty) => {
        <$ty as Xdr>::decode($r)?
    };
}

//! The proofs of the HELLO/AUTH handshake: HMAC-SHA256 keyed with the export's secret.
//!
//! ```text
//! message      = server_challenge (32) || client_nonce (32) || xdr_string(export) || label
//! client_proof = HMAC-SHA256(secret, message with label = CLIENT_LABEL)
//! server_proof = HMAC-SHA256(secret, message with label = SERVER_LABEL)
//! ```
//! The two labels have the same length and differ, so one proof never verifies as the other.
//! The server challenge is fresh for every HELLO and consumed by the AUTH that follows, so a
//! recorded AUTH cannot be replayed; the secret itself never crosses the wire.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::hex;
use crate::types::{NONCE_LEN, PROOF_LEN};
use crate::xdr::Encoder;

/// Size of an export secret.
pub const SECRET_LEN: usize = 32;

/// The context label of the client's proof.
pub const CLIENT_LABEL: &[u8; 24] = b"openvaai v1 client proof";
/// The context label of the server's proof.
pub const SERVER_LABEL: &[u8; 24] = b"openvaai v1 server proof";

/// A per-export secret. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

impl Secret {
    pub fn from_bytes(b: [u8; SECRET_LEN]) -> Secret {
        Secret(b)
    }

    /// A fresh random secret from the system's CSPRNG.
    pub fn generate() -> Secret {
        Secret(random_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// Lower-case hex, as in the access file.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Secret> {
        hex::decode(s).map(Secret)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `N` random bytes from the system's CSPRNG (nonces, challenges, job ids).
///
/// # Panics
/// If the operating system's random source fails, which leaves nothing safe to do.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random source failed");
    b
}

fn proof(
    secret: &Secret,
    challenge: &[u8; NONCE_LEN],
    nonce: &[u8; NONCE_LEN],
    export: &str,
    label: &[u8],
) -> [u8; PROOF_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut w = Encoder::new();
    w.fixed_opaque(challenge);
    w.fixed_opaque(nonce);
    w.string(export);
    w.raw(label);
    let tag = hmac::sign(&key, &w.into_bytes());
    let mut out = [0u8; PROOF_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The client's proof that it knows `secret`.
pub fn client_proof(
    secret: &Secret,
    challenge: &[u8; NONCE_LEN],
    nonce: &[u8; NONCE_LEN],
    export: &str,
) -> [u8; PROOF_LEN] {
    proof(secret, challenge, nonce, export, CLIENT_LABEL)
}

/// The server's proof that it knows `secret`.
pub fn server_proof(
    secret: &Secret,
    challenge: &[u8; NONCE_LEN],
    nonce: &[u8; NONCE_LEN],
    export: &str,
) -> [u8; PROOF_LEN] {
    proof(secret, challenge, nonce, export, SERVER_LABEL)
}

/// Compares two proofs in constant time.
pub fn proofs_equal(a: &[u8; PROOF_LEN], b: &[u8; PROOF_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_proofs_differ_and_depend_on_every_input() {
        let s = Secret::from_bytes([7; 32]);
        let c = [1; 32];
        let n = [2; 32];
        let p = client_proof(&s, &c, &n, "/exports/a");
        assert_ne!(p, server_proof(&s, &c, &n, "/exports/a"));
        assert_ne!(p, client_proof(&s, &[3; 32], &n, "/exports/a"));
        assert_ne!(p, client_proof(&s, &c, &[3; 32], "/exports/a"));
        assert_ne!(p, client_proof(&s, &c, &n, "/exports/b"));
        assert_ne!(
            p,
            client_proof(&Secret::from_bytes([8; 32]), &c, &n, "/exports/a")
        );
        assert!(proofs_equal(&p, &client_proof(&s, &c, &n, "/exports/a")));
    }

    #[test]
    fn secret_debug_hides_the_secret_and_hex_round_trips() {
        let s = Secret::from_bytes([0xab; 32]);
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(Secret::from_hex(&s.to_hex()), Some(s));
        assert_eq!(Secret::from_hex("ab"), None);
    }
}

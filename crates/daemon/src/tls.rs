//! The daemon's TLS identity: a self-signed certificate made on first start and kept in the
//! state directory (`cert.pem` 0644, `key.pem` 0600), reused afterwards.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::fsutil::write_atomic;

pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// The certificate and the rustls configuration built from it.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate's DER: what clients pin.
    pub cert_sha256: [u8; 32],
}

/// Loads the certificate and key from `state_dir`, making them first if neither exists.
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Identity> {
    let cert_path = state_dir.join(CERT_FILE);
    let key_path = state_dir.join(KEY_FILE);
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {}
        (false, false) => {
            create(&cert_path, &key_path)?;
            tracing::info!(cert = %cert_path.display(), "made a new self-signed certificate");
        }
        _ => bail!(
            "only one of {} and {} exists: remove the other to make a new pair",
            cert_path.display(),
            key_path.display()
        ),
    }
    let cert = CertificateDer::from_pem_file(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut cert_sha256 = [0u8; 32];
    cert_sha256.copy_from_slice(digest.as_ref());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .context("the certificate and key do not make a TLS configuration")?;
    Ok(Identity {
        config: Arc::new(config),
        cert_sha256,
    })
}

fn create(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(h) = hostname() {
        names.push(h);
    }
    let ck = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
    write_atomic(key_path, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert_path, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim();
    (!h.is_empty() && h != "localhost").then(|| h.to_owned())
}

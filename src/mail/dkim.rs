//! DKIM: every message signed with the list's key (lettre's signer,
//! relaxed/relaxed, over the headers receivers check), and key pairs made
//! with the DNS record to publish.

use base64::Engine;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;

/// The headers signed: what a receiver shows or acts on. The top-level
/// `Content-Type` of a multipart message is written by lettre with its body,
/// after signing, so it cannot be listed (a listed header the signer does
/// not see breaks the signature); the body hash covers every part.
pub const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Auto-Submitted",
];

/// Smallest RSA key accepted (RFC 8301 says 1024 at least; 2048 is what
/// mailbox providers expect).
pub const MIN_RSA_BITS: usize = 2048;

/// The signing key's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

/// The signer of a run: the key, selector and domain.
pub struct Signer {
    config: DkimConfig,
    pub kind: KeyKind,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads a PEM private key (RSA as PKCS#1 or PKCS#8, Ed25519 as
    /// PKCS#8) for `selector._domainkey.domain`. Errors say what is wrong,
    /// never what the key is.
    pub fn from_pem(pem: &str, selector: &str, domain: &str) -> Result<Signer, String> {
        let (key, kind) = if pem.contains("BEGIN RSA PRIVATE KEY") {
            let rsa = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| format!("not a PKCS#1 RSA private key: {e}"))?;
            (rsa_key(rsa)?, KeyKind::Rsa)
        } else if pem.contains("BEGIN PRIVATE KEY") {
            match rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
                Ok(rsa) => (rsa_key(rsa)?, KeyKind::Rsa),
                Err(_) => {
                    let ed = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                        .map_err(|_| "not an RSA or Ed25519 PKCS#8 private key".to_string())?;
                    let raw = base64::engine::general_purpose::STANDARD.encode(ed.to_bytes());
                    let key = DkimSigningKey::new(&raw, DkimSigningAlgorithm::Ed25519)
                        .map_err(|e| format!("Ed25519 key: {e}"))?;
                    (key, KeyKind::Ed25519)
                }
            }
        } else {
            return Err(
                "not a PEM private key (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)"
                    .into(),
            );
        };
        let headers = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        let config = DkimConfig::new(
            selector.to_owned(),
            domain.to_owned(),
            key,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Signer { config, kind })
    }

    /// Adds the DKIM-Signature header.
    pub fn sign(&self, message: &mut lettre::Message) {
        message.sign(&self.config);
    }
}

fn rsa_key(rsa: rsa::RsaPrivateKey) -> Result<DkimSigningKey, String> {
    let bits = rsa.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed"
        ));
    }
    let pem = rsa
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| format!("RSA key: {e}"))?;
    DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa).map_err(|e| format!("RSA key: {e}"))
}

/// A new key pair: the private key as PKCS#8 PEM, and the DNS TXT value
/// to publish at `selector._domainkey.domain`.
pub fn keygen(kind: KeyKind) -> Result<(String, String), String> {
    match kind {
        KeyKind::Rsa => {
            let mut rng = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, MIN_RSA_BITS)
                .map_err(|e| format!("generating an RSA key: {e}"))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| e.to_string())?
                .to_string();
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            let p = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
            Ok((pem, format!("v=DKIM1; k=rsa; p={p}")))
        }
        KeyKind::Ed25519 => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("random bytes: {e}"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&secret);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| e.to_string())?
                .to_string();
            let p =
                base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
            Ok((pem, format!("v=DKIM1; k=ed25519; p={p}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_bad_ones_are_named() {
        let (pem, txt) = keygen(KeyKind::Ed25519).unwrap();
        assert!(txt.starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(
            Signer::from_pem(&pem, "s1", "example.com").unwrap().kind,
            KeyKind::Ed25519
        );
        let err = Signer::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "s",
            "d",
        )
        .unwrap_err();
        assert!(err.contains("PKCS#8"), "{err}");
        assert!(Signer::from_pem("hello", "s", "d")
            .unwrap_err()
            .contains("PEM"));
        let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let pem = small.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(Signer::from_pem(&pem, "s", "d")
            .unwrap_err()
            .contains("1024 bits"));
    }
}

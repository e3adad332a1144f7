//! TOTP seeds at rest: encrypted with ChaCha20-Poly1305 under `secrets.totp_key`, bound to the
//! staff member's id (associated data), so a copy of the database alone yields no seed and a
//! sealed seed cannot be moved to another account. Stored as `enc1:` + base64(nonce ‖
//! ciphertext). Seeds stored before encryption (plain base32) are still read, and sealed at
//! start-up or when next used.

use crate::config::Secret;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc1:";
const NONCE_BYTES: usize = 12;

fn cipher(key: &Secret) -> ChaCha20Poly1305 {
    // Any configured string becomes a 256-bit key; generated keys carry 256 random bits.
    let digest = Sha256::digest(format!("coinfront-totp-seed:{}", key.expose()).as_bytes());
    ChaCha20Poly1305::new(Key::from_slice(&digest))
}

/// Encrypts a seed for the staff member `staff_id`.
pub fn seal(key: &Secret, staff_id: &str, seed: &[u8]) -> anyhow::Result<String> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = cipher(key)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: seed,
                aad: staff_id.as_bytes(),
            },
        )
        .map_err(|_| anyhow::anyhow!("encrypting a TOTP seed failed"))?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    ))
}

/// Whether a stored seed is still in clear (from before encryption).
pub fn is_clear(stored: &str) -> bool {
    !stored.starts_with(PREFIX)
}

/// The seed of a stored value: decrypted, or decoded when it is an old clear one. `None` when
/// it cannot be read (another key, another account, damage).
pub fn open(key: &Secret, staff_id: &str, stored: &str) -> Option<Vec<u8>> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return super::totp::base32_decode(stored);
    };
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .ok()?;
    if bytes.len() <= NONCE_BYTES {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    cipher(key)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: staff_id.as_bytes(),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_seeds_open_only_with_their_key_and_account() {
        let key = Secret::new("k1");
        let seed = [9u8; 20];
        let stored = seal(&key, "staff-a", &seed).unwrap();
        assert!(stored.starts_with("enc1:") && !is_clear(&stored));
        assert!(!stored.contains(&crate::staff::totp::base32_encode(&seed)));
        assert_eq!(open(&key, "staff-a", &stored).unwrap(), seed);
        assert!(open(&key, "staff-b", &stored).is_none());
        assert!(open(&Secret::new("k2"), "staff-a", &stored).is_none());
        assert_ne!(
            stored,
            seal(&key, "staff-a", &seed).unwrap(),
            "a fresh nonce"
        );
        // An old clear seed still reads.
        let clear = crate::staff::totp::base32_encode(&seed);
        assert!(is_clear(&clear));
        assert_eq!(open(&key, "staff-a", &clear).unwrap(), seed);
    }
}

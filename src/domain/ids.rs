//! Identifiers: unguessable ids, human-friendly order numbers and secret access tokens.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Crockford base32 without I, L, O and U: easy to read aloud and to type from a receipt.
const ORDER_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new time-ordered unique id (UUIDv7) for rows.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A human-friendly order number such as `CF-7K3M9QXD` (40 bits of randomness).
pub fn new_order_number() -> String {
    let mut rng = rand::thread_rng();
    let body: String = (0..8)
        .map(|_| ORDER_ALPHABET[rng.gen_range(0..ORDER_ALPHABET.len())] as char)
        .collect();
    format!("CF-{body}")
}

/// Normalises what a buyer typed as an order number: case, spaces, the `CF-` prefix.
pub fn normalise_order_number(input: &str) -> String {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let body = s
        .strip_prefix("CF-")
        .or_else(|| s.strip_prefix("CF"))
        .unwrap_or(&s);
    format!("CF-{}", body.replace(['O'], "0").replace(['I', 'L'], "1"))
}

/// A secret token of 256 random bits, URL-safe.
pub fn new_secret_token() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// What is stored of a secret token: its SHA-256. The token carries 256 bits of entropy, so a
/// fast hash is enough (no password stretching needed).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_readable_and_normalise_back() {
        let n = new_order_number();
        assert!(n.starts_with("CF-") && n.len() == 11);
        assert_eq!(normalise_order_number(&n.to_lowercase()), n);
        assert_eq!(normalise_order_number(" cf 7k3m9qxd"), "CF-7K3M9QXD");
        assert_eq!(normalise_order_number("7K3M9QXD"), "CF-7K3M9QXD");
    }

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = new_secret_token();
        assert_ne!(a, new_secret_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}

//! HMAC-SHA256, the one way the shop derives a value from a secret key: order tokens, CSRF
//! tokens, sealed quotes, webhook signatures, card fingerprints, the console's bindings.
//! Every use starts with its own label, so a value made for one purpose never passes for
//! another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// A MAC keyed with `key`, fed `parts` in order; finish it with `finalize` or `verify_slice`.
pub fn keyed(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts a key of any length (longer ones are hashed first), so this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    for part in parts {
        mac.update(part);
    }
    mac
}

/// The MAC of `parts` under `key`, as lower-case hex (64 characters).
pub fn hex_mac(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(keyed(key, parts).finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_are_fed_in_order_and_labels_separate_purposes() {
        let a = super::hex_mac(b"k", &[b"order-token:", b"x"]);
        assert_eq!(a, super::hex_mac(b"k", &[b"order-token:x"]));
        assert_ne!(a, super::hex_mac(b"k", &[b"csrf:", b"x"]));
        assert_eq!(a.len(), 64);
        // RFC 4231 test case 2.
        assert_eq!(
            super::hex_mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

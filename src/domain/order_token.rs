//! Order access tokens. A token is derived from the order's idempotency key under the shop's
//! secret key: only its hash is stored and looked up, yet the shop can re-create the link for
//! a receipt, a double-submitted confirm form or an order look-up email. Without the secret,
//! neither the database nor the logs open any order.

use super::setting::Secret;

pub fn order_token(key: &Secret, idempotency_key: &str) -> String {
    super::mac::hex_mac(
        key.expose().as_bytes(),
        &[b"order-token:", idempotency_key.as_bytes()],
    )
}

/// Whether a path segment can be a token at all (cheap refusal before any database work).
pub fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn order_url(base_url: &str, key: &Secret, idempotency_key: &str) -> String {
    format!("{base_url}/orders/{}", order_token(key, idempotency_key))
}

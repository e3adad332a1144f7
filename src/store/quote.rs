//! The confirm page carries what the buyer is about to buy as a signed quote, so that
//! `POST /checkout/confirm` creates exactly the order that was shown — the account that was
//! verified included — without trusting anything the browser could change. The price is not
//! in it: it is computed again from the catalog when the order is created.

use crate::config::Secret;
use crate::domain::mac::{keyed, HmacSha256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Quote {
    /// One per confirm page: a double submit creates one order.
    pub idempotency_key: String,
    /// The browser session the confirm page was shown to ([`session_binding`]): the quote
    /// leads to its order from that session only, so a copied quote opens nothing.
    pub session: String,
    pub coins: u64,
    pub currency: String,
    pub tiktok_username: String,
    pub account_id: String,
    pub display_name: String,
    pub email: String,
    pub payment_method: String,
    /// The age the buyer confirmed being at least.
    pub min_age: u32,
    /// The total the confirm page showed, in minor units: if prices change before the buyer
    /// confirms, the order is not created at a price they never saw.
    pub total_minor: i64,
    pub issued_at: i64,
}

fn mac(key: &Secret, body: &str) -> HmacSha256 {
    keyed(key.expose().as_bytes(), &[b"quote:", body.as_bytes()])
}

pub fn seal(key: &Secret, q: &Quote) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(q).expect("quotes serialize"));
    let sig = hex::encode(mac(key, &body).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// What binds a quote to the browser session that received it: a hash of the session's CSRF
/// token (itself an HMAC of the session's cookie), so the quote never carries the token.
pub fn session_binding(csrf_token: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::new()
        .chain_update(b"quote-session:")
        .chain_update(csrf_token.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Whether `q` was issued to the session whose CSRF token is `csrf_token`.
pub fn belongs_to(q: &Quote, csrf_token: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = session_binding(csrf_token);
    !csrf_token.is_empty() && bool::from(expected.as_bytes().ct_eq(q.session.as_bytes()))
}

/// The quote, if it is ours, unaltered and not older than `max_age_ms`.
pub fn open(key: &Secret, sealed: &str, now: i64, max_age_ms: i64) -> Option<Quote> {
    let (body, sig) = sealed.split_once('.')?;
    let sig = hex::decode(sig).ok()?;
    mac(key, body).verify_slice(&sig).ok()?;
    let q: Quote = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    (now - q.issued_at <= max_age_ms && q.issued_at <= now + 60_000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote() -> Quote {
        Quote {
            idempotency_key: "k".into(),
            session: session_binding("t1"),
            coins: 70,
            currency: "USD".into(),
            tiktok_username: "ana".into(),
            account_id: "tt_1".into(),
            display_name: "Ana".into(),
            email: "a@b.co".into(),
            payment_method: "card".into(),
            min_age: 18,
            total_minor: 73,
            issued_at: 1_000,
        }
    }

    #[test]
    fn round_trips_and_refuses_tampering_and_age() {
        let key = Secret::new("k1");
        let sealed = seal(&key, &quote());
        assert_eq!(open(&key, &sealed, 2_000, 10_000), Some(quote()));
        assert_eq!(open(&Secret::new("k2"), &sealed, 2_000, 10_000), None);
        assert_eq!(open(&key, &sealed, 20_000, 10_000), None);
        let mut forged = quote();
        forged.coins = 17_500;
        let forged_body = seal(&Secret::new("other"), &forged);
        let tampered = format!(
            "{}.{}",
            forged_body.split('.').next().unwrap(),
            sealed.split('.').nth(1).unwrap()
        );
        assert_eq!(open(&key, &tampered, 2_000, 10_000), None);
        assert_eq!(open(&key, "garbage", 2_000, 10_000), None);
    }

    #[test]
    fn a_quote_belongs_only_to_the_session_it_was_issued_to() {
        assert!(belongs_to(&quote(), "t1"));
        assert!(!belongs_to(&quote(), "t2"));
        assert!(!belongs_to(&quote(), ""));
    }
}

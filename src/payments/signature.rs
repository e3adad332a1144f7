//! Webhook signatures in the form of Stripe's `Stripe-Signature` header:
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`. Several `v1` values are
//! accepted so keys can be rotated; the timestamp must be within a tolerance; comparison is
//! constant-time. Written for any provider that signs this way.

use super::WebhookError;
use crate::domain::mac::{keyed, HmacSha256};
use hmac::Mac;

pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(key, timestamp, body))
    )
}

/// Stripe's scheme: the MAC of `timestamp.body`.
fn keyed_for(key: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    keyed(key, &[timestamp.to_string().as_bytes(), b".", body])
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    keyed_for(key, timestamp, body)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks `header` against each of `keys` (current and previous, during a rotation).
pub fn verify(
    keys: &[&[u8]],
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MalformedSignature)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => {
                timestamp = Some(
                    v.parse::<i64>()
                        .map_err(|_| WebhookError::MalformedSignature)?,
                )
            }
            // As Stripe's own libraries do: a `v1` that is not hex is skipped, not fatal, so a
            // valid signature beside it still counts.
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok().filter(|s| !s.is_empty())),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature);
    }
    // Checked: a timestamp near i64::MIN or MAX must not wrap into "fresh".
    let fresh = now_secs
        .checked_sub(timestamp)
        .and_then(i64::checked_abs)
        .is_some_and(|age| age <= tolerance_secs);
    if !fresh {
        return Err(WebhookError::Stale);
    }
    for key in keys {
        let expected = keyed_for(key, timestamp, body);
        for sig in &signatures {
            // verify_slice compares in constant time.
            if expected.clone().verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(WebhookError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"whsec_test";

    #[test]
    fn a_fresh_signature_verifies() {
        let h = sign(KEY, 1_700_000_000, b"{}");
        assert_eq!(verify(&[KEY], Some(&h), b"{}", 1_700_000_100, 300), Ok(()));
    }

    #[test]
    fn tampered_body_wrong_key_and_stale_time_are_refused() {
        let h = sign(KEY, 1_700_000_000, b"{}");
        assert_eq!(
            verify(&[KEY], Some(&h), b"{ }", 1_700_000_000, 300),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(&[b"other"], Some(&h), b"{}", 1_700_000_000, 300),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(&[KEY], Some(&h), b"{}", 1_700_000_301, 300),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            verify(&[KEY], Some(&h), b"{}", 1_699_999_699, 300),
            Err(WebhookError::Stale)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in ["", "t=abc,v1=00", "v1=00", "t=1", "t=1,v1=zz", "t=1,v1="] {
            assert_eq!(
                verify(&[KEY], Some(h), b"{}", 1, 300),
                Err(WebhookError::MalformedSignature),
                "{h}"
            );
        }
        assert_eq!(
            verify(&[KEY], None, b"{}", 1, 300),
            Err(WebhookError::MalformedSignature)
        );
    }

    #[test]
    fn a_valid_v1_beside_a_non_hex_v1_verifies() {
        let good = sign(KEY, 100, b"x");
        let sig = good.split_once(",v1=").unwrap().1;
        for h in [
            format!("t=100,v1=not-hex,v1={sig}"),
            format!("t=100,v1={sig},v1=zz"),
            format!("t=100,v0=abc,v1=,v1={sig}"),
        ] {
            assert_eq!(verify(&[KEY], Some(&h), b"x", 100, 300), Ok(()), "{h}");
        }
        assert_eq!(
            verify(&[KEY], Some("t=100,v1=zz,v1=00"), b"x", 100, 300),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale_not_wrapped() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1_000_000_000_000] {
            let h = sign(KEY, t, b"x");
            assert_eq!(
                verify(&[KEY], Some(&h), b"x", 1_700_000_000, 300),
                Err(WebhookError::Stale),
                "t={t}"
            );
        }
    }

    #[test]
    fn any_of_several_signatures_and_keys_may_match_during_rotation() {
        let old = sign(b"old", 100, b"x");
        let new = sign(b"new", 100, b"x");
        let both = format!("{},{}", old, new.split(',').nth(1).unwrap());
        assert_eq!(verify(&[b"new"], Some(&both), b"x", 100, 300), Ok(()));
        assert_eq!(
            verify(&[b"other", b"old"], Some(&old), b"x", 100, 300),
            Ok(())
        );
    }
}

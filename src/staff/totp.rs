//! Two-factor sign-in: TOTP (RFC 6238 over RFC 4226 HOTP: HMAC-SHA-1, 30-second steps,
//! 6 digits), the `otpauth://` URI and its QR code for authenticator apps, and one-time
//! recovery codes. A recovery code carries 80 random bits, under the 112 that would make a
//! fast hash enough (ASVS 6.5.2), so each is stored as an argon2id hash with its own salt
//! (through the bounded hashing pool) of the code's SHA-256 — the form older versions stored
//! bare, which lets those rows be wrapped in argon2id without knowing the codes.

use hmac_sha1::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Codes from one step before or after are accepted too (clock drift, typing time).
pub const WINDOW: i64 = 1;
pub const SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32, ignoring case, spaces and padding. `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase() as u8;
        let v = BASE32.iter().position(|&x| x == c)? as u32;
        buffer = ((buffer << 5) | v) & 0xFFFF;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// HOTP (RFC 4226): HMAC-SHA-1 of the counter, dynamically truncated to `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = (hash[hash.len() - 1] & 0x0f) as usize;
    let binary = (u32::from(hash[offset] & 0x7f) << 24)
        | (u32::from(hash[offset + 1]) << 16)
        | (u32::from(hash[offset + 2]) << 8)
        | u32::from(hash[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The 6-digit code for a Unix time, zero-padded.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    let step = step_at(unix_secs).max(0) as u64;
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

/// The time step a code belongs to, if it is valid within the window around `unix_secs` and
/// newer than `last_step` (a code is never accepted twice). Compares in constant time.
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, last_step: Option<i64>) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        if step < 0 || last_step.is_some_and(|last| step <= last) {
            continue;
        }
        let expected = format!(
            "{:0width$}",
            hotp(secret, step as u64, DIGITS),
            width = DIGITS as usize
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::thread_rng().fill(&mut bytes[..]);
    bytes
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `otpauth://` URI that authenticator apps read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret_base32: &str) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(issuer),
        percent_encode(account),
        percent_encode(issuer)
    )
}

/// The URI as a QR code in an SVG `data:` URL (the pages' CSP allows `data:` images only).
pub fn qr_data_url(uri: &str) -> Option<String> {
    use base64::Engine;
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// Ten fresh recovery codes like `k7m2-9qxd-3hf4-wz8p` (80 random bits each).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..16)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            chars
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The SHA-256 a recovery code is hashed from (and the whole of what older versions stored):
/// lower case, no spaces or dashes, so it is forgiving to type.
pub fn recovery_prehash(code: &str) -> String {
    let clean: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(
        format!("coinfront-recovery:{clean}").as_bytes(),
    ))
}

/// The stored form of a new recovery code: argon2id (own salt) of its SHA-256.
pub async fn hash_recovery_code(
    code: &str,
    params: super::password::HashParams,
) -> anyhow::Result<String> {
    super::hashing::hash(recovery_prehash(code).into_bytes(), params.cost()).await
}

/// Whether a stored recovery code matches what was typed. Rows from before argon2id (a bare
/// SHA-256) are compared as they are until start-up wraps them.
pub async fn recovery_code_matches(typed: &str, stored: &str) -> anyhow::Result<bool> {
    use subtle::ConstantTimeEq;
    let pre = recovery_prehash(typed);
    if stored.starts_with('$') {
        super::hashing::verify(pre.into_bytes(), stored.to_owned()).await
    } else {
        Ok(bool::from(pre.as_bytes().ct_eq(stored.as_bytes())))
    }
}

/// Whether what was typed looks like a recovery code rather than a TOTP code.
pub fn looks_like_recovery_code(input: &str) -> bool {
    input.chars().filter(|c| c.is_ascii_alphanumeric()).count() == 16
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                *want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_totp_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1 column (8 digits), and the 6-digit codes the console uses.
        for (time, want) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, step_at(time) as u64, 8), want, "t={time}");
            assert_eq!(
                code_at(RFC_SECRET, time),
                format!("{:06}", want % 1_000_000),
                "t={time}"
            );
        }
    }

    #[test]
    fn codes_are_accepted_in_the_window_and_only_once() {
        let t = 1_111_111_111;
        let code = code_at(RFC_SECRET, t);
        assert_eq!(verify(RFC_SECRET, &code, t, None), Some(step_at(t)));
        assert_eq!(verify(RFC_SECRET, &code, t + 30, None), Some(step_at(t)));
        assert_eq!(verify(RFC_SECRET, &code, t + 90, None), None);
        assert_eq!(verify(RFC_SECRET, &code, t, Some(step_at(t))), None);
        assert_eq!(verify(RFC_SECRET, "12345", t, None), None);
        assert_eq!(verify(RFC_SECRET, "abcdef", t, None), None);
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb oi======").unwrap(), b"foobar");
        for _ in 0..20 {
            let s = new_secret();
            assert_eq!(base32_decode(&base32_encode(&s)).unwrap(), s);
        }
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn otpauth_uri_and_qr() {
        let uri = otpauth_uri("coinfront", "ana@example.com", "MZXW6YTBOI");
        assert_eq!(
            uri,
            "otpauth://totp/coinfront:ana%40example.com?secret=MZXW6YTBOI&issuer=coinfront&algorithm=SHA1&digits=6&period=30"
        );
        assert!(qr_data_url(&uri)
            .unwrap()
            .starts_with("data:image/svg+xml;base64,"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_to_type() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert!(looks_like_recovery_code(c));
        assert_eq!(
            recovery_prehash(c),
            recovery_prehash(&c.to_uppercase().replace('-', " "))
        );
    }
}

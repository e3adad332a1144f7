//! Staff passwords: the policy (at least 12 characters, not a common password, no composition
//! rules) and argon2id hashing in PHC form, through the bounded hashing pool (`hashing`): on a
//! blocking thread so the async workers keep serving, a few at a time, in reused memory.

use super::hashing::{self, Cost};
use crate::config::{ConsoleSettings, Secret};
use argon2::password_hash::PasswordHash;
use argon2::Params;
use std::collections::HashSet;
use std::sync::LazyLock;
use tokio::sync::Mutex;

pub const MIN_CHARS: usize = 12;
/// Long enough for any passphrase; short enough that hashing cannot be abused.
pub const MAX_CHARS: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Use at least {MIN_CHARS} characters. A few unrelated words make a good password.")]
    TooShort,
    #[error("Use at most {MAX_CHARS} characters.")]
    TooLong,
    #[error("That password is on the list of common passwords that attackers try first. Choose another one.")]
    Common,
    #[error("Don't use your email address in your password.")]
    ContainsEmail,
    #[error("The two passwords are not the same.")]
    Mismatch,
}

/// Checks a new password. Length counts characters, not bytes; nothing else is demanded.
/// A new password as typed twice on a form: the same both times, then `check_policy`.
pub fn check_new(password: &str, again: &str, email: &str) -> Result<(), PolicyError> {
    if password != again {
        return Err(PolicyError::Mismatch);
    }
    check_policy(password, email)
}

pub fn check_policy(password: &str, email: &str) -> Result<(), PolicyError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PolicyError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PolicyError::TooLong);
    }
    if is_common(password) {
        return Err(PolicyError::Common);
    }
    let lower = password.to_lowercase();
    let local = email.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 4 && lower.contains(&local) {
        return Err(PolicyError::ContainsEmail);
    }
    Ok(())
}

/// On the bundled list, a listed password wrapped in digits or symbols, or a short pattern
/// repeated ("abcabcabcabc", "121212121212").
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return true;
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if core.chars().count() >= 3 && COMMON.contains(core) {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    let repeats = (1..=4)
        .any(|n| chars.len() > n && chars.iter().enumerate().all(|(i, c)| *c == chars[i % n]));
    let digits: Vec<u32> = chars.iter().filter_map(|c| c.to_digit(10)).collect();
    let counting = digits.len() == chars.len()
        && digits
            .windows(2)
            .all(|w| w[1] == (w[0] + 1) % 10 || w[0] == (w[1] + 1) % 10);
    repeats || counting
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    pub fn from_settings(s: &ConsoleSettings) -> Self {
        HashParams {
            memory_kib: s.argon2_memory_kib,
            iterations: s.argon2_iterations,
            parallelism: s.argon2_parallelism,
        }
    }

    pub fn cost(self) -> Cost {
        Cost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams::from_settings(&ConsoleSettings::default())
    }
}

/// Hashes a password (argon2id, PHC string) in the bounded hashing pool.
#[tracing::instrument(skip_all)]
pub async fn hash(password: Secret, params: HashParams) -> anyhow::Result<String> {
    hashing::hash(password.expose().as_bytes().to_vec(), params.cost()).await
}

/// Whether a stored hash is weaker than `params` (or not argon2id v19 at all).
pub fn needs_rehash(stored: &str, params: HashParams) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => {
            p.m_cost() < params.memory_kib
                || p.t_cost() < params.iterations
                || p.p_cost() < params.parallelism
        }
        Err(_) => true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The password was right and its hash should be upgraded to the current parameters.
    pub needs_rehash: bool,
}

/// A hash of nothing anyone knows, under the current parameters: unknown emails are checked
/// against it so that they take as long as wrong passwords (the same pool, the same work).
static DUMMY: Mutex<Option<(HashParams, String)>> = Mutex::const_new(None);

async fn dummy_hash(params: HashParams) -> anyhow::Result<String> {
    let mut guard = DUMMY.lock().await;
    if let Some((p, h)) = guard.as_ref() {
        if *p == params {
            return Ok(h.clone());
        }
    }
    let fresh = hash(Secret::new(crate::domain::ids::new_secret_token()), params).await?;
    *guard = Some((params, fresh.clone()));
    Ok(fresh)
}

/// Computes the dummy hash ahead of the first sign-in (at start-up).
pub async fn warm_up(params: HashParams) -> anyhow::Result<()> {
    dummy_hash(params).await.map(|_| ())
}

/// Checks a password against a stored hash — or, for an unknown account (`None`), against the
/// dummy hash, taking the same time and always failing.
#[tracing::instrument(skip_all)]
pub async fn verify(
    password: Secret,
    stored: Option<String>,
    params: HashParams,
) -> anyhow::Result<Verified> {
    let known = stored.is_some();
    let phc = match stored {
        Some(h) => h,
        None => dummy_hash(params).await?,
    };
    // The parameters come from the stored hash itself.
    let ok = hashing::verify(password.expose().as_bytes().to_vec(), phc.clone()).await? && known;
    Ok(Verified {
        ok,
        needs_rehash: ok && needs_rehash(&phc, params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters() {
        assert_eq!(check_policy("short", "a@b.c"), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy("elevenchars", "a@b.c"),
            Err(PolicyError::TooShort)
        );
        assert!(check_policy("twelve chars", "a@b.c").is_ok());
        // 12 characters, more bytes: fine.
        assert!(check_policy("ñandú cóndor", "a@b.c").is_ok());
        assert_eq!(
            check_policy(&"x1y2".repeat(40), "a@b.c"),
            Err(PolicyError::TooLong)
        );
    }

    #[test]
    fn common_passwords_are_refused_in_any_dress() {
        for p in [
            "password1234",
            "Password1234",
            "PASSWORD2024!",
            "qwertyuiop12",
            "123456789012",
            "1234567890123",
            "!!monkey2024!!",
            "aaaaaaaaaaaa",
            "abcabcabcabc",
            "121212121212",
            "correcthorsebatterystaple",
            "Summer2025!!",
        ] {
            assert_eq!(check_policy(p, "a@b.c"), Err(PolicyError::Common), "{p}");
        }
    }

    #[test]
    fn no_composition_rules() {
        for p in [
            "plain lowercase words here",
            "tangerine elephant violin",
            "1 lamp 2 chairs 3 clocks",
        ] {
            assert!(check_policy(p, "agent@example.com").is_ok(), "{p}");
        }
    }

    #[test]
    fn the_email_is_not_a_password() {
        assert_eq!(
            check_policy("marguerite-is-here", "marguerite@example.com"),
            Err(PolicyError::ContainsEmail)
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_with_the_minimum_cost() {
        let params = HashParams::default();
        let h = hash(Secret::new("tangerine elephant violin"), params)
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!needs_rehash(&h, params));
        let stronger = HashParams {
            iterations: 3,
            ..params
        };
        assert!(needs_rehash(&h, stronger));
        assert!(needs_rehash("not a hash", params));
    }

    #[tokio::test]
    async fn verify_accepts_the_password_and_nothing_else() {
        let params = HashParams::default();
        let h = hash(Secret::new("tangerine elephant violin"), params)
            .await
            .unwrap();
        let good = verify(
            Secret::new("tangerine elephant violin"),
            Some(h.clone()),
            params,
        )
        .await
        .unwrap();
        assert!(good.ok && !good.needs_rehash);
        let bad = verify(Secret::new("tangerine elephant viola"), Some(h), params)
            .await
            .unwrap();
        assert!(!bad.ok);
        let unknown = verify(Secret::new("anything at all here"), None, params)
            .await
            .unwrap();
        assert!(!unknown.ok);
    }
}

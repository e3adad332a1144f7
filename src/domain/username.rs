//! TikTok usernames, by TikTok's own rules.

use std::fmt;

/// A well-formed TikTok username, stored without the leading `@`, in lower case
/// (TikTok usernames are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TikTokUsername(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("Enter the TikTok username of the account to top up.")]
    Empty,
    #[error("A TikTok username has 2 to 24 characters.")]
    Length,
    #[error("A TikTok username has only letters, numbers, underscores and periods.")]
    Characters,
    #[error("A TikTok username cannot end with a period.")]
    TrailingPeriod,
}

impl TikTokUsername {
    /// Accepts `name`, `@name` or a pasted profile link such as
    /// `https://www.tiktok.com/@name?lang=en`.
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let mut s = input.trim();
        if let Some(at) = s.find("tiktok.com/@") {
            s = &s[at + "tiktok.com/@".len()..];
            s = s.split(['/', '?', '#']).next().unwrap_or("");
        }
        let s = s.strip_prefix('@').unwrap_or(s);
        if s.is_empty() {
            return Err(UsernameError::Empty);
        }
        let len = s.chars().count();
        if !(2..=24).contains(&len) {
            return Err(UsernameError::Length);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(UsernameError::Characters);
        }
        if s.ends_with('.') {
            return Err(UsernameError::TrailingPeriod);
        }
        Ok(TikTokUsername(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TikTokUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_at_sign_case_and_profile_links() {
        for input in [
            "charli",
            "@charli",
            " @Charli ",
            "https://www.tiktok.com/@charli",
            "https://www.tiktok.com/@charli?lang=en",
            "tiktok.com/@charli/video/123",
        ] {
            assert_eq!(
                TikTokUsername::parse(input).unwrap().as_str(),
                "charli",
                "{input}"
            );
        }
    }

    #[test]
    fn applies_tiktoks_rules() {
        assert_eq!(TikTokUsername::parse(""), Err(UsernameError::Empty));
        assert_eq!(TikTokUsername::parse("@"), Err(UsernameError::Empty));
        assert_eq!(TikTokUsername::parse("a"), Err(UsernameError::Length));
        assert_eq!(
            TikTokUsername::parse(&"a".repeat(25)),
            Err(UsernameError::Length)
        );
        assert!(TikTokUsername::parse(&"a".repeat(24)).is_ok());
        assert!(TikTokUsername::parse("ab").is_ok());
        assert_eq!(
            TikTokUsername::parse("bad-name"),
            Err(UsernameError::Characters)
        );
        assert_eq!(
            TikTokUsername::parse("名前です"),
            Err(UsernameError::Characters)
        );
        assert_eq!(
            TikTokUsername::parse("name."),
            Err(UsernameError::TrailingPeriod)
        );
        assert!(TikTokUsername::parse("first.last_1").is_ok());
    }

    proptest! {
        #[test]
        fn never_panics_and_output_is_reparseable(s in "\\PC{0,40}") {
            if let Ok(u) = TikTokUsername::parse(&s) {
                prop_assert_eq!(TikTokUsername::parse(u.as_str()).unwrap(), u);
            }
        }
    }
}

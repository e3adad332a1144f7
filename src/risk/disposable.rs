//! Disposable (throwaway) email domains, from a bundled list.

const LIST: &str = include_str!("disposable_domains.txt");

pub fn is_disposable(domain: &str) -> bool {
    let domain = domain.trim().to_ascii_lowercase();
    LIST.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // A subdomain of a listed domain counts too (x.mailinator.com).
        .any(|listed| {
            domain == listed
                || domain
                    .strip_suffix(listed)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use super::is_disposable;

    #[test]
    fn knows_common_throwaway_domains() {
        assert!(is_disposable("mailinator.com"));
        assert!(is_disposable("MAILINATOR.com"));
        assert!(is_disposable("eu.mailinator.com"));
        assert!(!is_disposable("gmail.com"));
        assert!(!is_disposable("notmailinator.com"));
    }
}

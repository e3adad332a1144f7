//! Free text typed into a form (support messages, refund messages, agent notes, list reasons),
//! normalised once, before it is checked: what is validated is what is stored and shown.

/// Whether a character shows nothing by itself: a control character, or one of Unicode's
/// invisible format characters (bidirectional overrides such as U+202E, zero-width spaces and
/// joiners, the byte-order mark U+FEFF, soft hyphens, tag characters, fillers).
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Normalises free text: line breaks become `\n` (or a space when `multiline` is false), tabs
/// stay only in multi-line text, every other invisible character is removed, and whitespace is
/// trimmed from both ends. Check emptiness and length on the result.
pub fn normalise(input: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(if multiline { '\n' } else { ' ' });
            }
            '\n' | '\u{2028}' | '\u{2029}' | '\u{0085}' => {
                out.push(if multiline { '\n' } else { ' ' })
            }
            '\t' => out.push(if multiline { '\t' } else { ' ' }),
            c if is_invisible(c) => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// [`normalise`], then at most `max` characters (for fields that are cut rather than refused).
pub fn normalise_at_most(input: &str, multiline: bool, max: usize) -> String {
    let text = normalise(input, multiline);
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].trim_end().to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invisible_only_text_is_empty() {
        for s in [
            "\u{202E}",
            "\u{FEFF}",
            " \u{200B}\u{200D} ",
            "\u{7}\u{1b}[2J",
            "\u{E0041}\u{E0042}",
            "\r\n\t",
            "\u{3164}\u{2800}",
        ] {
            let n = normalise(s, true);
            assert!(n.is_empty() || n == "[2J", "{s:?} -> {n:?}");
        }
        assert_eq!(normalise("\u{202E}", true), "");
    }

    #[test]
    fn text_keeps_its_lines_and_loses_the_rest() {
        assert_eq!(
            normalise("  Hi\r\nthere\u{202E}!\u{7} ", true),
            "Hi\nthere!"
        );
        assert_eq!(normalise("a\r\nb\tc", false), "a b c");
        assert_eq!(normalise_at_most("abcdef", true, 3), "abc");
        assert_eq!(normalise_at_most("ab  cd", true, 3), "ab");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        #[test]
        fn normalised_text_has_no_invisible_or_outer_space(s in "\\PC{0,40}|[\\x00-\\x20\u{200B}-\u{200F}\u{202A}-\u{202E}\u{FEFF}a]{0,20}", multiline in any::<bool>()) {
            let n = normalise(&s, multiline);
            prop_assert!(!n.chars().any(|c| is_invisible(c) && c != '\n' && c != '\t'));
            prop_assert_eq!(n.trim(), n.as_str());
            prop_assert_eq!(normalise(&n, multiline), n.clone());
            if !multiline {
                prop_assert!(!n.contains('\n') && !n.contains('\t'));
            }
        }
    }
}

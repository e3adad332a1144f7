//! Email bodies from the askama templates under `templates/email/`: a plain-text and an HTML
//! version of every email (`.html` templates escape what they show; `.txt` ones do not).

use super::kinds::{Email, Facts};
use askama::Template;

#[derive(Template)]
#[template(path = "email/message.txt")]
struct TextBody<'a> {
    email: &'a Email,
    f: &'a Facts,
}

#[derive(Template)]
#[template(path = "email/message.html")]
struct HtmlBody<'a> {
    email: &'a Email,
    f: &'a Facts,
    subject: &'a str,
}

/// An email ready to be stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn render(email: &Email, facts: &Facts) -> Result<Rendered, askama::Error> {
    let subject = header_text(&email.subject(facts));
    let text = tidy(&TextBody { email, f: facts }.render()?);
    let html = HtmlBody {
        email,
        f: facts,
        subject: &subject,
    }
    .render()?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

/// Text fit for one header line: control characters (CR and LF above all, which could start a
/// new header) become spaces, runs of spaces collapse, and the length is bounded. lettre
/// encodes such characters too; this keeps them out of the stored subject in the first place.
pub fn header_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
        if out.chars().count() >= 200 {
            break;
        }
    }
    out.trim_end().to_owned()
}

/// Template tags leave stray blank lines and trailing spaces in plain text: keep at most one
/// blank line in a row and none at either end.
pub(crate) fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            shop_name: "coinfront".into(),
            order_number: "CF-7K3M9QXD".into(),
            coins: "1,400".into(),
            username: "ana_buyer".into(),
            amount: "US$14.28".into(),
            method: "Visa •••• 4242".into(),
            placed: "2026-11-24 16:10 UTC".into(),
            at: "2026-11-24 16:12 UTC".into(),
            order_url: "https://shop.example/orders/abc123".into(),
            support_address: "help@shop.example".into(),
        }
    }

    fn all_kinds() -> Vec<Email> {
        vec![
            Email::PaymentReceived,
            Email::Delivered,
            Email::HeldForReview,
            Email::CancelledRefunded {
                amount: "US$14.28".into(),
                reason: "We could not deliver the coins.".into(),
            },
            Email::OrderLink,
            Email::RefundRequested,
            Email::RefundDenied {
                message: "The coins were delivered and spent.".into(),
            },
            Email::RefundCompleted {
                amount: "US$5.00".into(),
            },
            Email::SupportReply {
                message: "Thanks for writing.\nThe coins are in your account.".into(),
            },
        ]
    }

    #[test]
    fn every_kind_renders_both_parts_with_the_order_link() {
        for email in all_kinds() {
            let r = render(&email, &facts()).unwrap();
            assert!(
                r.subject.contains("CF-7K3M9QXD"),
                "{}: {}",
                email.kind(),
                r.subject
            );
            for body in [&r.text, &r.html] {
                assert!(
                    body.contains("https://shop.example/orders/abc123"),
                    "{}: order link in {body}",
                    email.kind()
                );
                assert!(body.contains("CF-7K3M9QXD"));
            }
            assert!(r.html.starts_with("<!doctype html>"));
            assert!(
                r.text.starts_with("Hello,\n"),
                "{}: {}",
                email.kind(),
                r.text
            );
            assert!(!r.text.contains("\n\n\n"), "tidy text: {}", r.text);
            assert!(!r.text.contains("{{") && !r.html.contains("{%"));
        }
    }

    #[test]
    fn the_receipt_has_every_fact() {
        let r = render(&Email::Delivered, &facts()).unwrap();
        assert_eq!(
            r.subject,
            "Your receipt: 1,400 coins delivered to @ana_buyer (CF-7K3M9QXD)"
        );
        for body in [&r.text, &r.html] {
            for fact in [
                "CF-7K3M9QXD",
                "1,400",
                "@ana_buyer",
                "US$14.28",
                "Visa •••• 4242",
                "2026-11-24 16:10 UTC",
                "2026-11-24 16:12 UTC",
                "refund",
            ] {
                assert!(body.contains(fact), "receipt shows {fact}: {body}");
            }
        }
        assert!(r.text.contains("Delivered:       2026-11-24 16:12 UTC"));
    }

    #[test]
    fn held_for_review_says_nothing_about_fraud() {
        let r = render(&Email::HeldForReview, &facts()).unwrap();
        for body in [&r.text, &r.html, &r.subject] {
            let lower = body.to_lowercase();
            for word in ["fraud", "risk", "suspicious", "blocked", "score"] {
                assert!(!lower.contains(word), "{word} in {body}");
            }
        }
        assert!(r.text.contains("routine check"));
    }

    #[test]
    fn kind_specific_text_is_shown() {
        let r = render(
            &Email::CancelledRefunded {
                amount: "€3.00".into(),
                reason: "The TikTok account changed hands.".into(),
            },
            &facts(),
        )
        .unwrap();
        assert!(r.subject.contains("€3.00"));
        assert!(r.text.contains("The TikTok account changed hands."));
        assert!(r.html.contains("<strong>€3.00</strong>"));
    }

    #[test]
    fn html_escapes_and_text_does_not() {
        let mut f = facts();
        f.username = "<script>alert(1)</script>".into();
        let email = Email::RefundDenied {
            message: "Tom & Jerry said \"no\" <b>".into(),
        };
        let r = render(&email, &f).unwrap();
        assert!(!r.html.contains("<script>"), "escaped: {}", r.html);
        // askama writes numeric character references.
        assert!(r.html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(r
            .html
            .contains("Tom &#38; Jerry said &#34;no&#34; &#60;b&#62;"));
        assert!(!r.html.contains("<b>"));
        assert!(r.text.contains("<script>alert(1)</script>"));
        assert!(r.text.contains("Tom & Jerry said \"no\" <b>"));
    }

    #[test]
    fn multi_line_messages_keep_their_lines_and_stay_escaped() {
        let email = Email::SupportReply {
            message: "Line one <b>\nLine two & more".into(),
        };
        let r = render(&email, &facts()).unwrap();
        assert!(r.text.contains("Line one <b>\nLine two & more"));
        assert!(
            r.html
                .contains("Line one &#60;b&#62;<br/>Line two &#38; more"),
            "{}",
            r.html
        );
    }

    #[test]
    fn subjects_cannot_carry_line_breaks() {
        let mut f = facts();
        f.username = "x\r\nBcc: victim@example.com\r\n".into();
        let r = render(&Email::Delivered, &f).unwrap();
        assert!(!r.subject.contains('\r') && !r.subject.contains('\n'));
        assert_eq!(
            header_text("a\r\n\tb  \u{0}c\u{7f}"),
            "a b c",
            "controls become single spaces"
        );
        assert_eq!(header_text(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn tidy_keeps_single_blank_lines() {
        assert_eq!(tidy("\n\n a  \n\n\n\nb\n \n"), " a\n\nb\n");
    }
}

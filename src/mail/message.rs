//! Turning an outbox row into a MIME message with lettre's typed builders. Everything in it
//! comes from the row (rendered once) and the configured sender, so building it twice gives
//! the same bytes: same Date, same Message-ID, same multipart boundary.

use super::render::header_text;
use crate::db::emails::StoredEmail;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("the recipient address is not valid: {0}")]
    Recipient(#[from] lettre::address::AddressError),
    #[error("the message cannot be built: {0}")]
    Build(#[from] lettre::error::Error),
}

pub fn build(
    email: &StoredEmail,
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
) -> Result<Message, MessageError> {
    // Address parsing refuses anything but an address (no CR/LF, no second mailbox), so a To
    // value can never add a header or a recipient.
    let to: Address = email.to_address.parse()?;
    let mut builder = Message::builder()
        .message_id(Some(header_text(&email.message_id)))
        .date(UNIX_EPOCH + Duration::from_millis(email.created_at.max(0) as u64))
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(header_text(&email.subject));
    if let Some(reply_to) = reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    let body = MultiPart::alternative()
        .boundary(boundary(&email.id))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.text_body.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(email.html_body.clone()),
        );
    Ok(builder.multipart(body)?)
}

/// A boundary fixed per email (lettre would pick a random one per build). Letters and digits
/// only: lettre parses the header it makes from it and would panic on anything else.
fn boundary(email_id: &str) -> String {
    let id: String = email_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("coinfront{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredEmail {
        StoredEmail {
            id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            order_id: Some("o1".into()),
            kind: "delivered".into(),
            to_address: "ana@example.com".into(),
            subject: "Your receipt: 700 coins delivered to @ana_buyer (CF-7K3M9QXD)".into(),
            text_body: "Hello,\n\nYour coins — all 700 of them — have arrived.\n".into(),
            html_body: "<p>Your coins &mdash; all 700 &#8212; have arrived.</p>\n".into(),
            message_id: "<0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@shop.example>".into(),
            created_at: 1_795_000_000_000,
            sent_at: None,
            attempts: 0,
            body_deleted_at: None,
        }
    }

    fn from() -> Mailbox {
        "Coin Shop <shop@shop.example>".parse().unwrap()
    }

    fn text(m: &Message) -> String {
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn headers_and_parts() {
        let reply: Mailbox = "help@shop.example".parse().unwrap();
        let m = text(&build(&stored(), &from(), Some(&reply)).unwrap());
        let head = &m[..m.find("\r\n\r\n").unwrap()];
        for line in [
            "From: \"Coin Shop\" <shop@shop.example>",
            "Reply-To: help@shop.example",
            "To: ana@example.com",
            "Subject: Your receipt: 700 coins delivered to @ana_buyer (CF-7K3M9QXD)",
            "Message-ID: <0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@shop.example>",
            "MIME-Version: 1.0",
        ] {
            assert!(head.contains(line), "{line} in\n{head}");
        }
        assert!(head.contains("Date: "));
        assert!(
            head.contains("multipart/alternative;"),
            "multipart/alternative in\n{head}"
        );
        assert!(m.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(m.contains("Content-Type: text/html; charset=utf-8"));
        let plain_at = m.find("text/plain").unwrap();
        let html_at = m.find("text/html").unwrap();
        assert!(plain_at < html_at, "plain first, the richest part last");
    }

    #[test]
    fn building_twice_gives_the_same_bytes() {
        let a = build(&stored(), &from(), None).unwrap().formatted();
        let b = build(&stored(), &from(), None).unwrap().formatted();
        assert_eq!(a, b);
        assert!(String::from_utf8(a)
            .unwrap()
            .contains("Date: Wed, 18 Nov 2026"));
    }

    #[test]
    fn a_recipient_with_a_line_break_is_refused() {
        for to in [
            "ana@example.com\r\nBcc: victim@example.com",
            "ana@example.com\nBcc: victim@example.com",
            "ana@example.com, victim@example.com",
            "Ana <ana@example.com>",
        ] {
            let mut e = stored();
            e.to_address = to.into();
            assert!(
                matches!(build(&e, &from(), None), Err(MessageError::Recipient(_))),
                "{to:?} refused"
            );
        }
    }

    #[test]
    fn a_subject_cannot_add_a_header() {
        let mut e = stored();
        e.subject = "Order CF-1 for @x\r\nBcc: victim@example.com\r\nX-Evil: 1".into();
        let m = text(&build(&e, &from(), None).unwrap());
        let head = &m[..m.find("\r\n\r\n").unwrap()];
        for line in head.split("\r\n") {
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("X-Evil:"),
                "no injected header line: {line:?}"
            );
        }
        assert!(head.contains("Subject: Order CF-1 for @x Bcc: victim@example.com X-Evil: 1"));
    }
}

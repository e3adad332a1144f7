//! The configured sender: transport, From and Reply-To. Built once at start-up, where a bad
//! address stops the shop with the key that holds it.

use super::message::{self, MessageError};
use super::transport::{SendError, Transport};
use crate::config::{parse_mailbox, ConfigError, Settings};
use crate::db::emails::StoredEmail;
use lettre::message::Mailbox;
use lettre::Message;

#[derive(Debug, Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> Result<Mailer, ConfigError> {
        let mail = &settings.mail;
        let from = parse_mailbox("mail.from", &mail.from)?;
        let reply_to = mail
            .reply_to
            .as_deref()
            .map(|r| parse_mailbox("mail.reply_to", r))
            .transpose()?;
        let transport = Transport::from_settings(mail, settings.outbox_dir())?;
        Ok(Mailer {
            transport,
            from,
            reply_to,
        })
    }

    /// The Message-ID of the email with this outbox id: `<{id}@{the From address's domain}>`,
    /// unique and the same for every resend.
    pub fn message_id_for(&self, email_id: &str) -> String {
        format!("<{email_id}@{}>", self.from.email.domain())
    }

    /// Where buyers write to: the Reply-To address, or From when there is none.
    pub fn support_address(&self) -> String {
        self.reply_to
            .as_ref()
            .unwrap_or(&self.from)
            .email
            .to_string()
    }

    pub fn message(&self, email: &StoredEmail) -> Result<Message, MessageError> {
        message::build(email, &self.from, self.reply_to.as_ref())
    }

    pub async fn deliver(&self, email_id: &str, message: &Message) -> Result<(), SendError> {
        self.transport.send(email_id, message).await
    }

    /// Removes what the transport kept of a sent email (the file outbox's `.eml`), when its
    /// buyer's data is erased.
    pub async fn forget(&self, email_id: &str) {
        self.transport.forget(email_id).await
    }
}

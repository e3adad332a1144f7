//! The `send_email` job: delivers one outbox row. Idempotent: an email already sent is done,
//! and a resend after a crash between sending and recording it carries the same Message-ID
//! (and, with the file transport, overwrites the same file).

use super::kinds::ORDER_LINK_SLOT;
use super::Mailer;
use crate::clock::SharedClock;
use crate::config::Secret;
use crate::db::emails::{self, StoredEmail};
use crate::db::Db;
use crate::domain::order_token as tokens;
use crate::jobs::{JobError, Run};
use lettre::Message;

/// What sending needs (`Services::mail_context` makes one).
pub struct Context<'a> {
    pub db: &'a Db,
    pub clock: &'a SharedClock,
    pub mailer: &'a Mailer,
    /// Where order links point, without a trailing slash.
    pub base_url: &'a str,
    /// The key order links are derived with.
    pub link_key: &'a Secret,
}

impl Context<'_> {
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Sends the email unless it was sent already. Run as a job (`run`), the sent mark and the
/// job's completion are one commit.
#[tracing::instrument(name = "send_email", skip(state, run))]
pub async fn send(
    state: &Context<'_>,
    email_id: &str,
    run: Option<&Run<'_>>,
) -> Result<(), JobError> {
    let pool = state.db.pool();
    let email = emails::load(pool, email_id)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("no email {email_id}")))?;
    if email.sent_at.is_some() {
        return Ok(());
    }
    if email.body_deleted_at.is_some() || crate::db::erasure::is_erased(&email.to_address) {
        // Marked given up, so nothing revives it.
        let error = "the buyer's data or the email's body was deleted: nothing to send";
        emails::record_failure(pool, &email.id, error, true, state.now_ms()).await?;
        return Err(JobError::Permanent(error.into()));
    }
    let message = match prepare(state, email.clone()).await {
        Ok(m) => m,
        Err(Unprepared::Database(e)) => return Err(e.into()),
        Err(Unprepared::Unsendable(error)) => {
            // The row itself is unusable (a recipient the mail library refuses, an order that
            // is gone): retrying cannot help, and the email is marked so nothing revives it.
            emails::record_failure(pool, &email.id, &error, true, state.now_ms()).await?;
            return Err(JobError::Permanent(error));
        }
    };
    match state.mailer.deliver(&email.id, &message).await {
        Ok(()) => {
            let now = state.now_ms();
            match run {
                Some(run) => {
                    let mut tx = state.db.begin().await?;
                    emails::mark_sent(&mut tx, &email.id, now).await?;
                    run.commit(tx, now).await?;
                }
                None => emails::mark_sent(&mut *pool.acquire().await?, &email.id, now).await?,
            }
            tracing::info!(kind = %email.kind, "email sent");
            Ok(())
        }
        Err(e) => {
            let error = e.to_string();
            emails::record_failure(pool, &email.id, &error, false, state.now_ms()).await?;
            Err(JobError::Retry(error))
        }
    }
}

/// Why an email could not be made into a message.
enum Unprepared {
    /// Worth a retry.
    Database(sqlx::Error),
    /// The email can never be sent.
    Unsendable(String),
}

impl From<sqlx::Error> for Unprepared {
    fn from(e: sqlx::Error) -> Self {
        Unprepared::Database(e)
    }
}

/// The message to send: the stored email with its order link filled in.
async fn prepare(state: &Context<'_>, mut email: StoredEmail) -> Result<Message, Unprepared> {
    if email.text_body.contains(ORDER_LINK_SLOT) || email.html_body.contains(ORDER_LINK_SLOT) {
        let Some(order_id) = email.order_id.as_deref() else {
            return Err(Unprepared::Unsendable(
                "an order link in an email without an order".into(),
            ));
        };
        let Some(order) = crate::db::orders::by_id(state.db.pool(), order_id).await? else {
            return Err(Unprepared::Unsendable(format!(
                "order {order_id} does not exist"
            )));
        };
        let url = tokens::order_url(state.base_url, state.link_key, &order.idempotency_key);
        email.text_body = email.text_body.replace(ORDER_LINK_SLOT, &url);
        email.html_body = email.html_body.replace(ORDER_LINK_SLOT, &escape_html(&url));
    }
    state
        .mailer
        .message(&email)
        .map_err(|e| Unprepared::Unsendable(e.to_string()))
}

/// The link goes into `href` attributes and text of the already-escaped HTML body.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_are_escaped_for_html() {
        assert_eq!(
            super::escape_html("https://a.example/x?a=1&b=\"2\"<'>"),
            "https://a.example/x?a=1&amp;b=&quot;2&quot;&lt;&#39;&gt;"
        );
    }
}

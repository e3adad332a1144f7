//! The `send_email` job: delivers one outbox row. Idempotent: an email already sent is done,
//! and a resend after a crash between sending and recording it carries the same Message-ID
//! (and, with the file transport, overwrites the same file).

use super::kinds::ORDER_LINK_SLOT;
use super::outbox::{self, StoredEmail};
use crate::orders::tokens;
use crate::startup::AppState;
use crate::workers::JobError;
use lettre::Message;

pub async fn run(state: &AppState, payload: &serde_json::Value) -> Result<(), JobError> {
    let email_id = payload["email_id"]
        .as_str()
        .ok_or_else(|| JobError::Permanent("send_email job without an email_id".into()))?;
    send(state, email_id).await
}

/// Sends the email unless it was sent already.
#[tracing::instrument(name = "send_email", skip(state))]
pub async fn send(state: &AppState, email_id: &str) -> Result<(), JobError> {
    let pool = state.db.pool();
    let email = outbox::load(pool, email_id)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("no email {email_id}")))?;
    if email.sent_at.is_some() {
        return Ok(());
    }
    let message = match prepare(state, email.clone()).await? {
        Ok(m) => m,
        Err(error) => {
            // The row itself is unusable (a recipient the mail library refuses, an order that
            // is gone): retrying cannot help, and the email is marked so nothing revives it.
            outbox::record_failure(pool, &email.id, &error, true, state.now_ms()).await?;
            return Err(JobError::Permanent(error));
        }
    };
    match state.mailer.deliver(&email.id, &message).await {
        Ok(()) => {
            outbox::mark_sent(pool, &email.id, state.now_ms()).await?;
            tracing::info!(kind = %email.kind, "email sent");
            Ok(())
        }
        Err(e) => {
            let error = e.to_string();
            outbox::record_failure(pool, &email.id, &error, false, state.now_ms()).await?;
            Err(JobError::Retry(error))
        }
    }
}

/// The message to send: the stored email with its order link filled in. The outer error is
/// the database's (worth a retry); the inner one says the email can never be sent.
async fn prepare(
    state: &AppState,
    mut email: StoredEmail,
) -> Result<Result<Message, String>, sqlx::Error> {
    if email.text_body.contains(ORDER_LINK_SLOT) || email.html_body.contains(ORDER_LINK_SLOT) {
        let Some(order_id) = email.order_id.as_deref() else {
            return Ok(Err("an order link in an email without an order".into()));
        };
        let Some(order) = crate::db::orders::by_id(state.db.pool(), order_id).await? else {
            return Ok(Err(format!("order {order_id} does not exist")));
        };
        let url = tokens::order_url(
            &state.base_url,
            &state.secrets.cookie_key,
            &order.idempotency_key,
        );
        email.text_body = email.text_body.replace(ORDER_LINK_SLOT, &url);
        email.html_body = email.html_body.replace(ORDER_LINK_SLOT, &escape_html(&url));
    }
    Ok(state.mailer.message(&email).map_err(|e| e.to_string()))
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

//! The `send_email` job: delivers one outbox row. Idempotent: an email already sent is done,
//! and a resend after a crash between sending and recording it carries the same Message-ID
//! (and, with the file transport, overwrites the same file).

use super::outbox;
use crate::startup::AppState;
use crate::workers::JobError;

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
    let message = match state.mailer.message(&email) {
        Ok(m) => m,
        Err(e) => {
            // The row itself is unusable (a recipient the mail library refuses): retrying
            // cannot help, and the email is marked so that nothing revives it.
            let error = e.to_string();
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

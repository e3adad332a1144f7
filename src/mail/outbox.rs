//! The outbox: an email is rendered and written to the `emails` table (`db::emails`), together
//! with the job that sends it, in the transaction of the event that causes it. Nothing is sent from inside a
//! transaction, and nothing is lost when the mail server is down: the row waits.

use super::kinds::{Email, Facts};
use super::render::{render, Rendered};
use super::Mailer;
use crate::clock::Millis;
use crate::db::emails;
use crate::jobs::{self, Job, NewJob};
use sqlx::{AnyConnection, AnyPool};

/// How long an order-link email stands for repeated look-ups of the same order: asking again
/// within the same window sends nothing new (a throttle on mail to one address).
pub const ORDER_LINK_WINDOW_MS: i64 = 10 * 60 * 1000;

/// A dead send job of an unsent email is tried again after this long (the queue's retries
/// span minutes; a mail server can be down for longer).
pub const REVIVE_AFTER_MS: i64 = 15 * 60 * 1000;

/// An email to write to the outbox.
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub order_id: Option<String>,
    /// Normally `"{order_id}:{kind}"`: a second email with the same key is not written.
    pub dedupe_key: String,
    pub to: String,
    pub email: Email,
    pub facts: Facts,
}

/// Renders `new` and writes it with its `send_email` job, inside the caller's transaction.
/// Returns the dedupe key of that job, or `None` (and writes nothing) when an email with the
/// same dedupe key exists.
pub async fn enqueue(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    new: &NewEmail,
    now: Millis,
) -> Result<Option<String>, sqlx::Error> {
    let rendered = render(&new.email, &new.facts).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let row = Outgoing {
        order_id: new.order_id.as_deref(),
        kind: new.email.kind(),
        dedupe_key: &new.dedupe_key,
        to: &new.to,
        rendered: &rendered,
    };
    enqueue_rendered(conn, mailer, &row, now).await
}

/// An already rendered email for [`enqueue_rendered`] (mail that is not one of the buyer
/// emails of [`Email`], such as the staff digest).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub order_id: Option<&'a str>,
    pub kind: &'a str,
    /// A second email with the same key is not written.
    pub dedupe_key: &'a str,
    pub to: &'a str,
    pub rendered: &'a Rendered,
}

/// Writes a rendered email with its `send_email` job, inside the caller's transaction.
/// Returns the dedupe key of that job, or `None` (and writes nothing) when an email with the
/// same dedupe key exists.
pub async fn enqueue_rendered(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    new: &Outgoing<'_>,
    now: Millis,
) -> Result<Option<String>, sqlx::Error> {
    let rendered = new.rendered;
    let id = crate::domain::ids::new_id();
    let message_id = mailer.message_id_for(&id);
    let row = emails::NewRow {
        id: &id,
        order_id: new.order_id,
        kind: new.kind,
        dedupe_key: new.dedupe_key,
        to: new.to,
        subject: &rendered.subject,
        text_body: &rendered.text,
        html_body: &rendered.html,
        message_id: &message_id,
        created_at: now,
    };
    if !emails::insert(conn, &row).await? {
        return Ok(None);
    }
    let key = send_job_key(&id);
    jobs::enqueue(
        conn,
        NewJob {
            job: Job::SendEmail { email_id: id },
            dedupe_key: Some(key.clone()),
            run_at: now,
        },
        now,
    )
    .await?;
    Ok(Some(key))
}

fn send_job_key(email_id: &str) -> String {
    format!("{}:{email_id}", Job::SEND_EMAIL)
}

/// Sends an order's email again, the same row (same Message-ID, so mail clients thread it with
/// the first): its sent mark cleared and a send job queued, in the caller's transaction.
/// False when the order has no such email.
pub async fn requeue(
    conn: &mut AnyConnection,
    order_id: &str,
    email_id: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    if !emails::mark_unsent_of_order(conn, order_id, email_id).await? {
        return Ok(false);
    }
    let job = NewJob {
        job: Job::SendEmail {
            email_id: email_id.into(),
        },
        dedupe_key: None,
        run_at: now,
    };
    jobs::enqueue(conn, job, now).await?;
    Ok(true)
}

/// Gives the send jobs that ran out of tries another round, for emails still unsent and not
/// abandoned, once they have been dead for `REVIVE_AFTER_MS`: an SMTP outage longer than the
/// queue's backoff delays an email but never drops it. Returns how many were revived.
pub async fn revive_dead_sends(pool: &AnyPool, now: Millis) -> Result<u64, sqlx::Error> {
    let key_prefix = format!("{}:", Job::SEND_EMAIL);
    emails::revive_dead_sends(
        pool,
        Job::SEND_EMAIL,
        &key_prefix,
        now - REVIVE_AFTER_MS,
        now,
    )
    .await
}

//! The `emails` table: an email is rendered and written here, together with the job that
//! sends it, in the transaction of the event that causes it. Nothing is sent from inside a
//! transaction, and nothing is lost when the mail server is down: the row waits.

use super::kinds::{Email, Facts};
use super::render::{render, Rendered};
use super::Mailer;
use crate::clock::Millis;
use crate::db::col;
use crate::jobs::{self, Job, NewJob};
use sqlx::any::AnyRow;
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

/// An email as stored: rendered, with its Message-ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEmail {
    pub id: String,
    pub order_id: Option<String>,
    pub kind: String,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub message_id: String,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
    pub attempts: i64,
    /// When its body was deleted (by `retention`, or by erasing the buyer's data); such an
    /// email is a record only and is never sent again.
    pub body_deleted_at: Option<Millis>,
}

/// Renders `new` and writes it with its `send_email` job, inside the caller's transaction.
/// Returns false (and writes nothing) when an email with the same dedupe key exists.
pub async fn enqueue(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    new: &NewEmail,
    now: Millis,
) -> Result<bool, sqlx::Error> {
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
/// Returns false (and writes nothing) when an email with the same dedupe key exists.
pub async fn enqueue_rendered(
    conn: &mut AnyConnection,
    mailer: &Mailer,
    new: &Outgoing<'_>,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let rendered = new.rendered;
    let id = crate::domain::ids::new_id();
    let inserted = sqlx::query(
        "INSERT INTO emails (id, order_id, kind, dedupe_key, to_address, subject, text_body, html_body,
            message_id, created_at, sent_at, attempts, last_error, abandoned_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, 0, NULL, NULL)
         ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(new.order_id)
    .bind(new.kind)
    .bind(new.dedupe_key)
    .bind(new.to)
    .bind(&rendered.subject)
    .bind(&rendered.text)
    .bind(&rendered.html)
    .bind(mailer.message_id_for(&id))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    jobs::enqueue(
        conn,
        NewJob {
            job: Job::SendEmail {
                email_id: id.clone(),
            },
            dedupe_key: Some(send_job_key(&id)),
            run_at: now,
        },
        now,
    )
    .await?;
    Ok(true)
}

fn send_job_key(email_id: &str) -> String {
    format!("{}:{email_id}", Job::SEND_EMAIL)
}

const COLUMNS: &str = "id, order_id, kind, to_address, subject, text_body, html_body, message_id, created_at, sent_at, attempts, body_deleted_at";

fn from_row(r: &AnyRow) -> Result<StoredEmail, sqlx::Error> {
    Ok(StoredEmail {
        id: col(r, "id")?,
        order_id: col(r, "order_id")?,
        kind: col(r, "kind")?,
        to_address: col(r, "to_address")?,
        subject: col(r, "subject")?,
        text_body: col(r, "text_body")?,
        html_body: col(r, "html_body")?,
        message_id: col(r, "message_id")?,
        created_at: col(r, "created_at")?,
        sent_at: col(r, "sent_at")?,
        attempts: col(r, "attempts")?,
        body_deleted_at: col(r, "body_deleted_at")?,
    })
}

pub async fn load(pool: &AnyPool, id: &str) -> Result<Option<StoredEmail>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM emails WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The emails written for an order, oldest first.
pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<StoredEmail>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM emails WHERE order_id = $1 ORDER BY created_at, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Sends an order's email again, the same row (same Message-ID, so mail clients thread it with
/// the first): its sent mark cleared and a send job queued, in the caller's transaction.
/// False when the order has no such email, or its body has been deleted.
pub async fn requeue(
    conn: &mut AnyConnection,
    order_id: &str,
    email_id: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE emails SET sent_at = NULL WHERE id = $1 AND order_id = $2 AND body_deleted_at IS NULL",
    )
        .bind(email_id)
        .bind(order_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if changed == 0 {
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

pub async fn mark_sent(pool: &AnyPool, id: &str, now: Millis) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE emails SET sent_at = $1, attempts = attempts + 1, last_error = NULL
         WHERE id = $2 AND sent_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt. `abandon` marks an email that can never be sent, so it is not
/// revived; otherwise it stays queued.
pub async fn record_failure(
    pool: &AnyPool,
    id: &str,
    error: &str,
    abandon: bool,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE emails SET attempts = attempts + 1, last_error = $1,
            abandoned_at = CASE WHEN $2 = 1 THEN $3 ELSE abandoned_at END
         WHERE id = $4 AND sent_at IS NULL",
    )
    .bind(error)
    .bind(i64::from(abandon))
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The order's receipt email (the `delivered` kind, one per order), if it was written and
/// still has its body (else a new one is written).
pub async fn receipt_of(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id FROM emails WHERE order_id = $1 AND kind = 'delivered' AND body_deleted_at IS NULL",
    )
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| col(&r, "id")).transpose()
}

/// Clears an email's sent mark, so its next send job sends it again.
pub async fn mark_unsent(conn: &mut AnyConnection, email_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE emails SET sent_at = NULL WHERE id = $1")
        .bind(email_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives the send jobs that ran out of tries another round, for emails still unsent and not
/// abandoned, once they have been dead for `REVIVE_AFTER_MS`: an SMTP outage longer than the
/// queue's backoff delays an email but never drops it. Returns how many were revived.
pub async fn revive_dead_sends(pool: &AnyPool, now: Millis) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $1, lease_until = NULL, updated_at = $1
         WHERE kind = $2 AND status = 'dead' AND updated_at <= $3
           AND dedupe_key IN (SELECT $4 || id FROM emails WHERE sent_at IS NULL AND abandoned_at IS NULL)",
    )
    .bind(now)
    .bind(Job::SEND_EMAIL)
    .bind(now - REVIVE_AFTER_MS)
    .bind(format!("{}:", Job::SEND_EMAIL))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

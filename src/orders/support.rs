//! Buyer ↔ support conversations about an order. A conversation is open (in the agents'
//! queue, oldest first) while the buyer's latest message has no answer.

use crate::db::orders::{self, Order};
use crate::db::{col, events};
use crate::services::Services;
use sqlx::AnyPool;

pub const MAX_MESSAGE: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub author: String,
    pub body: String,
    pub created_at: i64,
}

impl Message {
    pub fn from_buyer(&self) -> bool {
        self.author == "buyer"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("Write a message first.")]
    Empty,
    #[error("Please keep a message under 4,000 characters.")]
    TooLong,
    #[error("There is no such conversation.")]
    NoSuchOrder,
    /// Nothing was written: the database failed (a server error, not the writer's).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Plain text, normalised first (invisible characters dropped), then checked.
fn clean(body: &str) -> Result<String, SupportError> {
    let body = crate::domain::text::normalise(body, true);
    if body.is_empty() {
        return Err(SupportError::Empty);
    }
    if body.chars().count() > MAX_MESSAGE {
        return Err(SupportError::TooLong);
    }
    Ok(body)
}

async fn insert(
    tx: &mut crate::db::Tx,
    order_id: &str,
    author: &str,
    body: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO support_messages (id, order_id, author, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(crate::domain::ids::new_id())
        .bind(order_id)
        .bind(author)
        .bind(body)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The buyer writes. Opens (or keeps open) the conversation.
pub async fn buyer_writes(state: &Services, order: &Order, body: &str) -> Result<(), SupportError> {
    let body = clean(body)?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    insert(&mut tx, &order.id, "buyer", &body, now).await?;
    // Waiting since the first unanswered message: a follow-up keeps its place in the queue.
    sqlx::query(
        "INSERT INTO support_threads (order_id, status, waiting_since, updated_at) VALUES ($1, 'open', $2, $2)
         ON CONFLICT (order_id) DO UPDATE SET
            waiting_since = CASE WHEN support_threads.status = 'open' THEN support_threads.waiting_since ELSE $2 END,
            status = 'open', updated_at = $2",
    )
    .bind(&order.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        &order.id,
        now,
        "buyer",
        "support_message",
        None,
        None,
        "Buyer wrote to support",
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An agent answers; the buyer gets the reply by email.
pub async fn staff_replies(
    state: &Services,
    order_id: &str,
    staff: &str,
    body: &str,
) -> Result<(), SupportError> {
    let body = clean(body)?;
    let Some(order) = orders::by_id(state.db.pool(), order_id).await? else {
        return Err(SupportError::NoSuchOrder);
    };
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    insert(&mut tx, order_id, staff, &body, now).await?;
    sqlx::query(
        "INSERT INTO support_threads (order_id, status, waiting_since, updated_at) VALUES ($1, 'answered', $2, $2)
         ON CONFLICT (order_id) DO UPDATE SET status = 'answered', updated_at = $2",
    )
    .bind(order_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        order_id,
        now,
        staff,
        "support_reply",
        None,
        None,
        "Support replied",
    )
    .await?;
    crate::orders::notify::support_reply(state, &mut tx, &order, &body, now).await?;
    crate::db::audit::order_action(
        &mut tx,
        staff,
        "support_reply",
        order_id,
        "Support replied",
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn conversation(pool: &AnyPool, order_id: &str) -> Result<Vec<Message>, sqlx::Error> {
    let rows = sqlx::query("SELECT author, body, created_at FROM support_messages WHERE order_id = $1 ORDER BY created_at, id")
        .bind(order_id)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Message {
                author: col(r, "author")?,
                body: col(r, "body")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

/// How many conversations wait for an answer, and the order number of the one waiting longest
/// with since when.
pub async fn waiting(pool: &AnyPool) -> Result<(i64, Option<(String, i64)>), sqlx::Error> {
    let n: i64 = col(
        &sqlx::query("SELECT COUNT(*) AS n FROM support_threads WHERE status = 'open'")
            .fetch_one(pool)
            .await?,
        "n",
    )?;
    let oldest = sqlx::query(
        "SELECT o.order_number, t.waiting_since FROM support_threads t JOIN orders o ON o.id = t.order_id
         WHERE t.status = 'open' ORDER BY t.waiting_since, t.order_id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?
    .map(|r| -> Result<(String, i64), sqlx::Error> {
        Ok((col(&r, "order_number")?, col(&r, "waiting_since")?))
    })
    .transpose()?;
    Ok((n, oldest))
}

/// Open conversations, longest waiting first: (order id, waiting since).
pub async fn open_queue(pool: &AnyPool, limit: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT order_id, waiting_since FROM support_threads WHERE status = 'open' ORDER BY waiting_since LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((col(r, "order_id")?, col(r, "waiting_since")?)))
        .collect()
}

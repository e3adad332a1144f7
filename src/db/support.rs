//! Support conversations: each message (`support_messages`) and each order's thread
//! (`support_threads`: open while the buyer's latest message has no answer).

use crate::db::{col, Tx};
use sqlx::AnyPool;

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

pub async fn insert(
    tx: &mut Tx,
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

/// The buyer wrote: the thread is open, waiting since its first unanswered message (a
/// follow-up keeps its place in the queue).
pub async fn open_thread(tx: &mut Tx, order_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO support_threads (order_id, status, waiting_since, updated_at) VALUES ($1, 'open', $2, $2)
         ON CONFLICT (order_id) DO UPDATE SET
            waiting_since = CASE WHEN support_threads.status = 'open' THEN support_threads.waiting_since ELSE $2 END,
            status = 'open', updated_at = $2",
    )
    .bind(order_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Support answered: the thread leaves the queue.
pub async fn answer_thread(tx: &mut Tx, order_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO support_threads (order_id, status, waiting_since, updated_at) VALUES ($1, 'answered', $2, $2)
         ON CONFLICT (order_id) DO UPDATE SET status = 'answered', updated_at = $2",
    )
    .bind(order_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
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

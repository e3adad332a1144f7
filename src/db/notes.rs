//! Agents' notes on orders: internal, never shown to the buyer.

use crate::clock::Millis;
use crate::db::col;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone)]
pub struct Note {
    pub author: String,
    pub body: String,
    pub created_at: Millis,
}

pub async fn add(
    conn: &mut AnyConnection,
    order_id: &str,
    author: &str,
    body: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notes (id, order_id, author, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::domain::ids::new_id())
    .bind(order_id)
    .bind(author)
    .bind(body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<Note>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT author, body, created_at FROM notes WHERE order_id = $1 ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Note {
                author: col(r, "author")?,
                body: col(r, "body")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

//! Buyer ↔ support conversations about an order. A conversation is open (in the agents'
//! queue, oldest first) while the buyer's latest message has no answer. The messages and
//! threads are stored by `db::support`.

use crate::db::events;
use crate::db::orders::{self, Order};
use crate::db::support as rows;
use crate::services::Services;

pub const MAX_MESSAGE: usize = 4000;

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

/// The buyer writes. Opens (or keeps open) the conversation.
pub async fn buyer_writes(state: &Services, order: &Order, body: &str) -> Result<(), SupportError> {
    let body = clean(body)?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    rows::insert(&mut tx, &order.id, "buyer", &body, now).await?;
    rows::open_thread(&mut tx, &order.id, now).await?;
    events::note(
        &mut tx,
        &order.id,
        now,
        "buyer",
        "support_message",
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
    rows::insert(&mut tx, order_id, staff, &body, now).await?;
    rows::answer_thread(&mut tx, order_id, now).await?;
    events::note(
        &mut tx,
        order_id,
        now,
        staff,
        "support_reply",
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

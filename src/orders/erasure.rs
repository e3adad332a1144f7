//! Erasing a buyer's personal data on request (an admin does it from the order page): every
//! order placed with the order's email loses the address, the IP addresses and the messages
//! (`db::erasure` says exactly what), in one transaction with an event on each order and one
//! audit entry, which name the orders but never the address. Amounts, states and times stay,
//! for the accounts; so do refunds, disputes and the audit log.

use crate::db::erasure::{self, Erasable};
use crate::db::{audit, events, orders};
use crate::services::Services;

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erased {
    /// The order numbers whose buyer data went.
    Orders(Vec<String>),
    /// The order's data had been erased already.
    Already,
    NotFound,
}

pub async fn erase_buyer(
    state: &Services,
    order_id: &str,
    actor: &str,
) -> Result<Erased, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let Some(order) = orders::by_id_in(&mut tx, order_id).await? else {
        tx.rollback().await?;
        return Ok(Erased::NotFound);
    };
    if erasure::is_erased(&order.email) {
        tx.rollback().await?;
        return Ok(Erased::Already);
    }
    let email = order.email.clone();
    let found: Vec<Erasable> = erasure::orders_of(&mut tx, &email).await?;
    let order_ids: Vec<String> = found.iter().map(|o| o.id.clone()).collect();
    let email_ids = erasure::email_ids(&mut tx, &order_ids).await?;
    for o in &found {
        erasure::erase_order(&mut tx, o, &email, now).await?;
        events::record(
            &mut tx,
            &o.id,
            now,
            actor,
            "personal_data_erased",
            None,
            None,
            "The buyer's email address, IP address and messages were erased on request",
        )
        .await?;
    }
    erasure::erase_other_emails(&mut tx, &email, now).await?;
    let numbers: Vec<String> = found.iter().map(|o| o.order_number.clone()).collect();
    audit::record(
        &mut tx,
        audit::Entry {
            actor,
            action: "buyer_data_erased",
            subject: &order.order_number,
            detail: &format!(
                "Erased on request: the buyer's email address, IP addresses and messages on {} order(s): {}",
                numbers.len(),
                numbers.join(", ")
            ),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    // The file outbox's copies of those emails go as well (SMTP has none to remove).
    for id in &email_ids {
        state.mailer.forget(id).await;
    }
    Ok(Erased::Orders(numbers))
}

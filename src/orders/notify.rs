//! Telling the buyer: which email each event of an order causes. Each function writes its
//! email to the outbox in the caller's transaction (see `mail::outbox`); the `send_email` job
//! delivers it after the commit. Payment received, delivered, held for review and cancelled /
//! refunded go out at most once per order; refund and support emails once per occurrence.

use crate::clock::format_utc;
use crate::db::orders::Order;
use crate::db::{payments, Tx};
use crate::domain::Money;
use crate::mail::kinds::ORDER_LINK_SLOT;
use crate::mail::outbox::{self, ORDER_LINK_WINDOW_MS};
use crate::mail::{Email, Facts, NewEmail};
use crate::orders::payment_events::method_summary;
use crate::services::Services;
use sqlx::AnyConnection;

/// The buyer asked for their order link again (order look-up). Keyed by order and a
/// ten-minute window, so repeated look-ups send one email per window, not one per request.
pub async fn order_link_requested(state: &Services, order: &Order) -> Result<(), sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let key = format!(
        "{}:{}:{}",
        order.id,
        Email::OrderLink.kind(),
        now.div_euclid(ORDER_LINK_WINDOW_MS)
    );
    let written = write(state, &mut tx, order, Email::OrderLink, key, now, now)
        .await?
        .is_some();
    tx.commit().await?;
    if written {
        state.jobs_ready.notify_one();
    } else {
        tracing::info!(order = %order.order_number, "order link emailed recently; not sent again");
    }
    Ok(())
}

pub async fn payment_received(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    now: i64,
) -> Result<(), sqlx::Error> {
    once(state, tx, order, Email::PaymentReceived, now).await
}

/// The receipt. Returns the dedupe key of the job that sends it (`None`: written before).
pub async fn delivered(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    // The order given may be the snapshot from before the delivery was recorded.
    let at = order.delivered_at.unwrap_or(now);
    let key = format!("{}:{}", order.id, Email::Delivered.kind());
    write(state, tx, order, Email::Delivered, key, at, now).await
}

pub async fn held_for_review(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    now: i64,
) -> Result<(), sqlx::Error> {
    once(state, tx, order, Email::HeldForReview, now).await
}

/// The order will not be delivered and `amount` goes back. `reason` is shown to the buyer
/// as it is: plain words, never risk reasons.
pub async fn cancelled_refunded(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    amount: Money,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let email = Email::CancelledRefunded {
        amount: amount.to_string(),
        reason: reason.to_owned(),
    };
    once(state, tx, order, email, now).await
}

/// One email per request: a buyer may ask again after a denial. The caller's guard (one open
/// request per order) keeps a repeated submit from getting here twice.
pub async fn refund_requested(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    now: i64,
) -> Result<(), sqlx::Error> {
    each(
        state,
        tx,
        order,
        Email::RefundRequested,
        &now.to_string(),
        now,
    )
    .await
}

/// `message` is the agent's answer, shown to the buyer as it is. One email per decision.
pub async fn refund_denied(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    message: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let email = Email::RefundDenied {
        message: message.to_owned(),
    };
    each(state, tx, order, email, &now.to_string(), now).await
}

/// One email per refund, told apart by the total refunded once it is counted (`order` is the
/// order before this refund), so partial refunds each get theirs and a repeat gets none.
pub async fn refund_completed(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    amount: Money,
    now: i64,
) -> Result<(), sqlx::Error> {
    let email = Email::RefundCompleted {
        amount: amount.to_string(),
    };
    let total = order.refunded_minor.saturating_add(amount.minor());
    each(state, tx, order, email, &total.to_string(), now).await
}

/// A support agent answered the buyer. One email per reply (written in the reply's own
/// transaction, so it exists exactly when the reply does).
pub async fn support_reply(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    body: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let digest = crate::domain::ids::token_hash(body);
    let occurrence = format!("{now}:{}", &digest[..16]);
    let email = Email::SupportReply {
        message: body.to_owned(),
    };
    each(state, tx, order, email, &occurrence, now).await
}

/// One email of this kind per order: a repeated event (a retried job, a replayed webhook)
/// writes nothing new.
async fn once(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    email: Email,
    now: i64,
) -> Result<(), sqlx::Error> {
    let key = format!("{}:{}", order.id, email.kind());
    write(state, tx, order, email, key, now, now)
        .await
        .map(|_| ())
}

/// One email per `occurrence` of this kind for the order (a refund, a reply, a request).
async fn each(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    email: Email,
    occurrence: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let key = format!("{}:{}:{occurrence}", order.id, email.kind());
    write(state, tx, order, email, key, now, now)
        .await
        .map(|_| ())
}

async fn write(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    email: Email,
    dedupe_key: String,
    at: i64,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let facts = facts(state, tx, order, at).await?;
    let new = NewEmail {
        order_id: Some(order.id.clone()),
        dedupe_key,
        to: order.email.clone(),
        email,
        facts,
    };
    outbox::enqueue(tx, &state.mailer, &new, now).await
}

async fn facts(
    state: &Services,
    conn: &mut AnyConnection,
    order: &Order,
    at: i64,
) -> Result<Facts, sqlx::Error> {
    Ok(Facts {
        shop_name: state.settings.shop_name.clone(),
        order_number: order.order_number.clone(),
        coins: order.coins.to_string(),
        username: order.tiktok_username.clone(),
        amount: amount_with_fee(order),
        method: paid_with(conn, order).await?,
        placed: format_utc(order.created_at),
        at: format_utc(at),
        // Filled in when the email is sent, so the outbox never holds a working link.
        order_url: ORDER_LINK_SLOT.to_owned(),
        support_address: state.mailer.support_address(),
    })
}

/// The amount paid, with the payment method's fee itemised when there was one.
fn amount_with_fee(order: &Order) -> String {
    if order.fee_minor <= 0 {
        return order.amount.to_string();
    }
    let currency = order.amount.currency();
    let fee = Money::from_minor(order.fee_minor, currency);
    let coins = Money::from_minor(order.amount.minor() - order.fee_minor, currency);
    format!(
        "{} (coins {coins} + {} fee {fee})",
        order.amount,
        order.payment_method.label()
    )
}

/// How the order was paid, as the order page says it. Read in the caller's transaction, which
/// may have just recorded the payment.
async fn paid_with(conn: &mut AnyConnection, order: &Order) -> Result<String, sqlx::Error> {
    Ok(
        match payments::last_succeeded_method(conn, &order.id).await? {
            Some((method, brand, last4)) => {
                method_summary(&method, brand.as_deref(), last4.as_deref())
            }
            None => order.payment_method.label().to_owned(),
        },
    )
}

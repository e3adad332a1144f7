//! Applying a verified provider event to the shop. Each event is handled once (its id is
//! recorded in the same transaction), events may arrive twice, concurrently or out of order,
//! and an order moves `awaiting_payment → paid` exactly once.

use crate::db::orders::Order;
use crate::db::payments::PaymentRecord;
use crate::db::{events, orders, payments, webhook_events, Tx};
use crate::domain::OrderStatus;
use crate::payments::{EventKind, ProviderEvent};
use crate::services::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Seen before: nothing done.
    Replay,
    UnknownOrder,
    Paid,
    AlreadyPaid,
    AmountMismatch,
    PaymentFailed,
    PaymentPending,
    Refund,
    /// An event the shop does not use (acknowledged, nothing recorded).
    Unused,
    Expired,
    Dispute,
    FraudWarning,
}

impl Applied {
    fn as_str(self) -> &'static str {
        match self {
            Applied::Replay => "replay",
            Applied::UnknownOrder => "unknown_order",
            Applied::Paid => "paid",
            Applied::AlreadyPaid => "already_paid",
            Applied::AmountMismatch => "amount_mismatch",
            Applied::PaymentFailed => "payment_failed",
            Applied::PaymentPending => "payment_pending",
            Applied::Refund => "refund",
            Applied::Unused => "unused",
            Applied::Expired => "expired",
            Applied::Dispute => "dispute",
            Applied::FraudWarning => "fraud_warning",
        }
    }
}

/// How a payment is described to people: "Visa •••• 4242", "Wallet (Visa •••• 4242)", "Bank transfer".
pub fn method_summary(method: &str, brand: Option<&str>, last4: Option<&str>) -> String {
    let card = match (brand, last4) {
        (Some(b), Some(l)) => {
            let mut c = b.chars();
            let brand = c
                .next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default();
            Some(format!("{brand} •••• {l}"))
        }
        _ => None,
    };
    match (method, card) {
        ("card", Some(c)) => c,
        ("wallet", Some(c)) => format!("Wallet ({c})"),
        // The method's own name ("PayPal", "Gift card or voucher"), never the stored code.
        (other, _) => other
            .parse::<crate::domain::PaymentMethod>()
            .map(|m| m.label().to_owned())
            .unwrap_or_else(|_| other.replace('_', " ")),
    }
}

/// Applies one verified event: at most once (the event id is claimed in the same
/// transaction), with its effect on the order, its audit events and follow-up jobs.
pub async fn apply(
    state: &Services,
    provider: &str,
    event: &ProviderEvent,
) -> Result<Applied, sqlx::Error> {
    if event.kind == EventKind::Unused {
        return Ok(Applied::Unused);
    }
    let now = state.now_ms();
    let d = &event.data;
    let mut tx = state.db.begin().await?;
    // Disputes and fraud warnings name the payment, not the order.
    let order_id = match (&d.payment_ref, d.order_reference.is_empty()) {
        (Some(payment), true) => crate::db::disputes::order_for_payment(&mut tx, provider, payment)
            .await?
            .unwrap_or_default(),
        _ => d.order_reference.clone(),
    };
    let kind = event.kind.as_str();
    if !webhook_events::claim(&mut tx, provider, &event.id, kind, &order_id, now).await? {
        tx.rollback().await?;
        return Ok(Applied::Replay);
    }
    let outcome = match orders::by_id_in(&mut tx, &order_id).await? {
        None => {
            tracing::warn!(event = %event.id, "provider event for an unknown order");
            Applied::UnknownOrder
        }
        Some(order) => on_order(state, &mut tx, provider, &order, event, now).await?,
    };
    webhook_events::set_outcome(&mut tx, provider, &event.id, outcome.as_str()).await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    if outcome == Applied::PaymentFailed {
        watch_for_surge(state, now).await;
    }
    Ok(outcome)
}

/// What the event does to its order, in the event's transaction.
async fn on_order(
    state: &Services,
    tx: &mut Tx,
    provider: &str,
    order: &Order,
    event: &ProviderEvent,
    now: i64,
) -> Result<Applied, sqlx::Error> {
    Ok(match event.kind {
        EventKind::PaymentSucceeded | EventKind::PaymentFailed | EventKind::PaymentPending => {
            on_payment(state, tx, provider, order, event, now).await?
        }
        EventKind::RefundSucceeded | EventKind::RefundFailed => {
            crate::orders::refunds::on_provider_event(state, tx, order, event, now).await?;
            Applied::Refund
        }
        EventKind::SessionExpired => {
            if order.status == OrderStatus::AwaitingPayment {
                orders::transition(
                    tx,
                    &order.id,
                    OrderStatus::AwaitingPayment,
                    OrderStatus::Expired,
                    "provider",
                    "The payment page expired unpaid",
                    now,
                )
                .await?;
            }
            Applied::Expired
        }
        EventKind::DisputeCreated | EventKind::DisputeUpdated | EventKind::DisputeClosed => {
            crate::orders::disputes::on_event(tx, provider, order, event, now).await?;
            Applied::Dispute
        }
        EventKind::FraudWarning => {
            crate::orders::disputes::on_fraud_warning(tx, provider, order, event, now).await?;
            Applied::FraudWarning
        }
        EventKind::Unused => Applied::Unused,
    })
}

/// A payment attempt succeeded, failed or started: recorded (a pending one moves on when it
/// settles), then a failure or a start noted on the order, and a success marks it paid.
async fn on_payment(
    state: &Services,
    tx: &mut Tx,
    provider: &str,
    order: &Order,
    event: &ProviderEvent,
    now: i64,
) -> Result<Applied, sqlx::Error> {
    let d = &event.data;
    payments::upsert(tx, &payment_record(provider, order, event, now), now).await?;
    let summary = method_summary(
        &d.method,
        d.card.as_ref().map(|c| c.brand.as_str()),
        d.card.as_ref().map(|c| c.last4.as_str()),
    );
    match event.kind {
        EventKind::PaymentFailed => {
            let code = d.failure_code.as_deref().unwrap_or("failed");
            let detail = format!("{summary} declined ({code})");
            events::note(tx, &order.id, now, "provider", "payment_failed", &detail).await?;
            Ok(Applied::PaymentFailed)
        }
        EventKind::PaymentPending => {
            let detail = format!("{summary} started; waiting for it to arrive");
            events::note(tx, &order.id, now, "provider", "payment_pending", &detail).await?;
            Ok(Applied::PaymentPending)
        }
        _ => on_succeeded(state, tx, order, event, &summary, now).await,
    }
}

/// The attempt as the shop keeps it: what the provider reported, with the order's keys that
/// risk counts group by.
fn payment_record(provider: &str, order: &Order, event: &ProviderEvent, now: i64) -> PaymentRecord {
    let d = &event.data;
    let status = match event.kind {
        EventKind::PaymentSucceeded => "succeeded",
        EventKind::PaymentFailed => "failed",
        _ => "pending",
    };
    let card = d.card.as_ref();
    PaymentRecord {
        id: crate::domain::ids::new_id(),
        order_id: order.id.clone(),
        provider: provider.to_owned(),
        provider_ref: d.object_id.clone(),
        method: d.method.clone(),
        status: status.into(),
        amount_minor: d.amount_minor,
        currency: d.currency.clone(),
        failure_code: d.failure_code.clone(),
        card_brand: card.map(|c| c.brand.clone()),
        card_last4: card.map(|c| c.last4.clone()),
        card_country: card.map(|c| c.country.clone()),
        card_fingerprint: card.map(|c| c.fingerprint.clone()),
        card_bin: card.and_then(|c| c.bin.clone()),
        email: order.email.clone(),
        email_domain: crate::risk::traits::email_domain(&order.email),
        client_net: crate::risk::traits::client_net(&order.client_ip),
        client_ip: order.client_ip.clone(),
        tiktok_username: order.tiktok_username.clone(),
        created_at: now,
    }
}

/// A failure may be part of a wave: look at the shop's recent failures (paced per instance).
/// The event is applied already; a failed check is logged and tried at the next failure.
async fn watch_for_surge(state: &Services, now: i64) {
    let live = state.live.current();
    let settings = &live.risk.surge;
    if !state.surge.due(now, settings.check_seconds) {
        return;
    }
    if let Err(e) = crate::risk::surge::check(&state.db, settings, now).await {
        tracing::warn!(error = %e, "surge check failed");
    }
}

async fn on_succeeded(
    state: &Services,
    tx: &mut Tx,
    order: &Order,
    event: &ProviderEvent,
    summary: &str,
    now: i64,
) -> Result<Applied, sqlx::Error> {
    let d = &event.data;
    if d.amount_minor != order.amount.minor() || d.currency != order.amount.currency().code() {
        let detail = format!(
            "Payment of {} {} does not match the order's {}; not marked paid",
            d.amount_minor, d.currency, order.amount
        );
        tracing::warn!(order = %order.order_number, "{detail}");
        events::note(
            tx,
            &order.id,
            now,
            "provider",
            "payment_amount_mismatch",
            &detail,
        )
        .await?;
        return Ok(Applied::AmountMismatch);
    }
    let from = order.status;
    if !matches!(from, OrderStatus::AwaitingPayment | OrderStatus::Expired) {
        events::note(
            tx,
            &order.id,
            now,
            "provider",
            "payment_duplicate",
            &format!("Another payment: {summary}"),
        )
        .await?;
        return Ok(Applied::AlreadyPaid);
    }
    if !orders::transition(
        tx,
        &order.id,
        from,
        OrderStatus::Paid,
        "provider",
        &format!("Paid with {summary}"),
        now,
    )
    .await?
    {
        return Ok(Applied::AlreadyPaid);
    }
    // Money that arrived after the order or its quote expired is still the buyer's money, but
    // the order goes to an agent instead of straight to delivery.
    let late = from == OrderStatus::Expired || d.late;
    crate::orders::notify::payment_received(state, tx, order, now).await?;
    crate::orders::screening::after_payment(state, tx, &order.id, late, now).await?;
    Ok(Applied::Paid)
}

#[cfg(test)]
mod tests {
    use super::method_summary;

    #[test]
    fn methods_are_named_as_buyers_know_them() {
        assert_eq!(method_summary("paypal", None, None), "PayPal");
        assert_eq!(
            method_summary("gift_card", None, None),
            "Gift card or voucher"
        );
        assert_eq!(
            method_summary("card", Some("visa"), Some("4242")),
            "Visa •••• 4242"
        );
        assert_eq!(method_summary("something_new", None, None), "something new");
    }
}

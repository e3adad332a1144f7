//! Chargebacks and early fraud warnings, fed back into screening. A dispute moves its order to
//! `disputed` (one guarded transaction with its audit events), block-lists the buyer's cards,
//! email and TikTok username with the dispute as the reason (so backtests count the order as
//! fraud, like an agent's "reject as fraud"), and counts toward the dispute rate on the
//! dashboard. An agent answers it with the evidence the shop already holds, in one click. An
//! early fraud warning (the issuer's notice that a dispute is likely) proposes a full refund.

use crate::clock::format_utc;
use crate::db::disputes::{self as rows, Dispute};
use crate::db::orders::{self, Order};
use crate::db::{audit, events, Tx};
use crate::domain::{Money, OrderStatus};
use crate::payments::{DisputeEvidence, EventKind, EvidenceDocument, ProviderEvent};
use crate::services::Services;

/// The card networks' monitoring thresholds (disputes ÷ card sales in a month), shown beside
/// the shop's own rate: Visa's early warning and programme level, and Mastercard's.
pub const NETWORK_THRESHOLDS: [(&str, &str); 3] = [
    ("Visa early warning", "0.9"),
    ("Visa dispute monitoring", "1.5"),
    ("Mastercard excessive chargebacks", "1.5"),
];

const DAY_MS: i64 = 24 * 3_600_000;

fn money(minor: i64, currency: &str, fallback: &Order) -> Money {
    let currency = currency.parse().unwrap_or(fallback.amount.currency());
    Money::from_minor(minor, currency)
}

/// A `dispute.*` event for `order`, in the webhook's transaction.
pub async fn on_event(
    tx: &mut Tx,
    provider: &str,
    order: &Order,
    event: &ProviderEvent,
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = &event.data;
    let Some(details) = &d.dispute else {
        return Ok(());
    };
    let dispute = Dispute {
        id: d.object_id.clone(),
        order_id: order.id.clone(),
        provider: provider.to_owned(),
        amount_minor: d.amount_minor,
        currency: d.currency.clone(),
        reason: details.reason.clone(),
        status: details.status.clone(),
        evidence_due_by: details.evidence_due_by.and_then(|s| s.checked_mul(1000)),
        evidence_submitted_at: None,
        evidence_submitted_by: None,
        evidence_file_id: None,
        created_at: now,
        updated_at: now,
    };
    let before = rows::by_id(tx, &dispute.id).await?;
    let new = rows::upsert(tx, &dispute).await?;
    let amount = money(d.amount_minor, &d.currency, order);
    let due = dispute
        .evidence_due_by
        .map(|t| format!(", evidence due by {}", format_utc(t)))
        .unwrap_or_default();
    if new {
        let detail = format!(
            "Chargeback {} opened by the card issuer: {amount}, reason {}{due}",
            dispute.id,
            details.reason.replace('_', " ")
        );
        events::record(
            tx,
            &order.id,
            now,
            "provider",
            "dispute_opened",
            None,
            None,
            &detail,
        )
        .await?;
        audit::order_action(tx, "provider", "dispute_opened", &order.id, &detail, now).await?;
        if order.status != OrderStatus::Disputed && order.status.can_move_to(OrderStatus::Disputed)
        {
            orders::transition(
                tx,
                &order.id,
                order.status,
                OrderStatus::Disputed,
                "provider",
                &detail,
                now,
            )
            .await?;
        }
        let why = format!(
            "Chargeback on order {} (dispute {}, {})",
            order.order_number,
            dispute.id,
            details.reason.replace('_', " ")
        );
        crate::orders::review::block_buyer_because(tx, order, "provider", &why, now).await?;
    } else if before.as_ref().map(|b| b.status.as_str()) != Some(details.status.as_str()) {
        let kind = if event.kind == EventKind::DisputeClosed {
            "dispute_closed"
        } else {
            "dispute_updated"
        };
        let detail = format!(
            "Chargeback {} is now {}{due}",
            dispute.id,
            details.status.replace('_', " ")
        );
        events::record(tx, &order.id, now, "provider", kind, None, None, &detail).await?;
        // Won with the coins delivered: the order is what it was before the dispute.
        if details.status == "won"
            && order.status == OrderStatus::Disputed
            && order.delivered_at.is_some()
        {
            orders::transition(
                tx,
                &order.id,
                OrderStatus::Disputed,
                OrderStatus::Delivered,
                "provider",
                &format!("Chargeback {} decided in the shop's favour", dispute.id),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// An early fraud warning: recorded, and a full refund proposed to agents (refunding before
/// the dispute avoids its fee and keeps the dispute rate down).
pub async fn on_fraud_warning(
    tx: &mut Tx,
    provider: &str,
    order: &Order,
    event: &ProviderEvent,
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = &event.data;
    let fraud_type = d
        .failure_code
        .clone()
        .unwrap_or_else(|| "unspecified".into());
    if !rows::insert_fraud_warning(tx, &d.object_id, &order.id, provider, &fraud_type, now).await? {
        return Ok(());
    }
    let detail = format!(
        "Early fraud warning from the card issuer ({}): a chargeback is likely. Refunding in full now avoids it.",
        fraud_type.replace('_', " ")
    );
    events::record(
        tx,
        &order.id,
        now,
        "provider",
        "fraud_warning",
        None,
        None,
        &detail,
    )
    .await
}

/// Whether the order has an early fraud warning no refund has answered yet.
pub async fn refund_proposed(
    state: &Services,
    order: &Order,
) -> Result<Option<String>, sqlx::Error> {
    if order.refunded_minor >= order.amount.minor() || !order.status.is_paid() {
        return Ok(None);
    }
    Ok(rows::latest_fraud_type(state.db.pool(), &order.id)
        .await?
        .map(|t| t.replace('_', " ")))
}

/// The agent's "refund now" on an early fraud warning: the automatic full refund (one per
/// order, whatever happens), with the agent and the warning in the audit log.
pub async fn refund_after_warning(
    state: &Services,
    order: &Order,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let Some(current) = orders::by_id_in(&mut tx, &order.id).await? else {
        return Ok(false);
    };
    if !current.status.is_paid() || current.status == OrderStatus::Disputed {
        tx.rollback().await?;
        return Ok(false);
    }
    let why = "Refunded after the card issuer's early fraud warning";
    crate::orders::screening::queue_full_refund(&mut tx, &current.id, why, now).await?;
    audit::order_action(
        &mut tx,
        actor,
        "fraud_warning_refund",
        &current.id,
        why,
        now,
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(true)
}

/// Order events that go into the evidence's audit trail: the order's own life. Staff notes,
/// screening details and block-list entries are the shop's internal business.
const TRAIL_KINDS: [&str; 14] = [
    "order_created",
    "payment_failed",
    "payment_pending",
    "status_changed",
    "refund_requested",
    "refund_succeeded",
    "refund_failed",
    "refund_denied",
    "receipt_resent",
    "email_resent",
    "support_message",
    "support_reply",
    "dispute_opened",
    "dispute_updated",
];
/// An order with more events than this is summarised (Stripe caps evidence at 50 pages).
const TRAIL_MAX: usize = 300;

/// The supplier's reference from the delivery's own event ("… (supplier ref X)").
fn supplier_ref(detail: &str) -> Option<&str> {
    let (_, rest) = detail.split_once("(supplier ref ")?;
    rest.split_once(')')
        .map(|(r, _)| r)
        .filter(|r| !r.is_empty())
}

/// Who did something, as the card issuer may read it: staff are "support agent", not a name.
fn trail_actor(actor: &str) -> &str {
    match actor {
        a if a.starts_with("staff:") => "support agent",
        "provider" => "payment provider",
        "supplier" => "coin supplier",
        "buyer" => "buyer",
        _ => "shop",
    }
}

fn trail_line(e: &events::OrderEvent) -> String {
    let what = match (
        e.kind.as_str(),
        e.from_status.as_deref(),
        e.to_status.as_deref(),
    ) {
        ("status_changed", from, Some(to)) => {
            let status = |s: &str| s.replace('_', " ");
            let moved = match from {
                Some(from) => format!("Status {} -> {}", status(from), status(to)),
                None => format!("Status {}", status(to)),
            };
            // Screening and review details stay internal; what happened to the money and the
            // coins is the evidence.
            if matches!(
                to,
                "paid" | "delivered" | "refunded" | "partially_refunded" | "expired"
            ) {
                format!("{moved}: {}", e.detail)
            } else {
                moved
            }
        }
        ("support_message", _, _) => "The buyer wrote to support".to_owned(),
        ("support_reply", _, _) => "Support answered the buyer".to_owned(),
        ("refund_requested", _, _) => "The buyer asked for a refund".to_owned(),
        _ if e.detail.is_empty() => e.kind.replace('_', " "),
        _ => e.detail.clone(),
    };
    format!("  {}  {}: {what}", format_utc(e.at), trail_actor(&e.actor))
}

/// What the shop knows about an order, as evidence for `dispute`: the text fields Stripe
/// documents for digital goods and the service documentation, a plain document of what was
/// delivered — the order and its amounts, the TikTok account the buyer confirmed, when the
/// coins were credited with the supplier's reference, the payment, and the order's audit
/// trail. Everything in it is already recorded, so the same order gives the same document.
pub async fn evidence_for(
    state: &Services,
    order: &Order,
    dispute: &Dispute,
) -> Result<DisputeEvidence, sqlx::Error> {
    let pool = state.db.pool();
    let (history, payments, emails) = tokio::try_join!(
        events::for_order(pool, &order.id),
        crate::db::payments::for_order(pool, &order.id),
        crate::db::emails::for_order(pool, &order.id),
    )?;
    let delivery = history
        .iter()
        .find(|e| e.kind == "status_changed" && e.to_status.as_deref() == Some("delivered"));
    let supplier = delivery.and_then(|e| supplier_ref(&e.detail));
    let delivered = match (delivery, order.delivered_at) {
        (Some(e), Some(at)) => format!("Delivered {}: {}.", format_utc(at), e.detail),
        (None, Some(at)) => format!("Delivered {}.", format_utc(at)),
        _ => "Not delivered.".to_owned(),
    };
    let paid = order
        .paid_at
        .map(|t| format!(" Paid {}.", format_utc(t)))
        .unwrap_or_default();
    let age = order
        .age_confirmed_at
        .map(format_utc)
        .unwrap_or_else(|| "—".into());
    let record = format!(
        "Order {} placed {} by {} from IP {}: {} TikTok coins for the TikTok account @{} (account id {}, shown to the buyer as \"{}\", who confirmed it before paying; age confirmed {age}).{paid} {delivered}",
        order.order_number,
        format_utc(order.created_at),
        order.email,
        order.client_ip,
        order.coins,
        order.tiktok_username,
        order.tiktok_account_id,
        order.tiktok_display_name,
    );
    let uncategorized = format!(
        "Digital goods delivered instantly to the account the buyer named and confirmed. {record} The buyer's receipt and delivery confirmation were emailed to {}. The attached service documentation has the order's full record.",
        order.email
    );

    let currency = order.amount.currency();
    let money = |minor: i64| Money::from_minor(minor, currency).to_string();
    let paid_with = payments.iter().rev().find(|p| p.status == "succeeded");
    let mut doc = String::new();
    let mut line = |text: String| {
        doc.push_str(&text);
        doc.push('\n');
    };
    line(format!(
        "Prepared by {} for {} {} ({}, {}). Times are UTC.",
        state.settings.shop_name,
        if dispute.status.starts_with("warning") {
            "inquiry"
        } else {
            "dispute"
        },
        dispute.id,
        dispute.reason.replace('_', " "),
        money(dispute.amount_minor)
    ));
    line(String::new());
    line("What was sold".into());
    line(format!(
        "  {} TikTok coins: digital goods, credited to the buyer's chosen TikTok account by the shop's coin supplier.",
        order.coins
    ));
    line(format!(
        "  Price {}, payment method fee {}, total charged {}.",
        money(order.amount.minor().saturating_sub(order.fee_minor)),
        money(order.fee_minor),
        order.amount
    ));
    if order.refunded_minor > 0 {
        line(format!(
            "  Refunded so far: {}.",
            money(order.refunded_minor)
        ));
    }
    line(String::new());
    line("The buyer".into());
    line(format!("  Email: {}", order.email));
    line(format!("  IP address when ordering: {}", order.client_ip));
    line(format!("  Order placed: {}", format_utc(order.created_at)));
    if let Some(min_age) = order.min_age {
        line(format!("  Confirmed being {min_age} or older: {age}"));
    }
    line(String::new());
    line("The TikTok account the coins went to".into());
    line(format!("  Username: @{}", order.tiktok_username));
    line(format!("  TikTok account id: {}", order.tiktok_account_id));
    line(format!(
        "  Display name \"{}\", shown to the buyer on the confirmation page, where the buyer confirmed the account before paying.",
        order.tiktok_display_name
    ));
    line(String::new());
    line("Payment".into());
    match paid_with {
        Some(p) => {
            line(format!(
                "  {}{}, {}",
                crate::orders::payment_events::method_summary(
                    &p.method,
                    p.card_brand.as_deref(),
                    p.card_last4.as_deref()
                ),
                p.card_country
                    .as_deref()
                    .map(|c| format!(" (card country {c})"))
                    .unwrap_or_default(),
                money(p.amount_minor)
            ));
            line(format!("  Payment reference: {}", p.provider_ref));
        }
        None => line(format!("  {}", order.payment_method.label())),
    }
    if let Some(at) = order.paid_at {
        line(format!("  Paid: {}", format_utc(at)));
    }
    line(String::new());
    line("Delivery".into());
    match order.delivered_at {
        Some(at) => {
            line(format!(
                "  {} coins credited to @{}: {}",
                order.coins,
                order.tiktok_username,
                format_utc(at)
            ));
            line(format!(
                "  Supplier reference: {}",
                supplier.unwrap_or("not recorded")
            ));
        }
        None => line("  Not delivered.".into()),
    }
    let sent: Vec<_> = emails.iter().filter(|e| e.sent_at.is_some()).collect();
    if !sent.is_empty() {
        line(String::new());
        line(format!("Emails to {}", order.email));
        for e in sent {
            line(format!(
                "  {}  \"{}\"",
                e.sent_at.map(format_utc).unwrap_or_default(),
                e.subject
            ));
        }
    }
    line(String::new());
    line("Order history (the shop's audit trail)".into());
    let trail: Vec<_> = history
        .iter()
        .filter(|e| TRAIL_KINDS.contains(&e.kind.as_str()))
        .collect();
    for e in trail.iter().take(TRAIL_MAX) {
        line(trail_line(e));
    }
    if trail.len() > TRAIL_MAX {
        line(format!("  … and {} later events", trail.len() - TRAIL_MAX));
    }

    Ok(DisputeEvidence {
        product_description: format!(
            "{} TikTok coins (digital goods) credited to TikTok account @{}",
            order.coins, order.tiktok_username
        ),
        customer_email: order.email.clone(),
        customer_purchase_ip: order.client_ip.clone(),
        service_date: order.delivered_at.map(format_utc),
        delivery_record: record.chars().take(20_000).collect(),
        uncategorized_text: uncategorized.chars().take(20_000).collect(),
        documentation: EvidenceDocument {
            file_stem: format!("service-documentation-{}", order.order_number),
            title: format!("Service documentation: order {}", order.order_number),
            text: doc,
        },
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum EvidenceOutcome {
    Submitted,
    AlreadySubmitted,
    NoSuchDispute,
    Failed(String),
}

/// The agent's "submit evidence": claimed in the database first (two agents, or a double
/// click, submit once), then sent; a refusal releases the claim so it can be tried again.
pub async fn submit_evidence(
    state: &Services,
    order: &Order,
    dispute_id: &str,
    actor: &str,
) -> Result<EvidenceOutcome, sqlx::Error> {
    let now = state.now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let Some(dispute) = rows::by_id(&mut conn, dispute_id).await? else {
        return Ok(EvidenceOutcome::NoSuchDispute);
    };
    drop(conn);
    if dispute.order_id != order.id {
        return Ok(EvidenceOutcome::NoSuchDispute);
    }
    let evidence = evidence_for(state, order, &dispute).await?;
    let mut tx = state.db.begin().await?;
    // What is sent is kept as sent: the text fields and the document.
    let kept = format!(
        "{}\n\n{}",
        evidence.uncategorized_text, evidence.documentation.text
    );
    if !rows::mark_evidence_submitted(&mut tx, dispute_id, actor, &kept, now).await? {
        tx.rollback().await?;
        return Ok(EvidenceOutcome::AlreadySubmitted);
    }
    tx.commit().await?;
    match state
        .provider
        .submit_dispute_evidence(dispute_id, &evidence)
        .await
    {
        Ok(sent) => {
            let mut tx = state.db.begin().await?;
            if let Some(file) = &sent.documentation_file {
                rows::set_evidence_file(&mut tx, dispute_id, file).await?;
            }
            let detail = match &sent.documentation_file {
                Some(file) => format!(
                    "Evidence submitted for chargeback {dispute_id}, with the service documentation ({file})"
                ),
                None => format!("Evidence submitted for chargeback {dispute_id}"),
            };
            events::record(
                &mut tx,
                &order.id,
                now,
                actor,
                "dispute_evidence",
                None,
                None,
                &detail,
            )
            .await?;
            audit::order_action(&mut tx, actor, "dispute_evidence", &order.id, &detail, now)
                .await?;
            tx.commit().await?;
            Ok(EvidenceOutcome::Submitted)
        }
        Err(e) => {
            let mut conn = state.db.pool().acquire().await?;
            rows::clear_evidence_submitted(&mut conn, dispute_id).await?;
            Ok(EvidenceOutcome::Failed(e.to_string()))
        }
    }
}

/// The dashboard's dispute rate: disputes opened ÷ card payments settled, over 30 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRate {
    pub disputes: i64,
    pub settled: i64,
    /// Percent with two decimals ("0.00" with no payments).
    pub percent: String,
    /// The thresholds it has reached, by name.
    pub over: Vec<&'static str>,
}

pub async fn rate(state: &Services) -> Result<DisputeRate, sqlx::Error> {
    let since = state.now_ms().saturating_sub(30 * DAY_MS);
    let (disputes, settled) = rows::rate_counts(state.db.pool(), since).await?;
    Ok(rate_of(disputes, settled))
}

pub fn rate_of(disputes: i64, settled: i64) -> DisputeRate {
    use rust_decimal::Decimal;
    let pct = if settled > 0 {
        (Decimal::from(disputes) * Decimal::from(100) / Decimal::from(settled)).round_dp(2)
    } else {
        Decimal::ZERO
    };
    let over = NETWORK_THRESHOLDS
        .iter()
        .filter(|(_, t)| t.parse::<Decimal>().is_ok_and(|t| disputes > 0 && pct >= t))
        .map(|(n, _)| *n)
        .collect();
    DisputeRate {
        disputes,
        settled,
        percent: format!("{pct:.2}"),
        over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_disputes_over_settled_payments_against_the_networks_thresholds() {
        assert_eq!(rate_of(0, 0).percent, "0.00");
        assert!(rate_of(0, 0).over.is_empty());
        let r = rate_of(1, 200);
        assert_eq!(r.percent, "0.50");
        assert!(r.over.is_empty());
        let r = rate_of(2, 100);
        assert_eq!(r.percent, "2.00");
        assert_eq!(r.over.len(), 3);
        let r = rate_of(1, 100);
        assert_eq!(r.over, vec!["Visa early warning"]);
    }
}

//! What the console's pages show of orders and risk assessments, built once for all pages.

use crate::clock::format_utc;
use crate::db::orders::{self, Order};
use crate::domain::{Money, OrderStatus};
use crate::risk::{Reason, Signals};
use crate::services::Services;
use rust_decimal::Decimal;

/// One order in a list.
#[derive(Debug, Clone)]
pub struct OrderLine {
    pub id: String,
    pub number: String,
    pub status: String,
    pub status_label: &'static str,
    pub status_class: &'static str,
    pub amount: String,
    pub coins: String,
    pub username: String,
    pub email: String,
    pub created: String,
    pub updated: String,
}

pub fn status_class(s: OrderStatus) -> &'static str {
    use OrderStatus::*;
    match s {
        Delivered => "good",
        AwaitingPayment | Paid | Queued | InReview | Fulfilling => "wait",
        _ => "bad",
    }
}

impl OrderLine {
    pub fn of(o: &Order) -> Self {
        OrderLine {
            id: o.id.clone(),
            number: o.order_number.clone(),
            status: o.status.as_str().to_owned(),
            status_label: o.status.label(),
            status_class: status_class(o.status),
            amount: o.amount.to_string(),
            coins: o.coins.to_string(),
            username: o.tiktok_username.clone(),
            email: o.email.clone(),
            created: format_utc(o.created_at),
            updated: format_utc(o.updated_at),
        }
    }
}

/// A labelled fact under an assessment: "Failed payments, last hour" — "order 3 · email 3 …".
#[derive(Debug, Clone)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct RiskView {
    pub stage: String,
    pub score: i64,
    pub decision: String,
    pub when: String,
    pub reasons: Vec<String>,
    pub facts: Vec<Fact>,
}

fn per_scope(p: &crate::risk::signals::PerScope) -> String {
    format!(
        "this order {} · email {} · IP {} · card {} · username {}",
        p.order, p.email, p.ip, p.card, p.username
    )
}

/// The signals behind the reasons, in words an agent reads at a glance.
pub fn facts(s: &Signals, services: &Services) -> Vec<Fact> {
    let base = services.live.current().catalog.base_currency();
    let money = |minor: i64| Money::from_minor(minor, base).to_string();
    let percent = if s.reference_price_per_coin > Decimal::ZERO {
        (s.price_per_coin * Decimal::from(100) / s.reference_price_per_coin)
            .round_dp(1)
            .normalize()
            .to_string()
    } else {
        "—".into()
    };
    let mut out = vec![
        Fact {
            label: "Price per coin",
            value: format!(
                "{} {} — {percent}% of the reference {} {}",
                s.price_per_coin.normalize(),
                base.code(),
                s.reference_price_per_coin.normalize(),
                base.code()
            ),
        },
        Fact {
            label: "Failed payments, last hour",
            value: per_scope(&s.failed_payments_1h),
        },
        Fact {
            label: "Failed payments, last 24 h",
            value: per_scope(&s.failed_payments_24h),
        },
        Fact {
            label: "Cards that failed, last hour",
            value: format!(
                "{} with this email · {} for this username · {} from this IP",
                s.failed_cards_1h.email, s.failed_cards_1h.username, s.failed_cards_1h.ip
            ),
        },
        Fact {
            label: "Payers of this username",
            value: format!(
                "{} in the last hour ({}) · {} in 24 h ({})",
                s.recipient.payers_1h,
                money(s.recipient.amount_1h_minor),
                s.recipient.payers_24h,
                money(s.recipient.amount_24h_minor)
            ),
        },
        Fact {
            label: "Orders in 24 h",
            value: format!(
                "username {} ({}) · email {} ({}) · IP {} ({})",
                s.velocity_24h_username.orders,
                money(s.velocity_24h_username.amount_minor),
                s.velocity_24h_email.orders,
                money(s.velocity_24h_email.amount_minor),
                s.velocity_24h_ip.orders,
                money(s.velocity_24h_ip.amount_minor)
            ),
        },
        Fact {
            label: "Earlier paid orders (email)",
            value: if s.prior_paid_orders >= crate::risk::signals::PRIOR_PAID_CAP {
                format!("{} or more", crate::risk::signals::PRIOR_PAID_CAP)
            } else {
                s.prior_paid_orders.to_string()
            },
        },
    ];
    out.extend(flags(s));
    out
}

/// The facts shown only when they hold: known payer, fraud declines, a surge, rate limits, a
/// price mismatch, a disposable email, list matches.
fn flags(s: &Signals) -> Vec<Fact> {
    let surge = s.surge.as_ref();
    let conditional = [
        (
            s.known_payer,
            "Known payer",
            "a card on this order paid a delivered order before, with this email".to_owned(),
        ),
        (
            s.fraud_declines_24h > 0,
            "Fraud declines, last 24 h",
            s.fraud_declines_24h.to_string(),
        ),
        (
            surge.is_some(),
            "Surge of failed payments",
            surge
                .map(|m| format!("{}; the order shares {}", m.why, m.shares))
                .unwrap_or_default(),
        ),
        (
            s.rate_limited_1h > 0,
            "Rate-limited requests, last hour",
            s.rate_limited_1h.to_string(),
        ),
        (
            s.price_mismatch,
            "Price shown to the buyer",
            "differs from the server's price".to_owned(),
        ),
        (
            s.disposable_email,
            "Email",
            "a disposable-email domain".to_owned(),
        ),
    ];
    let lists = s.list_hits.iter().map(|hit| Fact {
        label: "List match",
        value: format!(
            "{} list: {} {} — {} (by {})",
            hit.list.as_str(),
            hit.kind.describe(),
            hit.value,
            hit.reason,
            hit.added_by
        ),
    });
    conditional
        .into_iter()
        .filter(|(holds, ..)| *holds)
        .map(|(_, label, value)| Fact { label, value })
        .chain(lists)
        .collect()
}

/// Every assessment of an order, newest first.
pub async fn assessments(
    services: &Services,
    order_id: &str,
) -> Result<Vec<RiskView>, sqlx::Error> {
    let stored = crate::db::risk_assessments::for_order(services.db.pool(), order_id).await?;
    Ok(stored
        .into_iter()
        .map(|r| {
            let reasons: Vec<Reason> = serde_json::from_str(&r.reasons).unwrap_or_default();
            let facts = match serde_json::from_str::<Signals>(&r.signals) {
                Ok(s) => facts(&s, services),
                Err(_) => vec![Fact {
                    label: "Signals",
                    value: "stored in an older format; not shown".into(),
                }],
            };
            RiskView {
                stage: r.stage.replace('_', "-"),
                score: r.score,
                decision: r.decision,
                when: format_utc(r.created_at),
                reasons: reasons
                    .into_iter()
                    .map(|x| format!("{} (+{})", x.sentence, x.points))
                    .collect(),
                facts,
            }
        })
        .collect())
}

/// The buyer's other orders: same email or same TikTok username, newest first.
pub async fn other_orders(
    services: &Services,
    order: &Order,
) -> Result<Vec<OrderLine>, sqlx::Error> {
    Ok(orders::others_of_buyer(services.db.pool(), order)
        .await?
        .iter()
        .map(OrderLine::of)
        .collect())
}

/// A message after a redirect, from a fixed list (nothing the client writes is echoed).
pub fn flash(done: Option<&str>, order: Option<&str>) -> Option<String> {
    let n = order
        .filter(|n| n.len() <= 16 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or("the order");
    Some(match done? {
        "approved" => format!("Approved {n}: it is queued for delivery."),
        "rejected" => format!("Rejected {n}: a full refund is on its way to the buyer, who will be emailed."),
        "fraud" => format!("Rejected {n} as fraud: refund queued, and the buyer's card, email and username are block-listed."),
        "noted" => format!("Note added to {n}."),
        "retried" => format!("Delivery of {n} is being tried again."),
        "resent" => format!("The receipt for {n} was sent again."),
        "email-resent" => format!("The email is queued to be sent again to the buyer of {n}."),
        "evidence" => format!("Evidence for the chargeback on {n} was submitted to the card issuer."),
        "evidence-already" => format!("Evidence for this chargeback on {n} was already submitted."),
        "warning-refunded" => format!("A full refund of {n} is on its way, ahead of a chargeback."),
        "erased" => format!("The buyer's email address, IP addresses and messages were erased from {n} and every other order with that email. Amounts and states are kept."),
        "erased-already" => format!("The buyer's personal data on {n} had been erased already."),
        _ => return None,
    })
}

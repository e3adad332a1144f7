//! `Signals`: the facts about an order that the rules read, gathered from the database with
//! indexed range queries (one round trip for the counts) and stored with every assessment so
//! that a rule change can be replayed over past orders.

use crate::clock::Millis;
use crate::db::orders::Order;
use crate::db::{risk_counts, Db};
use crate::domain::risk_list::ListHit;
use crate::domain::Catalog;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Counts of one thing per scope: this order, the buyer's email, IP, card and TikTok username.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerScope {
    pub order: u32,
    pub email: u32,
    pub ip: u32,
    /// The card tried on this order that failed most (0 before any payment).
    pub card: u32,
    pub username: u32,
}

impl PerScope {
    /// The largest count of the scopes that belong to one buyer (the address does not: many
    /// strangers share one), and the scope it belongs to, for the reason sentence.
    pub fn worst(&self) -> (u32, &'static str) {
        [
            (self.order, "this order"),
            (self.email, "this email"),
            (self.card, "a card tried on this order"),
            (self.username, "this TikTok username"),
        ]
        .into_iter()
        .fold(
            (0, "this order"),
            |best, x| if x.0 > best.0 { x } else { best },
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Velocity {
    pub orders: u32,
    /// Base-currency minor units.
    pub amount_minor: i64,
}

/// Distinct cards that *failed* in the last hour, per scope. Successful payments by different
/// people behind one address are not evidence of anything; failures are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailedCards {
    pub email: u32,
    /// The TikTok username the order is for: testers often aim every card at one account.
    pub username: u32,
    /// The client's address: a weak signal (carrier NAT, offices), points only.
    pub ip: u32,
}

/// Who paid the order's recipient: paid orders to this TikTok username. A cash-out rotates
/// cards, emails and addresses, but not the account it cashes out to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipient {
    /// Distinct payers (the larger of distinct emails and distinct cards) in the last hour
    /// and 24 hours, this order included once it is paid.
    pub payers_1h: u32,
    pub payers_24h: u32,
    /// Base-currency minor units paid to the username in the last hour and 24 hours.
    pub amount_1h_minor: i64,
    pub amount_24h_minor: i64,
    /// Minutes since the first of those payments in the last hour, for "… in 40 minutes"
    /// (a span, not a time: snapshots hold no timestamps).
    pub span_minutes_1h: Option<u32>,
}

/// The order matches something the shop-wide surge response tightened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SurgeMatch {
    /// What the order shares with the failures: "card prefix 400000", "email domain x.test",
    /// or "new payer" when the failures share nothing narrower.
    pub shares: String,
    /// Why the response engaged: "48 failed cards in 10 minutes against a usual 2".
    pub why: String,
}

/// Every field defaults, so assessments stored before a signal existed still load and replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signals {
    pub coins: u64,
    /// The order's amount in the base currency's minor units.
    pub amount_base_minor: i64,
    /// Effective base-currency price per coin, after any discount.
    pub price_per_coin: Decimal,
    pub reference_price_per_coin: Decimal,
    /// The price or currency the buyer's page showed differs from the server's.
    pub price_mismatch: bool,
    pub disposable_email: bool,
    /// Failed payments per scope. Repeats of one card with the same decline on one order
    /// count once (a buyer retrying is not a tester); the card scope counts the orders the
    /// worst card tried here failed on.
    pub failed_payments_1h: PerScope,
    pub failed_payments_24h: PerScope,
    pub failed_cards_1h: FailedCards,
    /// Declines that say "fraud" (lost or stolen card, the provider's fraud block, card
    /// velocity) in the last 24 hours on this order, its email, its username or its cards.
    pub fraud_declines_24h: u32,
    pub velocity_24h_username: Velocity,
    pub velocity_24h_email: Velocity,
    /// Shown to agents; no rule reads it (an address is shared by strangers).
    pub velocity_24h_ip: Velocity,
    pub recipient: Recipient,
    /// Earlier paid orders from the same email, counted up to `PRIOR_PAID_CAP`.
    pub prior_paid_orders: u32,
    /// A card that paid this order paid a delivered order before, with the same email: a
    /// fact an attacker cannot type (an email alone they can).
    pub known_payer: bool,
    /// Requests from the order's IP refused by a rate limit in the last hour.
    pub rate_limited_1h: u32,
    pub surge: Option<SurgeMatch>,
    pub list_hits: Vec<ListHit>,
}

/// Earlier paid orders are counted up to this many: the rules only ask whether there is one,
/// and a regular's thousandth order should cost no more to screen than their second.
pub const PRIOR_PAID_CAP: u32 = 100;

/// Gathers the signals for `order` as of `now`: one statement (`db::risk_counts`) reads every
/// count, the matching block and allow list entries and the surge response in force.
pub async fn gather(
    db: &Db,
    catalog: &Catalog,
    order: &Order,
    now: Millis,
) -> Result<Signals, sqlx::Error> {
    let c = risk_counts::counts(db, order, PRIOR_PAID_CAP, super::surge::KIND, now).await?;
    Ok(assemble(catalog, order, c, now))
}

/// The signals from what was read, with what the order itself says (its price per coin, a
/// price mismatch, a disposable email domain) and what the surge response tightened that it
/// shares.
fn assemble(catalog: &Catalog, order: &Order, c: risk_counts::Counts, now: Millis) -> Signals {
    let surge = super::surge::match_order(
        c.surge_detail.clone(),
        c.surge_tightened.clone(),
        c.surge_bins.clone(),
        order,
    );
    let base_total = catalog.to_base(order.amount).unwrap_or_default();
    let price_per_coin = base_total / Decimal::from(order.coins.get().max(1));
    let price_mismatch = order
        .client_amount_minor
        .is_some_and(|c| c != order.amount.minor())
        || order
            .client_currency
            .as_deref()
            .is_some_and(|c| c != order.amount.currency().code());
    let domain = order.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let fraud_declines_24h = [c.fraud_order, c.fraud_email, c.fraud_user, c.fraud_card]
        .into_iter()
        .max()
        .unwrap_or(0);
    Signals {
        coins: order.coins.get(),
        amount_base_minor: order.base_amount_minor,
        price_per_coin: price_per_coin.round_dp(8),
        reference_price_per_coin: catalog.reference_price_per_coin(),
        price_mismatch,
        disposable_email: super::disposable::is_disposable(domain),
        failed_payments_1h: PerScope {
            order: c.f1_order,
            email: c.f1_email,
            ip: c.f1_ip,
            card: c.f1_card,
            username: c.f1_user,
        },
        failed_payments_24h: PerScope {
            order: c.f24_order,
            email: c.f24_email,
            ip: c.f24_ip,
            card: c.f24_card,
            username: c.f24_user,
        },
        failed_cards_1h: FailedCards {
            email: c.fc_email,
            username: c.fc_user,
            ip: c.fc_ip,
        },
        fraud_declines_24h,
        velocity_24h_username: Velocity {
            orders: c.v_user_n,
            amount_minor: c.v_user_a,
        },
        velocity_24h_email: Velocity {
            orders: c.v_email_n,
            amount_minor: c.v_email_a,
        },
        velocity_24h_ip: Velocity {
            orders: c.v_ip_n,
            amount_minor: c.v_ip_a,
        },
        recipient: Recipient {
            payers_1h: c.r1_emails.max(c.r1_cards),
            payers_24h: c.r24_emails.max(c.r24_cards),
            amount_1h_minor: c.r1_amount,
            amount_24h_minor: c.r24_amount,
            span_minutes_1h: c
                .r_first
                .map(|first| ((now - first).max(0) / 60_000).clamp(0, 60) as u32),
        },
        prior_paid_orders: c.prior_paid,
        known_payer: c.known_payer > 0,
        rate_limited_1h: c.limited,
        surge,
        list_hits: c.list_hits,
    }
}

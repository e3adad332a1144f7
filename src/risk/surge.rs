//! The shop-wide response to a wave of failed payments, in place of a breaker that paused
//! every new payer. Card-testing waves rotate addresses and emails, so per-buyer counts miss
//! them; but a wave still shares something — a card prefix, an email domain, a network, a
//! recipient. When failures leave the shop's own baseline, the response *narrows* to what the
//! failures share: orders from unknown payers that share it are held for review before any
//! coins go out. Nobody is refused a payment, and nothing an attacker can type exempts
//! anyone: the exemption is a card that paid a delivered order before with the same email.
//!
//! Each engagement is a `screening_events` row (when, why, what tightened) that every instance
//! reads and the console shows; it ends by itself `hold_minutes` after the last check that
//! still saw the surge.

use super::settings::Surge as SurgeSettings;
use super::signals::SurgeMatch;
use crate::clock::Millis;
use crate::db::orders::Order;
use crate::db::{surge, Db};
use serde::{Deserialize, Serialize};

pub const KIND: &str = "failure_surge";

/// A trait the failures share, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tightened {
    /// `card_bin`, `email_domain`, `client_net` or `tiktok_username`.
    pub kind: String,
    pub value: String,
    /// Distinct cards that failed with this trait in the window.
    pub failed_cards: u32,
    /// Percentage of this trait's attempts in the window that failed.
    pub failed_percent: u32,
}

impl Tightened {
    pub fn describe(&self) -> String {
        match self.kind.as_str() {
            "card_bin" => format!("card prefix {}", self.value),
            "email_domain" => format!("email domain {}", self.value),
            "client_net" => format!("network {}", self.value),
            "tiktok_username" => format!("recipient @{}", self.value),
            other => format!("{other} {}", self.value),
        }
    }
}

/// An engagement, as the console lists it.
#[derive(Debug, Clone)]
pub struct Engagement {
    pub started_at: Millis,
    pub until_at: Millis,
    pub detail: String,
    pub tightened: Vec<Tightened>,
}

const DAY: i64 = 86_400_000;

/// Looks at the last window's failures and engages, extends or leaves the response. Cheap
/// when nothing is wrong: one count on the failed-payments index.
pub async fn check(db: &Db, s: &SurgeSettings, now: Millis) -> Result<(), sqlx::Error> {
    let window = i64::from(s.window_minutes.max(1)) * 60_000;
    let since = now - window;
    let pool = db.pool();
    let recent = surge::failed_cards_since(pool, since).await?;
    if recent < i64::from(s.min_failures) {
        return Ok(());
    }
    // The shop's own usual rate: the 24 hours before the window, scaled to one window.
    let before = surge::failures_between(pool, since - DAY, since).await?;
    let usual = before.saturating_mul(window) / DAY;
    if recent < usual.saturating_mul(i64::from(s.baseline_multiple)) {
        return Ok(());
    }
    let mut tightened = Vec::new();
    for column in surge::TRAIT_COLUMNS {
        tightened.extend(shared(db, s, column, since).await?);
    }
    // With nothing narrower shared, the engagement is recorded (the console shows it) and the
    // per-buyer rules carry on alone: holding every new payer would turn away the honest
    // majority for the length of the wave.
    let detail = format!(
        "{recent} cards failed in the last {} minutes, against a usual {usual}",
        s.window_minutes
    );
    record(db, s, now, &detail, tightened).await
}

/// Values of `column` that at least `trait_min_failures` failed cards share in the window and
/// whose attempts mostly failed (a popular email domain has many failures and far more
/// successes: it is not what the wave shares).
async fn shared(
    db: &Db,
    s: &SurgeSettings,
    column: &'static str,
    since: Millis,
) -> Result<Vec<Tightened>, sqlx::Error> {
    let pool = db.pool();
    let candidates =
        surge::shared_by_failures(pool, column, since, i64::from(s.trait_min_failures)).await?;
    let mut out = Vec::new();
    for (value, failed) in candidates {
        let (total, failed_attempts) = surge::attempts_with(pool, column, &value, since).await?;
        let percent = (failed_attempts.saturating_mul(100) / total.max(1)).clamp(0, 100) as u32;
        if percent < s.trait_min_failed_percent {
            continue;
        }
        // A trait with an honest history of its own is not what the wave shares: a big
        // bank's prefix, a free-mail domain, a carrier's network. Fewer earlier successes
        // than failed cards now, in the 30 days before the window, and it is tightened.
        let history =
            surge::successes_with(pool, column, &value, since - 30 * DAY, since, failed).await?;
        if history < failed {
            out.push(Tightened {
                kind: column.into(),
                value,
                failed_cards: failed.clamp(0, u32::MAX as i64) as u32,
                failed_percent: percent,
            });
        }
    }
    Ok(out)
}

/// Starts an engagement, or extends the one in force with what this check found.
async fn record(
    db: &Db,
    s: &SurgeSettings,
    now: Millis,
    detail: &str,
    found: Vec<Tightened>,
) -> Result<(), sqlx::Error> {
    let until = now + i64::from(s.hold_minutes.max(1)) * 60_000;
    let mut tx = db.begin().await?;
    match surge::in_force(&mut tx, KIND, now).await? {
        Some(event) => {
            let mut all: Vec<Tightened> =
                serde_json::from_str(&event.tightened).unwrap_or_default();
            for t in found {
                match all
                    .iter_mut()
                    .find(|x| x.kind == t.kind && x.value == t.value)
                {
                    Some(x) => *x = t,
                    None => all.push(t),
                }
            }
            let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
            surge::extend(&mut tx, &event.id, until, detail, &json, now).await?;
        }
        None => {
            let what: Vec<String> = found.iter().map(Tightened::describe).collect();
            tracing::warn!(
                why = detail,
                tightened = %what.join("; "),
                "failed payments surged: holding matching orders from unknown payers for review"
            );
            let json = serde_json::to_string(&found).unwrap_or_else(|_| "[]".into());
            surge::insert(&mut tx, KIND, now, until, detail, &json).await?;
        }
    }
    tx.commit().await
}

/// What the engagement in force, if any, tightened that this order shares, from what the
/// screening statement read (`db::risk_counts`): the engagement's detail and tightened traits
/// (JSON), and the card prefixes tried on the order (comma-separated).
pub fn match_order(
    detail: Option<String>,
    tightened: Option<String>,
    bins: Option<String>,
    order: &Order,
) -> Option<SurgeMatch> {
    let why = detail?;
    let tightened: Vec<Tightened> =
        serde_json::from_str(tightened.as_deref().unwrap_or("[]")).unwrap_or_default();
    let bins = bins.unwrap_or_default();
    let bins: Vec<&str> = bins.split(',').filter(|b| !b.is_empty()).collect();
    let domain = super::traits::email_domain(&order.email);
    let net = super::traits::client_net(&order.client_ip);
    let hit = tightened.iter().find(|t| match t.kind.as_str() {
        "card_bin" => bins.contains(&t.value.as_str()),
        "email_domain" => t.value == domain,
        "client_net" => t.value == net,
        "tiktok_username" => t.value == order.tiktok_username,
        _ => false,
    });
    hit.map(|t| SurgeMatch {
        shares: t.describe(),
        why,
    })
}

/// Engagements that ended after `since` or are in force, newest first, for the console.
pub async fn recent(db: &Db, since: Millis, limit: i64) -> Result<Vec<Engagement>, sqlx::Error> {
    let events = surge::recent(db.pool(), KIND, since, limit).await?;
    Ok(events
        .into_iter()
        .map(|e| Engagement {
            started_at: e.started_at,
            until_at: e.until_at,
            detail: e.detail,
            tightened: serde_json::from_str(&e.tightened).unwrap_or_default(),
        })
        .collect())
}

/// One instance's pacing of checks: at most one per `check_seconds` of the shop's clock.
#[derive(Debug, Default)]
pub struct Monitor {
    last_check: std::sync::atomic::AtomicI64,
}

impl Monitor {
    /// Whether a check is due now; claims it if so (one caller wins when several race).
    pub fn due(&self, now: Millis, every_seconds: u32) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.last_check.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < i64::from(every_seconds) * 1000 {
            return false;
        }
        self.last_check
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

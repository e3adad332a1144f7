//! `/console/settings/risk`: the risk rules' thresholds and weights. An admin edits them, tests
//! the proposal against the orders of a chosen period (`risk::backtest`: how many each setting
//! would allow, review and block, and which were later refunded, rejected or rejected as
//! fraud), then saves; the next assessment uses the saved values on every instance.

use super::super::form::ConsoleForm;
use super::super::page::ConsoleMeta;
use super::super::session::{Admin, Current};
use super::super::ConsoleError;
use super::audited::{self, store, Change};
use crate::live_settings;
use crate::risk::backtest::{self, Comparison, Tally};
use crate::risk::RiskSettings;
use crate::web::state::AppState;
use crate::web::{render, ClientIp};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::str::FromStr;

const DAY_MS: i64 = 86_400_000;
const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 366;

/// What a field holds, which sets how it is parsed and its allowed range.
#[derive(Clone, Copy)]
enum Kind {
    /// A score threshold or a rule's points.
    Points,
    Percent,
    /// How many of something (failures, cards, orders, requests).
    Count,
    /// An amount in the base currency.
    Amount,
    Seconds,
}

impl Kind {
    fn max(self) -> u64 {
        match self {
            Kind::Points => 1_000,
            Kind::Percent => 100,
            Kind::Count => 1_000_000,
            Kind::Amount => 1_000_000_000,
            Kind::Seconds => 7 * 86_400,
        }
    }
}

struct Field {
    /// The path in `RiskSettings` (and the form field's name).
    key: &'static str,
    label: &'static str,
    kind: Kind,
}

struct Group {
    title: &'static str,
    explain: &'static str,
    fields: &'static [Field],
}

const fn f(key: &'static str, label: &'static str, kind: Kind) -> Field {
    Field { key, label, kind }
}

/// Every editable value, in the order the page shows them.
const GROUPS: &[Group] = &[
    Group {
        title: "Decision",
        explain: "An order's points are added up; at or above these scores it is held for review or blocked. Some rules force a decision whatever the score.",
        fields: &[
            f("review_threshold", "Review from a score of", Kind::Points),
            f("block_threshold", "Block from a score of", Kind::Points),
        ],
    },
    Group {
        title: "Unrealistic offer",
        explain: "The effective price per coin against the reference market rate.",
        fields: &[
            f("unrealistic_offer.review_below_percent", "Review below this % of the reference", Kind::Percent),
            f("unrealistic_offer.block_below_percent", "Block below this % of the reference", Kind::Percent),
        ],
    },
    Group {
        title: "Repeated failed payments",
        explain: "The worst count over this order, the email, the card and the TikTok username (a card retried with the same decline counts once). Not the IP address: strangers share addresses.",
        fields: &[
            f("repeated_failed_payments.review_at_1h", "Review at this many in 1 hour", Kind::Count),
            f("repeated_failed_payments.block_at_1h", "Block at this many in 1 hour", Kind::Count),
            f("repeated_failed_payments.review_at_24h", "Review at this many in 24 hours", Kind::Count),
            f("repeated_failed_payments.block_at_24h", "Block at this many in 24 hours", Kind::Count),
        ],
    },
    Group {
        title: "Card testing",
        explain: "Distinct cards that failed for one email or one TikTok username in the last hour. From one IP address the same count only adds points, never blocks by itself.",
        fields: &[
            f("card_testing.distinct_cards_1h", "Failed cards in 1 hour", Kind::Count),
            f("card_testing.points", "Points", Kind::Points),
            f("card_testing.address_points", "From one IP address: points", Kind::Points),
        ],
    },
    Group {
        title: "Fraud declines",
        explain: "A lost-card, stolen-card or fraud decline in the last 24 hours on the order, its email, its TikTok username or its cards (the order is held for review).",
        fields: &[f("fraud_decline.points", "Points", Kind::Points)],
    },
    Group {
        title: "Recipient funnel",
        explain: "Different payers (emails or cards) paying for one TikTok username: the shape of a cash-out. The order is held for review.",
        fields: &[
            f("recipient_funnel.review_payers_1h", "Review at this many payers in 1 hour", Kind::Count),
            f("recipient_funnel.review_payers_24h", "Review at this many payers in 24 hours", Kind::Count),
        ],
    },
    Group {
        title: "Velocity",
        explain: "Orders and amount per TikTok username and email in 24 hours.",
        fields: &[
            f("velocity.max_orders_24h", "More orders than", Kind::Count),
            f("velocity.max_amount_24h", "Or more than this amount (base currency)", Kind::Amount),
            f("velocity.points", "Points", Kind::Points),
        ],
    },
    Group {
        title: "Large first order",
        explain: "A first order (no earlier paid order from the email) above an amount.",
        fields: &[
            f("large_first_order.amount", "Above this amount (base currency)", Kind::Amount),
            f("large_first_order.points", "Points", Kind::Points),
        ],
    },
    Group {
        title: "Other signals",
        explain: "A throwaway email domain; a price or currency the buyer saw that differs from the server's; requests refused by a rate limit in the last hour.",
        fields: &[
            f("disposable_email.points", "Disposable email: points", Kind::Points),
            f("price_mismatch.points", "Price mismatch: points", Kind::Points),
            f("rate_limited.at_least", "Rate-limited: at this many refusals", Kind::Count),
            f("rate_limited.points", "Rate-limited: points", Kind::Points),
        ],
    },
    Group {
        title: "Hold-back of large first orders",
        explain: "An order above this amount from a payer the shop has not delivered to waits before crediting, and is screened again then: the first payer of a cash-out looks like a gift until the next payer for the same account arrives.",
        fields: &[
            f("holdback.amount", "Above this amount (base currency)", Kind::Amount),
            f("holdback.minutes", "Wait (minutes; 0 turns it off)", Kind::Count),
        ],
    },
    Group {
        title: "Surge of failed payments",
        explain: "Shop-wide: when failed cards in a window pass both a floor and a multiple of the shop's usual rate, orders from payers the shop has not delivered to before that share what the failures share (card prefix, email domain, network, recipient) are held for review. Nobody is refused a payment.",
        fields: &[
            f("surge.window_minutes", "Window (minutes)", Kind::Count),
            f("surge.min_failures", "At least this many failed cards in the window", Kind::Count),
            f("surge.baseline_multiple", "And this many times the usual rate", Kind::Count),
            f("surge.trait_min_failures", "A shared trait needs this many failed cards", Kind::Count),
            f("surge.trait_min_failed_percent", "…that failed at least this % of its attempts", Kind::Percent),
            f("surge.hold_minutes", "Hold for (minutes) after the last surge check", Kind::Count),
            f("surge.check_seconds", "Check at most every (seconds, per instance)", Kind::Seconds),
        ],
    },
];

pub struct FieldView {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    /// The value in force, when the form shows a different one.
    pub in_force: Option<String>,
    pub error: Option<String>,
    pub decimal: bool,
}

pub struct GroupView {
    pub title: &'static str,
    pub explain: &'static str,
    pub fields: Vec<FieldView>,
}

pub struct Cell {
    pub orders: u64,
    pub refunded: u64,
    pub rejected: u64,
    pub fraud: u64,
}

pub struct ComparisonRow {
    pub label: &'static str,
    pub current: Cell,
    pub proposed: Cell,
}

pub struct ComparisonView {
    pub days: u32,
    pub orders: u64,
    pub changed: u64,
    pub unreadable: u64,
    pub rows: Vec<ComparisonRow>,
}

#[derive(Template)]
#[template(path = "console/settings/risk.html")]
struct RiskPage {
    meta: ConsoleMeta,
    groups: Vec<GroupView>,
    based_on: i64,
    overridden: bool,
    days: String,
    days_error: Option<String>,
    form_error: Option<String>,
    comparison: Option<ComparisonView>,
    /// The digest of the values the comparison is for: "save" saves exactly those.
    tested: Option<String>,
    flash: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    done: String,
}

/// The settings in force as dotted paths → form text.
fn form_values(risk: &RiskSettings) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(json) = serde_json::to_value(risk) {
        for g in GROUPS {
            for field in g.fields {
                if let Some(v) = lookup(&json, field.key) {
                    out.insert(field.key.to_owned(), text_of(v));
                }
            }
        }
    }
    out
}

fn lookup<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(json, |v, k| v.get(k))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn page(
    state: &AppState,
    current: &Current,
    shown: &HashMap<String, String>,
    errors: &HashMap<&'static str, String>,
) -> RiskPage {
    let live = state.live.current();
    let in_force = form_values(&live.risk);
    let groups = GROUPS
        .iter()
        .map(|g| GroupView {
            title: g.title,
            explain: g.explain,
            fields: g
                .fields
                .iter()
                .map(|field| {
                    let value = shown.get(field.key).cloned().unwrap_or_default();
                    let now = in_force.get(field.key).cloned().unwrap_or_default();
                    FieldView {
                        key: field.key,
                        label: field.label,
                        in_force: (value.trim() != now).then_some(now),
                        value,
                        error: errors.get(field.key).cloned(),
                        decimal: matches!(field.kind, Kind::Amount),
                    }
                })
                .collect(),
        })
        .collect();
    RiskPage {
        meta: ConsoleMeta::for_staff(state, current, "Risk rules"),
        groups,
        based_on: live.version_of(live_settings::RISK),
        overridden: live.is_overridden(live_settings::RISK),
        days: DEFAULT_DAYS.to_string(),
        days_error: None,
        form_error: None,
        comparison: None,
        tested: None,
        flash: None,
    }
}

pub async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let values = form_values(&state.live.current().risk);
    let mut p = page(&state, &current, &values, &HashMap::new());
    p.flash = match query.done.as_str() {
        "saved" => Some("Saved. The next assessment on every instance uses these values.".into()),
        "reverted" => Some("Reverted to the config file's values.".into()),
        "unchanged" => Some("Nothing was changed: the values are the ones in force.".into()),
        _ => None,
    };
    Ok(render(StatusCode::OK, &p))
}

/// A submitted proposal: every field's text, the version it was based on, the test period.
struct Proposal {
    texts: HashMap<String, String>,
    based_on: i64,
    days: String,
    tested: String,
}

fn proposal(pairs: Vec<(String, String)>) -> Proposal {
    let mut texts: HashMap<String, String> = pairs.into_iter().collect();
    let based_on = texts
        .remove("based_on")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1);
    let days = texts
        .remove("days")
        .unwrap_or_else(|| DEFAULT_DAYS.to_string());
    let tested = texts.remove("tested").unwrap_or_default();
    Proposal {
        texts,
        based_on,
        days,
        tested,
    }
}

/// Reads the proposed settings over `base` (so a value this page does not show is kept), or
/// says what is wrong with which field.
fn parse(
    base: &RiskSettings,
    texts: &HashMap<String, String>,
) -> Result<RiskSettings, HashMap<&'static str, String>> {
    let mut json = serde_json::to_value(base).unwrap_or(Value::Null);
    let mut errors = HashMap::new();
    for field in GROUPS.iter().flat_map(|g| g.fields) {
        let raw = texts.get(field.key).map(|s| s.trim()).unwrap_or("");
        let value = match parse_value(field.kind, raw) {
            Ok(v) => v,
            Err(e) => {
                errors.insert(field.key, e);
                continue;
            }
        };
        if let Some(slot) = lookup_mut(&mut json, field.key) {
            *slot = value;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let risk: RiskSettings = serde_json::from_value(json).map_err(|e| {
        HashMap::from([(
            GROUPS[0].fields[0].key,
            format!("These values could not be read: {e}"),
        )])
    })?;
    risk.validate().map_err(|e| {
        // "risk.unrealistic_offer" → the group's first field; "risk.x.y" → that field.
        let key = e.key.trim_start_matches("risk.");
        let field = GROUPS
            .iter()
            .flat_map(|g| g.fields)
            .find(|f| f.key == key || f.key.starts_with(&format!("{key}.")))
            .map_or(GROUPS[0].fields[0].key, |f| f.key);
        HashMap::from([(field, sentence(&e.problem))])
    })?;
    Ok(risk)
}

fn sentence(problem: &str) -> String {
    let mut s = problem.replace("risk.", "").replace('_', " ");
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

fn parse_value(kind: Kind, raw: &str) -> Result<Value, String> {
    if raw.is_empty() {
        return Err("Enter a value.".into());
    }
    let max = kind.max();
    if let Kind::Amount = kind {
        let d = Decimal::from_str(raw)
            .ok()
            .filter(|d| !d.is_sign_negative() && d.scale() <= 2)
            .ok_or_else(|| "Enter an amount such as 250 or 99.50.".to_owned())?;
        if d > Decimal::from(max) {
            return Err(format!("At most {max}."));
        }
        return Ok(Value::String(d.normalize().to_string()));
    }
    let n: u64 = raw
        .parse()
        .map_err(|_| "Enter a whole number.".to_owned())?;
    if n > max {
        return Err(format!("At most {max}."));
    }
    Ok(Value::from(n))
}

fn lookup_mut<'a>(json: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(json, |v, k| v.get_mut(k))
}

fn parse_days(raw: &str) -> Result<u32, String> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .ok_or_else(|| format!("Enter a number of days from 1 to {MAX_DAYS}."))
}

fn invalid(
    state: &AppState,
    current: &Current,
    p: &Proposal,
    errors: &HashMap<&'static str, String>,
    days_error: Option<String>,
) -> HttpResponse {
    let mut page = page(state, current, &p.texts, errors);
    page.based_on = p.based_on;
    page.days = p.days.clone();
    page.days_error = days_error;
    page.form_error = Some("Nothing was saved or tested: correct the marked values.".into());
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// `POST /console/settings/risk/test`: the side-by-side replay of the proposal.
pub async fn test(
    state: web::Data<AppState>,
    admin: Admin,
    form: ConsoleForm<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let p = proposal(form.0);
    let live = state.live.current();
    let days = parse_days(&p.days);
    let proposed = parse(&live.risk, &p.texts);
    let (proposed, days) = match (proposed, days) {
        (Ok(r), Ok(d)) => (r, d),
        (r, d) => {
            let errors = r.err().unwrap_or_default();
            return Ok(invalid(&state, &current, &p, &errors, d.err()));
        }
    };
    let page = tested_page(&state, &current, &live.risk, &proposed, p.based_on, days).await?;
    Ok(render(StatusCode::OK, &page))
}

/// The page with `proposed` in the form, replayed beside `in_force` over the last `days`.
async fn tested_page(
    state: &AppState,
    current: &Current,
    in_force: &RiskSettings,
    proposed: &RiskSettings,
    based_on: i64,
    days: u32,
) -> Result<RiskPage, ConsoleError> {
    let since = state.now_ms() - i64::from(days) * DAY_MS;
    let comparison = backtest::run(&state.db, in_force, proposed, since).await?;
    let mut page = page(state, current, &form_values(proposed), &HashMap::new());
    page.based_on = based_on;
    page.days = days.to_string();
    page.comparison = Some(view(&comparison, days));
    page.tested = Some(live_settings::digest(proposed));
    Ok(page)
}

fn view(c: &Comparison, days: u32) -> ComparisonView {
    let cell = |t: &Tally, i: usize| Cell {
        orders: t.decided[i],
        refunded: t.refunded[i],
        rejected: t.rejected[i],
        fraud: t.fraud[i],
    };
    let rows = ["Allowed", "Held for review", "Blocked"]
        .into_iter()
        .enumerate()
        .map(|(i, label)| ComparisonRow {
            label,
            current: cell(&c.current, i),
            proposed: cell(&c.proposed, i),
        })
        .collect();
    ComparisonView {
        days,
        orders: c.orders,
        changed: c.changed,
        unreadable: c.unreadable,
        rows,
    }
}

/// `POST /console/settings/risk`: saves the values that were tested, audited, if nobody
/// saved in between. Values edited after the test are tested first instead.
pub async fn save(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let p = proposal(form.0);
    let live = state.live.current();
    let proposed = match parse(&live.risk, &p.texts) {
        Ok(r) => r,
        Err(errors) => return Ok(invalid(&state, &current, &p, &errors, None)),
    };
    if proposed != live.risk && p.tested != live_settings::digest(&proposed) {
        let days = parse_days(&p.days).unwrap_or(DEFAULT_DAYS);
        let mut page =
            tested_page(&state, &current, &live.risk, &proposed, p.based_on, days).await?;
        page.flash = Some(
            "These values differ from the ones you tested, so nothing was saved yet: here is the test of the values as they are now. Save again to keep them.".into(),
        );
        return Ok(render(StatusCode::OK, &page));
    }
    let value = serde_json::to_value(&proposed).map_err(anyhow::Error::from)?;
    store(
        &state,
        &current,
        &ip,
        Change {
            name: live_settings::RISK,
            value: Some(value),
            based_on: p.based_on,
            action: "risk_rules_changed",
            done: "saved",
        },
    )
    .await
}

/// `POST /console/settings/risk/revert`: back to the config file's values.
pub async fn revert(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let p = proposal(form.0);
    let based_on = p.based_on;
    audited::revert(
        &state,
        &current,
        &ip,
        live_settings::RISK,
        based_on,
        "risk_rules_reverted",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts_of(risk: &RiskSettings) -> HashMap<String, String> {
        form_values(risk)
    }

    #[test]
    fn every_field_names_a_setting() {
        let json = serde_json::to_value(RiskSettings::default()).unwrap();
        for field in GROUPS.iter().flat_map(|g| g.fields) {
            assert!(lookup(&json, field.key).is_some(), "{}", field.key);
        }
    }

    #[test]
    fn the_values_in_force_read_back_unchanged() {
        let risk = RiskSettings::default();
        assert_eq!(parse(&risk, &texts_of(&risk)).unwrap(), risk);
    }

    #[test]
    fn a_changed_value_is_read() {
        let risk = RiskSettings::default();
        let mut texts = texts_of(&risk);
        texts.insert("review_threshold".into(), " 55 ".into());
        texts.insert("velocity.max_amount_24h".into(), "750.5".into());
        let parsed = parse(&risk, &texts).unwrap();
        assert_eq!(parsed.review_threshold, 55);
        assert_eq!(parsed.velocity.max_amount_24h.0, Decimal::new(7505, 1));
    }

    #[test]
    fn bad_values_are_named_per_field() {
        let risk = RiskSettings::default();
        let mut texts = texts_of(&risk);
        texts.insert("card_testing.points".into(), "lots".into());
        texts.insert("velocity.max_amount_24h".into(), "-3".into());
        texts.remove("rate_limited.points");
        let errors = parse(&risk, &texts).unwrap_err();
        assert_eq!(errors["card_testing.points"], "Enter a whole number.");
        assert!(errors["velocity.max_amount_24h"].starts_with("Enter an amount"));
        assert_eq!(errors["rate_limited.points"], "Enter a value.");
    }

    #[test]
    fn rules_that_contradict_each_other_are_refused() {
        let risk = RiskSettings::default();
        let mut texts = texts_of(&risk);
        texts.insert("review_threshold".into(), "90".into());
        texts.insert("block_threshold".into(), "80".into());
        let errors = parse(&risk, &texts).unwrap_err();
        assert!(
            errors["review_threshold"].contains("block threshold"),
            "{errors:?}"
        );
        let mut texts = texts_of(&risk);
        texts.insert("unrealistic_offer.block_below_percent".into(), "90".into());
        let errors = parse(&risk, &texts).unwrap_err();
        assert!(
            errors.contains_key("unrealistic_offer.review_below_percent"),
            "{errors:?}"
        );
    }
}

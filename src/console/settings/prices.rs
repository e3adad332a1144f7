//! `/console/settings/prices`: the catalog's graduated price tiers and the reference market
//! rate. Before saving a price that the `unrealistic_offer` rule would hold or block — a typo
//! that sells coins at a fraction of their worth is the costliest mistake a shop can make —
//! the admin sees which amounts it affects and must confirm.

use super::super::form::ConsoleForm;
use super::super::page::ConsoleMeta;
use super::super::session::{Admin, Current};
use super::super::ConsoleError;
use super::audited::{self, store, Change};
use crate::config::{Dec, TierSettings};
use crate::domain::{Catalog, Coins, Money};
use crate::live_settings::{self, Prices};
use crate::risk::rules::{self, Decision};
use crate::risk::{RiskSettings, Signals};
use crate::web::state::AppState;
use crate::web::{render, ClientIp};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::HashMap;
use std::str::FromStr;

/// Blank rows offered for new tiers.
const SPARE_ROWS: usize = 2;
const MAX_TIERS: usize = 20;

pub struct TierRow {
    pub n: usize,
    pub from_coins: String,
    pub price_per_coin: String,
    pub error: Option<String>,
}

/// One amount at the proposed prices, as the unrealistic-offer rule sees it.
pub struct AmountLine {
    pub coins: String,
    pub what: &'static str,
    pub price: String,
    pub per_coin: String,
    pub percent: String,
    /// "held for review" / "blocked" when the rule would flag it.
    pub flag: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/settings/prices.html")]
struct PricesPage {
    meta: ConsoleMeta,
    base_currency: String,
    tiers: Vec<TierRow>,
    reference: String,
    reference_error: Option<String>,
    based_on: i64,
    overridden: bool,
    form_error: Option<String>,
    amounts: Vec<AmountLine>,
    /// The proposal would be flagged: the page asks to confirm exactly these prices (their
    /// digest) before saving.
    confirm: Option<String>,
    flash: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    done: String,
}

fn rows_of(prices: &Prices) -> Vec<TierRow> {
    prices
        .tiers
        .iter()
        .map(|t| {
            (
                t.from_coins.to_string(),
                t.price_per_coin.0.normalize().to_string(),
            )
        })
        .chain(std::iter::repeat_n(
            (String::new(), String::new()),
            SPARE_ROWS,
        ))
        .enumerate()
        .map(|(i, (from_coins, price_per_coin))| TierRow {
            n: i + 1,
            from_coins,
            price_per_coin,
            error: None,
        })
        .collect()
}

fn page(state: &AppState, current: &Current, tiers: Vec<TierRow>, reference: String) -> PricesPage {
    let live = state.live.current();
    PricesPage {
        meta: ConsoleMeta::for_staff(state, current, "Prices"),
        base_currency: live.catalog.base_currency().code().to_owned(),
        tiers,
        reference,
        reference_error: None,
        based_on: live.version_of(live_settings::PRICES),
        overridden: live.is_overridden(live_settings::PRICES),
        form_error: None,
        amounts: amounts(&live.catalog, &live.risk),
        confirm: None,
        flash: None,
    }
}

pub async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let prices = state.live.current().prices.clone();
    let mut p = page(
        &state,
        &current,
        rows_of(&prices),
        prices.reference_price_per_coin.0.normalize().to_string(),
    );
    p.flash = match query.done.as_str() {
        "saved" => Some(
            "Saved. The catalog shows the new prices now; orders already confirmed keep theirs."
                .into(),
        ),
        "reverted" => Some("Reverted to the config file's prices.".into()),
        "unchanged" => Some("Nothing was changed: these are the prices in force.".into()),
        _ => None,
    };
    Ok(render(StatusCode::OK, &p))
}

/// The catalog's packages, the custom minimum and maximum, each priced per coin and judged
/// by the `unrealistic_offer` rule exactly as an order of that size would be.
fn amounts(catalog: &Catalog, risk: &RiskSettings) -> Vec<AmountLine> {
    let (min, max) = catalog.custom_limits();
    let mut sizes: Vec<(Coins, &'static str)> = vec![(min, "smallest custom amount")];
    sizes.extend(catalog.packages().iter().map(|&c| (c, "package")));
    sizes.push((max, "largest custom amount"));
    sizes.sort_by_key(|(c, _)| c.get());
    sizes.dedup_by_key(|(c, _)| c.get());
    let base = catalog.base_currency();
    let reference = catalog.reference_price_per_coin();
    sizes
        .into_iter()
        .map(|(coins, what)| {
            // Prices saved here are capped, so the sum fits; zero is only a fallback.
            let total = catalog.base_total(coins).unwrap_or_default();
            let per_coin = (total / Decimal::from(coins.get().max(1))).round_dp(8);
            let signals = Signals {
                price_per_coin: per_coin,
                reference_price_per_coin: reference,
                ..Default::default()
            };
            let flag = rules::unrealistic_offer(&signals, risk).map(|r| match r.force {
                Some(Decision::Block) => "blocked",
                _ => "held for review",
            });
            AmountLine {
                coins: coins.to_string(),
                what,
                price: Money::round_from_major(total, base)
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "—".into()),
                per_coin: per_coin.normalize().to_string(),
                percent: (per_coin * Decimal::from(100) / reference)
                    .round_dp(1)
                    .normalize()
                    .to_string(),
                flag,
            }
        })
        .collect()
}

struct Submitted {
    rows: Vec<TierRow>,
    reference: String,
    based_on: i64,
    /// The digest of the prices a warning was confirmed for.
    confirmed: String,
}

fn submitted(pairs: Vec<(String, String)>) -> Submitted {
    let map: HashMap<String, String> = pairs.into_iter().collect();
    let get = |k: &str| map.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let rows = (1..=MAX_TIERS + SPARE_ROWS)
        .map(|n| TierRow {
            n,
            from_coins: get(&format!("from_coins_{n}")),
            price_per_coin: get(&format!("price_per_coin_{n}")),
            error: None,
        })
        .filter(|r| map.contains_key(&format!("from_coins_{}", r.n)))
        .collect();
    Submitted {
        rows,
        reference: get("reference_price_per_coin"),
        based_on: get("based_on").parse().unwrap_or(-1),
        confirmed: get("confirm"),
    }
}

/// The most a coin may cost in the base currency: far above any real price, and low enough
/// that no amount the catalog sells can overflow.
const MAX_PRICE_PER_COIN: i64 = 1_000;

fn price(text: &str) -> Option<Decimal> {
    Decimal::from_str(text)
        .ok()
        .filter(|d| *d > Decimal::ZERO && d.scale() <= 8 && *d <= Decimal::from(MAX_PRICE_PER_COIN))
}

/// The proposed prices, or the rows with their errors and a message for the whole form.
fn parse(
    s: &mut Submitted,
    state: &AppState,
) -> Result<(Prices, Catalog), (String, Option<String>)> {
    let mut tiers = Vec::new();
    let mut bad = false;
    for row in &mut s.rows {
        if row.from_coins.is_empty() && row.price_per_coin.is_empty() {
            continue;
        }
        let from = row.from_coins.replace([',', ' ', '_'], "").parse::<u64>();
        match (from, price(&row.price_per_coin)) {
            (Ok(from_coins), Some(p)) => tiers.push(TierSettings {
                from_coins,
                price_per_coin: Dec(p),
            }),
            (Err(_), _) => {
                row.error = Some("Enter the number of coins this tier starts at.".into());
                bad = true;
            }
            (_, None) => {
                row.error =
                    Some("Enter a price per coin above 0 and at most 1000, such as 0.0104.".into());
                bad = true;
            }
        }
    }
    let reference = price(&s.reference);
    let reference_error = reference.is_none().then(|| {
        "Enter the market price per coin (above 0, at most 1000), such as 0.0106.".to_owned()
    });
    if bad || reference_error.is_some() {
        return Err((
            "Nothing was saved: correct the marked values.".into(),
            reference_error,
        ));
    }
    if tiers.len() > MAX_TIERS {
        return Err((format!("At most {MAX_TIERS} tiers."), None));
    }
    let prices = Prices {
        tiers,
        reference_price_per_coin: Dec(reference.unwrap_or_default()),
    };
    match state.live.catalog_with(&prices) {
        Ok(catalog) => Ok((prices, catalog)),
        Err(e) => Err((
            format!("Nothing was saved: the tiers are not a valid price list ({}). The first tier starts at 0 coins, each later tier starts higher and costs no more per coin.", e.problem),
            None,
        )),
    }
}

/// `POST /console/settings/prices`: saves, asking first when an amount would be flagged.
pub async fn save(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let mut s = submitted(form.0);
    let live = state.live.current();
    let (prices, catalog) = match parse(&mut s, &state) {
        Ok(ok) => ok,
        Err((message, reference_error)) => {
            let mut p = page(
                &state,
                &current,
                std::mem::take(&mut s.rows),
                s.reference.clone(),
            );
            p.based_on = s.based_on;
            p.form_error = Some(message);
            p.reference_error = reference_error;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    let amounts = amounts(&catalog, &live.risk);
    let flagged = amounts.iter().any(|a| a.flag.is_some());
    let digest = live_settings::digest(&prices);
    if flagged && s.confirmed != digest {
        let mut p = page(&state, &current, rows_of(&prices), s.reference.clone());
        p.based_on = s.based_on;
        p.amounts = amounts;
        p.confirm = Some(digest);
        return Ok(render(StatusCode::OK, &p));
    }
    let action = if flagged {
        "prices_changed_despite_warning"
    } else {
        "prices_changed"
    };
    let value = serde_json::to_value(&prices).map_err(anyhow::Error::from)?;
    store(
        &state,
        &current,
        &ip,
        Change {
            name: live_settings::PRICES,
            value: Some(value),
            based_on: s.based_on,
            action,
            done: "saved",
        },
    )
    .await
}

/// `POST /console/settings/prices/revert`: back to the config file's prices.
pub async fn revert(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<Vec<(String, String)>>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let s = submitted(form.0);
    let based_on = s.based_on;
    audited::revert(
        &state,
        &current,
        &ip,
        live_settings::PRICES,
        based_on,
        "prices_reverted",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CatalogSettings;

    #[test]
    fn the_default_catalog_raises_no_warning() {
        let catalog = CatalogSettings::default().build().unwrap();
        let lines = amounts(&catalog, &RiskSettings::default());
        assert!(lines.iter().all(|l| l.flag.is_none()));
        assert_eq!(lines.first().unwrap().what, "smallest custom amount");
        assert_eq!(lines.last().unwrap().what, "largest custom amount");
    }

    #[test]
    fn a_cheap_top_tier_is_flagged_only_where_it_bites() {
        let mut settings = CatalogSettings::default();
        // From 10,000 coins on, 0.002 a coin: small orders stay at the normal price.
        settings.tiers[2].price_per_coin = Dec(Decimal::from_str("0.002").unwrap());
        settings.tiers[3].price_per_coin = Dec(Decimal::from_str("0.002").unwrap());
        let catalog = settings.build().unwrap();
        let lines = amounts(&catalog, &RiskSettings::default());
        let flag = |coins: &str| lines.iter().find(|l| l.coins == coins).unwrap().flag;
        assert_eq!(flag("700"), None);
        assert_eq!(flag("17,500"), Some("held for review"));
        assert_eq!(lines.last().unwrap().flag, Some("blocked"));
    }
}

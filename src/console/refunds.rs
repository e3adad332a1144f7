//! `/console/refunds`: buyers' refund requests, oldest first, each with what an agent needs to
//! decide — the supplier's delivery record, the payment, the risk, earlier requests, and an
//! eligibility summary — and the decisions: approve in full, approve part, deny with a message.

use super::form::ConsoleForm;
use super::page::ConsoleMeta;
use super::session::Staff;
use super::views::{self, OrderLine, RiskView};
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::orders;
use crate::db::refunds::{self as rows, RefundRequest};
use crate::domain::Money;
use crate::orders::refunds::{approve, deny, RefundError, Started};
use crate::web::render;
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct RequestCard {
    pub id: String,
    pub order: OrderLine,
    pub reason: String,
    pub message: String,
    pub asked: String,
    pub failed: Option<String>,
    pub delivered: String,
    pub window: String,
    pub in_window: bool,
    pub paid: String,
    pub refunded: String,
    pub refundable: String,
    pub currency_hint: String,
    pub earlier: Vec<String>,
    pub risk: Option<RiskView>,
}

#[derive(Template)]
#[template(path = "console/refunds.html")]
struct RefundsPage {
    meta: ConsoleMeta,
    flash: Option<String>,
    requests: Vec<RequestCard>,
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

async fn card(state: &AppState, r: &RefundRequest) -> Result<Option<RequestCard>, ConsoleError> {
    let pool = state.db.pool();
    let Some(order) = orders::by_id(pool, &r.order_id).await? else {
        return Ok(None);
    };
    let delivered = match state.supplier.delivery_record(&order.id).await {
        Ok(Some(c)) => format!(
            "Yes — {} coins credited to {} (supplier ref {})",
            c.coins, c.account_id, c.credit_ref
        ),
        Ok(None) => "No — the supplier has no credit for this order".into(),
        Err(e) => format!("Unknown — the supplier could not be asked ({e})"),
    };
    let window_days = state.settings.shop.refund_window_days as i64;
    let days = order.paid_at.map(|p| (state.now_ms() - p) / 86_400_000);
    let window = match days {
        Some(d) => format!(
            "Paid {d} day{} ago; the refund window is {window_days} days",
            if d == 1 { "" } else { "s" }
        ),
        None => "Not paid".into(),
    };
    let refunds = rows::refunds_for_order(pool, &order.id).await?;
    let pending: i64 = refunds
        .iter()
        .filter(|x| x.status == "pending")
        .map(|x| x.amount_minor)
        .sum();
    let currency = order.amount.currency();
    let left = crate::orders::refunds::left_to_refund(&order, pending);
    let failed = refunds
        .iter()
        .rev()
        .find(|x| x.request_id.as_deref() == Some(r.id.as_str()) && x.status == "failed")
        .and_then(|x| x.failure.clone());
    let earlier = rows::for_order(pool, &order.id)
        .await?
        .into_iter()
        .filter(|x| x.id != r.id)
        .map(|x| {
            format!(
                "{}: {} — {}",
                format_utc(x.created_at),
                rows::reason_label(&x.reason),
                x.status
            )
        })
        .collect();
    Ok(Some(RequestCard {
        id: r.id.clone(),
        order: OrderLine::of(&order),
        reason: rows::reason_label(&r.reason).into(),
        message: r.message.clone(),
        asked: format_utc(r.created_at),
        failed,
        delivered,
        in_window: days.is_some_and(|d| d <= window_days),
        window,
        paid: order.amount.to_string(),
        refunded: Money::from_minor(order.refunded_minor, currency).to_string(),
        refundable: left.to_string(),
        currency_hint: format!("in {} (e.g. {})", currency.code(), left.to_major()),
        earlier,
        risk: views::assessments(state, &order.id)
            .await?
            .into_iter()
            .next(),
    }))
}

pub async fn show(
    state: web::Data<AppState>,
    staff: Staff,
    flash: web::Query<Flash>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let mut requests = Vec::new();
    for r in rows::queue(state.db.pool(), 50).await? {
        if let Some(c) = card(&state, &r).await? {
            requests.push(c);
        }
    }
    let flash = flash.done.as_deref().map(|d| match d {
        "approved" => "Refund approved: the payment provider is returning the money; the buyer will get an email.".to_owned(),
        "denied" => "Request denied; the buyer was told by email.".to_owned(),
        other => other.chars().take(200).collect(),
    });
    let page = RefundsPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Refund requests"),
        flash,
        requests,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    message: String,
}

fn back(done: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/console/refunds?done={done}")))
        .finish()
}

/// Parses an amount in the order's currency: no more decimals than the currency has.
fn parse_amount(text: &str, order: &orders::Order) -> Result<Money, String> {
    let currency = order.amount.currency();
    let bad = || {
        format!(
            "Enter the amount in {} with at most {} decimals, like {}.",
            currency.code(),
            currency.minor_units(),
            order.amount.to_major()
        )
    };
    let d: rust_decimal::Decimal = text.trim().replace(',', "").parse().map_err(|_| bad())?;
    if d.scale() > currency.minor_units() || d <= rust_decimal::Decimal::ZERO {
        return Err(bad());
    }
    Money::round_from_major(d, currency).ok_or_else(bad)
}

pub async fn decide(
    state: web::Data<AppState>,
    staff: Staff,
    id: web::Path<String>,
    form: ConsoleForm<DecideForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let Some(req) = rows::by_id(state.db.pool(), &id).await? else {
        return Err(ConsoleError::Web(AppError::NotFound));
    };
    let Some(order) = orders::by_id(state.db.pool(), &req.order_id).await? else {
        return Err(ConsoleError::Web(AppError::NotFound));
    };
    let actor = current.actor();
    let outcome = match form.decision.as_str() {
        "full" => approve(&state, &req.id, None, &actor).await,
        "partial" => match parse_amount(&form.amount, &order) {
            Ok(amount) => approve(&state, &req.id, Some(amount), &actor).await,
            Err(message) => return Err(ConsoleError::Web(AppError::BadRequest(message))),
        },
        "deny" => {
            let message = crate::domain::text::normalise_at_most(&form.message, true, 1000);
            if message.is_empty() {
                return Err(ConsoleError::Web(AppError::BadRequest(
                    "Write the buyer a message saying why. Nothing was changed.".into(),
                )));
            }
            return match deny(&state, &req.id, &actor, &message).await {
                Ok(()) => Ok(back("denied")),
                Err(e) => Err(conflict(e)),
            };
        }
        _ => {
            return Err(ConsoleError::Web(AppError::BadRequest(
                "Choose approve in full, approve part, or deny.".into(),
            )))
        }
    };
    match outcome {
        Ok(Started::Pending) => Ok(back("approved")),
        Ok(Started::Failed(why)) => Err(ConsoleError::Conflict {
            message: format!("The payment provider did not refund: {why}. The request stays in the queue; you can try again."),
            back: "/console/refunds".into(),
        }),
        Err(e @ RefundError::Amount { .. }) => Err(ConsoleError::Web(AppError::BadRequest(format!("{e} Nothing was changed.")))),
        Err(e) => Err(conflict(e)),
    }
}

fn conflict(e: RefundError) -> ConsoleError {
    match e {
        RefundError::Database(e) => e.into(),
        e => ConsoleError::Conflict {
            message: format!("{e} Nothing was changed."),
            back: "/console/refunds".into(),
        },
    }
}

//! `/console/review`: held orders, oldest first, each with its score, every reason, the
//! signals behind them, the buyer's other orders, any chargeback of the buyer's, and the
//! decisions an agent can take; then the chargebacks waiting for the shop's answer.

use super::page::ConsoleMeta;
use super::session::Staff;
use super::views::{self, OrderLine, RiskView};
use super::ConsoleError;
use crate::db::orders;
use crate::domain::OrderStatus;
use crate::web::render;
use crate::web::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// Held orders shown at once; the rest wait their turn (oldest first).
const PAGE: i64 = 25;

pub struct HeldOrder {
    pub order: OrderLine,
    /// A chargeback on this order or on another of its buyer's (same email, username or card).
    pub dispute: Option<String>,
    pub method: String,
    pub risk: Option<RiskView>,
    pub others: Vec<OrderLine>,
}

#[derive(Template)]
#[template(path = "console/review.html")]
struct ReviewPage {
    meta: ConsoleMeta,
    flash: Option<String>,
    total: i64,
    held: Vec<HeldOrder>,
    /// Chargebacks waiting for the shop's answer, nearest deadline first.
    chargebacks: Vec<super::disputes::AwaitingLine>,
}

#[derive(Deserialize)]
pub struct FlashQuery {
    pub done: Option<String>,
    pub order: Option<String>,
}

pub async fn show(
    state: web::Data<AppState>,
    staff: Staff,
    query: web::Query<FlashQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let pool = state.db.pool();
    let total = orders::count_in_status(pool, OrderStatus::InReview).await?;
    let waiting = orders::longest_waiting(pool, OrderStatus::InReview, PAGE).await?;
    let mut held = Vec::with_capacity(waiting.len());
    for order in waiting {
        let payments = crate::db::payments::for_order(pool, &order.id).await?;
        let method = payments
            .iter()
            .rev()
            .find(|p| p.status == "succeeded")
            .map(|p| {
                crate::orders::payment_events::method_summary(
                    &p.method,
                    p.card_brand.as_deref(),
                    p.card_last4.as_deref(),
                )
            })
            .unwrap_or_else(|| order.payment_method.label().into());
        let disputes = crate::db::disputes::touching_buyer(
            pool,
            &order.id,
            &order.email,
            &order.tiktok_username,
        )
        .await?;
        held.push(HeldOrder {
            dispute: super::disputes::review_marker(&disputes),
            risk: views::assessments(&state, &order.id)
                .await?
                .into_iter()
                .next(),
            others: views::other_orders(&state, &order).await?,
            order: OrderLine::of(&order),
            method,
        });
    }
    let chargebacks = crate::db::disputes::awaiting_answer(pool, PAGE)
        .await?
        .iter()
        .map(super::disputes::awaiting_line)
        .collect();
    let page = ReviewPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Review queue"),
        flash: views::flash(query.done.as_deref(), query.order.as_deref()),
        total,
        held,
        chargebacks,
    };
    Ok(render(StatusCode::OK, &page))
}

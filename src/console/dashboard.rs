//! `/console/`: today's orders by status, the queues and the oldest item waiting in each.

use super::page::ConsoleMeta;
use super::session::Staff;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::orders;
use crate::domain::OrderStatus;
use crate::web::render;
use crate::web::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

const DAY_MS: i64 = 86_400_000;

pub struct Count {
    pub status: &'static str,
    pub label: &'static str,
    pub n: i64,
}

pub struct Queue {
    pub name: &'static str,
    pub link: &'static str,
    pub n: i64,
    /// The order waiting longest, and since when.
    pub oldest: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    meta: ConsoleMeta,
    today: String,
    counts: Vec<Count>,
    total_today: i64,
    queues: Vec<Queue>,
    jobs_waiting: i64,
    jobs_dead: i64,
    surges: Vec<SurgeView>,
    disputes: crate::orders::disputes::DisputeRate,
    thresholds: &'static [(&'static str, &'static str)],
}

/// A surge response in force or ended in the last day: when, why, what it tightened.
pub struct SurgeView {
    pub started: String,
    pub until: String,
    pub active: bool,
    pub why: String,
    pub tightened: Vec<String>,
}

impl SurgeView {
    fn of(e: crate::risk::surge::Engagement, now: i64) -> SurgeView {
        SurgeView {
            started: format_utc(e.started_at),
            until: format_utc(e.until_at),
            active: e.until_at > now,
            why: e.detail,
            tightened: e
                .tightened
                .iter()
                .map(|t| {
                    format!(
                        "{} ({} failed cards, {} % of its attempts failed)",
                        t.describe(),
                        t.failed_cards,
                        t.failed_percent
                    )
                })
                .collect(),
        }
    }
}

fn queue(
    (n, oldest): (i64, Option<(String, i64)>),
    name: &'static str,
    link: &'static str,
) -> Queue {
    Queue {
        name,
        link,
        n,
        oldest: oldest.map(|(number, since)| (number, format_utc(since))),
    }
}

/// Orders in `status`, and the one there longest.
async fn in_status(
    state: &AppState,
    status: OrderStatus,
) -> Result<(i64, Option<(String, i64)>), sqlx::Error> {
    let pool = state.db.pool();
    Ok((
        orders::count_in_status(pool, status).await?,
        orders::longest_in_status(pool, status).await?,
    ))
}

async fn queues(state: &AppState) -> Result<Vec<Queue>, sqlx::Error> {
    let pool = state.db.pool();
    Ok(vec![
        queue(
            in_status(state, OrderStatus::InReview).await?,
            "Held for review",
            "/console/review",
        ),
        queue(
            in_status(state, OrderStatus::FulfillmentFailed).await?,
            "Delivery failed",
            "/console/orders?status=fulfillment_failed",
        ),
        queue(
            in_status(state, OrderStatus::Disputed).await?,
            "Chargebacks",
            "/console/orders?status=disputed",
        ),
        queue(
            crate::db::refunds::waiting(pool).await?,
            "Refund requests",
            "/console/refunds",
        ),
        queue(
            crate::db::support::waiting(pool).await?,
            "Support messages",
            "/console/support",
        ),
    ])
}

/// Every status with how many of today's orders are in it (zero included).
fn counts(rows: &[(String, i64)]) -> Vec<Count> {
    OrderStatus::ALL
        .into_iter()
        .map(|s| Count {
            status: s.as_str(),
            label: s.label(),
            n: rows
                .iter()
                .rev()
                .find(|(status, _)| status == s.as_str())
                .map_or(0, |(_, n)| *n),
        })
        .collect()
}

pub async fn show(state: web::Data<AppState>, staff: Staff) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let pool = state.db.pool();
    let now = state.now_ms();
    let midnight = now - now.rem_euclid(DAY_MS);
    let counts = counts(&orders::created_since_by_status(pool, midnight).await?);
    let (jobs_waiting, jobs_dead) = crate::db::jobs::waiting_and_dead(pool).await?;
    let surges = crate::risk::surge::recent(&state.db, now - DAY_MS, 10).await?;
    let page = DashboardPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Dashboard"),
        today: format_utc(midnight)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned(),
        total_today: counts.iter().map(|c| c.n).sum(),
        counts,
        queues: queues(&state).await?,
        jobs_waiting,
        jobs_dead,
        disputes: crate::orders::disputes::rate(&state).await?,
        thresholds: &crate::orders::disputes::NETWORK_THRESHOLDS,
        surges: surges.into_iter().map(|e| SurgeView::of(e, now)).collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

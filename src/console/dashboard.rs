//! `/console/`: today's orders by status, the queues and the oldest item waiting in each.

use super::page::ConsoleMeta;
use super::session::Staff;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::col;
use crate::domain::OrderStatus;
use crate::startup::AppState;
use crate::web::render;
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

async fn queue(
    state: &AppState,
    status: OrderStatus,
    name: &'static str,
    link: &'static str,
) -> Result<Queue, sqlx::Error> {
    let pool = state.db.pool();
    let n: i64 = col(
        &sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(pool)
            .await?,
        "n",
    )?;
    // `updated_at` is when the order entered this status (its last change).
    let oldest = sqlx::query(
        "SELECT order_number, updated_at FROM orders WHERE status = $1 ORDER BY updated_at, created_at LIMIT 1",
    )
    .bind(status.as_str())
    .fetch_optional(pool)
    .await?
    .map(|r| -> Result<(String, String), sqlx::Error> {
        Ok((col(&r, "order_number")?, format_utc(col(&r, "updated_at")?)))
    })
    .transpose()?;
    Ok(Queue {
        name,
        link,
        n,
        oldest,
    })
}

fn waiting_queue(
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

pub async fn show(state: web::Data<AppState>, staff: Staff) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let pool = state.db.pool();
    let now = state.now_ms();
    let midnight = now - now.rem_euclid(DAY_MS);
    let rows = sqlx::query(
        "SELECT status, COUNT(*) AS n FROM orders WHERE created_at >= $1 GROUP BY status",
    )
    .bind(midnight)
    .fetch_all(pool)
    .await?;
    let mut counts = Vec::new();
    for s in OrderStatus::ALL {
        let mut n = 0;
        for r in &rows {
            if col::<String>(r, "status")? == s.as_str() {
                n = col(r, "n")?;
            }
        }
        counts.push(Count {
            status: s.as_str(),
            label: s.label(),
            n,
        });
    }
    let total_today = counts.iter().map(|c| c.n).sum();
    let jobs = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')) AS waiting,
                (SELECT COUNT(*) FROM jobs WHERE status = 'dead') AS dead",
    )
    .fetch_one(pool)
    .await?;
    let queues = vec![
        queue(
            &state,
            OrderStatus::InReview,
            "Held for review",
            "/console/review",
        )
        .await?,
        queue(
            &state,
            OrderStatus::FulfillmentFailed,
            "Delivery failed",
            "/console/orders?status=fulfillment_failed",
        )
        .await?,
        queue(
            &state,
            OrderStatus::Disputed,
            "Chargebacks",
            "/console/orders?status=disputed",
        )
        .await?,
        waiting_queue(
            crate::db::refunds::waiting(pool).await?,
            "Refund requests",
            "/console/refunds",
        ),
        waiting_queue(
            crate::orders::support::waiting(pool).await?,
            "Support messages",
            "/console/support",
        ),
    ];
    let page = DashboardPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Dashboard"),
        today: crate::clock::format_utc(midnight)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_owned(),
        counts,
        total_today,
        queues,
        jobs_waiting: col(&jobs, "waiting")?,
        jobs_dead: col(&jobs, "dead")?,
        disputes: crate::orders::disputes::rate(&state).await?,
        thresholds: &crate::orders::disputes::NETWORK_THRESHOLDS,
        surges: crate::risk::surge::recent(&state.db, now - DAY_MS, 10)
            .await?
            .into_iter()
            .map(|e| SurgeView {
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
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

//! `GET /metrics`: Prometheus text format. Business gauges come from the database, so every
//! instance reports the same shop-wide numbers.

use crate::db::col;
use crate::startup::AppState;
use actix_web::{web, HttpResponse};
use std::fmt::Write;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match render(&state).await {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            HttpResponse::ServiceUnavailable().body("database unavailable")
        }
    }
}

async fn render(state: &AppState) -> Result<String, sqlx::Error> {
    let pool = state.db.pool();
    let mut out = String::new();
    out.push_str("# HELP coinfront_orders Orders by status.\n# TYPE coinfront_orders gauge\n");
    for r in sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status")
        .fetch_all(pool)
        .await?
    {
        let status: String = col(&r, "status")?;
        let n: i64 = col(&r, "n")?;
        let _ = writeln!(out, "coinfront_orders{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP coinfront_jobs Jobs by kind and status.\n# TYPE coinfront_jobs gauge\n");
    for r in sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status")
        .fetch_all(pool)
        .await?
    {
        let kind: String = col(&r, "kind")?;
        let status: String = col(&r, "status")?;
        let n: i64 = col(&r, "n")?;
        let _ = writeln!(
            out,
            "coinfront_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    let surges: i64 = sqlx::query("SELECT COUNT(*) AS n FROM screening_events")
        .fetch_one(pool)
        .await
        .and_then(|r| col(&r, "n"))?;
    out.push_str(
        "# HELP coinfront_screening_surges_total Times a surge of failed payments tightened the screening.\n",
    );
    out.push_str("# TYPE coinfront_screening_surges_total counter\n");
    let _ = writeln!(out, "coinfront_screening_surges_total {surges}");
    let limited: i64 = sqlx::query("SELECT COUNT(*) AS n FROM rate_limit_hits")
        .fetch_one(pool)
        .await
        .and_then(|r| col(&r, "n"))?;
    out.push_str("# HELP coinfront_rate_limited_total Requests refused by a rate limit.\n");
    out.push_str("# TYPE coinfront_rate_limited_total counter\n");
    let _ = writeln!(out, "coinfront_rate_limited_total {limited}");
    Ok(out)
}

//! `GET /metrics`: Prometheus text format. Business gauges come from the database, so every
//! instance reports the same shop-wide numbers. They are the shop's business, not the
//! public's: served only to a scraper with the configured bearer token (`metrics.token`), and
//! not at all (404) when none is configured.

use crate::state::AppState;
use crate::web::AppError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use std::fmt::Write;
use subtle::ConstantTimeEq;

/// Whether the request carries `Authorization: Bearer <token>`.
fn authorised(req: &HttpRequest, token: &str) -> bool {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let Some(token) = &state.settings.metrics.token else {
        return Err(AppError::NotFound);
    };
    if !authorised(&req, token.expose()) {
        return Ok(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
            .finish());
    }
    Ok(match render(&state).await {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            HttpResponse::ServiceUnavailable().body("database unavailable")
        }
    })
}

async fn render(state: &AppState) -> Result<String, sqlx::Error> {
    let pool = state.db.pool();
    let mut out = String::new();
    out.push_str("# HELP coinfront_orders Orders by status.\n# TYPE coinfront_orders gauge\n");
    for (status, n) in crate::db::orders::count_by_status(pool).await? {
        let _ = writeln!(out, "coinfront_orders{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP coinfront_jobs Jobs by kind and status.\n# TYPE coinfront_jobs gauge\n");
    for (kind, status, n) in crate::db::jobs::count_by_kind_and_status(pool).await? {
        let _ = writeln!(
            out,
            "coinfront_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    let surges = crate::db::surge::count(pool).await?;
    out.push_str(
        "# HELP coinfront_screening_surges_total Times a surge of failed payments tightened the screening.\n",
    );
    out.push_str("# TYPE coinfront_screening_surges_total counter\n");
    let _ = writeln!(out, "coinfront_screening_surges_total {surges}");
    let limited = crate::db::rate_limits::total_since(pool, state.now_ms() - 3_600_000).await?;
    out.push_str(
        "# HELP coinfront_rate_limited_last_hour Requests refused by a rate limit in the last hour.\n",
    );
    out.push_str("# TYPE coinfront_rate_limited_last_hour gauge\n");
    let _ = writeln!(out, "coinfront_rate_limited_last_hour {limited}");
    out.push_str(
        "# HELP coinfront_malformed_requests_total Requests this process refused as malformed HTTP.\n",
    );
    out.push_str("# TYPE coinfront_malformed_requests_total counter\n");
    let _ = writeln!(
        out,
        "coinfront_malformed_requests_total {}",
        crate::telemetry::malformed_requests()
    );
    out.push_str(
        "# HELP coinfront_job_leases_lost_total Job runs this process stopped because another worker took the job (its lease had run out).\n",
    );
    out.push_str("# TYPE coinfront_job_leases_lost_total counter\n");
    let _ = writeln!(
        out,
        "coinfront_job_leases_lost_total {}",
        state
            .job_leases_lost
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(out)
}

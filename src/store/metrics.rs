//! `GET /metrics` and `GET /metrics/shop`, in the OpenMetrics text format (`prometheus-client`).
//! They are the shop's business, not the public's: served only to a scraper with the
//! configured bearer token (`metrics.token`), and not at all (404) when none is configured.
//!
//! `/metrics` is this instance: its HTTP requests and job runs (`crate::metrics`), its
//! database pool, the malformed requests it refused — every series labelled with `instance`,
//! so summing over instances gives the shop's total. `/metrics/shop` is the shop as the
//! database has it — orders, the job queue, emails waiting, screening, disputes — the same on
//! every instance, with no `instance` label: scrape it once (through the load balancer), so
//! that it is never counted once per instance.

use crate::db::Db;
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use subtle::ConstantTimeEq;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// `None` when the scraper may go on; otherwise the answer (404 with no token configured, 401
/// for a wrong one).
fn refused(state: &AppState, req: &HttpRequest) -> Result<Option<HttpResponse>, AppError> {
    let Some(token) = &state.settings.metrics.token else {
        return Err(AppError::NotFound);
    };
    if authorised(req, token.expose()) {
        return Ok(None);
    }
    Ok(Some(
        HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
            .finish(),
    ))
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(body)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

/// `GET /metrics`: this instance.
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    if let Some(answer) = refused(&state, &req)? {
        return Ok(answer);
    }
    let mut at_scrape = state.metrics.scrape_registry();
    let connections = Family::<PoolLabels, Gauge>::default();
    let mut pools: Vec<(&'static str, &Db)> = vec![("main", &state.db)];
    if let Some(limits) = state.limits.db() {
        pools.push(("rate_limits", limits));
    }
    for (pool, db) in pools {
        let (open, idle) = (i64::from(db.pool().size()), db.pool().num_idle() as i64);
        for (label, n) in [("in_use", open - idle), ("idle", idle)] {
            connections
                .get_or_create(&PoolLabels { pool, state: label })
                .set(n);
        }
    }
    at_scrape.register(
        "db_connections",
        "Database connections of this instance's pools, in use and idle",
        connections,
    );
    let max = Gauge::<i64>::default();
    max.set(i64::from(state.settings.db_max_connections));
    at_scrape.register(
        "db_max_connections",
        "The size limit of this instance's main database pool (db_max_connections)",
        max,
    );
    let malformed = Counter::<u64>::default();
    malformed.inc_by(crate::telemetry::malformed_requests());
    at_scrape.register(
        "malformed_requests",
        "Requests this instance refused as malformed HTTP",
        malformed,
    );
    Ok(text(state.metrics.encode(&at_scrape)))
}

/// `GET /metrics/shop`: the shop's numbers from the database.
pub async fn shop(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(answer) = refused(&state, &req)? {
        return Ok(answer);
    }
    Ok(match shop_registry(&state).await {
        Ok(registry) => text(crate::metrics::encode_shop(&registry)),
        Err(e) => {
            tracing::warn!(error = %e, "metrics unavailable");
            HttpResponse::ServiceUnavailable().body("database unavailable")
        }
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStatusLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    stage: String,
    decision: String,
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

/// Seconds from `at` to `now`, never negative.
fn age_seconds(now: i64, at: i64) -> i64 {
    now.saturating_sub(at).max(0) / 1000
}

async fn shop_registry(state: &AppState) -> Result<Registry, sqlx::Error> {
    let pool = state.db.pool();
    let now = state.now_ms();
    let mut r = crate::metrics::shop_registry();

    let orders = Family::<StatusLabels, Gauge>::default();
    for (status, n) in crate::db::orders::count_by_status(pool).await? {
        orders.get_or_create(&StatusLabels { status }).set(n);
    }
    r.register("orders", "Orders by status", orders);

    let jobs = Family::<KindStatusLabels, Gauge>::default();
    for (kind, status, n) in crate::db::jobs::count_by_kind_and_status(pool).await? {
        jobs.get_or_create(&KindStatusLabels { kind, status })
            .set(n);
    }
    r.register("jobs", "Jobs by kind and status", jobs);

    let (depth, due, oldest, dead) = (
        Family::<KindLabels, Gauge>::default(),
        Family::<KindLabels, Gauge>::default(),
        Family::<KindLabels, Gauge>::default(),
        Family::<KindLabels, Gauge>::default(),
    );
    for k in crate::db::jobs::queue_stats(pool, now).await? {
        let kind = KindLabels { kind: k.kind };
        depth.get_or_create(&kind).set(k.pending + k.running);
        due.get_or_create(&kind).set(k.due);
        dead.get_or_create(&kind).set(k.dead);
        oldest
            .get_or_create(&kind)
            .set(k.oldest_due_at.map_or(0, |at| age_seconds(now, at)));
    }
    r.register(
        "job_queue_depth",
        "Jobs waiting or running, by kind (retries waiting for their time included)",
        depth,
    );
    r.register(
        "job_queue_due",
        "Jobs whose time has come and that no worker holds, by kind",
        due,
    );
    r.register_with_unit(
        "job_oldest_due_age",
        "How long the oldest due job of each kind has waited for a worker (0: none waiting)",
        Unit::Seconds,
        oldest,
    );
    r.register("dead_jobs", "Jobs that failed for good, by kind", dead);

    let (waiting, oldest_email) = crate::db::emails::waiting(pool).await?;
    r.register(
        "emails_waiting",
        "Emails written and not yet sent (nor given up on)",
        gauge(waiting),
    );
    r.register_with_unit(
        "email_oldest_waiting_age",
        "How long the oldest unsent email has waited (0: none)",
        Unit::Seconds,
        gauge(oldest_email.map_or(0, |at| age_seconds(now, at))),
    );

    let surges = Counter::<u64>::default();
    surges.inc_by(u64::try_from(crate::db::surge::count(pool).await?).unwrap_or(0));
    r.register(
        "screening_surges",
        "Times a surge of failed payments tightened the screening",
        surges,
    );
    r.register(
        "screening_surge_active",
        "Whether a surge response is in force (1) or not (0)",
        gauge(crate::db::surge::active(pool, now).await?.min(1)),
    );
    let decisions = Family::<DecisionLabels, Gauge>::default();
    for (stage, decision, n) in
        crate::db::risk_assessments::decisions_since(pool, now - 86_400_000).await?
    {
        decisions
            .get_or_create(&DecisionLabels { stage, decision })
            .set(n);
    }
    r.register(
        "screening_decisions_24h",
        "Screening decisions in the last 24 hours, by stage and decision",
        decisions,
    );
    r.register(
        "rate_limited_last_hour",
        "Requests refused by a rate limit in the last hour",
        gauge(crate::db::rate_limits::total_since(pool, now - 3_600_000).await?),
    );

    let (disputes, settled) = crate::db::disputes::rate_counts(pool, now - 30 * 86_400_000).await?;
    r.register(
        "disputes_30d",
        "Chargebacks opened in the last 30 days (the dispute rate's numerator)",
        gauge(disputes),
    );
    r.register(
        "card_payments_settled_30d",
        "Card and wallet payments settled in the last 30 days (the dispute rate's denominator)",
        gauge(settled),
    );
    Ok(r)
}

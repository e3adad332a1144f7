//! The shop-wide circuit breaker. Card-testing waves rotate IPs and emails, so per-client
//! limits miss them; the shop-wide failure rate does not. When failed payments across the shop
//! pass a threshold, new payment attempts are paused for a while, except for buyers who have
//! paid successfully before. The state lives in the database, so every instance agrees.

use crate::db::col;
use crate::startup::AppState;
use crate::web::AppError;

const BREAKER: &str = "payments";

/// Refuses a payment attempt while the breaker is open (opening it if failures just spiked).
pub async fn check_payment_allowed(state: &AppState, order_id: &str) -> Result<(), AppError> {
    let now = state.now_ms();
    let live = state.live.current();
    let settings = &live.risk.circuit_breaker;
    let pool = state.db.pool();
    let open_until: Option<i64> =
        sqlx::query("SELECT open_until FROM circuit_breakers WHERE name = $1")
            .bind(BREAKER)
            .fetch_optional(pool)
            .await?
            .map(|r| col(&r, "open_until"))
            .transpose()?;
    let mut open = open_until.is_some_and(|until| until > now);
    if !open {
        let failures: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM payments WHERE status = 'failed' AND created_at > $1",
        )
        .bind(now - 60_000)
        .fetch_one(pool)
        .await
        .and_then(|r| col(&r, "n"))?;
        if failures > settings.failures_per_minute as i64 {
            let until = now + settings.pause_seconds as i64 * 1000;
            sqlx::query(
                "INSERT INTO circuit_breakers (name, open_until, opened_at, trips) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (name) DO UPDATE SET open_until = $2, opened_at = $3, trips = circuit_breakers.trips + 1",
            )
            .bind(BREAKER)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await?;
            tracing::warn!(
                failures_last_minute = failures,
                pause_seconds = settings.pause_seconds,
                "payment circuit breaker opened"
            );
            open = true;
        }
    }
    if !open {
        return Ok(());
    }
    // Buyers with a successful payment before keep paying: the pause is for unknown clients.
    let trusted: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM payments p JOIN orders o ON o.id = $1
         WHERE p.email = o.email AND p.status = 'succeeded'",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
    .and_then(|r| col(&r, "n"))?;
    if trusted > 0 {
        return Ok(());
    }
    Err(AppError::Unavailable(format!(
        "New payments are paused for a few minutes while we deal with unusual activity. Nothing was charged. Please try again in about {} minutes.",
        settings.pause_seconds.div_ceil(60).max(1)
    )))
}

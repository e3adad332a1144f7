//! Requests refused by a rate limit: a counter per client IP and minute, shared by every
//! instance, read by the `rate_limited` risk rule (recent refusals from an order's IP).

use sqlx::{Any, Pool};

/// The width of one counting window.
pub const WINDOW_MS: i64 = 60_000;

/// How long counts are kept: the risk rule looks back one hour; one more is margin.
pub const KEEP_MS: i64 = 2 * 3_600_000;

fn window_start(at_ms: i64) -> i64 {
    at_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// Counts one refusal of `client_ip` at `at_ms`: one upsert, whatever the rate of refusals.
pub async fn record_refusal(pool: &Pool<Any>, client_ip: &str, at_ms: i64) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    record_refusal_in(&mut conn, client_ip, at_ms).await
}

/// [`record_refusal`] on a given connection or transaction.
pub async fn record_refusal_in(
    conn: &mut sqlx::AnyConnection,
    client_ip: &str,
    at_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO rate_limit_counts (client_ip, window_start, hits) VALUES ($1, $2, 1)
         ON CONFLICT (client_ip, window_start) DO UPDATE SET hits = rate_limit_counts.hits + 1",
    )
    .bind(client_ip)
    .bind(window_start(at_ms))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets the counts of windows that ended before `now_ms - KEEP_MS`.
pub async fn prune(pool: &Pool<Any>, now_ms: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM rate_limit_counts WHERE window_start < $1")
        .bind(now_ms - KEEP_MS - WINDOW_MS)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Refusals across all clients in the windows that overlap the time since `since_ms`.
pub async fn total_since(pool: &Pool<Any>, since_ms: i64) -> sqlx::Result<i64> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(hits), 0) AS BIGINT) AS n FROM rate_limit_counts
         WHERE window_start > $1",
    )
    .bind(since_ms - WINDOW_MS)
    .fetch_one(pool)
    .await?;
    row.try_get("n")
}

//! Rate-limit state in the database: refusals counted per client IP and minute (read by the
//! `rate_limited` risk rule, shared by every instance), and the shared limits' GCRA times.

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

/// GCRA parameters of one limit, as governor derives them from a quota: one request every
/// `t_ns`, and `tau_ns` (= `t_ns × (burst − 1)`) of credit for a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub t_ns: i64,
    pub tau_ns: i64,
}

/// One check of a shared limit for `client_key` at `now_ns`: `Ok(())` when allowed (and
/// counted), or the nanoseconds to wait. One atomic statement: the row is inserted (a first
/// request is always allowed) or updated under its row lock, and its answer read back.
pub async fn gcra_check(
    pool: &Pool<Any>,
    limit_name: &str,
    client_key: &str,
    now_ns: i64,
    gcra: Gcra,
) -> sqlx::Result<Result<(), i64>> {
    use sqlx::Row;
    // $3 now, $4 t, $5 tau. Every SET expression reads the row as it was (both engines), so
    // `allowed` and the new time are decided on the same old time. Allowed when
    // `old - tau <= now`; then the time moves to `max(old, now) + t`.
    let row = sqlx::query(
        "INSERT INTO rate_limit_state (limit_name, client_key, tat_ns, allowed)
         VALUES ($1, $2, $3 + $4, 1)
         ON CONFLICT (limit_name, client_key) DO UPDATE SET
             allowed = CASE WHEN rate_limit_state.tat_ns - $5 <= $3 THEN 1 ELSE 0 END,
             tat_ns = CASE WHEN rate_limit_state.tat_ns - $5 > $3 THEN rate_limit_state.tat_ns
                           WHEN rate_limit_state.tat_ns > $3 THEN rate_limit_state.tat_ns + $4
                           ELSE $3 + $4 END
         RETURNING allowed, tat_ns",
    )
    .bind(limit_name)
    .bind(client_key)
    .bind(now_ns)
    .bind(gcra.t_ns)
    .bind(gcra.tau_ns)
    .fetch_one(pool)
    .await?;
    let allowed: i64 = row.try_get("allowed")?;
    if allowed == 1 {
        return Ok(Ok(()));
    }
    let tat: i64 = row.try_get("tat_ns")?;
    Ok(Err((tat - gcra.tau_ns - now_ns).max(0)))
}

/// Deletes the shared limits' rows whose time has passed (as good as absent): the table keeps
/// only clients that are being limited now. Returns how many went.
pub async fn prune_state(pool: &Pool<Any>, now_ns: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM rate_limit_state WHERE tat_ns <= $1")
        .bind(now_ns)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// How many rows the shared limits hold (for tests and the bench).
pub async fn state_rows(pool: &Pool<Any>) -> sqlx::Result<i64> {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM rate_limit_state")
        .fetch_one(pool)
        .await?
        .try_get("n")
}

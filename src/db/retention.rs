//! The statements that prune what the shop need not keep forever (`retention.rs` at the crate's top says
//! what and when). Each removes at most one batch of rows, picked by the backend's own row
//! address (SQLite's `rowid`, PostgreSQL's `ctid`), so every statement is short: on SQLite it
//! holds the one write lock only briefly, and the shop's own writes get in between batches.
//! Orders, payments, refunds, disputes, order events and the audit log are never touched here.

use super::{Backend, Db};
use crate::clock::Millis;

/// One kind of record that is pruned: its table, and which of its rows are old (`$1`, `$2`…
/// are the cutoffs passed with it).
#[derive(Debug, Clone, Copy)]
pub struct Prunable {
    pub table: &'static str,
    pub old: &'static str,
}

/// Jobs that finished successfully before `$1`. Dead jobs stay until someone deals with them.
pub const FINISHED_JOBS: Prunable = Prunable {
    table: "jobs",
    old: "status = 'done' AND updated_at < $1",
};

/// Counts of rate-limited requests per address and minute, of windows before `$1`.
pub const RATE_LIMIT_COUNTS: Prunable = Prunable {
    table: "rate_limit_counts",
    old: "window_start < $1",
};

/// Staff sign-in throttle rows untouched since `$1` whose lock-out (if any) has ended.
pub const SIGN_IN_RECORDS: [Prunable; 3] = [
    Prunable {
        table: "staff_login_throttle",
        old: "updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
    },
    Prunable {
        table: "staff_login_sources",
        old: "updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
    },
    Prunable {
        table: "staff_code_throttle",
        old: "updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
    },
];

/// Staff sessions idle since before `$1` or signed in before `$2`: ended, and long enough ago.
pub const STAFF_SESSIONS: Prunable = Prunable {
    table: "staff_sessions",
    old: "last_seen_at < $1 OR created_at < $2",
};

/// Setup and reset links used, or expired, before `$1`.
pub const STAFF_LINKS: Prunable = Prunable {
    table: "staff_setup_tokens",
    old: "(used_at IS NOT NULL AND used_at < $1) OR expires_at < $1",
};

fn row_address(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Sqlite => "rowid",
        Backend::Postgres => "ctid",
    }
}

/// Deletes at most `batch` of `what`'s old rows; returns how many went.
pub async fn delete_batch(
    db: &Db,
    what: Prunable,
    cutoffs: &[Millis],
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let address = row_address(db);
    let limit = cutoffs.len() + 1;
    let sql = format!(
        "DELETE FROM {table} WHERE {address} IN
           (SELECT {address} FROM {table} WHERE {old} LIMIT ${limit})",
        table = what.table,
        old = what.old,
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for cutoff in cutoffs {
        query = query.bind(*cutoff);
    }
    let done = query.bind(i64::from(batch)).execute(db.pool()).await?;
    Ok(done.rows_affected())
}

/// Empties the bodies of at most `batch` emails sent (or given up on) before `before`. The row
/// stays (who, what kind, when) with `body_deleted_at` set, and its dedupe key is freed, so a
/// receipt asked for again is written afresh rather than found empty.
pub async fn delete_email_bodies(
    db: &Db,
    before: Millis,
    now: Millis,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    let address = row_address(db);
    let sql = format!(
        "UPDATE emails SET text_body = '', html_body = '', body_deleted_at = $1,
                dedupe_key = dedupe_key || ':deleted:' || id
         WHERE {address} IN (
           SELECT {address} FROM emails WHERE body_deleted_at IS NULL AND sent_at IS NOT NULL AND sent_at < $2
           UNION ALL
           SELECT {address} FROM emails WHERE body_deleted_at IS NULL AND sent_at IS NULL
             AND abandoned_at IS NOT NULL AND abandoned_at < $2
           LIMIT $3)"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(before)
        .bind(i64::from(batch))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

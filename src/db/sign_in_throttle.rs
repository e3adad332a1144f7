//! Counting failed staff sign-ins, three ways:
//!
//! - per (typed email, source address): wrong passwords lock the pair for a while, so one
//!   address cannot keep guessing, and a stranger elsewhere cannot lock the real user out;
//! - per typed email, from every address together: no lock, only a count that slows the
//!   account down when many addresses guess at it (a distributed attack);
//! - per account for the second factor: wrong codes lock the account's code step, and only a
//!   correct code clears them (a correct password does not).
//!
//! Attempts are counted *before* the password or code is checked, so parallel guesses cannot
//! slip past a limit.

use crate::clock::Millis;
use crate::db::staff::normalise_email;
use crate::db::{col, Db};
use sqlx::AnyPool;

/// The throttle's answer for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go ahead. `locks_if_wrong`: this attempt was the last before a lock-out.
    Allowed {
        locks_if_wrong: bool,
    },
    Locked {
        until: Millis,
    },
}

/// When a counter locks: every `after_failures`-th attempt in a row locks for `lockout_ms`;
/// failures more than `window_ms` apart start again.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub window_ms: i64,
    pub after_failures: u32,
    pub lockout_ms: i64,
}

/// Which locking counter, and its key (column names are constants, never input).
enum Counter<'a> {
    Source { email: &'a str, ip: &'a str },
    Code { staff_id: &'a str },
}

impl Counter<'_> {
    fn table(&self) -> &'static str {
        match self {
            Counter::Source { .. } => "staff_login_sources",
            Counter::Code { .. } => "staff_code_throttle",
        }
    }

    fn key_columns(&self) -> &'static [&'static str] {
        match self {
            Counter::Source { .. } => &["email", "client_ip"],
            Counter::Code { .. } => &["staff_id"],
        }
    }

    fn key_values(&self) -> Vec<String> {
        match self {
            Counter::Source { email, ip } => vec![normalise_email(email), (*ip).to_owned()],
            Counter::Code { staff_id } => vec![(*staff_id).to_owned()],
        }
    }

    /// `col1 = $first AND col2 = $first+1 …`
    fn key_filter(&self, first: usize) -> String {
        self.key_columns()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", first + i))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

async fn reserve(
    db: &Db,
    counter: Counter<'_>,
    now: Millis,
    rule: Rule,
) -> Result<Attempt, sqlx::Error> {
    let (table, cols, keys) = (counter.table(), counter.key_columns(), counter.key_values());
    let mut tx = db.begin().await?;
    let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}, failures, updated_at) VALUES ({}, 0, ${}) ON CONFLICT ({}) DO NOTHING",
        cols.join(", "),
        placeholders.join(", "),
        cols.len() + 1,
        cols.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert));
    for k in &keys {
        q = q.bind(k.clone());
    }
    q.bind(now).execute(&mut *tx).await?;
    // $1 now, $2 window start, $3 failures per lock, $4 lock end, then the key.
    let update = format!(
        "UPDATE {table}
         SET failures = CASE WHEN updated_at < $2 THEN 1 ELSE failures + 1 END,
             locked_until = CASE WHEN (CASE WHEN updated_at < $2 THEN 1 ELSE failures + 1 END) % $3 = 0
                                 THEN $4 ELSE NULL END,
             updated_at = $1
         WHERE {} AND (locked_until IS NULL OR locked_until <= $1)
         RETURNING locked_until",
        counter.key_filter(5)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(update))
        .bind(now)
        .bind(now - rule.window_ms)
        .bind(i64::from(rule.after_failures.max(1)))
        .bind(now + rule.lockout_ms);
    for k in &keys {
        q = q.bind(k.clone());
    }
    let row = q.fetch_optional(&mut *tx).await?;
    let answer = match row {
        Some(r) => Attempt::Allowed {
            locks_if_wrong: col::<Option<i64>>(&r, "locked_until")?.is_some(),
        },
        None => {
            let select = format!(
                "SELECT locked_until FROM {table} WHERE {}",
                counter.key_filter(1)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(select));
            for k in &keys {
                q = q.bind(k.clone());
            }
            let r = q.fetch_one(&mut *tx).await?;
            Attempt::Locked {
                until: col::<Option<i64>>(&r, "locked_until")?.unwrap_or(now),
            }
        }
    };
    tx.commit().await?;
    Ok(answer)
}

async fn clear(pool: &AnyPool, counter: Counter<'_>) -> Result<(), sqlx::Error> {
    let sql = format!(
        "DELETE FROM {} WHERE {}",
        counter.table(),
        counter.key_filter(1)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for k in counter.key_values() {
        q = q.bind(k);
    }
    q.execute(pool).await?;
    Ok(())
}

/// Counts a password attempt for `email` from `ip`.
pub async fn reserve_source(
    db: &Db,
    email: &str,
    ip: &str,
    now: Millis,
    rule: Rule,
) -> Result<Attempt, sqlx::Error> {
    reserve(db, Counter::Source { email, ip }, now, rule).await
}

/// A correct password from `ip`: that pair starts again.
pub async fn clear_source(pool: &AnyPool, email: &str, ip: &str) -> Result<(), sqlx::Error> {
    clear(pool, Counter::Source { email, ip }).await
}

/// Counts a second-factor attempt for an account.
pub async fn reserve_code(
    db: &Db,
    staff_id: &str,
    now: Millis,
    rule: Rule,
) -> Result<Attempt, sqlx::Error> {
    reserve(db, Counter::Code { staff_id }, now, rule).await
}

/// A correct second-factor code: the account's code count starts again.
pub async fn clear_code(pool: &AnyPool, staff_id: &str) -> Result<(), sqlx::Error> {
    clear(pool, Counter::Code { staff_id }).await
}

/// Counts a password attempt for `email` from any address and returns how many came before it
/// within `window_ms` of each other (never locks).
pub async fn count_account(
    db: &Db,
    email: &str,
    now: Millis,
    window_ms: i64,
) -> Result<i64, sqlx::Error> {
    let email = normalise_email(email);
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO staff_login_throttle (email, failures, updated_at) VALUES ($1, 0, $2)
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(&email)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "UPDATE staff_login_throttle
         SET failures = CASE WHEN updated_at < $3 THEN 1 ELSE failures + 1 END,
             locked_until = NULL, updated_at = $2
         WHERE email = $1
         RETURNING failures",
    )
    .bind(&email)
    .bind(now)
    .bind(now - window_ms)
    .fetch_one(&mut *tx)
    .await?;
    let failures: i64 = col(&row, "failures")?;
    tx.commit().await?;
    Ok(failures - 1)
}

/// A correct password: the account-wide count starts again.
pub async fn clear_account(pool: &AnyPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_login_throttle WHERE email = $1")
        .bind(normalise_email(email))
        .execute(pool)
        .await?;
    Ok(())
}

/// Drops rows nobody has touched since `before` (and whose lock, if any, has ended).
pub async fn forget_old(pool: &AnyPool, before: Millis) -> Result<(), sqlx::Error> {
    for table in [
        "staff_login_throttle",
        "staff_login_sources",
        "staff_code_throttle",
    ] {
        let sql = format!(
            "DELETE FROM {table} WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .execute(pool)
            .await?;
    }
    Ok(())
}

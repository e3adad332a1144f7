//! Block and allow lists: card fingerprints, emails, email domains, IPs and TikTok usernames.
//! Entries carry who added them, why and when, and may expire.

use crate::clock::Millis;
use crate::db::col;
use crate::db::params::{like_contains, where_all, Params};
use crate::domain::{BuyerEmail, TikTokUsername};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    CardFingerprint,
    Email,
    EmailDomain,
    Ip,
    TiktokUsername,
}

impl ListKind {
    pub const ALL: [ListKind; 5] = [
        ListKind::CardFingerprint,
        ListKind::Email,
        ListKind::EmailDomain,
        ListKind::Ip,
        ListKind::TiktokUsername,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::CardFingerprint => "card_fingerprint",
            ListKind::Email => "email",
            ListKind::EmailDomain => "email_domain",
            ListKind::Ip => "ip",
            ListKind::TiktokUsername => "tiktok_username",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ListKind::CardFingerprint => "card",
            ListKind::Email => "email address",
            ListKind::EmailDomain => "email domain",
            ListKind::Ip => "IP address",
            ListKind::TiktokUsername => "TikTok username",
        }
    }

    pub fn parse(s: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    Block,
    Allow,
}

impl List {
    pub fn as_str(self) -> &'static str {
        match self {
            List::Block => "block",
            List::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<List> {
        match s {
            "block" => Some(List::Block),
            "allow" => Some(List::Allow),
            _ => None,
        }
    }
}

/// A list entry that matched an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    pub list: List,
    pub kind: ListKind,
    pub value: String,
    pub reason: String,
    pub added_by: String,
}

pub struct NewEntry<'a> {
    pub list: List,
    pub kind: ListKind,
    pub value: &'a str,
    pub reason: &'a str,
    pub added_by: &'a str,
    pub expires_at: Option<Millis>,
}

/// Values are stored normalised (lower case, trimmed) so matching is exact and indexed.
pub fn normalise(kind: ListKind, value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    match kind {
        ListKind::TiktokUsername => v.trim_start_matches('@').to_owned(),
        _ => v,
    }
}

pub async fn add(
    conn: &mut sqlx::AnyConnection,
    e: NewEntry<'_>,
    now: Millis,
) -> Result<String, sqlx::Error> {
    let id = crate::domain::ids::new_id();
    sqlx::query(
        "INSERT INTO risk_lists (id, list, kind, value, reason, added_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(e.list.as_str())
    .bind(e.kind.as_str())
    .bind(normalise(e.kind, e.value))
    .bind(e.reason)
    .bind(e.added_by)
    .bind(now)
    .bind(e.expires_at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// The order's values in the form list entries are stored in (`normalise`): email, email
/// domain, IP and TikTok username, bound by the screening statement (`risk::signals::gather`),
/// which also matches card fingerprints and returns the hits as `LIST_HITS_JSON`.
pub fn order_values(order: &crate::db::orders::Order) -> [String; 4] {
    let domain = order
        .email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    [
        normalise(ListKind::Email, &order.email),
        normalise(ListKind::EmailDomain, domain),
        normalise(ListKind::Ip, &order.client_ip),
        normalise(ListKind::TiktokUsername, &order.tiktok_username),
    ]
}

/// The entries in force that match an order, as one JSON array of `[list, kind, value, reason,
/// added_by]`, oldest first. `{email}`, `{domain}`, `{ip}`, `{username}`, `{order}` and `{now}`
/// are the statement's placeholders for `order_values`, the order's id and the time.
pub fn hits_json_sql(backend: crate::db::Backend, p: HitParams) -> String {
    let HitParams {
        email,
        domain,
        ip,
        username,
        order,
        now,
    } = p;
    let matching = format!(
        "FROM risk_lists
         WHERE (expires_at IS NULL OR expires_at > {now})
           AND ((kind = 'email' AND value = {email})
             OR (kind = 'email_domain' AND value = {domain})
             OR (kind = 'ip' AND value = {ip})
             OR (kind = 'tiktok_username' AND value = {username})
             OR (kind = 'card_fingerprint' AND value IN
                   (SELECT LOWER(card_fingerprint) FROM payments WHERE order_id = {order} AND card_fingerprint IS NOT NULL)))"
    );
    match backend {
        // SQLite aggregates in the order rows arrive, which the sub-select sorts.
        crate::db::Backend::Sqlite => format!(
            "(SELECT json_group_array(json_array(list, kind, value, reason, added_by))
              FROM (SELECT list, kind, value, reason, added_by {matching} ORDER BY created_at) AS hits)"
        ),
        crate::db::Backend::Postgres => format!(
            "(SELECT CAST(COALESCE(json_agg(json_build_array(list, kind, value, reason, added_by) ORDER BY created_at), '[]') AS TEXT)
              {matching})"
        ),
    }
}

/// The placeholders `hits_json_sql` uses, e.g. `"$9"` (or any SQL expression).
#[derive(Clone, Copy)]
pub struct HitParams<'a> {
    pub email: &'a str,
    pub domain: &'a str,
    pub ip: &'a str,
    pub username: &'a str,
    pub order: &'a str,
    pub now: &'a str,
}

/// Reads the hits `hits_json_sql` returned. An entry of a kind this version does not know
/// cannot match anything and is skipped.
pub fn hits_from_json(json: &str) -> Result<Vec<ListHit>, sqlx::Error> {
    type Row = (String, String, String, String, String);
    let rows: Vec<Row> =
        serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(rows
        .into_iter()
        .filter_map(|(list, kind, value, reason, added_by)| {
            Some(ListHit {
                list: if list == "block" {
                    List::Block
                } else {
                    List::Allow
                },
                kind: ListKind::parse(&kind)?,
                value,
                reason,
                added_by,
            })
        })
        .collect())
}

/// Checks a value typed by an admin for `kind` and returns it in the form orders are matched
/// in (`normalise` of what the shop stores), or a message saying what is wrong.
pub fn parse_value(kind: ListKind, input: &str) -> Result<String, String> {
    let v = input.trim();
    if v.is_empty() {
        return Err(format!("Enter the {} to list.", kind.describe()));
    }
    let parsed = match kind {
        ListKind::Email => BuyerEmail::parse(v)
            .map(|e| e.as_str().to_owned())
            .map_err(|_| "Enter an email address like name@example.com.".to_owned())?,
        ListKind::EmailDomain => {
            let domain = v.trim_start_matches('@');
            BuyerEmail::parse(&format!("x@{domain}"))
                .map(|e| e.domain().to_owned())
                .map_err(|_| "Enter an email domain like example.com (no name@).".to_owned())?
        }
        // Orders store the address as `IpAddr` prints it, so "::FFFF:1.2.3.4" and "1.2.3.4 "
        // are written back the same way.
        ListKind::Ip => v.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| {
            "Enter one IP address like 203.0.113.7 or 2001:db8::1 (ranges are not supported)."
                .to_owned()
        })?,
        ListKind::TiktokUsername => TikTokUsername::parse(v)
            .map(|u| u.as_str().to_owned())
            .map_err(|e| e.to_string())?,
        // The provider's fingerprint as the order page shows it; the sandbox's are hex, other
        // providers use letters, digits, `_` and `-`.
        ListKind::CardFingerprint => {
            let ok = (4..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err("Enter the card fingerprint as the order page shows it (letters, digits, _ and -; no card number).".into());
            }
            v.to_owned()
        }
    };
    Ok(normalise(kind, &parsed))
}

/// A list entry as the admin page shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub list: List,
    pub kind: ListKind,
    pub value: String,
    pub reason: String,
    pub added_by: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    /// Set when an admin ended the entry before its expiry.
    pub removed_by: Option<String>,
    pub removed_at: Option<Millis>,
}

const ENTRY_COLUMNS: &str =
    "id, list, kind, value, reason, added_by, created_at, expires_at, removed_by, removed_at";

fn entry_from_row(r: &AnyRow) -> Result<Entry, sqlx::Error> {
    let list: String = col(r, "list")?;
    let kind: String = col(r, "kind")?;
    let bad =
        |what: &str, v: &str| sqlx::Error::Decode(format!("unknown list {what} {v:?}").into());
    Ok(Entry {
        id: col(r, "id")?,
        list: List::parse(&list).ok_or_else(|| bad("name", &list))?,
        kind: ListKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        value: col(r, "value")?,
        reason: col(r, "reason")?,
        added_by: col(r, "added_by")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
        removed_by: col(r, "removed_by")?,
        removed_at: col(r, "removed_at")?,
    })
}

/// Which entries the admin page lists.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub kind: Option<ListKind>,
    /// Part of the value, as typed (matched in lower case).
    pub value_contains: Option<String>,
}

/// Entries in force at `now` (`ended_since: None`, newest first), or entries that ended
/// between `ended_since` and `now` (latest ended first). At most `limit`.
pub async fn entries(
    pool: &AnyPool,
    now: Millis,
    ended_since: Option<Millis>,
    filter: &EntryFilter,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let mut p = Params::new();
    let at = p.add(now);
    let (mut conditions, order) = match ended_since {
        None => (
            vec![format!("(expires_at IS NULL OR expires_at > {at})")],
            "created_at DESC, id DESC",
        ),
        Some(since) => (
            vec![format!(
                "expires_at <= {at} AND expires_at > {}",
                p.add(since)
            )],
            "expires_at DESC, id DESC",
        ),
    };
    if let Some(kind) = filter.kind {
        conditions.push(format!("kind = {}", p.add(kind.as_str())));
    }
    if let Some(v) = &filter.value_contains {
        conditions.push(format!(
            "value LIKE {} ESCAPE '\\'",
            p.add(like_contains(&v.to_lowercase()))
        ));
    }
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM risk_lists{} ORDER BY {order} LIMIT {}",
        where_all(&conditions),
        p.add(limit)
    );
    let rows = p
        .bind_to(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(pool)
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// Whether `value` (normalised here) is on the block list, in force at `now`.
pub async fn is_blocked(
    conn: &mut AnyConnection,
    kind: ListKind,
    value: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM risk_lists WHERE list = 'block' AND kind = $1 AND value = $2
         AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(kind.as_str())
    .bind(normalise(kind, value))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(col::<i64>(&row, "n")? > 0)
}

pub async fn entry_by_id(pool: &AnyPool, id: &str) -> Result<Option<Entry>, sqlx::Error> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM risk_lists WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// The entry in force for this exact list, kind and (normalised) value, if any.
/// Serialises adds of one (list, kind, value) until the transaction ends, so that the check
/// for an active entry and the insert are one step on PostgreSQL too (SQLite's
/// `BEGIN IMMEDIATE` already lets one writer in at a time).
pub async fn lock_value(
    conn: &mut AnyConnection,
    backend: crate::db::Backend,
    list: List,
    kind: ListKind,
    value: &str,
) -> Result<(), sqlx::Error> {
    if backend == crate::db::Backend::Postgres {
        let key = format!(
            "risk_lists:{}:{}:{}",
            list.as_str(),
            kind.as_str(),
            normalise(kind, value)
        );
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .execute(conn)
            .await?;
    }
    Ok(())
}

pub async fn active_entry(
    conn: &mut AnyConnection,
    list: List,
    kind: ListKind,
    value: &str,
    now: Millis,
) -> Result<Option<Entry>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM risk_lists
         WHERE list = $1 AND kind = $2 AND value = $3 AND (expires_at IS NULL OR expires_at > $4)
         ORDER BY created_at DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(list.as_str())
        .bind(kind.as_str())
        .bind(normalise(kind, value))
        .bind(now)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// Ends an entry now: it stops matching at once and stays in the table as history. False
/// when it had ended already (expired, or someone else removed it first).
pub async fn end(
    conn: &mut AnyConnection,
    id: &str,
    removed_by: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE risk_lists SET expires_at = $1, removed_at = $1, removed_by = $2
         WHERE id = $3 AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(now)
    .bind(removed_by)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_per_kind_and_stored_as_orders_are_matched() {
        use ListKind::*;
        assert_eq!(parse_value(Ip, " 203.0.113.7 ").unwrap(), "203.0.113.7");
        assert_eq!(parse_value(Ip, "2001:DB8::1").unwrap(), "2001:db8::1");
        assert!(parse_value(Ip, "203.0.113.0/24").is_err());
        assert!(parse_value(Ip, "999.1.1.1").is_err());
        assert_eq!(
            parse_value(Email, "Ana@Example.com").unwrap(),
            "ana@example.com"
        );
        assert!(parse_value(Email, "ana@").is_err());
        assert_eq!(
            parse_value(EmailDomain, "@Mailinator.com").unwrap(),
            "mailinator.com"
        );
        assert!(parse_value(EmailDomain, "ana@example.com").is_err());
        assert!(parse_value(EmailDomain, "localhost").is_err());
        assert_eq!(
            parse_value(TiktokUsername, "@Scam_Target").unwrap(),
            "scam_target"
        );
        assert!(parse_value(TiktokUsername, "no spaces please").is_err());
        assert_eq!(
            parse_value(CardFingerprint, "9F2C44aa01bc55de66f70a1b").unwrap(),
            "9f2c44aa01bc55de66f70a1b"
        );
        assert!(parse_value(CardFingerprint, "4242 4242 4242 4242").is_err());
        for kind in ListKind::ALL {
            assert!(parse_value(kind, "   ").is_err());
        }
    }
}

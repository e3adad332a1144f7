//! Block and allow lists: card fingerprints, emails, email domains, IPs and TikTok usernames.
//! Entries carry who added them, why and when, and may expire.

use crate::clock::Millis;
use crate::db::col;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

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

/// Active entries matching any of `candidates` (kind, value). One indexed look-up per value.
pub async fn matches(
    pool: &AnyPool,
    candidates: &[(ListKind, String)],
    now: Millis,
) -> Result<Vec<ListHit>, sqlx::Error> {
    let mut hits = Vec::new();
    for (kind, value) in candidates {
        if value.is_empty() {
            continue;
        }
        let rows = sqlx::query(
            "SELECT list, reason, added_by FROM risk_lists
             WHERE kind = $1 AND value = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(kind.as_str())
        .bind(normalise(*kind, value))
        .bind(now)
        .fetch_all(pool)
        .await?;
        for r in rows {
            let list: String = col(&r, "list")?;
            hits.push(ListHit {
                list: if list == "block" {
                    List::Block
                } else {
                    List::Allow
                },
                kind: *kind,
                value: value.clone(),
                reason: col(&r, "reason")?,
                added_by: col(&r, "added_by")?,
            });
        }
    }
    Ok(hits)
}

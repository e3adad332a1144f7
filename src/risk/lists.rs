//! Block and allow lists: card fingerprints, emails, email domains, IPs and TikTok usernames.
//! Entries carry who added them, why and when, and may expire.

use crate::clock::Millis;
use crate::db::col;
use serde::{Deserialize, Serialize};

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

/// Active entries that match `order`: its email, email domain, IP address, TikTok username,
/// or any card tried on it. One statement; each branch is a look-up on (kind, value).
pub async fn matches_order(
    conn: &mut sqlx::AnyConnection,
    order: &crate::db::orders::Order,
    now: Millis,
) -> Result<Vec<ListHit>, sqlx::Error> {
    let domain = order
        .email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    let rows = sqlx::query(
        "SELECT list, kind, value, reason, added_by FROM risk_lists
         WHERE (expires_at IS NULL OR expires_at > $6)
           AND ((kind = 'email' AND value = $1)
             OR (kind = 'email_domain' AND value = $2)
             OR (kind = 'ip' AND value = $3)
             OR (kind = 'tiktok_username' AND value = $4)
             OR (kind = 'card_fingerprint' AND value IN
                   (SELECT LOWER(card_fingerprint) FROM payments WHERE order_id = $5 AND card_fingerprint IS NOT NULL)))
         ORDER BY created_at",
    )
    .bind(normalise(ListKind::Email, &order.email))
    .bind(normalise(ListKind::EmailDomain, domain))
    .bind(normalise(ListKind::Ip, &order.client_ip))
    .bind(normalise(ListKind::TiktokUsername, &order.tiktok_username))
    .bind(&order.id)
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .filter_map(|r| {
            let kind: String = match col(r, "kind") {
                Ok(k) => k,
                Err(e) => return Some(Err(e)),
            };
            // An entry of a kind this version does not know cannot match anything.
            let kind = ListKind::parse(&kind)?;
            Some(row_to_hit(r, kind))
        })
        .collect()
}

fn row_to_hit(r: &sqlx::any::AnyRow, kind: ListKind) -> Result<ListHit, sqlx::Error> {
    let list: String = col(r, "list")?;
    Ok(ListHit {
        list: if list == "block" {
            List::Block
        } else {
            List::Allow
        },
        kind,
        value: col(r, "value")?,
        reason: col(r, "reason")?,
        added_by: col(r, "added_by")?,
    })
}

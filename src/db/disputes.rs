//! Disputes (chargebacks), early fraud warnings, and the dispute rate.

use crate::clock::Millis;
use crate::db::col;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    pub id: String,
    pub order_id: String,
    pub provider: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub evidence_due_by: Option<Millis>,
    pub evidence_submitted_at: Option<Millis>,
    pub evidence_submitted_by: Option<String>,
    /// The provider's id of the uploaded service documentation.
    pub evidence_file_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const COLUMNS: &str = "id, order_id, provider, amount_minor, currency, reason, status, evidence_due_by, evidence_submitted_at, evidence_submitted_by, evidence_file_id, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Dispute, sqlx::Error> {
    Ok(Dispute {
        id: col(r, "id")?,
        order_id: col(r, "order_id")?,
        provider: col(r, "provider")?,
        amount_minor: col(r, "amount_minor")?,
        currency: col(r, "currency")?,
        reason: col(r, "reason")?,
        status: col(r, "status")?,
        evidence_due_by: col(r, "evidence_due_by")?,
        evidence_submitted_at: col(r, "evidence_submitted_at")?,
        evidence_submitted_by: col(r, "evidence_submitted_by")?,
        evidence_file_id: col(r, "evidence_file_id")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// The order a provider's payment id belongs to (disputes and warnings name the payment).
pub async fn order_for_payment(
    conn: &mut AnyConnection,
    provider: &str,
    payment_ref: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT order_id FROM payments WHERE provider = $1 AND provider_ref = $2 ORDER BY created_at LIMIT 1",
    )
    .bind(provider)
    .bind(payment_ref)
    .fetch_optional(conn)
    .await?;
    row.map(|r| col(&r, "order_id")).transpose()
}

/// The provider's id of the order's settled payment (what a refund is made against).
pub async fn settled_payment_ref(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT provider_ref FROM payments WHERE order_id = $1 AND status = 'succeeded' ORDER BY created_at LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| col(&r, "provider_ref")).transpose()
}

/// Inserts the dispute or brings its status up to date. Returns true when it is new.
pub async fn upsert(conn: &mut AnyConnection, d: &Dispute) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO disputes (id, order_id, provider, amount_minor, currency, reason, status, evidence_due_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&d.id)
    .bind(&d.order_id)
    .bind(&d.provider)
    .bind(d.amount_minor)
    .bind(&d.currency)
    .bind(&d.reason)
    .bind(&d.status)
    .bind(d.evidence_due_by)
    .bind(d.created_at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        sqlx::query(
            "UPDATE disputes SET status = $1, reason = $2, amount_minor = $3,
                evidence_due_by = COALESCE($4, evidence_due_by), updated_at = $5 WHERE id = $6",
        )
        .bind(&d.status)
        .bind(&d.reason)
        .bind(d.amount_minor)
        .bind(d.evidence_due_by)
        .bind(d.updated_at)
        .bind(&d.id)
        .execute(conn)
        .await?;
    }
    Ok(inserted)
}

pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<Dispute>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM disputes WHERE order_id = $1 ORDER BY created_at");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Dispute>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM disputes WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Claims the dispute for an evidence submission: false when evidence went in already.
pub async fn mark_evidence_submitted(
    conn: &mut AnyConnection,
    id: &str,
    by: &str,
    evidence: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE disputes SET evidence_submitted_at = $1, evidence_submitted_by = $2, evidence = $3, updated_at = $1
         WHERE id = $4 AND evidence_submitted_at IS NULL",
    )
    .bind(now)
    .bind(by)
    .bind(evidence)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Undoes a claim whose submission the provider did not accept, so it can be tried again.
pub async fn clear_evidence_submitted(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE disputes SET evidence_submitted_at = NULL, evidence_submitted_by = NULL, evidence = NULL, evidence_file_id = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The file the evidence's service documentation was uploaded as.
pub async fn set_evidence_file(
    conn: &mut AnyConnection,
    id: &str,
    file_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE disputes SET evidence_file_id = $1 WHERE id = $2")
        .bind(file_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records an early fraud warning; true when it is new.
pub async fn insert_fraud_warning(
    conn: &mut AnyConnection,
    id: &str,
    order_id: &str,
    provider: &str,
    fraud_type: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO fraud_warnings (id, order_id, provider, fraud_type, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(order_id)
    .bind(provider)
    .bind(fraud_type)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The fraud type of the order's latest early fraud warning, if it has one.
pub async fn latest_fraud_type(
    pool: &AnyPool,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT fraud_type FROM fraud_warnings WHERE order_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| col(&r, "fraud_type")).transpose()
}

/// Disputes opened and card payments settled since `since`: the dispute rate's numerator and
/// denominator (the card networks count per month, over card payments).
pub async fn rate_counts(pool: &AnyPool, since: Millis) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM disputes WHERE created_at >= $1) AS disputes,
                (SELECT COUNT(*) FROM payments WHERE status = 'succeeded' AND created_at >= $1
                    AND method IN ('card', 'wallet')) AS settled",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok((col(&row, "disputes")?, col(&row, "settled")?))
}

/// A dispute that touches a buyer: on which order, and what that order shares with theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerDispute {
    pub dispute: Dispute,
    pub order_number: String,
    /// The dispute is on the order asked about itself.
    pub same_order: bool,
    pub same_email: bool,
    pub same_username: bool,
    pub same_card: bool,
}

/// Disputes on the order `order_id` or on any order with its email, its TikTok username or a
/// card fingerprint it was paid (or tried) with, newest first.
pub async fn touching_buyer(
    pool: &AnyPool,
    order_id: &str,
    email: &str,
    username: &str,
) -> Result<Vec<BuyerDispute>, sqlx::Error> {
    // The cards of both orders are compared through their payment attempts; a fingerprint
    // is present only where the provider gave one.
    let rows = sqlx::query(
        "SELECT d.id, d.order_id, d.provider, d.amount_minor, d.currency, d.reason, d.status, d.evidence_due_by,
                d.evidence_submitted_at, d.evidence_submitted_by, d.evidence_file_id, d.created_at, d.updated_at,
                o.order_number AS order_number,
                CASE WHEN o.email = $2 THEN 1 ELSE 0 END AS same_email,
                CASE WHEN o.tiktok_username = $3 THEN 1 ELSE 0 END AS same_username,
                CASE WHEN EXISTS (SELECT 1 FROM payments mine JOIN payments theirs
                                    ON theirs.card_fingerprint = mine.card_fingerprint
                                  WHERE mine.order_id = $1 AND theirs.order_id = d.order_id)
                     THEN 1 ELSE 0 END AS same_card
         FROM disputes d JOIN orders o ON o.id = d.order_id
         WHERE d.order_id = $1 OR o.email = $2 OR o.tiktok_username = $3
            OR d.order_id IN (SELECT theirs.order_id FROM payments mine JOIN payments theirs
                                ON theirs.card_fingerprint = mine.card_fingerprint
                              WHERE mine.order_id = $1)
         ORDER BY d.created_at DESC LIMIT 20",
    )
    .bind(order_id)
    .bind(email)
    .bind(username)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let dispute = from_row(r)?;
            Ok(BuyerDispute {
                same_order: dispute.order_id == order_id,
                order_number: col(r, "order_number")?,
                same_email: col::<i64>(r, "same_email")? == 1,
                same_username: col::<i64>(r, "same_username")? == 1,
                same_card: col::<i64>(r, "same_card")? == 1,
                dispute,
            })
        })
        .collect()
}

/// A dispute still waiting for the shop's answer, with its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDispute {
    pub dispute: Dispute,
    pub order_number: String,
    pub delivered_at: Option<Millis>,
}

/// Disputes that need a response and have no evidence yet, the nearest deadline first.
pub async fn awaiting_answer(pool: &AnyPool, limit: i64) -> Result<Vec<OpenDispute>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, d.order_id, d.provider, d.amount_minor, d.currency, d.reason, d.status, d.evidence_due_by,
                d.evidence_submitted_at, d.evidence_submitted_by, d.evidence_file_id, d.created_at, d.updated_at,
                o.order_number AS order_number, o.delivered_at AS delivered_at
         FROM disputes d JOIN orders o ON o.id = d.order_id
         WHERE d.status IN ('needs_response', 'warning_needs_response') AND d.evidence_submitted_at IS NULL
         ORDER BY CASE WHEN d.evidence_due_by IS NULL THEN 1 ELSE 0 END, d.evidence_due_by, d.created_at
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenDispute {
                dispute: from_row(r)?,
                order_number: col(r, "order_number")?,
                delivered_at: col(r, "delivered_at")?,
            })
        })
        .collect()
}

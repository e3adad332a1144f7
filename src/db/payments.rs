//! Payment attempts as the provider reported them. Card data is limited to what a provider
//! hands out: brand, last 4, country and a fingerprint. Never a number, never a CVC.

use crate::clock::Millis;
use crate::db::col;
use sqlx::{AnyConnection, AnyPool};

#[derive(Debug, Clone, Default)]
pub struct PaymentRecord {
    pub id: String,
    pub order_id: String,
    pub provider: String,
    pub provider_ref: String,
    pub method: String,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    pub failure_code: Option<String>,
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub card_country: Option<String>,
    pub card_fingerprint: Option<String>,
    /// The card's first six digits, where the provider gives them.
    pub card_bin: Option<String>,
    pub email: String,
    /// What an attack shares (see `risk::traits`), for counts per trait.
    pub email_domain: String,
    pub client_net: String,
    pub client_ip: String,
    pub tiktok_username: String,
    pub created_at: Millis,
}

/// Records an attempt, or moves an existing one (same provider reference) to its new status:
/// a bank transfer goes `pending` → `succeeded`. A late `pending` never overwrites a final status.
pub async fn upsert(
    conn: &mut AnyConnection,
    p: &PaymentRecord,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO payments (id, order_id, provider, provider_ref, method, status, amount_minor, currency, failure_code,
            card_brand, card_last4, card_country, card_fingerprint, email, client_ip, tiktok_username, created_at, updated_at,
            card_bin, email_domain, client_net)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19, $20)
         ON CONFLICT (provider, provider_ref) DO NOTHING",
    )
    .bind(&p.id)
    .bind(&p.order_id)
    .bind(&p.provider)
    .bind(&p.provider_ref)
    .bind(&p.method)
    .bind(&p.status)
    .bind(p.amount_minor)
    .bind(&p.currency)
    .bind(&p.failure_code)
    .bind(&p.card_brand)
    .bind(&p.card_last4)
    .bind(&p.card_country)
    .bind(&p.card_fingerprint)
    .bind(&p.email)
    .bind(&p.client_ip)
    .bind(&p.tiktok_username)
    .bind(p.created_at)
    .bind(&p.card_bin)
    .bind(&p.email_domain)
    .bind(&p.client_net)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 && p.status != "pending" {
        sqlx::query(
            "UPDATE payments SET status = $1, failure_code = $2, updated_at = $3
             WHERE provider = $4 AND provider_ref = $5 AND status = 'pending'",
        )
        .bind(&p.status)
        .bind(&p.failure_code)
        .bind(now)
        .bind(&p.provider)
        .bind(&p.provider_ref)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// How the order's latest successful payment was made: method, card brand, card last 4.
pub async fn last_succeeded_method(
    conn: &mut AnyConnection,
    order_id: &str,
) -> Result<Option<(String, Option<String>, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT method, card_brand, card_last4 FROM payments
         WHERE order_id = $1 AND status = 'succeeded' ORDER BY created_at DESC LIMIT 1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok((
            col(&r, "method")?,
            col(&r, "card_brand")?,
            col(&r, "card_last4")?,
        ))
    })
    .transpose()
}

/// The distinct card fingerprints of an order's payments.
pub async fn card_fingerprints(
    conn: &mut sqlx::AnyConnection,
    order_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT card_fingerprint FROM payments WHERE order_id = $1 AND card_fingerprint IS NOT NULL",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| col(r, "card_fingerprint")).collect()
}

pub async fn for_order(pool: &AnyPool, order_id: &str) -> Result<Vec<PaymentRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, order_id, provider, provider_ref, method, status, amount_minor, currency, failure_code, card_brand,
                card_last4, card_country, card_fingerprint, card_bin, email, client_ip, tiktok_username, created_at,
                COALESCE(email_domain, '') AS email_domain, COALESCE(client_net, '') AS client_net
         FROM payments WHERE order_id = $1 ORDER BY created_at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PaymentRecord {
                id: col(r, "id")?,
                order_id: col(r, "order_id")?,
                provider: col(r, "provider")?,
                provider_ref: col(r, "provider_ref")?,
                method: col(r, "method")?,
                status: col(r, "status")?,
                amount_minor: col(r, "amount_minor")?,
                currency: col(r, "currency")?,
                failure_code: col(r, "failure_code")?,
                card_brand: col(r, "card_brand")?,
                card_last4: col(r, "card_last4")?,
                card_country: col(r, "card_country")?,
                card_fingerprint: col(r, "card_fingerprint")?,
                card_bin: col(r, "card_bin")?,
                email: col(r, "email")?,
                email_domain: col(r, "email_domain")?,
                client_ip: col(r, "client_ip")?,
                client_net: col(r, "client_net")?,
                tiktok_username: col(r, "tiktok_username")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

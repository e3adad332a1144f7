//! Erasing a buyer's personal data on request: their email address, IP addresses and messages
//! are replaced by markers wherever the shop keeps them, while amounts, states, times and the
//! records' structure stay for the accounts (`orders::erasure` runs these in one transaction
//! with the audit entries). What is *not* touched: the TikTok recipient (the delivery record),
//! card brand/last four/fingerprint (the payment record, and what chargebacks are matched on),
//! and block-list entries (kept for fraud prevention, each with its reason).

use crate::clock::Millis;
use crate::db::col;
use sqlx::AnyConnection;

/// The domain of the addresses that replace erased ones: `.invalid` can never receive mail.
pub const ERASED_DOMAIN: &str = "erased.invalid";
/// What replaces an IP address.
pub const ERASED_IP: &str = "erased";
/// What replaces a message.
pub const ERASED_TEXT: &str = "[erased]";

/// The address that replaces the buyer's on one order: one per order, so erased orders are
/// not linked to each other through it.
pub fn erased_email(order_number: &str) -> String {
    format!(
        "erased-{}@{ERASED_DOMAIN}",
        order_number.to_ascii_lowercase()
    )
}

/// Whether an address is one of those markers.
pub fn is_erased(email: &str) -> bool {
    email.ends_with(&format!("@{ERASED_DOMAIN}"))
}

/// One of the buyer's orders, as found before erasing.
#[derive(Debug, Clone)]
pub struct Erasable {
    pub id: String,
    pub order_number: String,
    pub client_ip: String,
}

/// Every order placed with `email`.
pub async fn orders_of(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<Vec<Erasable>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, order_number, client_ip FROM orders WHERE email = $1 ORDER BY created_at, id",
    )
    .bind(email)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Erasable {
                id: col(r, "id")?,
                order_number: col(r, "order_number")?,
                client_ip: col(r, "client_ip")?,
            })
        })
        .collect()
}

async fn run(
    conn: &mut AnyConnection,
    sql: &'static str,
    binds: &[&str],
) -> Result<u64, sqlx::Error> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    Ok(query.execute(conn).await?.rows_affected())
}

/// Erases `email` and the order's IP address from one order and everything attached to it.
pub async fn erase_order(
    conn: &mut AnyConnection,
    order: &Erasable,
    email: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    let marker = erased_email(&order.order_number);
    let (id, ip) = (order.id.as_str(), order.client_ip.as_str());
    sqlx::query("UPDATE orders SET email = $1, client_ip = $2, updated_at = $3 WHERE id = $4")
        .bind(&marker)
        .bind(ERASED_IP)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    run(
        conn,
        "UPDATE payments SET email = $1, client_ip = $2, email_domain = NULL, client_net = NULL
         WHERE order_id = $3",
        &[&marker, ERASED_IP, id],
    )
    .await?;
    // The bodies go; the rows stay as the record of what was sent when. An unsent one is
    // given up: there is no one left to send it to.
    sqlx::query(
        "UPDATE emails SET to_address = $1, text_body = '', html_body = '',
                body_deleted_at = COALESCE(body_deleted_at, $2),
                abandoned_at = CASE WHEN sent_at IS NULL THEN COALESCE(abandoned_at, $2) ELSE abandoned_at END
         WHERE order_id = $3",
    )
    .bind(&marker)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    run(
        conn,
        "UPDATE support_messages SET body = $1 WHERE order_id = $2",
        &[ERASED_TEXT, id],
    )
    .await?;
    run(
        conn,
        "UPDATE refund_requests SET message = $1 WHERE order_id = $2",
        &[ERASED_TEXT, id],
    )
    .await?;
    // Free text the shop or its staff wrote about the order keeps its words, without the
    // address or the IP in it.
    for sql in [
        "UPDATE refund_requests SET decision_message = REPLACE(decision_message, $1, $2) WHERE order_id = $3",
        "UPDATE order_events SET detail = REPLACE(detail, $1, $2) WHERE order_id = $3",
        "UPDATE notes SET body = REPLACE(body, $1, $2) WHERE order_id = $3",
        "UPDATE disputes SET evidence = REPLACE(evidence, $1, $2) WHERE order_id = $3",
        "UPDATE risk_assessments SET reasons = REPLACE(reasons, $1, $2), signals = REPLACE(signals, $1, $2) WHERE order_id = $3",
    ] {
        run(conn, sql, &[email, marker.as_str(), id]).await?;
        if !ip.is_empty() && ip != ERASED_IP {
            run(conn, sql, &[ip, ERASED_IP, id]).await?;
        }
    }
    Ok(())
}

/// Emails to `email` that belong to no order of theirs (an order-link email asked for with
/// another order's number, say): the address and body go too.
pub async fn erase_other_emails(
    conn: &mut AnyConnection,
    email: &str,
    now: Millis,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE emails SET to_address = $1, text_body = '', html_body = '',
                body_deleted_at = COALESCE(body_deleted_at, $2),
                abandoned_at = CASE WHEN sent_at IS NULL THEN COALESCE(abandoned_at, $2) ELSE abandoned_at END
         WHERE to_address = $3",
    )
    .bind(format!("erased@{ERASED_DOMAIN}"))
    .bind(now)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The ids of the emails of these orders (their outbox files go too).
pub async fn email_ids(
    conn: &mut AnyConnection,
    order_ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut ids = Vec::new();
    for order_id in order_ids {
        let rows = sqlx::query("SELECT id FROM emails WHERE order_id = $1")
            .bind(order_id)
            .fetch_all(&mut *conn)
            .await?;
        for r in &rows {
            ids.push(col(r, "id")?);
        }
    }
    Ok(ids)
}

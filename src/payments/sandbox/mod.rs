//! The sandbox payment provider: behaves like a real hosted checkout, in TEST MODE. It keeps
//! its own records (sessions, refunds), decides each attempt on its hosted payment page (the
//! page's routes are `store::sandbox_page`), and tells the shop what happened only through
//! signed webhooks delivered over HTTP with retries, exactly the path a real provider's events
//! take.

pub mod cards;

use super::{
    signature, CardDetails, EventData, EventKind, PaymentProvider, ProviderError, ProviderEvent,
    RefundOutcome, RefundRequest, Session, SessionRequest, WebhookError,
};
use crate::clock::{Millis, SharedClock};
use crate::config::Secret;
use crate::db::{col, Db};
use crate::jobs::{self, Job, NewJob};
use async_trait::async_trait;
use cards::{CardNumber, Decline};
use hmac::Mac;
use sqlx::AnyConnection;
use std::sync::Arc;
use tokio::sync::Notify;

pub const SIGNATURE_HEADER: &str = "Coinfront-Signature";

pub struct SandboxProvider {
    db: Db,
    clock: SharedClock,
    signing_key: Secret,
    base_url: String,
    tolerance_secs: i64,
    settle_after_ms: i64,
    crypto_quote_ms: i64,
    crypto_confirm_ms: i64,
    jobs_ready: Arc<Notify>,
}

#[derive(Debug, Clone)]
pub struct SandboxSession {
    pub id: String,
    pub order_reference: String,
    pub description: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub status: String,
    pub return_url: String,
    pub webhook_url: String,
    pub expires_at: Millis,
}

/// How the buyer chose to pay on the hosted page.
pub enum Attempt {
    Card(CardNumber),
    /// Apple Pay / Google Pay style: one step, a tokenised card.
    Wallet,
    /// PayPal style: approved on the provider's own page.
    Paypal,
    BankTransfer,
    GiftCard(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoQuote {
    pub payment_id: String,
    pub address: String,
    pub amount_minor: i64,
    pub expires_at: Millis,
}

async fn crypto_quote_in(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Option<CryptoQuote>, sqlx::Error> {
    let row = sqlx::query("SELECT payment_id, address, amount_minor, expires_at FROM sandbox_crypto_quotes WHERE session_id = $1")
        .bind(session_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(CryptoQuote {
            payment_id: col(&r, "payment_id")?,
            address: col(&r, "address")?,
            amount_minor: col(&r, "amount_minor")?,
            expires_at: col(&r, "expires_at")?,
        })
    })
    .transpose()
}

/// Sandbox gift cards: `GIFT-<balance>-<anything>`, the balance in whole units of the paying
/// session's currency, spent down across orders. Succeeded, or declined with the reason.
async fn redeem_gift_card(
    conn: &mut AnyConnection,
    code: &str,
    s: &SandboxSession,
) -> Result<AttemptResult, sqlx::Error> {
    let mut parts = code.split('-');
    let balance = match (
        parts.next(),
        parts.next().and_then(|b| b.parse::<i64>().ok()),
        parts.next(),
    ) {
        (Some("GIFT"), Some(major), Some(rest))
            if !rest.is_empty() && major > 0 && major < 1_000_000 =>
        {
            major
        }
        _ => return Ok(AttemptResult::Declined(Decline::InvalidCode)),
    };
    let scale = s
        .currency
        .parse::<crate::domain::Currency>()
        .map(|c| 10i64.pow(c.minor_units()))
        .unwrap_or(100);
    sqlx::query(
        "INSERT INTO sandbox_gift_cards (code, currency, remaining_minor) VALUES ($1, $2, $3) ON CONFLICT (code) DO NOTHING",
    )
    .bind(code)
    .bind(&s.currency)
    .bind(balance * scale)
    .execute(&mut *conn)
    .await?;
    let spent = sqlx::query(
        "UPDATE sandbox_gift_cards SET remaining_minor = remaining_minor - $1
         WHERE code = $2 AND currency = $3 AND remaining_minor >= $1",
    )
    .bind(s.amount_minor)
    .bind(code)
    .bind(&s.currency)
    .execute(&mut *conn)
    .await?;
    Ok(if spent.rows_affected() == 1 {
        AttemptResult::Succeeded
    } else {
        AttemptResult::Declined(Decline::InsufficientBalance)
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Succeeded,
    /// Accepted; settles later (bank transfer).
    Pending,
    Declined(Decline),
    /// The session was paid (or is settling) already.
    AlreadyDone,
}

impl SandboxProvider {
    pub fn new(
        db: Db,
        clock: SharedClock,
        signing_key: Secret,
        base_url: String,
        settings: &crate::config::PaymentSettings,
        jobs_ready: Arc<Notify>,
    ) -> Self {
        SandboxProvider {
            db,
            clock,
            signing_key,
            base_url,
            tolerance_secs: settings.webhook_tolerance_seconds as i64,
            settle_after_ms: settings.sandbox_bank_transfer_settle_seconds as i64 * 1000,
            crypto_quote_ms: settings.crypto_quote_minutes as i64 * 60_000,
            crypto_confirm_ms: settings.sandbox_crypto_confirm_seconds as i64 * 1000,
            jobs_ready,
        }
    }

    pub async fn session(&self, id: &str) -> Result<Option<SandboxSession>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, order_reference, description, amount_minor, currency, method, status, return_url, webhook_url, expires_at
             FROM sandbox_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(SandboxSession {
                id: col(&r, "id")?,
                order_reference: col(&r, "order_reference")?,
                description: col(&r, "description")?,
                amount_minor: col(&r, "amount_minor")?,
                currency: col(&r, "currency")?,
                method: col(&r, "method")?,
                status: col(&r, "status")?,
                return_url: col(&r, "return_url")?,
                webhook_url: col(&r, "webhook_url")?,
                expires_at: col(&r, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn session_last4(&self, id: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT paid_last4 FROM sandbox_sessions WHERE id = $1")
            .bind(id)
            .fetch_one(self.db.pool())
            .await?;
        col(&row, "paid_last4")
    }

    /// A stable, keyed fingerprint of a card: the same card gives the same fingerprint on every
    /// order, and the number cannot be recovered from it.
    fn fingerprint(&self, what: &str) -> String {
        let m = crate::domain::mac::keyed(
            self.signing_key.expose().as_bytes(),
            &[b"fingerprint:", what.as_bytes()],
        );
        hex::encode(&m.finalize().into_bytes()[..12])
    }

    /// One payment attempt on the hosted page. The outcome reaches the shop only as a webhook.
    pub async fn attempt(
        &self,
        s: &SandboxSession,
        attempt: Attempt,
        client_ip: &str,
    ) -> Result<AttemptResult, sqlx::Error> {
        let now = self.clock.now_ms();
        let payment_id = format!("pay_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.db.begin().await?;
        let (method, card, outcome) = match &attempt {
            Attempt::Card(n) => {
                let card = CardDetails {
                    brand: n.brand().into(),
                    last4: n.last4().into(),
                    country: "US".into(),
                    fingerprint: self.fingerprint(n.digits()),
                    bin: Some(n.bin().to_owned()),
                };
                let outcome = match n.outcome() {
                    cards::Outcome::Succeeded => AttemptResult::Succeeded,
                    cards::Outcome::Declined(d) => AttemptResult::Declined(d),
                };
                ("card", Some(card), outcome)
            }
            // A device wallet hands over a tokenised card: brand, last 4 and a fingerprint of
            // the device token (here: stable per paying client).
            Attempt::Wallet => {
                let card = CardDetails {
                    brand: "visa".into(),
                    last4: "4242".into(),
                    country: "US".into(),
                    fingerprint: self.fingerprint(&format!("wallet:{client_ip}")),
                    bin: None,
                };
                ("wallet", Some(card), AttemptResult::Succeeded)
            }
            Attempt::Paypal => ("paypal", None, AttemptResult::Succeeded),
            Attempt::BankTransfer => ("bank_transfer", None, AttemptResult::Pending),
            Attempt::GiftCard(code) => {
                // Gift cards are fingerprinted like cards, so code-guessing shows up in the
                // shop's card-testing signals.
                let code = code.trim().to_ascii_uppercase();
                let card = CardDetails {
                    brand: "gift_card".into(),
                    last4: code
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect(),
                    country: String::new(),
                    fingerprint: self.fingerprint(&format!("gift:{code}")),
                    bin: None,
                };
                let outcome = redeem_gift_card(&mut tx, &code, s).await?;
                ("gift_card", Some(card), outcome)
            }
        };
        let new_status = match outcome {
            AttemptResult::Succeeded => Some("paid"),
            AttemptResult::Pending => Some("pending"),
            _ => None,
        };
        if let Some(status) = new_status {
            let moved = sqlx::query(
                "UPDATE sandbox_sessions SET status = $1, paid_last4 = $2, updated_at = $3 WHERE id = $4 AND status = 'open'",
            )
            .bind(status)
            .bind(card.as_ref().map(|c| c.last4.clone()))
            .bind(now)
            .bind(&s.id)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(AttemptResult::AlreadyDone);
            }
        }
        let data = |failure: Option<Decline>| EventData {
            order_reference: s.order_reference.clone(),
            session_id: s.id.clone(),
            object_id: payment_id.clone(),
            method: method.into(),
            amount_minor: s.amount_minor,
            currency: s.currency.clone(),
            failure_code: failure.map(|d| d.code().into()),
            failure_message: failure.map(|d| d.message().into()),
            card: card.clone(),
            reference: None,
            late: false,
            payment_ref: None,
            dispute: None,
        };
        match outcome {
            AttemptResult::Succeeded => {
                self.queue_event(
                    &mut tx,
                    s,
                    EventKind::PaymentSucceeded,
                    data(None),
                    now,
                    now,
                )
                .await?
            }
            AttemptResult::Declined(d) => {
                self.queue_event(
                    &mut tx,
                    s,
                    EventKind::PaymentFailed,
                    data(Some(d)),
                    now,
                    now,
                )
                .await?
            }
            AttemptResult::Pending => {
                self.queue_event(&mut tx, s, EventKind::PaymentPending, data(None), now, now)
                    .await?;
                let settle = NewJob {
                    job: Job::SandboxSettle {
                        session_id: s.id.clone(),
                        payment_id: payment_id.clone(),
                    },
                    dedupe_key: Some(format!("{}:{payment_id}", Job::SANDBOX_SETTLE)),
                    run_at: now + self.settle_after_ms,
                };
                jobs::enqueue(&mut tx, settle, now).await?;
            }
            AttemptResult::AlreadyDone => {}
        }
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(outcome)
    }

    /// The crypto quote for a session: an address and the exact amount, valid for a while.
    /// Asking again returns the same quote until it is used up or underpaid.
    pub async fn crypto_quote(&self, s: &SandboxSession) -> Result<CryptoQuote, sqlx::Error> {
        let now = self.clock.now_ms();
        let address = format!(
            "0xtest{}",
            &self.fingerprint(&format!("crypto:{}", s.id))[..20]
        );
        let payment_id = format!("pay_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sandbox_crypto_quotes (session_id, payment_id, address, amount_minor, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(&s.id)
        .bind(&payment_id)
        .bind(&address)
        .bind(s.amount_minor)
        .bind(now + self.crypto_quote_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let quote = crypto_quote_in(&mut tx, &s.id)
            .await?
            .ok_or_else(|| sqlx::Error::RowNotFound)?;
        if inserted {
            // The shop hears that a crypto payment is under way, as with a real processor.
            let data = EventData {
                order_reference: s.order_reference.clone(),
                session_id: s.id.clone(),
                object_id: quote.payment_id.clone(),
                method: "crypto".into(),
                amount_minor: s.amount_minor,
                currency: s.currency.clone(),
                failure_code: None,
                failure_message: None,
                card: None,
                reference: None,
                late: false,
                payment_ref: None,
                dispute: None,
            };
            self.queue_event(&mut tx, s, EventKind::PaymentPending, data, now, now)
                .await?;
        }
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(quote)
    }

    /// The sandbox's stand-in for a blockchain: a transfer of `amount_minor` to the quote's
    /// address. Its confirmation reaches the shop later, as a webhook: a payment if the full
    /// amount arrived (flagged late after the quote expired), or an underpayment, which is not
    /// a payment and goes back to the sender.
    pub async fn crypto_transfer(
        &self,
        s: &SandboxSession,
        amount_minor: i64,
    ) -> Result<Option<CryptoQuote>, sqlx::Error> {
        let now = self.clock.now_ms();
        let mut tx = self.db.begin().await?;
        let Some(quote) = crypto_quote_in(&mut tx, &s.id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let underpaid = amount_minor < quote.amount_minor;
        let late = now > quote.expires_at;
        let failure = underpaid.then_some(Decline::Underpaid);
        if underpaid {
            // The quote is void; the buyer may ask for a new one.
            sqlx::query("DELETE FROM sandbox_crypto_quotes WHERE session_id = $1")
                .bind(&s.id)
                .execute(&mut *tx)
                .await?;
        } else {
            let moved = sqlx::query("UPDATE sandbox_sessions SET status = 'paid', updated_at = $1 WHERE id = $2 AND status = 'open'")
                .bind(now)
                .bind(&s.id)
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Some(quote));
            }
        }
        let data = EventData {
            order_reference: s.order_reference.clone(),
            session_id: s.id.clone(),
            object_id: if underpaid {
                format!("pay_{}", uuid::Uuid::now_v7().simple())
            } else {
                quote.payment_id.clone()
            },
            method: "crypto".into(),
            amount_minor: if underpaid {
                amount_minor
            } else {
                s.amount_minor
            },
            currency: s.currency.clone(),
            failure_code: failure.map(|d| d.code().into()),
            failure_message: failure.map(|d| d.message().into()),
            card: None,
            reference: None,
            late,
            payment_ref: None,
            dispute: None,
        };
        let kind = if underpaid {
            EventKind::PaymentFailed
        } else {
            EventKind::PaymentSucceeded
        };
        self.queue_event(&mut tx, s, kind, data, now, now + self.crypto_confirm_ms)
            .await?;
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(Some(quote))
    }

    pub async fn current_crypto_quote(
        &self,
        session_id: &str,
    ) -> Result<Option<CryptoQuote>, sqlx::Error> {
        let mut conn = self.db.pool().acquire().await?;
        crypto_quote_in(&mut conn, session_id).await
    }

    /// A bank transfer arrives: the session is paid and the shop is told.
    pub async fn settle(&self, session_id: &str, payment_id: &str) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        let Some(s) = self.session(session_id).await? else {
            return Ok(());
        };
        let mut tx = self.db.begin().await?;
        let moved = sqlx::query(
            "UPDATE sandbox_sessions SET status = 'paid', updated_at = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(now)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 1 {
            let data = EventData {
                order_reference: s.order_reference.clone(),
                session_id: s.id.clone(),
                object_id: payment_id.to_owned(),
                method: "bank_transfer".into(),
                amount_minor: s.amount_minor,
                currency: s.currency.clone(),
                failure_code: None,
                failure_message: None,
                card: None,
                reference: None,
                late: false,
                payment_ref: None,
                dispute: None,
            };
            self.queue_event(&mut tx, &s, EventKind::PaymentSucceeded, data, now, now)
                .await?;
        }
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(())
    }

    async fn queue_event(
        &self,
        conn: &mut AnyConnection,
        s: &SandboxSession,
        kind: EventKind,
        data: EventData,
        now: Millis,
        deliver_at: Millis,
    ) -> Result<(), sqlx::Error> {
        let event = ProviderEvent {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            kind,
            created: now / 1000,
            data,
        };
        let body = serde_json::to_string(&event).expect("events serialize");
        let job = NewJob {
            job: Job::SandboxWebhook {
                url: s.webhook_url.clone(),
                body,
            },
            dedupe_key: Some(format!("{}:{}", Job::SANDBOX_WEBHOOK, event.id)),
            run_at: deliver_at,
        };
        jobs::enqueue(conn, job, now).await?;
        Ok(())
    }

    /// Sends one queued event to the shop, signed at the moment of sending. Anything but a
    /// 2xx is an error, and the job queue retries with backoff, as a real provider does.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        url: &str,
        body: &str,
    ) -> Result<(), String> {
        let header = signature::sign(
            self.signing_key.expose().as_bytes(),
            self.clock.now_ms() / 1000,
            body.as_bytes(),
        );
        let resp = http
            .post(url)
            .header(SIGNATURE_HEADER, header)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| format!("webhook delivery failed: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", resp.status()))
        }
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn create_session(&self, req: &SessionRequest) -> Result<Session, ProviderError> {
        let now = self.clock.now_ms();
        let id = format!("cs_test_{}", crate::domain::ids::new_secret_token());
        sqlx::query(
            "INSERT INTO sandbox_sessions (id, order_reference, description, amount_minor, currency, method, status,
                return_url, webhook_url, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $9, $10)
             ON CONFLICT (order_reference) DO NOTHING",
        )
        .bind(&id)
        .bind(&req.order_reference)
        .bind(&req.description)
        .bind(req.amount.minor())
        .bind(req.amount.currency().code())
        .bind(req.method.as_str())
        .bind(&req.return_url)
        .bind(&req.webhook_url)
        .bind(now)
        .bind(req.expires_at)
        .execute(self.db.pool())
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        // One session per order: a repeated request gets the first one back.
        let row = sqlx::query("SELECT id FROM sandbox_sessions WHERE order_reference = $1")
            .bind(&req.order_reference)
            .fetch_one(self.db.pool())
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let id: String = col(&row, "id").map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Session {
            redirect_url: self.session_url(&id),
            id,
        })
    }

    fn session_url(&self, session_id: &str) -> String {
        format!("{}/sandbox/pay/{session_id}", self.base_url)
    }

    fn signature_header(&self) -> &'static str {
        SIGNATURE_HEADER
    }

    fn parse_webhook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<ProviderEvent, WebhookError> {
        signature::verify(
            &[self.signing_key.expose().as_bytes()],
            signature_header,
            body,
            now / 1000,
            self.tolerance_secs,
        )?;
        serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        let unavailable = |e: sqlx::Error| ProviderError::Unavailable(e.to_string());
        let now = self.clock.now_ms();
        let Some(s) = self.session(&req.session_id).await.map_err(unavailable)? else {
            return Ok(RefundOutcome::Failed {
                reason: "no such payment".into(),
            });
        };
        if s.status != "paid" {
            return Ok(RefundOutcome::Failed {
                reason: "the payment has not been captured".into(),
            });
        }
        if s.currency != req.amount.currency().code() {
            return Ok(RefundOutcome::Failed {
                reason: "refund currency differs from the payment".into(),
            });
        }
        // Read before the transaction: a look-up on another pooled connection while holding
        // SQLite's write lock can wait for a connection held by someone waiting for that lock.
        let refund_fails_card = self
            .session_last4(&s.id)
            .await
            .map_err(unavailable)?
            .as_deref()
            == Some("5126");
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        if let Some(row) = sqlx::query("SELECT id FROM sandbox_refunds WHERE idempotency_key = $1")
            .bind(&req.idempotency_key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
        {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(RefundOutcome::Pending {
                refund_id: col(&row, "id").map_err(unavailable)?,
            });
        }
        let refunded: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS total FROM sandbox_refunds WHERE session_id = $1 AND status = 'succeeded'",
        )
        .bind(&s.id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| col(&r, "total"))
        .map_err(unavailable)?;
        if req.amount.minor() <= 0 || refunded.saturating_add(req.amount.minor()) > s.amount_minor {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(RefundOutcome::Failed {
                reason: "the refund is more than what is left of the payment".into(),
            });
        }
        let refund_id = format!("re_{}", uuid::Uuid::now_v7().simple());
        // Like Stripe's 4000 0000 0000 5126: the refund of a payment made with a card ending
        // 5126 fails asynchronously — here only the first time, so a retry can succeed.
        let earlier_failures: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM sandbox_refunds WHERE session_id = $1 AND status = 'failed'",
        )
        .bind(&s.id)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| col(&r, "n"))
        .map_err(unavailable)?;
        let fails = refund_fails_card && earlier_failures == 0;
        let status = if fails { "failed" } else { "succeeded" };
        sqlx::query(
            "INSERT INTO sandbox_refunds (id, session_id, idempotency_key, amount_minor, currency, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&refund_id)
        .bind(&s.id)
        .bind(&req.idempotency_key)
        .bind(req.amount.minor())
        .bind(&s.currency)
        .bind(status)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let data = EventData {
            order_reference: s.order_reference.clone(),
            session_id: s.id.clone(),
            object_id: refund_id.clone(),
            method: s.method.clone(),
            amount_minor: req.amount.minor(),
            currency: s.currency.clone(),
            failure_code: fails.then(|| "expired_or_canceled_card".to_owned()),
            failure_message: fails.then(|| "The card can no longer receive refunds".to_owned()),
            card: None,
            reference: Some(req.idempotency_key.clone()),
            late: false,
            payment_ref: None,
            dispute: None,
        };
        let kind = if fails {
            EventKind::RefundFailed
        } else {
            EventKind::RefundSucceeded
        };
        self.queue_event(&mut tx, &s, kind, data, now, now)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.jobs_ready.notify_one();
        Ok(RefundOutcome::Pending { refund_id })
    }
}

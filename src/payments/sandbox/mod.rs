//! The sandbox payment provider: behaves like a real hosted checkout, in TEST MODE. It keeps
//! its own records (sessions, refunds, gift cards, crypto quotes: `db::sandbox_payments`),
//! decides each attempt on its hosted payment page (the page's routes are
//! `store::sandbox_page`), and tells the shop what happened only through
//! signed webhooks delivered over HTTP with retries, exactly the path a real provider's events
//! take.

pub mod cards;

use super::{
    signature, CardDetails, EventData, EventKind, PaymentProvider, ProviderError, ProviderEvent,
    RefundOutcome, RefundRequest, Session, SessionRequest, WebhookError,
};
use crate::clock::{Millis, SharedClock};
use crate::config::Secret;
use crate::db::sandbox_payments as store;
use crate::db::Db;
use crate::jobs::{self, Job, NewJob};
use async_trait::async_trait;
use cards::{CardNumber, Decline};
use hmac::Mac;
use sqlx::AnyConnection;
use std::sync::Arc;
use tokio::sync::Notify;

pub use crate::db::sandbox_payments::{CryptoQuote, SandboxSession};

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
    let spent =
        store::spend_gift_card(conn, code, &s.currency, balance * scale, s.amount_minor).await?;
    Ok(if spent {
        AttemptResult::Succeeded
    } else {
        AttemptResult::Declined(Decline::InsufficientBalance)
    })
}

/// An event about `s`: the session's order, amount and currency, nothing failed, no card.
fn event_data(s: &SandboxSession, object_id: String, method: &str) -> EventData {
    EventData {
        order_reference: s.order_reference.clone(),
        session_id: s.id.clone(),
        object_id,
        method: method.into(),
        amount_minor: s.amount_minor,
        currency: s.currency.clone(),
        failure_code: None,
        failure_message: None,
        card: None,
        reference: None,
        late: false,
        payment_ref: None,
        dispute: None,
    }
}

/// A new payment id, as the sandbox names payments.
fn payment_id() -> String {
    format!("pay_{}", uuid::Uuid::now_v7().simple())
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
        store::session(self.db.pool(), id).await
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
        let payment_id = payment_id();
        let mut tx = self.db.begin().await?;
        let (method, card, outcome) = self.decide(&mut tx, s, &attempt, client_ip).await?;
        let new_status = match outcome {
            AttemptResult::Succeeded => Some("paid"),
            AttemptResult::Pending => Some("pending"),
            _ => None,
        };
        if let Some(status) = new_status {
            let last4 = card.as_ref().map(|c| c.last4.as_str());
            if !store::move_session(&mut tx, &s.id, "open", status, last4, now).await? {
                tx.rollback().await?;
                return Ok(AttemptResult::AlreadyDone);
            }
        }
        let data = |failure: Option<Decline>| EventData {
            failure_code: failure.map(|d| d.code().into()),
            failure_message: failure.map(|d| d.message().into()),
            card: card.clone(),
            ..event_data(s, payment_id.clone(), method)
        };
        let (kind, data) = match outcome {
            AttemptResult::Succeeded => (EventKind::PaymentSucceeded, data(None)),
            AttemptResult::Declined(d) => (EventKind::PaymentFailed, data(Some(d))),
            AttemptResult::Pending => (EventKind::PaymentPending, data(None)),
            AttemptResult::AlreadyDone => {
                tx.commit().await?;
                return Ok(outcome);
            }
        };
        self.queue_event(&mut tx, s, kind, data, now, now).await?;
        if outcome == AttemptResult::Pending {
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
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(outcome)
    }

    /// What the attempt comes to, by method: the method's name, the card details the
    /// provider reports (never a number), and the outcome. Spends a gift card's balance.
    async fn decide(
        &self,
        conn: &mut AnyConnection,
        s: &SandboxSession,
        attempt: &Attempt,
        client_ip: &str,
    ) -> Result<(&'static str, Option<CardDetails>, AttemptResult), sqlx::Error> {
        Ok(match attempt {
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
                let last4_start = code.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
                let card = CardDetails {
                    brand: "gift_card".into(),
                    last4: code[last4_start..].to_owned(),
                    country: String::new(),
                    fingerprint: self.fingerprint(&format!("gift:{code}")),
                    bin: None,
                };
                let outcome = redeem_gift_card(conn, &code, s).await?;
                ("gift_card", Some(card), outcome)
            }
        })
    }

    /// The crypto quote for a session: an address and the exact amount, valid for a while.
    /// Asking again returns the same quote until it is used up or underpaid.
    pub async fn crypto_quote(&self, s: &SandboxSession) -> Result<CryptoQuote, sqlx::Error> {
        let now = self.clock.now_ms();
        let address = format!(
            "0xtest{}",
            &self.fingerprint(&format!("crypto:{}", s.id))[..20]
        );
        let fresh = CryptoQuote {
            payment_id: payment_id(),
            address,
            amount_minor: s.amount_minor,
            expires_at: now + self.crypto_quote_ms,
        };
        let mut tx = self.db.begin().await?;
        let inserted = store::insert_crypto_quote(&mut tx, &s.id, &fresh, now).await?;
        let quote = store::crypto_quote(&mut tx, &s.id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if inserted {
            // The shop hears that a crypto payment is under way, as with a real processor.
            let data = event_data(s, quote.payment_id.clone(), "crypto");
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
        let Some(quote) = store::crypto_quote(&mut tx, &s.id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let underpaid = amount_minor < quote.amount_minor;
        let late = now > quote.expires_at;
        let failure = underpaid.then_some(Decline::Underpaid);
        if underpaid {
            // The quote is void; the buyer may ask for a new one.
            store::delete_crypto_quote(&mut tx, &s.id).await?;
        } else if !store::move_session(&mut tx, &s.id, "open", "paid", None, now).await? {
            tx.rollback().await?;
            return Ok(Some(quote));
        }
        let data = if underpaid {
            EventData {
                amount_minor,
                late,
                failure_code: failure.map(|d| d.code().into()),
                failure_message: failure.map(|d| d.message().into()),
                ..event_data(s, payment_id(), "crypto")
            }
        } else {
            EventData {
                late,
                ..event_data(s, quote.payment_id.clone(), "crypto")
            }
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
        store::crypto_quote(&mut conn, session_id).await
    }

    /// A bank transfer arrives: the session is paid and the shop is told.
    pub async fn settle(&self, session_id: &str, payment_id: &str) -> Result<(), sqlx::Error> {
        let now = self.clock.now_ms();
        let Some(s) = self.session(session_id).await? else {
            return Ok(());
        };
        let mut tx = self.db.begin().await?;
        if store::move_session(&mut tx, session_id, "pending", "paid", None, now).await? {
            let data = event_data(&s, payment_id.to_owned(), "bank_transfer");
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

    /// Refunds part or all of a paid session, once per idempotency key; the outcome reaches
    /// the shop as a webhook, like a real provider's.
    async fn refund_session(&self, req: &RefundRequest) -> Result<RefundOutcome, sqlx::Error> {
        let failed = |reason: &str| {
            Ok(RefundOutcome::Failed {
                reason: reason.into(),
            })
        };
        let now = self.clock.now_ms();
        let Some(s) = self.session(&req.session_id).await? else {
            return failed("no such payment");
        };
        if s.status != "paid" {
            return failed("the payment has not been captured");
        }
        if s.currency != req.amount.currency().code() {
            return failed("refund currency differs from the payment");
        }
        // Read before the transaction: a look-up on another pooled connection while holding
        // SQLite's write lock can wait for a connection held by someone waiting for that lock.
        let refund_fails_card =
            store::paid_last4(self.db.pool(), &s.id).await?.as_deref() == Some("5126");
        let mut tx = self.db.begin().await?;
        if let Some(refund_id) = store::refund_by_key(&mut tx, &req.idempotency_key).await? {
            tx.rollback().await?;
            return Ok(RefundOutcome::Pending { refund_id });
        }
        let (refunded, earlier_failures) = store::refund_totals(&mut tx, &s.id).await?;
        if req.amount.minor() <= 0 || refunded.saturating_add(req.amount.minor()) > s.amount_minor {
            tx.rollback().await?;
            return failed("the refund is more than what is left of the payment");
        }
        let refund_id = format!("re_{}", uuid::Uuid::now_v7().simple());
        // Like Stripe's 4000 0000 0000 5126: the refund of a payment made with a card ending
        // 5126 fails asynchronously — here only the first time, so a retry can succeed.
        let fails = refund_fails_card && earlier_failures == 0;
        let refund = store::NewRefund {
            id: &refund_id,
            session_id: &s.id,
            idempotency_key: &req.idempotency_key,
            amount_minor: req.amount.minor(),
            currency: &s.currency,
            status: if fails { "failed" } else { "succeeded" },
            created_at: now,
        };
        store::insert_refund(&mut tx, &refund).await?;
        let data = EventData {
            amount_minor: req.amount.minor(),
            failure_code: fails.then(|| "expired_or_canceled_card".to_owned()),
            failure_message: fails.then(|| "The card can no longer receive refunds".to_owned()),
            reference: Some(req.idempotency_key.clone()),
            ..event_data(&s, refund_id.clone(), &s.method)
        };
        let kind = if fails {
            EventKind::RefundFailed
        } else {
            EventKind::RefundSucceeded
        };
        self.queue_event(&mut tx, &s, kind, data, now, now).await?;
        tx.commit().await?;
        self.jobs_ready.notify_one();
        Ok(RefundOutcome::Pending { refund_id })
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
        let new = store::NewSession {
            id: &id,
            order_reference: &req.order_reference,
            description: &req.description,
            amount_minor: req.amount.minor(),
            currency: req.amount.currency().code(),
            method: req.method.as_str(),
            return_url: &req.return_url,
            webhook_url: &req.webhook_url,
            created_at: now,
            expires_at: req.expires_at,
        };
        let id = store::open_session(&self.db, &new)
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
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
        self.refund_session(req)
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))
    }
}

//! Payment providers. The shop talks to one through `PaymentProvider`: create a hosted
//! checkout session, verify and parse its webhooks, refund. Providers: `sandbox` (the default,
//! TEST MODE) and `stripe` (hosted Checkout, see `stripe`).

pub mod sandbox;
pub mod signature;
pub mod stripe;

use crate::clock::Millis;
use crate::domain::{Money, PaymentMethod};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The shop's order id; the provider echoes it in every event.
    pub order_reference: String,
    pub description: String,
    pub amount: Money,
    /// The method the buyer chose at checkout; the hosted page opens on it.
    pub method: PaymentMethod,
    /// Where the buyer's browser goes after paying.
    pub return_url: String,
    /// Where the provider sends events.
    pub webhook_url: String,
    pub expires_at: Millis,
    /// When the order was made (providers with a minimum session lifetime count from it, so
    /// the same order always asks for the same session).
    pub created_at: Millis,
    /// The buyer's email, prefilled on the hosted page.
    pub email: String,
    /// Where the buyer goes on "back" from the hosted page.
    pub cancel_url: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The provider's hosted payment page.
    pub redirect_url: String,
}

#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub session_id: String,
    pub order_reference: String,
    /// The provider's id of the payment being refunded (a Stripe payment intent), when known.
    pub payment_ref: Option<String>,
    pub amount: Money,
    /// The same key always means the same refund: a retry never refunds twice.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Accepted; a `refund.succeeded` or `refund.failed` event follows.
    Pending {
        refund_id: String,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    #[error("payment provider refused: {0}")]
    Refused(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing or malformed signature header")]
    MalformedSignature,
    #[error("signature timestamp outside the tolerance")]
    Stale,
    #[error("no signature matched")]
    BadSignature,
    #[error("event body is not a valid event: {0}")]
    BadPayload(String),
}

/// What providers tell the shop. Card details are what a provider exposes, never the number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProviderEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix seconds.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum EventKind {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.pending")]
    PaymentPending,
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded,
    #[serde(rename = "refund.failed")]
    RefundFailed,
    /// The hosted page expired unpaid.
    #[serde(rename = "session.expired")]
    SessionExpired,
    /// A chargeback (or inquiry) was opened, changed or closed.
    #[serde(rename = "dispute.created")]
    DisputeCreated,
    #[serde(rename = "dispute.updated")]
    DisputeUpdated,
    #[serde(rename = "dispute.closed")]
    DisputeClosed,
    /// The card issuer reported the payment as likely fraud; a dispute may follow.
    #[serde(rename = "fraud_warning")]
    FraudWarning,
    /// An event the shop does not use: acknowledged, nothing else.
    #[serde(rename = "unused")]
    Unused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PaymentSucceeded => "payment.succeeded",
            EventKind::PaymentFailed => "payment.failed",
            EventKind::PaymentPending => "payment.pending",
            EventKind::RefundSucceeded => "refund.succeeded",
            EventKind::RefundFailed => "refund.failed",
            EventKind::SessionExpired => "session.expired",
            EventKind::DisputeCreated => "dispute.created",
            EventKind::DisputeUpdated => "dispute.updated",
            EventKind::DisputeClosed => "dispute.closed",
            EventKind::FraudWarning => "fraud_warning",
            EventKind::Unused => "unused",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventData {
    pub order_reference: String,
    pub session_id: String,
    /// The payment attempt (or refund) this event is about.
    pub object_id: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default)]
    pub failure_code: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub card: Option<CardDetails>,
    /// For refunds: the shop's own id for the refund (its idempotency key), echoed back.
    #[serde(default)]
    pub reference: Option<String>,
    /// The payment arrived after its quote expired (crypto): it goes to review.
    #[serde(default)]
    pub late: bool,
    /// For disputes and fraud warnings, which name the payment, not the order: the provider's
    /// payment id, matched against the shop's payments.
    #[serde(default)]
    pub payment_ref: Option<String>,
    #[serde(default)]
    pub dispute: Option<DisputeDetails>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DisputeDetails {
    /// The network's reason as the provider names it ("fraudulent", "product_not_received").
    pub reason: String,
    /// The provider's status ("needs_response", "won", "lost").
    pub status: String,
    /// Unix seconds by which evidence must be in, when the provider gives one.
    pub evidence_due_by: Option<i64>,
}

/// What the shop knows about an order, sent as dispute evidence.
#[derive(Debug, Clone)]
pub struct DisputeEvidence {
    pub product_description: String,
    pub customer_email: String,
    pub customer_purchase_ip: String,
    /// When the coins were delivered, human-readable (Stripe's `service_date` is text).
    pub service_date: Option<String>,
    /// What was delivered, when, to which account, with the supplier's reference: the
    /// delivery record (Stripe's `access_activity_log`, the text field for digital goods;
    /// its `service_documentation` takes an uploaded file, not text).
    pub delivery_record: String,
    pub uncategorized_text: String,
    /// The service documentation: a plain document of what the shop delivered, uploaded as a
    /// file where the provider takes one (Stripe's `service_documentation`).
    pub documentation: EvidenceDocument,
}

/// A plain text document; the provider lays it out in the file format it accepts.
#[derive(Debug, Clone)]
pub struct EvidenceDocument {
    /// Without an extension: the provider adds the one of its format.
    pub file_stem: String,
    pub title: String,
    pub text: String,
}

/// What the provider took with the evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmittedEvidence {
    /// The provider's id of the uploaded service documentation (Stripe's `file_…`).
    pub documentation_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardDetails {
    pub brand: String,
    pub last4: String,
    pub country: String,
    pub fingerprint: String,
    /// The first six digits, where the provider gives them (events from before it did
    /// have none).
    #[serde(default)]
    pub bin: Option<String>,
}

#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name in `/webhooks/payments/{name}`.
    fn name(&self) -> &'static str;

    /// Creates (or, for the same order, returns again) a hosted checkout session.
    async fn create_session(&self, req: &SessionRequest) -> Result<Session, ProviderError>;

    /// The hosted page of an existing session (to resume paying from the order page).
    fn session_url(&self, session_id: &str) -> String;

    /// The request header that carries the webhook signature.
    fn signature_header(&self) -> &'static str;

    /// Verifies a webhook's signature header and parses its body.
    fn parse_webhook(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
        now: Millis,
    ) -> Result<ProviderEvent, WebhookError>;

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError>;

    /// Completes a verified event with what the provider's API knows and the event leaves out
    /// (card details of a payment, the payment a dispute is about). An error means "try again
    /// later": the webhook is answered 500 so the provider redelivers it.
    async fn enrich(&self, event: ProviderEvent) -> Result<ProviderEvent, ProviderError> {
        Ok(event)
    }

    /// Sends the shop's evidence for a dispute, its documentation uploaded first.
    async fn submit_dispute_evidence(
        &self,
        dispute_id: &str,
        _evidence: &DisputeEvidence,
    ) -> Result<SubmittedEvidence, ProviderError> {
        Err(ProviderError::Refused(format!(
            "{} has no disputes to answer ({dispute_id})",
            self.name()
        )))
    }

    /// The origin of the provider's hosted page when it is not the shop's own (for the
    /// Content-Security-Policy's `form-action`: browsers apply it to a POST's redirect).
    fn checkout_origin(&self) -> Option<&str> {
        None
    }
}

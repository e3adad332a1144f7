//! Stripe as the payment provider: hosted Checkout Sessions, signed webhooks
//! (`POST /webhooks/payments/stripe`), refunds and dispute evidence through Stripe's API.
//! No card data touches the shop: the buyer pays on `checkout.stripe.com`, and the shop learns
//! what happened from verified events, completed where needed from the API (card details,
//! the payment a dispute is about).

pub mod api;
pub mod events;
pub mod pdf;

pub use crate::config::StripeSettings;

use super::{
    signature, DisputeEvidence, PaymentProvider, ProviderError, ProviderEvent, RefundOutcome,
    RefundRequest, Session, SessionRequest, SubmittedEvidence, WebhookError,
};
use crate::clock::Millis;
use crate::config::Secret;
use api::{Api, ApiError};
use async_trait::async_trait;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "Stripe-Signature";
/// Where Checkout's hosted pages are served (the CSP's `form-action` admits it).
pub const CHECKOUT_ORIGIN: &str = "https://checkout.stripe.com";
/// Stripe's window for `expires_at`: 30 minutes to 24 hours after the session is created.
const MIN_SESSION_MS: i64 = 30 * 60_000;
const MAX_SESSION_MS: i64 = 24 * 3_600_000;

pub struct StripeProvider {
    api: Api,
    webhook_secret: Secret,
    tolerance_secs: i64,
    base_url: String,
    settings: StripeSettings,
    live_mode: bool,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("api_base", &self.api.base)
            .field("live_mode", &self.live_mode)
            .finish_non_exhaustive()
    }
}

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_owned(), v.to_string())
}

impl StripeProvider {
    /// `settings` have been validated (`StripeSettings::validate`): both keys are present.
    pub fn new(
        settings: &StripeSettings,
        tolerance_secs: u64,
        base_url: String,
    ) -> anyhow::Result<StripeProvider> {
        let (Some(key), Some(webhook_secret)) = (&settings.secret_key, &settings.webhook_secret)
        else {
            anyhow::bail!("payments.stripe.secret_key and webhook_secret are needed");
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .connect_timeout(Duration::from_secs(settings.timeout_seconds.min(5)))
            .user_agent(concat!("coinfront/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(StripeProvider {
            live_mode: key.expose().contains("_live_"),
            api: Api {
                base: settings.api_base.trim_end_matches('/').to_owned(),
                files_base: settings.files_api_base.trim_end_matches('/').to_owned(),
                key: key.clone(),
                http,
                max_attempts: settings.max_attempts,
                backoff: Duration::from_millis(300),
            },
            webhook_secret: webhook_secret.clone(),
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(300),
            base_url,
            settings: settings.clone(),
        })
    }

    /// Test-mode keys (`sk_test_…`) take no real money.
    pub fn live_mode(&self) -> bool {
        self.live_mode
    }

    /// The Checkout Session's parameters, in Stripe's names.
    pub fn session_params(&self, req: &SessionRequest) -> Vec<(String, String)> {
        let currency = req.amount.currency().code();
        let types = self
            .settings
            .types_for(currency, req.method.as_str())
            .map(<[String]>::to_vec)
            .unwrap_or_else(|| vec!["card".into()]);
        // Tied to the order's expiry, inside Stripe's window counted from the order's creation
        // (the same order always asks for the same session; see the idempotency key). A
        // minute's margin keeps a request made just after the order inside the window.
        let expires_ms = req
            .expires_at
            .max(req.created_at.saturating_add(MIN_SESSION_MS + 60_000))
            .min(req.created_at.saturating_add(MAX_SESSION_MS - 60_000));
        let mut params = vec![
            p("mode", "payment"),
            p(
                "line_items[0][price_data][currency]",
                currency.to_ascii_lowercase(),
            ),
            p("line_items[0][price_data][unit_amount]", req.amount.minor()),
            p(
                "line_items[0][price_data][product_data][name]",
                &req.description,
            ),
            p("line_items[0][quantity]", 1),
            p("client_reference_id", &req.order_reference),
            p("metadata[order_id]", &req.order_reference),
            p("metadata[method]", req.method.as_str()),
            // On the payment intent too, so its events (a declined attempt) name the order.
            p(
                "payment_intent_data[metadata][order_id]",
                &req.order_reference,
            ),
            p("payment_intent_data[metadata][method]", req.method.as_str()),
            p("customer_email", &req.email),
            p("expires_at", expires_ms.div_euclid(1000)),
            p("success_url", &req.return_url),
            p("cancel_url", &req.cancel_url),
        ];
        params.extend(types.into_iter().map(|t| p("payment_method_types[]", t)));
        params
    }

    async fn card_of_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<super::CardDetails>, ApiError> {
        let pi = self
            .api
            .get(
                &format!("/v1/payment_intents/{}", path_segment(payment_intent)),
                &[p("expand[]", "payment_method")],
            )
            .await?;
        let pm = &pi["payment_method"];
        if pm.is_object() {
            return Ok(events::card_of_payment_method(pm));
        }
        // Not expanded (an older API, or a fake that does not expand): ask for it.
        match pm.as_str() {
            Some(id) if !id.is_empty() => {
                let pm = self
                    .api
                    .get(&format!("/v1/payment_methods/{}", path_segment(id)), &[])
                    .await?;
                Ok(events::card_of_payment_method(&pm))
            }
            _ => Ok(None),
        }
    }
}

/// Ids come from events and the database; anything outside Stripe's id alphabet is refused
/// rather than put into a URL path.
fn path_segment(id: &str) -> &str {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        id
    } else {
        "invalid_id"
    }
}

/// A short digest of what a request sends, for its idempotency key.
fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(bytes)[..8])
}

fn unavailable_or_refused(e: ApiError) -> ProviderError {
    if e.is_unavailable() {
        ProviderError::Unavailable(e.to_string())
    } else {
        ProviderError::Refused(e.to_string())
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create_session(&self, req: &SessionRequest) -> Result<Session, ProviderError> {
        let params = self.session_params(req);
        // Derived from the order: a double submit, or a retry after a timeout, gets the same
        // session back from Stripe instead of a second one.
        let key = format!("coinfront-session-{}", req.order_reference);
        let session = self
            .api
            .post("/v1/checkout/sessions", &params, &key)
            .await
            .map_err(unavailable_or_refused)?;
        let id = session["id"].as_str().unwrap_or_default().to_owned();
        let url = session["url"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() || !url.starts_with("https://") {
            return Err(ProviderError::Refused(
                "Stripe returned a session without an id or https url".into(),
            ));
        }
        Ok(Session {
            id,
            redirect_url: url,
        })
    }

    fn session_url(&self, session_id: &str) -> String {
        // Checkout's URL carries a fragment only Stripe knows: the shop asks Stripe for it
        // when the buyer follows this link.
        format!(
            "{}/checkout/stripe/{}",
            self.base_url,
            path_segment(session_id)
        )
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
            &[self.webhook_secret.expose().as_bytes()],
            signature_header,
            body,
            now.div_euclid(1000),
            self.tolerance_secs,
        )?;
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
        events::translate(&json).map_err(WebhookError::BadPayload)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        let Some(payment_intent) = req.payment_ref.as_deref() else {
            return Ok(RefundOutcome::Failed {
                reason: "no Stripe payment is recorded for this order".into(),
            });
        };
        let params = vec![
            p("payment_intent", payment_intent),
            p("amount", req.amount.minor()),
            p("metadata[order_id]", &req.order_reference),
            p("metadata[refund_id]", &req.idempotency_key),
        ];
        // The refund's own id: approving twice, or a retried job, asks Stripe for one refund.
        let key = format!("coinfront-refund-{}", req.idempotency_key);
        match self.api.post("/v1/refunds", &params, &key).await {
            Ok(refund) => match refund["status"].as_str() {
                Some("failed") | Some("canceled") => Ok(RefundOutcome::Failed {
                    reason: refund["failure_reason"]
                        .as_str()
                        .unwrap_or("Stripe refused the refund")
                        .replace('_', " "),
                }),
                // succeeded, pending, requires_action: its `refund.*` event settles it.
                _ => Ok(RefundOutcome::Pending {
                    refund_id: refund["id"].as_str().unwrap_or_default().to_owned(),
                }),
            },
            Err(e) if e.is_unavailable() => Err(ProviderError::Unavailable(e.to_string())),
            Err(e) => Ok(RefundOutcome::Failed {
                reason: e.to_string(),
            }),
        }
    }

    async fn enrich(&self, mut event: ProviderEvent) -> Result<ProviderEvent, ProviderError> {
        use super::EventKind::*;
        let d = &mut event.data;
        match event.kind {
            PaymentSucceeded | PaymentPending | PaymentFailed if d.card.is_none() => {
                if let Some(pi) = d.payment_ref.clone() {
                    d.card = self
                        .card_of_intent(&pi)
                        .await
                        .map_err(unavailable_or_refused)?;
                }
            }
            DisputeCreated | DisputeUpdated | DisputeClosed | FraudWarning
                if d.payment_ref.is_none() && !d.session_id.is_empty() =>
            {
                // Named by its charge only: the charge names its payment intent.
                let charge = self
                    .api
                    .get(&format!("/v1/charges/{}", path_segment(&d.session_id)), &[])
                    .await
                    .map_err(unavailable_or_refused)?;
                d.payment_ref = charge["payment_intent"].as_str().map(str::to_owned);
            }
            _ => {}
        }
        Ok(event)
    }

    async fn submit_dispute_evidence(
        &self,
        dispute_id: &str,
        evidence: &DisputeEvidence,
    ) -> Result<SubmittedEvidence, ProviderError> {
        let dispute = path_segment(dispute_id);
        // Stripe takes evidence files as PDF, JPEG or PNG: the document goes as a PDF.
        let doc = &evidence.documentation;
        let file = pdf::text_document(&doc.title, &doc.text);
        let purpose = [p("purpose", "dispute_evidence")];
        let filename = format!("{}.pdf", doc.file_stem);
        // Keys derived from the dispute and what is sent: a retry (or an agent's second try
        // after a refusal) with the same document replays Stripe's first answer, while a
        // document that changed meanwhile is a new upload rather than a key Stripe refuses.
        let file_key = format!("coinfront-evidence-file-{dispute}-{}", digest(&file));
        let uploaded = self
            .api
            .upload(
                &api::Upload {
                    fields: &purpose,
                    filename: &filename,
                    content_type: "application/pdf",
                    bytes: &file,
                },
                &file_key,
            )
            .await
            .map_err(unavailable_or_refused)?;
        let Some(file_id) = uploaded["id"]
            .as_str()
            .filter(|id| id.starts_with("file_") && path_segment(id) == *id)
        else {
            return Err(ProviderError::Refused(
                "Stripe returned an uploaded file without an id".into(),
            ));
        };
        let mut params = vec![
            p(
                "evidence[product_description]",
                &evidence.product_description,
            ),
            p("evidence[customer_email_address]", &evidence.customer_email),
            p(
                "evidence[customer_purchase_ip]",
                &evidence.customer_purchase_ip,
            ),
            p("evidence[access_activity_log]", &evidence.delivery_record),
            p("evidence[service_documentation]", file_id),
            p("evidence[uncategorized_text]", &evidence.uncategorized_text),
            // Submitted now: an agent pressed the button having seen what is sent.
            p("submit", "true"),
        ];
        if let Some(date) = &evidence.service_date {
            params.push(p("evidence[service_date]", date));
        }
        let key = format!(
            "coinfront-evidence-{dispute}-{}",
            digest(api::encode(&params).as_bytes())
        );
        self.api
            .post(&format!("/v1/disputes/{dispute}"), &params, &key)
            .await
            .map_err(unavailable_or_refused)?;
        Ok(SubmittedEvidence {
            documentation_file: Some(file_id.to_owned()),
        })
    }

    fn checkout_origin(&self) -> Option<&str> {
        Some(CHECKOUT_ORIGIN)
    }
}

impl StripeProvider {
    /// The hosted page of an open session (to resume paying), or `None` when it is no longer
    /// open.
    pub async fn open_session_url(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, ProviderError> {
        let s = self
            .api
            .get(
                &format!("/v1/checkout/sessions/{}", path_segment(session_id)),
                &[],
            )
            .await
            .map_err(unavailable_or_refused)?;
        Ok((s["status"].as_str() == Some("open"))
            .then(|| s["url"].as_str().map(str::to_owned))
            .flatten()
            .filter(|u| u.starts_with("https://")))
    }
}

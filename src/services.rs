//! What the shop's business steps work with: the database, the clock, the settings, the
//! payment provider, the supplier, the mailer and the job queue's wake-up. Built once at start
//! (`startup`); the HTTP layer's shared state (`web::state`) holds it and adds only what is
//! HTTP's own (rate limiters, cookie policy). `orders`, `workers` and the job handlers take `&Services` (or
//! narrower arguments), never the HTTP state, so they can be called from a handler, a worker, a
//! command or a test alike.

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::Db;
use crate::fulfillment::Supplier;
use crate::live_settings::LiveSettings;
use crate::payments::sandbox::SandboxProvider;
use crate::payments::PaymentProvider;
use crate::secrets::Secrets;
use std::sync::Arc;
use tokio::sync::Notify;

pub struct Services {
    /// The config file's settings, fixed while the shop runs.
    pub settings: Settings,
    /// Risk rules and prices, which admins change at runtime: read them from here, never
    /// from `settings`.
    pub live: LiveSettings,
    pub db: Db,
    pub clock: SharedClock,
    /// Where buyers and the payment provider reach the shop, without a trailing slash.
    pub base_url: String,
    pub secrets: Secrets,
    pub provider: Arc<dyn PaymentProvider>,
    /// The sandbox provider's own side (hosted page, settlement), when it is the provider.
    pub sandbox: Option<Arc<SandboxProvider>>,
    /// Stripe, when it is the provider (resuming a hosted page needs Stripe's URL for it).
    pub stripe: Option<Arc<crate::payments::stripe::StripeProvider>>,
    pub supplier: Arc<dyn Supplier>,
    /// Sends the outbox's emails (file or SMTP transport, From and Reply-To).
    pub mailer: crate::mail::Mailer,
    /// Outgoing HTTP (webhook deliveries today; a real provider's API later).
    pub http: reqwest::Client,
    /// Woken (`notify_one`) when a transaction enqueued jobs, so an idle worker starts at once;
    /// a worker that claims a job wakes the next, while there is work.
    pub jobs_ready: Arc<Notify>,
    /// Paces this instance's checks for a shop-wide surge of failed payments.
    pub surge: crate::risk::surge::Monitor,
    /// This instance's own metrics (HTTP requests, job runs, lost leases), served on
    /// `/metrics`.
    pub metrics: crate::metrics::Metrics,
}

impl Services {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What the email sender needs of these.
    pub fn mail_context(&self) -> crate::mail::send::Context<'_> {
        crate::mail::send::Context {
            db: &self.db,
            clock: &self.clock,
            mailer: &self.mailer,
            base_url: &self.base_url,
            link_key: &self.secrets.cookie_key,
        }
    }

    /// No real money moves: the sandbox, or Stripe with test-mode keys.
    pub fn test_mode(&self) -> bool {
        match &self.stripe {
            Some(stripe) => !stripe.live_mode(),
            None => self.settings.payments.provider == "sandbox",
        }
    }
}

//! Per-client-IP rate limits with governor (used directly: `actix-governor` is GPL-3.0).
//! Each guarded action has its own limiter, so one busy client slows only itself, and only on
//! that action. Limits are per process; the risk signal each refusal leaves is in the database.

use crate::clock::SharedClock;
use crate::config::{Limit, RateLimitSettings};
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// The shop's injected clock as governor's: limits refill on the same time that everything
/// else reads, so a test (or the screening evaluation) that moves the clock moves them too.
#[derive(Clone)]
pub struct ShopClock(SharedClock);

impl governor::clock::Clock for ShopClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        // Milliseconds since the epoch fit a u64 of nanoseconds until the year 2554.
        Nanos::new(
            u64::try_from(self.0.now_ms())
                .unwrap_or(0)
                .saturating_mul(1_000_000),
        )
    }
}

type KeyedLimiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, ShopClock, NoOpMiddleware<Nanos>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Checkout,
    PaymentAttempt,
    AccountLookup,
    OrderLookup,
    RefundRequest,
    StaffLogin,
    SupportMessage,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Checkout => "checkout",
            Action::PaymentAttempt => "payment_attempt",
            Action::AccountLookup => "account_lookup",
            Action::OrderLookup => "order_lookup",
            Action::RefundRequest => "refund_request",
            Action::StaffLogin => "staff_login",
            Action::SupportMessage => "support_message",
        }
    }
}

pub struct RateLimits {
    limiters: Vec<(Action, KeyedLimiter)>,
    clock: ShopClock,
}

fn limiter(limit: Limit, clock: &ShopClock) -> KeyedLimiter {
    // Validated at start-up to be at least 1.
    let per_minute = NonZeroU32::new(limit.per_minute.max(1)).expect("non-zero");
    let burst = NonZeroU32::new(limit.burst.max(1)).expect("non-zero");
    RateLimiter::dashmap_with_clock(
        Quota::per_minute(per_minute).allow_burst(burst),
        clock.clone(),
    )
}

impl RateLimits {
    pub fn new(s: &RateLimitSettings, clock: SharedClock) -> Self {
        let clock = ShopClock(clock);
        RateLimits {
            limiters: vec![
                (Action::Checkout, limiter(s.checkout, &clock)),
                (Action::PaymentAttempt, limiter(s.payment_attempt, &clock)),
                (Action::AccountLookup, limiter(s.account_lookup, &clock)),
                (Action::OrderLookup, limiter(s.order_lookup, &clock)),
                (Action::RefundRequest, limiter(s.refund_request, &clock)),
                (Action::StaffLogin, limiter(s.staff_login, &clock)),
                (Action::SupportMessage, limiter(s.support_message, &clock)),
            ],
            clock,
        }
    }

    /// `Ok` if the client may go ahead, or how long it must wait.
    pub fn check(&self, action: Action, ip: IpAddr) -> Result<(), Duration> {
        let (_, lim) = self
            .limiters
            .iter()
            .find(|(a, _)| *a == action)
            .expect("every action has a limiter");
        lim.check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets clients whose buckets are full again, so memory stays bounded.
    pub fn forget_idle(&self) {
        for (_, lim) in &self.limiters {
            lim.retain_recent();
            lim.shrink_to_fit();
        }
    }
}

/// Seconds to tell the client, rounded up so it never retries too early.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// Applies `action`'s limit to this client. A refusal is counted (a risk signal that other
/// instances and later assessments see: one counter per address and minute, not a row per
/// refusal) and becomes a 429 page with `Retry-After`.
pub async fn enforce(
    limits: &RateLimits,
    db: &crate::db::Db,
    now: crate::clock::Millis,
    action: Action,
    ip: crate::web::ClientIp,
) -> Result<(), crate::web::AppError> {
    let Err(wait) = limits.check(action, ip.0) else {
        return Ok(());
    };
    let retry_after_secs = retry_after_secs(wait);
    tracing::warn!(client_ip = %ip, action = action.as_str(), retry_after_secs, "rate limited");
    crate::db::rate_limits::record_refusal(db.pool(), &ip.to_string(), now).await?;
    Err(crate::web::AppError::TooManyRequests { retry_after_secs })
}

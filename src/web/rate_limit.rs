//! Per-client-IP rate limits with governor (used directly: `actix-governor` is GPL-3.0).
//! Each guarded action has its own limiter, so one busy client slows only itself, and only on
//! that action. Limits are per process; the risk signal each refusal leaves is in the database.

use crate::config::{Limit, RateLimitSettings};
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

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
}

fn limiter(limit: Limit) -> KeyedLimiter {
    // Validated at start-up to be at least 1.
    let per_minute = NonZeroU32::new(limit.per_minute.max(1)).expect("non-zero");
    let burst = NonZeroU32::new(limit.burst.max(1)).expect("non-zero");
    RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
}

impl RateLimits {
    pub fn new(s: &RateLimitSettings) -> Self {
        RateLimits {
            limiters: vec![
                (Action::Checkout, limiter(s.checkout)),
                (Action::PaymentAttempt, limiter(s.payment_attempt)),
                (Action::AccountLookup, limiter(s.account_lookup)),
                (Action::OrderLookup, limiter(s.order_lookup)),
                (Action::RefundRequest, limiter(s.refund_request)),
                (Action::StaffLogin, limiter(s.staff_login)),
                (Action::SupportMessage, limiter(s.support_message)),
            ],
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
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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
    state: &crate::startup::AppState,
    action: Action,
    ip: crate::web::ClientIp,
) -> Result<(), crate::web::AppError> {
    let Err(wait) = state.limits.check(action, ip.0) else {
        return Ok(());
    };
    let retry_after_secs = retry_after_secs(wait);
    tracing::warn!(client_ip = %ip, action = action.as_str(), retry_after_secs, "rate limited");
    crate::db::rate_limits::record_refusal(state.db.pool(), &ip.to_string(), state.now_ms())
        .await?;
    Err(crate::web::AppError::TooManyRequests { retry_after_secs })
}

//! Per-client-IP rate limits. Each guarded action has its own limit, so one busy client slows
//! only itself, and only on that action. Two stores, one algorithm (GCRA, governor's):
//!
//! - `memory`: governor in this process (used directly: `actix-governor` is GPL-3.0). The
//!   limit holds per instance: the default on SQLite, where one instance serves.
//! - `database`: one row per limit and client in `rate_limit_state`, decided and moved by one
//!   upsert per check (`db::rate_limits::gcra_check`), so the limit holds across every instance
//!   that shares the database: the default on PostgreSQL.
//!
//! Either way the risk signal each refusal leaves is in the database.

use crate::clock::SharedClock;
use crate::config::{Limit, LimitStore, RateLimitSettings};
use crate::db::rate_limits::Gcra;
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
    store: Store,
    clock: ShopClock,
}

enum Store {
    Memory(Vec<(Action, KeyedLimiter)>),
    Database {
        db: crate::db::Db,
        limits: Vec<(Action, Gcra)>,
    },
}

/// A quota's GCRA parameters exactly as governor derives them (`Quota::per_minute(n)`: one
/// request every 60 s / n; `allow_burst(b)`: `tau = t × (b − 1)`), so both stores answer alike.
pub fn gcra(limit: Limit) -> Gcra {
    let per_minute = i64::from(limit.per_minute.max(1));
    let t_ns = 60_000_000_000 / per_minute;
    Gcra {
        t_ns,
        tau_ns: t_ns * (i64::from(limit.burst.max(1)) - 1),
    }
}

const ACTIONS: [Action; 7] = [
    Action::Checkout,
    Action::PaymentAttempt,
    Action::AccountLookup,
    Action::OrderLookup,
    Action::RefundRequest,
    Action::StaffLogin,
    Action::SupportMessage,
];

fn limit_of(s: &RateLimitSettings, action: Action) -> Limit {
    match action {
        Action::Checkout => s.checkout,
        Action::PaymentAttempt => s.payment_attempt,
        Action::AccountLookup => s.account_lookup,
        Action::OrderLookup => s.order_lookup,
        Action::RefundRequest => s.refund_request,
        Action::StaffLogin => s.staff_login,
        Action::SupportMessage => s.support_message,
    }
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
    /// Limits kept in this process (governor).
    pub fn in_memory(s: &RateLimitSettings, clock: SharedClock) -> Self {
        let clock = ShopClock(clock);
        let limiters = ACTIONS
            .iter()
            .map(|&a| (a, limiter(limit_of(s, a), &clock)))
            .collect();
        RateLimits {
            store: Store::Memory(limiters),
            clock,
        }
    }

    /// Limits kept in the database, shared by every instance on it. Checks go through a pool
    /// of their own whose commits do not wait for the disk (`Db::without_commit_flush`): a
    /// database crash may forget the last moment of counting, which lets a client a few
    /// requests more once, and every check costs a round trip instead of a disk flush.
    pub fn in_database(s: &RateLimitSettings, db: &crate::db::Db, clock: SharedClock) -> Self {
        let limits = ACTIONS.iter().map(|&a| (a, gcra(limit_of(s, a)))).collect();
        RateLimits {
            store: Store::Database {
                db: db.without_commit_flush(),
                limits,
            },
            clock: ShopClock(clock),
        }
    }

    /// The store `rate_limits.store` chooses (or the backend's default).
    pub fn new(s: &RateLimitSettings, db: &crate::db::Db, clock: SharedClock) -> Self {
        match s.store_for(db.backend()) {
            LimitStore::Memory => Self::in_memory(s, clock),
            LimitStore::Database => Self::in_database(s, db, clock),
        }
    }

    /// The database the shared limits count in (their own pool), if that is the store.
    pub fn db(&self) -> Option<&crate::db::Db> {
        match &self.store {
            Store::Memory(_) => None,
            Store::Database { db, .. } => Some(db),
        }
    }

    pub fn store(&self) -> LimitStore {
        match self.store {
            Store::Memory(_) => LimitStore::Memory,
            Store::Database { .. } => LimitStore::Database,
        }
    }

    /// `Ok(Ok(()))` if the client may go ahead (the request is counted), `Ok(Err(wait))` how
    /// long it must wait; an error only when the database store cannot be reached.
    pub async fn check(
        &self,
        action: Action,
        ip: IpAddr,
    ) -> Result<Result<(), Duration>, sqlx::Error> {
        match &self.store {
            Store::Memory(limiters) => {
                let (_, lim) = limiters
                    .iter()
                    .find(|(a, _)| *a == action)
                    .expect("every action has a limiter");
                Ok(lim
                    .check_key(&ip)
                    .map_err(|not_until| not_until.wait_time_from(self.clock.now())))
            }
            Store::Database { db, limits } => {
                let (_, gcra) = limits
                    .iter()
                    .find(|(a, _)| *a == action)
                    .expect("every action has a limit");
                let now_ns = self.clock.now().as_u64() as i64;
                let answer = crate::db::rate_limits::gcra_check(
                    db.pool(),
                    action.as_str(),
                    &ip.to_string(),
                    now_ns,
                    *gcra,
                )
                .await?;
                Ok(answer.map_err(|wait_ns| Duration::from_nanos(wait_ns.max(0) as u64)))
            }
        }
    }

    /// Forgets clients whose buckets are full again, so memory (or the table) stays bounded.
    pub async fn forget_idle(&self) -> Result<(), sqlx::Error> {
        match &self.store {
            Store::Memory(limiters) => {
                for (_, lim) in limiters {
                    lim.retain_recent();
                    lim.shrink_to_fit();
                }
            }
            Store::Database { db, .. } => {
                let now_ns = self.clock.now().as_u64() as i64;
                crate::db::rate_limits::prune_state(db.pool(), now_ns).await?;
            }
        }
        Ok(())
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
    let Err(wait) = limits.check(action, ip.0).await? else {
        return Ok(());
    };
    let retry_after_secs = retry_after_secs(wait);
    tracing::warn!(client_ip = %ip, action = action.as_str(), retry_after_secs, "rate limited");
    crate::db::rate_limits::record_refusal(db.pool(), &ip.to_string(), now).await?;
    Err(crate::web::AppError::TooManyRequests { retry_after_secs })
}

//! The HTTP layer's shared state: the business `Services`, plus what only HTTP needs (the
//! rate limiters, the cookie policy, page metadata). Handlers in `store/` and `console/` take
//! `web::Data<AppState>`; nothing below the HTTP layer sees it.

use crate::services::Services;
use crate::web::csrf::CookiePolicy;
use crate::web::rate_limit::{Action, RateLimits};
use crate::web::{AppError, ClientIp};
use std::ops::Deref;
use std::sync::Arc;

pub struct AppState {
    /// Shared with the job workers (which hold the `Arc` without the HTTP parts).
    pub services: Arc<Services>,
    pub limits: RateLimits,
}

/// A handler reads `state.db`, `state.settings`… straight through to the services it passes
/// on (`&state` is a `&Services` wherever a business function asks for one).
impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    /// How every cookie is set (`Secure`, `__Host-` names): the one source of truth.
    pub fn cookie_policy(&self) -> CookiePolicy {
        CookiePolicy::of(&self.settings.http)
    }

    pub fn meta(&self, title: impl Into<String>, csrf: impl Into<String>) -> crate::web::Meta {
        crate::web::Meta {
            shop_name: self.settings.shop_name.clone(),
            title: title.into(),
            csrf: csrf.into(),
            test_mode: self.test_mode(),
        }
    }

    /// Applies `action`'s rate limit to this client (see `web::rate_limit::enforce`).
    pub async fn enforce(&self, action: Action, ip: ClientIp) -> Result<(), AppError> {
        crate::web::rate_limit::enforce(&self.limits, &self.db, self.now_ms(), action, ip).await
    }
}

//! CSRF protection without server state, so any instance can check any form: a random value in
//! an `HttpOnly` cookie, and in each form an HMAC of that value under the shop's cookie key.
//! A cross-site page can neither read the cookie nor compute the HMAC.

use crate::config::Secret;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};
use subtle::ConstantTimeEq;

/// The CSRF cookie's name on plain HTTP…
pub const CSRF_COOKIE: &str = "cf_csrf";
/// …and whenever cookies are `Secure`: the `__Host-` prefix makes browsers refuse it unless it
/// is `Secure`, `Path=/` and without `Domain`, so no subdomain can plant one.
pub const CSRF_COOKIE_SECURE: &str = "__Host-cf_csrf";
pub const CSRF_FIELD: &str = "csrf_token";

/// The key CSRF tokens are signed with, and how the shop's cookies are set.
#[derive(Clone)]
pub struct CsrfKey(pub Secret, pub CookiePolicy);

/// Cookie attributes that depend on how the shop is served. The one source of truth for
/// every cookie the shop sets: build it with `CookiePolicy::of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    /// `Secure` (and `__Host-` names) whenever the shop is on HTTPS: built-in TLS, or
    /// `http.secure_cookies` behind a TLS-terminating proxy.
    pub secure: bool,
}

impl CookiePolicy {
    pub fn of(http: &crate::config::HttpSettings) -> Self {
        CookiePolicy {
            secure: http.effective_secure_cookies(),
        }
    }

    /// `__Host-{name}` when `Secure`, plain `{name}` otherwise (browsers only accept the
    /// prefix on a `Secure` cookie).
    pub fn csrf_cookie(self) -> &'static str {
        if self.secure {
            CSRF_COOKIE_SECURE
        } else {
            CSRF_COOKIE
        }
    }
}

#[derive(Clone)]
struct CsrfSeed {
    value: String,
    fresh: bool,
}

/// Set in request extensions when a handler asked for a token, so the cookie is only sent
/// with pages that carry forms.
#[derive(Clone, Copy)]
struct CsrfUsed;

impl CsrfKey {
    fn token_for(&self, seed: &str) -> String {
        crate::domain::mac::hex_mac(self.0.expose().as_bytes(), &[b"csrf:", seed.as_bytes()])
    }

    /// Checks a submitted token against the request's cookie in constant time.
    pub fn verify(&self, req: &HttpRequest, submitted: &str) -> bool {
        let Some(cookie) = req.cookie(self.1.csrf_cookie()) else {
            return false;
        };
        if !well_formed(cookie.value()) {
            return false;
        }
        let expected = self.token_for(cookie.value());
        expected.as_bytes().ct_eq(submitted.as_bytes()).into()
    }
}

fn well_formed(seed: &str) -> bool {
    seed.len() == 64 && seed.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The token to put in a page's forms.
pub struct CsrfToken(pub String);

impl FromRequest for CsrfToken {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req
            .app_data::<web::Data<CsrfKey>>()
            .expect("CsrfKey is registered");
        let seed = req.extensions().get::<CsrfSeed>().map(|s| s.value.clone());
        let seed = seed.unwrap_or_else(|| {
            // No valid cookie came with the request: a new seed, which the middleware sends
            // as the cookie with this page.
            let value = crate::domain::ids::new_secret_token();
            req.extensions_mut().insert(CsrfSeed {
                value: value.clone(),
                fresh: true,
            });
            value
        });
        req.extensions_mut().insert(CsrfUsed);
        ready(Ok(CsrfToken(key.token_for(&seed))))
    }
}

/// Carries the request's CSRF seed to the handlers, and sends a new one as a cookie when a
/// page with forms was rendered for a client that had none.
pub async fn csrf_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let policy = req
        .app_data::<web::Data<CsrfKey>>()
        .map(|k| k.1)
        .unwrap_or(CookiePolicy { secure: true });
    // Only a valid cookie is carried forward; a page that needs a token and finds none makes
    // one then (`CsrfToken`), so requests without forms (health checks, assets, webhooks)
    // draw no randomness.
    if let Some(value) = req
        .cookie(policy.csrf_cookie())
        .map(|c| c.value().to_owned())
        .filter(|v| well_formed(v))
    {
        req.extensions_mut().insert(CsrfSeed {
            value,
            fresh: false,
        });
    }
    let mut res = next.call(req).await?;
    let (used, seed) = {
        let ext = res.request().extensions();
        (
            ext.get::<CsrfUsed>().is_some(),
            ext.get::<CsrfSeed>().cloned(),
        )
    };
    if let (true, Some(seed)) = (used, seed) {
        if seed.fresh {
            let cookie = Cookie::build(policy.csrf_cookie(), seed.value)
                .path("/")
                .http_only(true)
                .secure(policy.secure)
                .same_site(SameSite::Lax)
                .finish();
            res.response_mut().add_cookie(&cookie)?;
        }
    }
    Ok(res)
}

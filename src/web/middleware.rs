//! Middleware for every response: a request id with its tracing span, access log line and
//! metrics (`crate::metrics`: counted by route pattern and status, timed), and security
//! headers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Whether to send `Strict-Transport-Security` (only when served over HTTPS).
#[derive(Debug, Clone, Copy)]
pub struct HstsPolicy(pub bool);

/// A request id (the caller's, if it sent a sane one) on a span around the request, echoed in
/// the response, and one log line per request. Query strings and bodies are never logged: they
/// may carry tokens or card data.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %redact_path(req.path()));
    let started = Instant::now();
    async move {
        let mut res = next.call(req).await?;
        let status = res.status().as_u16();
        if let Some(services) = res
            .request()
            .app_data::<web::Data<crate::services::Services>>()
        {
            let request = res.request();
            services.metrics.http_request(
                request.method().as_str(),
                request.match_pattern().as_deref(),
                status,
                started.elapsed(),
            );
        }
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, v);
        }
        Ok(res)
    }
    .instrument(span)
    .await
}

/// Path segments that follow these prefixes are capabilities (whoever has the link can use it):
/// an order's private page, a one-time console setup or reset link, a payment session.
const SECRET_AFTER: &[&str] = &[
    "/orders/",
    "/console/setup/",
    "/sandbox/pay/",
    "/sandbox/paypal/",
    "/sandbox/crypto/",
];

/// Segments of our own routes that are not secrets although they follow a prefix above.
const PUBLIC_SEGMENTS: &[&str] = &["lookup"];

/// Any other segment this long made of token characters is taken for a secret too, so a route
/// added later does not leak its tokens before someone remembers to list it.
const TOKEN_LIKE_LEN: usize = 24;

pub const REDACTED: &str = "[redacted]";

/// The path as logged: every secret-bearing segment replaced, so that no log reader can open
/// an order, set a staff password or pay someone's session. The query string is never logged.
pub fn redact_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len().min(256));
    let mut redact_next = false;
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let token_like = segment.len() >= TOKEN_LIKE_LEN
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'%' | b'.'));
        if (redact_next && !segment.is_empty() && !PUBLIC_SEGMENTS.contains(&segment)) || token_like
        {
            out.push_str(REDACTED);
        } else {
            // Long junk (a scanner's probe) is cut, so one request cannot flood the log.
            out.extend(segment.chars().take(64));
        }
        // The next segment is a secret when the path so far is one of the prefixes.
        redact_next = SECRET_AFTER
            .iter()
            .any(|p| p.len() == out.len() + 1 && p.starts_with(out.as_str()));
    }
    out
}

/// `HEAD` is answered wherever `GET` is (uptime checkers use it): the request is routed as a
/// `GET`, and the HTTP layer, which saw the method the client sent, sends the same status and
/// headers without the body.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}

/// The Content-Security-Policy, with the payment provider's checkout origin in `form-action`
/// when the hosted page is elsewhere (browsers apply `form-action` to the redirect after a
/// form's POST, so without it the confirm button would be blocked).
#[derive(Clone)]
pub struct ContentSecurityPolicy(pub HeaderValue);

const CSP_BEFORE_FORM_ACTION: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; form-action 'self'";
const CSP_AFTER_FORM_ACTION: &str = "; frame-ancestors 'none'; base-uri 'none'";

impl ContentSecurityPolicy {
    pub fn with_form_action(extra_origin: Option<&str>) -> Self {
        let extra = extra_origin
            .filter(|o| o.bytes().all(|b| b.is_ascii_graphic()) && !o.contains([';', ',']))
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let value = format!("{CSP_BEFORE_FORM_ACTION}{extra}{CSP_AFTER_FORM_ACTION}");
        ContentSecurityPolicy(HeaderValue::from_str(&value).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            )
        }))
    }
}

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let hsts = req
        .app_data::<web::Data<HstsPolicy>>()
        .map(|h| h.0)
        .unwrap_or(false);
    let csp = req
        .app_data::<web::Data<ContentSecurityPolicy>>()
        .map(|c| c.0.clone())
        .unwrap_or_else(|| ContentSecurityPolicy::with_form_action(None).0);
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::{redact_path, REDACTED};

    #[test]
    fn every_secret_bearing_route_is_redacted() {
        let token = "a1b2".repeat(16);
        let session = format!("cs_test_{token}");
        for (path, logged) in [
            (format!("/orders/{token}"), format!("/orders/{REDACTED}")),
            (
                format!("/orders/{token}/refund"),
                format!("/orders/{REDACTED}/refund"),
            ),
            (
                format!("/orders/{token}/messages"),
                format!("/orders/{REDACTED}/messages"),
            ),
            ("/orders/short".into(), format!("/orders/{REDACTED}")),
            ("/orders/lookup".into(), "/orders/lookup".into()),
            (
                format!("/console/setup/{token}"),
                format!("/console/setup/{REDACTED}"),
            ),
            (
                format!("/sandbox/pay/{session}"),
                format!("/sandbox/pay/{REDACTED}"),
            ),
            (
                format!("/sandbox/paypal/{session}"),
                format!("/sandbox/paypal/{REDACTED}"),
            ),
            (
                format!("/sandbox/crypto/{session}"),
                format!("/sandbox/crypto/{REDACTED}"),
            ),
            (
                format!("/anything/{token}/else"),
                format!("/anything/{REDACTED}/else"),
            ),
            (
                format!("/orders/{token}?x={token}"),
                format!("/orders/{REDACTED}"),
            ),
            ("/".into(), "/".into()),
            (
                "/console/orders/CF-1234".into(),
                "/console/orders/CF-1234".into(),
            ),
            (
                "/webhooks/payments/sandbox".into(),
                "/webhooks/payments/sandbox".into(),
            ),
            ("/static/site.css".into(), "/static/site.css".into()),
        ] {
            assert_eq!(redact_path(&path), logged, "{path}");
        }
    }
}

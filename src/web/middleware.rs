//! Middleware for every response: a request id with its tracing span and access log line, and
//! security headers.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
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
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %log_path(req.path()));
    let started = Instant::now();
    async move {
        let mut res = next.call(req).await?;
        let status = res.status().as_u16();
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

/// The path as logged: secret order tokens are cut short so logs cannot open orders.
fn log_path(path: &str) -> String {
    match path.strip_prefix("/orders/") {
        Some(rest) if rest.len() > 16 && !rest.starts_with("lookup") => {
            let (token, tail) = rest.split_once('/').map_or((rest, ""), |(t, r)| (t, r));
            format!("/orders/{}…/{}", &token[..token.len().min(6)], tail)
        }
        _ => path.to_owned(),
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
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
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
    use super::log_path;

    #[test]
    fn order_tokens_are_not_logged_whole() {
        let token = "a".repeat(64);
        assert_eq!(log_path(&format!("/orders/{token}")), "/orders/aaaaaa…/");
        assert_eq!(log_path("/orders/lookup"), "/orders/lookup");
        assert_eq!(log_path("/"), "/");
    }
}

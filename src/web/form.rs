//! Form posts, checked in one place before any handler sees them: cross-site posts and bad
//! CSRF tokens are refused (403), a password-like field is refused (400) without its value
//! being kept or logged, and the rest is deserialized into the handler's form type.

use super::csrf::{CsrfKey, CSRF_FIELD};
use super::AppError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// The most a form may carry; ours are a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Field names that mean someone is sending a password. The buyer flow never asks for one.
fn is_password_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "pass" | "pwd" | "passcode" | "passwd") || n.contains("password")
}

/// A buyer-side form: CSRF-checked, and refusing any password-like field.
pub struct SafeForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for SafeForm<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        with_body(req, payload, |req, body| {
            parse_form(&req, &body, false).map(SafeForm)
        })
    }
}

/// The shared half of every form extractor: reads the body (bounded), then `check`s and
/// decodes it. The shop's and the console's forms differ only in `check`.
pub fn with_body<T: 'static, E: From<AppError> + 'static>(
    req: &HttpRequest,
    payload: &mut Payload,
    check: impl FnOnce(HttpRequest, Vec<u8>) -> Result<T, E> + 'static,
) -> LocalBoxFuture<'static, Result<T, E>> {
    let req = req.clone();
    let mut payload = payload.take();
    Box::pin(async move {
        let body = read_body(&mut payload).await?;
        check(req, body)
    })
}

/// Reads a form body, refusing one over the size limit.
pub async fn read_body(payload: &mut Payload) -> Result<Vec<u8>, AppError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return Err(AppError::BadRequest("The form was too large.".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The submitted CSRF token of a decoded form (empty when missing).
pub fn csrf_field(pairs: &[(String, String)]) -> &str {
    pairs
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Checks and decodes a urlencoded form body.
pub fn parse_form<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
    allow_password: bool,
) -> Result<T, AppError> {
    if req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        == Some("cross-site")
    {
        return Err(AppError::Forbidden(
            "Forms can only be sent from this shop's own pages.".into(),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form could not be read.".into()))?;
    if !allow_password && pairs.iter().any(|(k, _)| is_password_like(k)) {
        tracing::warn!("refused a form post carrying a password-like field (value discarded)");
        return Err(AppError::PasswordRefused);
    }
    let key = req
        .app_data::<web::Data<CsrfKey>>()
        .expect("CsrfKey is registered");
    if !key.verify(req, csrf_field(&pairs)) {
        return Err(AppError::Forbidden(
            "This form's security token is missing or out of date, so it was not sent.".into(),
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|_| {
        AppError::BadRequest("Some of the form's fields were missing or not understood.".into())
    })
}

#[cfg(test)]
mod tests {
    use super::is_password_like;

    #[test]
    fn spots_password_fields() {
        for f in [
            "password",
            "Password",
            "pass",
            "pwd",
            "passcode",
            "tiktok_password",
            "passwd",
        ] {
            assert!(is_password_like(f), "{f}");
        }
        for f in [
            "email",
            "tiktok_username",
            "passport",
            "coins",
            "card_number",
            "cvc",
        ] {
            assert!(!is_password_like(f), "{f}");
        }
    }
}

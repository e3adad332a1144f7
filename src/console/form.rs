//! Console forms. After sign-in, `ConsoleForm` checks the session-bound CSRF token; before it
//! (sign-in and setup pages), `AnonForm` uses the shop's cookie-bound token. Both refuse
//! cross-site posts (the console middleware does too) and both accept password fields.

use super::session::{csrf_for, token_of};
use super::ConsoleError;
use crate::web::form::{csrf_field, with_body};
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

fn stale() -> ConsoleError {
    ConsoleError::Web(AppError::Forbidden(
        "This form's security token is missing or belongs to an earlier session, so nothing was done. Reload the page and try again.".into(),
    ))
}

/// The fields of a form that is only a button (sign out, remove, disable): nothing but the
/// CSRF token, which `ConsoleForm` checks.
#[derive(serde::Deserialize)]
pub struct TokenOnly {}

/// A form from a signed-in page, its CSRF token checked against the session cookie.
pub struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ConsoleForm<T> {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        with_body(req, payload, |req, body| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| {
                    ConsoleError::Web(AppError::Unexpected(anyhow::anyhow!("no AppState")))
                })?;
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|_| {
                    ConsoleError::Web(AppError::BadRequest("The form could not be read.".into()))
                })?;
            let submitted = csrf_field(&pairs);
            let Some(token) = token_of(&req, &state) else {
                return Err(stale());
            };
            let expected = csrf_for(&state, &token);
            if submitted.is_empty() || !bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
            {
                return Err(stale());
            }
            serde_urlencoded::from_bytes(&body)
                .map(ConsoleForm)
                .map_err(|_| {
                    ConsoleError::Web(AppError::BadRequest(
                        "Some of the form's fields were missing or not understood.".into(),
                    ))
                })
        })
    }
}

/// A form from a page without a session (sign-in, first-admin setup): the shop's CSRF check.
pub struct AnonForm<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for AnonForm<T> {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        with_body(req, payload, |req, body| {
            crate::web::form::parse_form(&req, &body, true)
                .map(AnonForm)
                .map_err(ConsoleError::from)
        })
    }
}

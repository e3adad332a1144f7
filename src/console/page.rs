//! What every console page's layout needs, and the headers every console response carries.

use super::session::Current;
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::ResponseError;

#[derive(Debug, Clone, Default)]
pub struct ConsoleMeta {
    pub title: String,
    /// The session-bound CSRF token for the page's forms (the sign-out button too).
    pub csrf: String,
    /// The signed-in staff member's email, for the header; empty on sign-in pages.
    pub staff: String,
    pub is_admin: bool,
    /// Whether the navigation is shown (not while two-factor enrolment is still owed).
    pub nav: bool,
    pub test_mode: bool,
}

impl ConsoleMeta {
    /// For pages without a session (sign-in, setup, errors).
    pub fn bare(title: impl Into<String>) -> Self {
        ConsoleMeta {
            title: title.into(),
            ..Default::default()
        }
    }

    pub fn anonymous(state: &AppState, title: impl Into<String>, csrf: impl Into<String>) -> Self {
        ConsoleMeta {
            title: title.into(),
            csrf: csrf.into(),
            test_mode: state.test_mode(),
            ..Default::default()
        }
    }

    pub fn for_staff(state: &AppState, current: &Current, title: impl Into<String>) -> Self {
        ConsoleMeta {
            title: title.into(),
            csrf: current.csrf(state),
            staff: current.staff.email.clone(),
            is_admin: current.staff.is_admin(),
            nav: !current.owes_totp_enrolment(),
            test_mode: state.test_mode(),
        }
    }
}

/// Every console response, errors and redirects included: never cached, never indexed; and
/// a form post from another site is refused before anything reads it.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let cross_site = req.method() != Method::GET
        && req.method() != Method::HEAD
        && req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            == Some("cross-site");
    let mut res = if cross_site {
        let refusal = super::ConsoleError::Web(AppError::Forbidden(
            "Console forms can only be sent from the console's own pages.".into(),
        ))
        .error_response();
        req.into_response(refusal)
    } else {
        next.call(req).await?.map_into_boxed_body()
    };
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::HeaderName::from_static("x-robots-tag"),
        header::HeaderValue::from_static("noindex"),
    );
    Ok(res)
}

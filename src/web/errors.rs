//! Errors become pages with the right status. Expected cases say plainly what to do next;
//! unexpected ones are logged with their whole cause chain and shown as a generic page.

use super::render::{render, Meta};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A form carried a password-like field. Nothing of its value is kept.
    #[error("a password was sent to the shop")]
    PasswordRefused,
    #[error("too many requests; retry after {retry_after_secs}s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Unexpected(e.into())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    meta: Meta,
    heading: &'a str,
    message: String,
    hint: &'a str,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) | AppError::PasswordRefused => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (heading, message, hint) = match self {
            AppError::NotFound => (
                "Page not found",
                "We could not find that page. If you followed a link from an email, check that the whole link was copied.".to_owned(),
                "",
            ),
            AppError::BadRequest(msg) => ("That did not work", msg.clone(), ""),
            AppError::Forbidden(msg) => (
                "This form has expired",
                msg.clone(),
                "Go back, reload the page, and send the form again.",
            ),
            AppError::PasswordRefused => (
                "We never need your password",
                "This shop tops up coins with your TikTok username only. It never asks for, accepts or keeps a password, and nothing you sent was stored. If a page asked you for your TikTok password, it was not us: do not enter it anywhere but TikTok itself.".to_owned(),
                "",
            ),
            AppError::TooManyRequests { retry_after_secs } => (
                "Too many attempts",
                format!("Too many attempts — try again in {}.", seconds(*retry_after_secs)),
                "This limit protects buyers from people trying stolen cards. Your earlier orders are not affected.",
            ),
            AppError::Unavailable(msg) => ("Please try again shortly", msg.clone(), ""),
            AppError::Unexpected(e) => {
                tracing::error!(error = ?e, "unexpected error");
                (
                    "Something went wrong on our side",
                    "Nothing was charged by this step. Please try again in a moment.".to_owned(),
                    "",
                )
            }
        };
        let page = ErrorPage {
            meta: Meta {
                shop_name: "coinfront".into(),
                title: heading.into(),
                csrf: String::new(),
                test_mode: false,
            },
            heading,
            message,
            hint,
        };
        let retry_after = if let AppError::TooManyRequests { retry_after_secs } = self {
            Some(*retry_after_secs)
        } else {
            None
        };
        error_page(self.status_code(), &page, retry_after)
    }
}

/// An error page with its status, and `Retry-After` when the client should wait. The shop's
/// and the console's errors both answer this way.
pub fn error_page(
    status: StatusCode,
    page: &impl Template,
    retry_after_secs: Option<u64>,
) -> HttpResponse {
    let mut resp = render(status, page);
    if let Some(secs) = retry_after_secs {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp
}

/// "1 second", "30 seconds".
pub fn seconds(n: u64) -> String {
    format!("{n} second{}", if n == 1 { "" } else { "s" })
}

//! The console's errors: each expected case is a page that says what happened and what to do,
//! with the right status; a missing or ended session is a redirect to the sign-in page.

use super::page::ConsoleMeta;
use crate::web::errors::{error_page, seconds};
use crate::web::AppError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or it ended (`expired`: by a timeout, so the sign-in page says so).
    #[error("sign-in required")]
    SignIn { expired: bool },
    /// An admin without two-factor sign-in must enrol before anything else.
    #[error("two-factor enrolment required")]
    EnrolTotp,
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Someone else changed the thing first; nothing was done.
    #[error("conflict: {message}")]
    Conflict { message: String, back: String },
    #[error("too many requests; retry after {retry_after_secs}s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Unexpected(e.into())
    }
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ConsoleError::NotFound,
            AppError::BadRequest(m) => ConsoleError::BadRequest(m),
            AppError::Forbidden(m) => ConsoleError::Forbidden(m),
            AppError::PasswordRefused => {
                ConsoleError::BadRequest("That form cannot carry a password.".into())
            }
            AppError::TooManyRequests { retry_after_secs } => {
                ConsoleError::TooManyRequests { retry_after_secs }
            }
            AppError::Unavailable(m) => ConsoleError::Unexpected(anyhow::anyhow!(m)),
            AppError::Unexpected(e) => ConsoleError::Unexpected(e),
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    meta: ConsoleMeta,
    heading: &'a str,
    message: String,
    back: String,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn { .. } | ConsoleError::EnrolTotp => StatusCode::SEE_OTHER,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::Conflict { .. } => StatusCode::CONFLICT,
            ConsoleError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (heading, message, back) = match self {
            ConsoleError::SignIn { expired } => {
                let to = if *expired {
                    "/console/login?expired=1"
                } else {
                    "/console/login"
                };
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to))
                    .finish();
            }
            ConsoleError::EnrolTotp => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, "/console/account/totp"))
                    .finish();
            }
            ConsoleError::NotFound => (
                "Not found",
                "There is nothing at this address. Check the order number, or search for the order.".to_owned(),
                "/console/".to_owned(),
            ),
            ConsoleError::BadRequest(m) => ("That did not work", m.clone(), "/console/".into()),
            ConsoleError::Forbidden(m) => ("Not allowed", m.clone(), "/console/".into()),
            ConsoleError::Conflict { message, back } => {
                ("Someone else got there first", message.clone(), back.clone())
            }
            ConsoleError::TooManyRequests { retry_after_secs } => (
                "Too many attempts",
                format!(
                    "Too many attempts from this address — try again in {}.",
                    seconds(*retry_after_secs)
                ),
                "/console/login".into(),
            ),
            ConsoleError::Unexpected(e) => {
                tracing::error!(error = ?e, "unexpected error in the console");
                (
                    "Something went wrong",
                    "Something went wrong on our side and nothing was changed. Try again in a moment; if it keeps happening, tell an admin the time it happened.".to_owned(),
                    "/console/".into(),
                )
            }
        };
        let meta = ConsoleMeta::bare(heading);
        let retry_after = match self {
            ConsoleError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        error_page(
            self.status_code(),
            &ErrorPage {
                meta,
                heading,
                message,
                back,
            },
            retry_after,
        )
    }
}

//! The console's errors: each expected case is a page that says what happened and what to do,
//! with the right status; a missing or ended session is a redirect to the sign-in page. The
//! cases the shop has too are `web::AppError`'s, wrapped (`ConsoleError::Web`), not copied.

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
    /// Someone else changed the thing first; nothing was done.
    #[error("conflict: {message}")]
    Conflict { message: String, back: String },
    /// The cases the shop's pages have too (not found, bad request, forbidden, too many
    /// requests, unexpected): `AppError` is their one definition; the console shows them on
    /// its own page.
    #[error(transparent)]
    Web(#[from] AppError),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(e: sqlx::Error) -> Self {
        ConsoleError::Web(e.into())
    }
}

impl From<anyhow::Error> for ConsoleError {
    fn from(e: anyhow::Error) -> Self {
        ConsoleError::Web(e.into())
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
            ConsoleError::Conflict { .. } => StatusCode::CONFLICT,
            // A form that cannot carry a password is a bad request here; an outage is an
            // unexpected error.
            ConsoleError::Web(AppError::Unavailable(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ConsoleError::Web(e) => e.status_code(),
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
            ConsoleError::Conflict { message, back } => {
                ("Someone else got there first", message.clone(), back.clone())
            }
            ConsoleError::Web(AppError::NotFound) => (
                "Not found",
                "There is nothing at this address. Check the order number, or search for the order.".to_owned(),
                "/console/".to_owned(),
            ),
            ConsoleError::Web(AppError::BadRequest(m)) => {
                ("That did not work", m.clone(), "/console/".into())
            }
            ConsoleError::Web(AppError::PasswordRefused) => (
                "That did not work",
                "That form cannot carry a password.".to_owned(),
                "/console/".into(),
            ),
            ConsoleError::Web(AppError::Forbidden(m)) => {
                ("Not allowed", m.clone(), "/console/".into())
            }
            ConsoleError::Web(AppError::TooManyRequests { retry_after_secs }) => (
                "Too many attempts",
                format!(
                    "Too many attempts from this address — try again in {}.",
                    seconds(*retry_after_secs)
                ),
                "/console/login".into(),
            ),
            ConsoleError::Web(AppError::Unavailable(m)) => unexpected(&anyhow::anyhow!(m.clone())),
            ConsoleError::Web(AppError::Unexpected(e)) => unexpected(e),
        };
        let meta = ConsoleMeta::bare(heading);
        let retry_after = match self {
            ConsoleError::Web(AppError::TooManyRequests { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
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

/// The page of an error the agent cannot act on; the cause goes to the log, whole.
fn unexpected(e: &anyhow::Error) -> (&'static str, String, String) {
    tracing::error!(error = ?e, "unexpected error in the console");
    (
        "Something went wrong",
        "Something went wrong on our side and nothing was changed. Try again in a moment; if it keeps happening, tell an admin the time it happened.".to_owned(),
        "/console/".into(),
    )
}

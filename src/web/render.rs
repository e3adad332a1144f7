//! Rendering askama templates into responses.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;

/// What every page's layout needs.
#[derive(Debug, Clone)]
pub struct Meta {
    pub shop_name: String,
    pub title: String,
    /// The CSRF token for the page's forms (empty on pages without forms).
    pub csrf: String,
    /// Whether the sandbox provider is on (the layout shows a TEST MODE ribbon).
    pub test_mode: bool,
}

pub fn render<T: Template>(status: StatusCode, page: &T) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong on our side. Please try again in a moment.")
        }
    }
}

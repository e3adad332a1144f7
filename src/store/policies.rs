//! Policy pages (`/policies/{terms|refunds|delivery|privacy}`), written by the operator in
//! Markdown (`shop.policies_dir`), with defaults shipped in the binary. Raw HTML in the
//! Markdown is shown as text, never executed. Numbers the shop enforces — the refund window,
//! the minimum age, typical delivery time — come from the same settings, through placeholders.

use crate::web::state::AppState;
use crate::web::{render, AppError, Meta};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use pulldown_cmark::{html, Event, Parser, Tag};

const DEFAULTS: [(&str, &str, &str); 4] = [
    (
        "terms",
        "Terms of sale",
        include_str!("../../templates/policies/terms.md"),
    ),
    (
        "refunds",
        "Refund policy",
        include_str!("../../templates/policies/refunds.md"),
    ),
    (
        "delivery",
        "Delivery times",
        include_str!("../../templates/policies/delivery.md"),
    ),
    (
        "privacy",
        "Privacy",
        include_str!("../../templates/policies/privacy.md"),
    ),
];

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    meta: Meta,
    body: String,
}

/// Markdown to HTML with every raw HTML fragment escaped and unsafe link schemes dropped.
pub fn render_markdown(markdown: &str) -> String {
    let events = Parser::new(markdown).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: "#".into(),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
        || lower.starts_with('/')
        || lower.starts_with('#')
        || !lower.contains(':')
}

/// Fills the placeholders with the shop's enforced settings.
fn fill(text: &str, state: &AppState, typical_delivery: &str) -> String {
    let s = &state.settings.shop;
    text.replace("{shop_name}", &state.settings.shop_name)
        .replace("{min_age}", &s.min_age.to_string())
        .replace("{refund_window_days}", &s.refund_window_days.to_string())
        .replace("{support_email}", &s.support_email)
        .replace("{typical_delivery}", typical_delivery)
}

pub async fn show(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (key, title, default) = DEFAULTS
        .iter()
        .find(|(k, _, _)| *k == name.as_str())
        .copied()
        .ok_or(AppError::NotFound)?;
    let custom = match &state.settings.shop.policies_dir {
        Some(dir) => tokio::fs::read_to_string(dir.join(format!("{key}.md")))
            .await
            .ok(),
        None => None,
    };
    let estimate = crate::store::delivery::typical_minutes(&state).await?;
    let typical = crate::store::delivery::describe_minutes(estimate);
    let markdown = fill(custom.as_deref().unwrap_or(default), &state, &typical);
    let page = PolicyPage {
        meta: state.meta(title, ""),
        body: render_markdown(&markdown),
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::render_markdown;

    #[test]
    fn raw_html_is_escaped_and_script_links_dropped() {
        let html = render_markdown("# Hi\n\n<script>alert(1)</script>\n\nA <b>bold</b> [x](javascript:alert(1)) [ok](/policies/terms)");
        assert!(html.contains("<h1>Hi</h1>"));
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>"));
        assert!(!html.contains("javascript:"));
        assert!(html.contains("href=\"/policies/terms\""));
    }
}

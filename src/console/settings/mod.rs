//! `/console/settings`: the admins' area. Every page here takes the `Admin` extractor (the
//! `admin` role, signed in with two-factor); every change is written with its audit entry
//! (who, when, old value, new value) in one transaction.
//!
//! One file per page: staff, block and allow lists, risk rules (with the backtest), catalog
//! prices, history.

mod audited;
pub mod prices;
pub mod risk;

use audited::{audit_entry, save_error};

use super::page::ConsoleMeta;
use super::session::Admin;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::{audit, staff};
use crate::startup::AppState;
use crate::web::render;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

/// The admin routes, mounted inside the `/console` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(show))
        .route("/settings/risk", web::get().to(risk::show))
        .route("/settings/risk", web::post().to(risk::save))
        .route("/settings/risk/test", web::post().to(risk::test))
        .route("/settings/risk/revert", web::post().to(risk::revert))
        .route("/settings/prices", web::get().to(prices::show))
        .route("/settings/prices", web::post().to(prices::save))
        .route("/settings/prices/revert", web::post().to(prices::revert));
}

pub struct StaffLine {
    pub email: String,
    pub role: String,
    pub totp: bool,
    pub disabled: bool,
    pub created: String,
}

pub struct AuditLine {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    meta: ConsoleMeta,
    staff: Vec<StaffLine>,
    audit: Vec<AuditLine>,
}

pub async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let pool = state.db.pool();
    let staff = staff::list(pool)
        .await?
        .into_iter()
        .map(|s| StaffLine {
            role: s.role.to_string(),
            totp: s.totp_enabled(),
            disabled: s.disabled_at.is_some(),
            created: format_utc(s.created_at),
            email: s.email,
        })
        .collect();
    let audit = audit::recent(pool, None, 100)
        .await?
        .into_iter()
        .map(|a| AuditLine {
            when: format_utc(a.at),
            actor: a.actor,
            action: a.action.replace('_', " "),
            subject: a.subject,
            detail: a.detail,
            ip: a.client_ip.unwrap_or_default(),
        })
        .collect();
    let page = SettingsPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Settings"),
        staff,
        audit,
    };
    Ok(render(StatusCode::OK, &page))
}

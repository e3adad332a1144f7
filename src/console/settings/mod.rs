//! `/console/settings`: the admins' area. Every page here takes the `Admin` extractor (the
//! `admin` role, signed in with two-factor); every change is written with its audit entry
//! (who, when, old value, new value) in one transaction.
//!
//! One file per page: staff, block and allow lists, risk rules (with the backtest), catalog
//! prices, history. This file holds the index that links them and the routes.

pub mod history;
pub mod lists;
pub mod staff;

pub mod audited;
pub mod prices;
pub mod risk;

use super::page::ConsoleMeta;
use super::session::Admin;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::audit::{self, AuditRow};
use crate::web::render;
use crate::web::state::AppState;
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
        .route("/settings/prices/revert", web::post().to(prices::revert))
        .route("/settings/staff", web::get().to(staff::show))
        .route("/settings/staff", web::post().to(staff::add))
        .route(
            "/settings/staff/{id}/disable",
            web::post().to(staff::switch::<staff::Disable>),
        )
        .route(
            "/settings/staff/{id}/enable",
            web::post().to(staff::switch::<staff::Enable>),
        )
        .route("/settings/staff/{id}/reset", web::post().to(staff::reset))
        .route(
            "/settings/staff/{id}/notifications",
            web::get().to(super::notifications::show_other),
        )
        .route(
            "/settings/staff/{id}/notifications",
            web::post().to(super::notifications::save_other),
        )
        .route("/settings/lists", web::get().to(lists::show))
        .route("/settings/lists", web::post().to(lists::add))
        .route("/settings/lists/{id}/remove", web::post().to(lists::remove))
        .route("/settings/history", web::get().to(history::show));
}

/// One audit entry as the pages show it.
pub struct AuditLine {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub old_value: String,
    pub new_value: String,
    pub ip: String,
}

impl AuditLine {
    pub fn of(a: AuditRow) -> Self {
        AuditLine {
            when: format_utc(a.at),
            actor: a.actor,
            action: a.action.replace('_', " "),
            subject: a.subject,
            detail: a.detail,
            old_value: a.old_value.unwrap_or_default(),
            new_value: a.new_value.unwrap_or_default(),
            ip: a.client_ip.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/settings/index.html")]
struct SettingsPage {
    meta: ConsoleMeta,
    audit: Vec<AuditLine>,
}

/// The index: links to each admin page and the latest changes.
pub async fn show(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let audit = audit::recent(state.db.pool(), None, 10)
        .await?
        .into_iter()
        .map(AuditLine::of)
        .collect();
    let page = SettingsPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Settings"),
        audit,
    };
    Ok(render(StatusCode::OK, &page))
}

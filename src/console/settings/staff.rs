//! `/console/settings/staff`: the staff list; adding someone (they get a one-time link to
//! choose their own password), disabling and enabling accounts, and resetting a password.
//!
//! A new or reset account gets a password hash of a random secret nobody knows, so no old or
//! empty password opens it; the link shown once to the admin lets the person choose theirs.
//! Disabling ends the account's sessions in the same transaction, so the next request of
//! anyone still signed in goes to the sign-in page. Admins cannot disable themselves, nor the
//! last enabled admin.

use super::super::form::{ConsoleForm, TokenOnly};
use super::super::page::ConsoleMeta;
use super::super::session::{Admin, Current};
use super::super::ConsoleError;
use crate::clock::format_utc;
use crate::config::Secret;
use crate::db::audit;
use crate::db::staff::{self, Role, StaffMember};
use crate::domain::{ids, BuyerEmail};
use crate::staff::password::{self, HashParams};
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

pub struct StaffLine {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub totp: bool,
    pub disabled: bool,
    /// When their unused setup link stops working, if they have one.
    pub link_until: Option<String>,
    pub created: String,
    /// The admin looking at the page: no disable or reset buttons on their own line.
    pub is_me: bool,
}

/// A setup link just made: shown on this one page and never again (only its hash is kept).
pub struct IssuedLink {
    pub email: String,
    pub url: String,
    pub until: String,
    pub reset: bool,
}

#[derive(Template)]
#[template(path = "console/settings/staff.html")]
struct StaffPage {
    meta: ConsoleMeta,
    staff: Vec<StaffLine>,
    notice: Option<String>,
    error: Option<String>,
    link: Option<IssuedLink>,
    /// The add form's fields, kept when it is shown again with an error.
    email: String,
    role: String,
}

/// What else the page shows besides the list.
#[derive(Default)]
struct Extras {
    notice: Option<String>,
    error: Option<String>,
    link: Option<IssuedLink>,
    email: String,
    role: String,
}

async fn page(
    state: &AppState,
    current: &Current,
    status: StatusCode,
    extras: Extras,
) -> Result<HttpResponse, ConsoleError> {
    let pool = state.db.pool();
    let now = state.now_ms();
    let links: HashMap<String, i64> = staff::pending_setup_links(pool, now)
        .await?
        .into_iter()
        .collect();
    let staff = staff::list(pool)
        .await?
        .into_iter()
        .map(|s| StaffLine {
            link_until: links
                .get(&s.id)
                .filter(|_| s.disabled_at.is_none())
                .map(|t| format_utc(*t)),
            role: s.role.as_str(),
            totp: s.totp_enabled(),
            disabled: s.disabled_at.is_some(),
            created: format_utc(s.created_at),
            is_me: s.id == current.staff.id,
            id: s.id,
            email: s.email,
        })
        .collect();
    let role = if extras.role.is_empty() {
        "agent".to_owned()
    } else {
        extras.role
    };
    Ok(render(
        status,
        &StaffPage {
            meta: ConsoleMeta::for_staff(state, current, "Staff"),
            staff,
            notice: extras.notice,
            error: extras.error,
            link: extras.link,
            email: extras.email,
            role,
        },
    ))
}

/// The page again with a message saying why nothing was done.
async fn refused(
    state: &AppState,
    current: &Current,
    status: StatusCode,
    error: impl Into<String>,
) -> Result<HttpResponse, ConsoleError> {
    let extras = Extras {
        error: Some(error.into()),
        ..Default::default()
    };
    page(state, current, status, extras).await
}

#[derive(Deserialize)]
pub struct StaffQuery {
    done: Option<String>,
    staff: Option<String>,
}

pub async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<StaffQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let mut notice = None;
    if let (Some(done), Some(id)) = (query.done.as_deref(), query.staff.as_deref()) {
        if let Some(member) = staff::by_id(state.db.pool(), id).await? {
            notice = match done {
                "disabled" => Some(format!(
                    "Disabled {}: their sessions have ended and they cannot sign in.",
                    member.email
                )),
                "enabled" => Some(format!(
                    "Enabled {} again: they sign in with the password they had.",
                    member.email
                )),
                _ => None,
            };
        }
    }
    let extras = Extras {
        notice,
        ..Default::default()
    };
    page(&state, &current, StatusCode::OK, extras).await
}

/// A password hash nobody can match: a new or reset account cannot be opened until its
/// setup link is used. A real argon2 hash rather than a marker, so sign-in treats the account
/// like any other (a wrong password, in the same time).
async fn unusable_hash(state: &AppState) -> Result<String, ConsoleError> {
    let unknowable = Secret::new(ids::new_secret_token());
    Ok(password::hash(
        unknowable,
        HashParams::from_settings(&state.settings.console),
    )
    .await?)
}

/// Makes a setup link for `member_id` in the caller's transaction; returns the URL and expiry.
async fn issue_link(
    state: &AppState,
    tx: &mut crate::db::Tx,
    member_id: &str,
    now: i64,
) -> Result<(String, i64), sqlx::Error> {
    let token = ids::new_secret_token();
    let until = now + state.settings.console.setup_link_hours as i64 * 3_600_000;
    staff::add_staff_setup_token(tx, member_id, &ids::token_hash(&token), now, until).await?;
    Ok((format!("{}/console/setup/{token}", state.base_url), until))
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn add(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<AddForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Admin(current), ConsoleForm(form)) = (admin, form);
    let typed_email: String = form.email.trim().chars().take(254).collect();
    let typed_role: String = form.role.chars().take(10).collect();
    let again = |error: String| Extras {
        error: Some(error),
        email: typed_email.clone(),
        role: typed_role.clone(),
        ..Default::default()
    };
    let email = match BuyerEmail::parse(&form.email) {
        Ok(e) => e,
        Err(_) => {
            let extras =
                again("Enter the new person's email address, like name@example.com.".into());
            return page(&state, &current, StatusCode::UNPROCESSABLE_ENTITY, extras).await;
        }
    };
    let Ok(role) = form.role.parse::<Role>() else {
        let extras = again("Choose a role: agent or admin.".into());
        return page(&state, &current, StatusCode::UNPROCESSABLE_ENTITY, extras).await;
    };
    if staff::by_email(state.db.pool(), email.as_str())
        .await?
        .is_some()
    {
        let extras = again(format!(
            "{} has a staff account already. To let them in again, enable it or reset its password below.",
            email.as_str()
        ));
        return page(&state, &current, StatusCode::CONFLICT, extras).await;
    }
    let hash = unusable_hash(&state).await?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    let Some(id) = staff::insert(&mut tx, email.as_str(), role, &hash, now).await? else {
        // Added by someone else since the check above.
        tx.rollback().await?;
        let extras = again(format!("{} has a staff account already.", email.as_str()));
        return page(&state, &current, StatusCode::CONFLICT, extras).await;
    };
    let (url, until) = issue_link(&state, &mut tx, &id, now).await?;
    let new_value = json!({ "role": role.as_str(), "state": "awaiting setup link" }).to_string();
    audit_change(
        &mut tx,
        &current,
        ip,
        "staff_added",
        email.as_str(),
        &format!(
            "Added as {role}; one-time setup link valid until {}",
            format_utc(until)
        ),
        (None, Some(&new_value)),
        now,
    )
    .await?;
    tx.commit().await?;
    // Rendered here rather than redirected: the link must not travel in a URL (history, logs).
    let extras = Extras {
        notice: Some(format!("Added {} as {role}.", email.as_str())),
        link: Some(IssuedLink {
            email: email.as_str().to_owned(),
            url,
            until: format_utc(until),
            reset: false,
        }),
        ..Default::default()
    };
    page(&state, &current, StatusCode::OK, extras).await
}

/// Records an admin's change to a staff account in the change's own transaction.
#[allow(clippy::too_many_arguments)]
async fn audit_change(
    tx: &mut crate::db::Tx,
    current: &Current,
    ip: ClientIp,
    action: &str,
    subject: &str,
    detail: &str,
    (old_value, new_value): (Option<&str>, Option<&str>),
    now: i64,
) -> Result<(), sqlx::Error> {
    let ip_text = ip.to_string();
    audit::record(
        tx,
        audit::Entry {
            actor: &current.actor(),
            action,
            subject,
            detail,
            old_value,
            new_value,
            client_ip: Some(&ip_text),
        },
        now,
    )
    .await
}

/// The member a row's button is about.
async fn target(state: &AppState, id: &str) -> Result<StaffMember, ConsoleError> {
    staff::by_id(state.db.pool(), id)
        .await?
        .ok_or(ConsoleError::Web(AppError::NotFound))
}

fn back_to_list(done: &str, id: &str) -> HttpResponse {
    let query = serde_urlencoded::to_string([("done", done), ("staff", id)]).unwrap_or_default();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/console/settings/staff?{query}")))
        .finish()
}

/// Which way an account is switched: the two routes are `switch::<Disable>` and
/// `switch::<Enable>`, one handler.
pub trait Switch {
    const TO: To;
}

/// The disable button's route.
pub enum Disable {}
/// The enable button's route.
pub enum Enable {}

impl Switch for Disable {
    const TO: To = To::Disabled;
}

impl Switch for Enable {
    const TO: To = To::Enabled;
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum To {
    Disabled,
    Enabled,
}

impl To {
    /// The `done` word the list shows.
    fn done(self) -> &'static str {
        match self {
            To::Disabled => "disabled",
            To::Enabled => "enabled",
        }
    }
}

pub async fn switch<S: Switch>(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    id: web::Path<String>,
    _form: ConsoleForm<TokenOnly>,
) -> Result<HttpResponse, ConsoleError> {
    set_enabled(&state, admin, ip, &id, S::TO).await
}

/// Disables or enables an account with its audit entry in one transaction. Disabling refuses
/// the admin's own account and the last enabled admin; a switch someone else made first is a
/// no-op.
async fn set_enabled(
    state: &AppState,
    admin: Admin,
    ip: ClientIp,
    id: &str,
    to: To,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let member = target(state, id).await?;
    if to == To::Disabled && member.id == current.staff.id {
        return refused(
            state,
            &current,
            StatusCode::UNPROCESSABLE_ENTITY,
            "You cannot disable your own account. Ask another admin if it must be disabled.",
        )
        .await;
    }
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if to == To::Disabled && member.is_admin() {
        let admins = staff::lock_active_admins(&mut tx, state.db.backend()).await?;
        if !admins.iter().any(|a| *a != member.id) {
            tx.rollback().await?;
            return refused(
                state,
                &current,
                StatusCode::CONFLICT,
                format!(
                    "{} is the last enabled admin, so they stay enabled: the shop needs someone who can manage it.",
                    member.email
                ),
            )
            .await;
        }
    }
    let changed = match to {
        To::Disabled => staff::disable(&mut tx, &member.id, now).await?,
        To::Enabled => staff::enable(&mut tx, &member.id, now).await?,
    };
    if !changed {
        // Switched already (perhaps by another admin a moment ago): nothing to record.
        tx.rollback().await?;
        return Ok(back_to_list(to.done(), &member.id));
    }
    let (action, detail, values) = match to {
        To::Disabled => (
            "staff_disabled",
            "Disabled; their sessions and unused setup links ended",
            (Some("active"), Some("disabled")),
        ),
        To::Enabled => (
            "staff_enabled",
            "Enabled again, with the password the account had",
            (Some("disabled"), Some("active")),
        ),
    };
    audit_change(
        &mut tx,
        &current,
        ip,
        action,
        &member.email,
        detail,
        values,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(back_to_list(to.done(), &member.id))
}

pub async fn reset(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    id: web::Path<String>,
    _form: ConsoleForm<TokenOnly>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let member = target(&state, &id).await?;
    if member.id == current.staff.id {
        return refused(
            &state,
            &current,
            StatusCode::UNPROCESSABLE_ENTITY,
            "To change your own password, use Your account (it asks for the current one).",
        )
        .await;
    }
    if member.disabled_at.is_some() {
        return refused(
            &state,
            &current,
            StatusCode::CONFLICT,
            format!(
                "{} is disabled. Enable the account first if they should sign in again.",
                member.email
            ),
        )
        .await;
    }
    let hash = unusable_hash(&state).await?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    // The old password stops working and every session of the account ends with it.
    if !staff::reset_password_if_enabled(&mut tx, &member.id, &hash, now).await? {
        tx.rollback().await?;
        return refused(
            &state,
            &current,
            StatusCode::CONFLICT,
            format!(
                "{} was disabled a moment ago, so no reset link was made. Enable the account first if they should sign in again.",
                member.email
            ),
        )
        .await;
    }
    let (url, until) = issue_link(&state, &mut tx, &member.id, now).await?;
    let old_value = json!({ "password_set": format_utc(member.password_changed_at) }).to_string();
    let new_value =
        json!({ "password": "cleared", "setup_link_until": format_utc(until) }).to_string();
    audit_change(
        &mut tx,
        &current,
        ip,
        "staff_password_reset",
        &member.email,
        "Password reset: the old one no longer works, their sessions ended, a one-time setup link was made",
        (Some(&old_value), Some(&new_value)),
        now,
    )
    .await?;
    tx.commit().await?;
    let extras = Extras {
        notice: Some(format!(
            "Reset the password of {}: the old one no longer works and their sessions have ended.",
            member.email
        )),
        link: Some(IssuedLink {
            email: member.email.clone(),
            url,
            until: format_utc(until),
            reset: true,
        }),
        ..Default::default()
    };
    page(&state, &current, StatusCode::OK, extras).await
}

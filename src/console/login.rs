//! Signing in and out: `/console/login` (email and password), `/console/login/code` (the
//! two-factor code where enrolled) and `/console/logout`.
//!
//! An unknown email and a wrong password get the same answer in the same time (the password
//! is checked against a dummy hash). Each attempt is counted per typed email before it is
//! checked, so a lock-out holds even against parallel guesses; lock-outs are short.

use super::form::{AnonForm, ConsoleForm, TokenOnly};
use super::page::ConsoleMeta;
use super::password::{self, HashParams};
use super::session::{self, PendingTotp, SignedIn};
use super::totp;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::config::Secret;
use crate::db::audit;
use crate::db::staff::{self, Attempt, StaffMember};
use crate::db::staff_sessions::Stage;
use crate::startup::AppState;
use crate::web::rate_limit::{self, Action};
use crate::web::{render, ClientIp, CsrfToken};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    meta: ConsoleMeta,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    signed_out: Option<String>,
    changed: Option<String>,
    /// After a setup link set the password.
    set: Option<String>,
}

pub async fn form(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let notice = if query.expired.is_some() {
        Some("Your session ended, so you were signed out. Sign in again to go on.".into())
    } else if query.signed_out.is_some() {
        Some("You are signed out.".into())
    } else if query.changed.is_some() {
        Some("Your password was changed. Sign in with the new one.".into())
    } else if query.set.is_some() {
        Some("Your password is set. Sign in with it.".into())
    } else {
        None
    };
    let page = LoginPage {
        meta: ConsoleMeta::anonymous(&state, "Staff sign-in", &csrf.0),
        email: String::new(),
        error: None,
        notice,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default = "empty_secret")]
    password: Secret,
}

fn empty_secret() -> Secret {
    Secret::new("")
}

const WRONG: &str =
    "That email and password don't match a staff account. Check both and try again.";

fn locked_message(until: i64, now: i64) -> String {
    let minutes = ((until - now).max(1_000) + 59_999) / 60_000;
    format!(
        "Too many failed sign-ins for this account, so sign-in is paused for {minutes} minute{} to protect it (until {}). If this wasn't you, tell an admin.",
        if minutes == 1 { "" } else { "s" },
        format_utc(until)
    )
}

fn window_ms(state: &AppState) -> i64 {
    // Failures further apart than a lock-out period do not add up.
    (state.settings.console.lockout_minutes as i64 * 60_000).max(15 * 60_000)
}

fn lockout_ms(state: &AppState) -> i64 {
    state.settings.console.lockout_minutes as i64 * 60_000
}

/// Counts an attempt for `email`; `Err` with the lock-out page when it is locked.
async fn reserve(state: &AppState, email: &str, now: i64) -> Result<bool, i64> {
    match staff::reserve_attempt(
        &state.db,
        email,
        now,
        window_ms(state),
        state.settings.console.lockout_after_failures,
        lockout_ms(state),
    )
    .await
    {
        Ok(Attempt::Allowed { locks_if_wrong }) => Ok(locks_if_wrong),
        Ok(Attempt::Locked { until }) => Err(until),
        Err(e) => {
            tracing::error!(error = %e, "sign-in throttle unavailable");
            // Fail closed: no attempt without the count.
            Err(now + 60_000)
        }
    }
}

async fn audit_failure(
    state: &AppState,
    email: &str,
    ip: ClientIp,
    detail: &str,
    locked: bool,
) -> Result<(), sqlx::Error> {
    let now = state.now_ms();
    let ip = ip.to_string();
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: "anonymous",
            action: "sign_in_failed",
            subject: email,
            detail,
            client_ip: Some(&ip),
            ..Default::default()
        },
        now,
    )
    .await?;
    if locked {
        let detail = format!(
            "{} failed sign-ins in a row: sign-in paused for {} minutes",
            state.settings.console.lockout_after_failures, state.settings.console.lockout_minutes
        );
        audit::record(
            &mut tx,
            audit::Entry {
                actor: "system",
                action: "locked_out",
                subject: email,
                detail: &detail,
                client_ip: Some(&ip),
                ..Default::default()
            },
            now,
        )
        .await?;
        tracing::warn!(
            subject = email,
            "staff sign-in locked out after repeated failures"
        );
    }
    tx.commit().await
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

#[tracing::instrument(skip_all)]
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    csrf: CsrfToken,
    form: AnonForm<LoginForm>,
) -> Result<HttpResponse, ConsoleError> {
    let AnonForm(form) = form;
    rate_limit::enforce(&state, Action::StaffLogin, ip).await?;
    let email: String = staff::normalise_email(&form.email)
        .chars()
        .take(254)
        .collect();
    let page = |status: StatusCode, error: String| {
        render(
            status,
            &LoginPage {
                meta: ConsoleMeta::anonymous(&state, "Staff sign-in", &csrf.0),
                email: email.clone(),
                error: Some(error),
                notice: None,
            },
        )
    };
    if email.is_empty() || form.password.expose().is_empty() {
        return Ok(page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and your password.".into(),
        ));
    }
    let now = state.now_ms();
    let locks_if_wrong = match reserve(&state, &email, now).await {
        Ok(l) => l,
        Err(until) => {
            return Ok(page(
                StatusCode::TOO_MANY_REQUESTS,
                locked_message(until, now),
            ))
        }
    };
    let member = staff::by_email(state.db.pool(), &email)
        .await?
        .filter(|m| m.disabled_at.is_none());
    let params = HashParams::from_settings(&state.settings.console);
    let verified = password::verify(
        form.password.clone(),
        member.as_ref().map(|m| m.password_hash.clone()),
        params,
    )
    .await?;
    let member = match member {
        Some(m) if verified.ok => m,
        _ => {
            audit_failure(
                &state,
                &email,
                ip,
                "wrong email or password",
                locks_if_wrong,
            )
            .await?;
            return Ok(if locks_if_wrong {
                page(
                    StatusCode::TOO_MANY_REQUESTS,
                    locked_message(now + lockout_ms(&state), now),
                )
            } else {
                page(StatusCode::UNPROCESSABLE_ENTITY, WRONG.into())
            });
        }
    };
    staff::clear_attempts(state.db.pool(), &email).await?;
    if verified.needs_rehash {
        match password::hash(form.password, params).await {
            Ok(stronger) => {
                staff::upgrade_hash(
                    state.db.pool(),
                    &member.id,
                    &member.password_hash,
                    &stronger,
                    now,
                )
                .await?
            }
            Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
        }
    }
    let stage = if member.totp_enabled() {
        Stage::Totp
    } else {
        Stage::Active
    };
    let token = begin_session(&state, &req, &member, stage, ip, "password").await?;
    let next = if stage == Stage::Totp {
        "/console/login/code"
    } else if member.is_admin() {
        "/console/account/totp"
    } else {
        "/console/"
    };
    let mut resp = redirect(next);
    resp.add_cookie(&session::cookie(&state, &token))
        .map_err(|e| ConsoleError::Unexpected(e.into()))?;
    Ok(resp)
}

/// Ends the browser's old session, if any, and starts a new one with a new id (no session
/// fixation). A full sign-in is audited.
pub async fn begin_session(
    state: &AppState,
    req: &HttpRequest,
    member: &StaffMember,
    stage: Stage,
    ip: ClientIp,
    how: &str,
) -> Result<String, ConsoleError> {
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    session::end_current(&mut tx, req, state).await?;
    let token = session::start(&mut tx, member, stage, req, now).await?;
    if stage == Stage::Active {
        let ip = ip.to_string();
        audit::record(
            &mut tx,
            audit::Entry {
                actor: &member.actor(),
                action: "sign_in",
                subject: &member.email,
                detail: &format!("Signed in with {how}"),
                client_ip: Some(&ip),
                ..Default::default()
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(token)
}

#[derive(Template)]
#[template(path = "console/code.html")]
struct CodePage {
    meta: ConsoleMeta,
    error: Option<String>,
}

pub async fn code_form(state: web::Data<AppState>, pending: PendingTotp) -> HttpResponse {
    let PendingTotp(current) = pending;
    let mut meta = ConsoleMeta::for_staff(&state, &current, "Two-factor code");
    meta.nav = false;
    meta.staff = String::new();
    render(StatusCode::OK, &CodePage { meta, error: None })
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

#[tracing::instrument(skip_all)]
pub async fn code_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    pending: PendingTotp,
    form: ConsoleForm<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (PendingTotp(current), ConsoleForm(form)) = (pending, form);
    rate_limit::enforce(&state, Action::StaffLogin, ip).await?;
    let member = current.staff.clone();
    let mut meta = ConsoleMeta::for_staff(&state, &current, "Two-factor code");
    meta.nav = false;
    meta.staff = String::new();
    let now = state.now_ms();
    let locks_if_wrong = match reserve(&state, &member.email, now).await {
        Ok(l) => l,
        Err(until) => {
            let mut tx = state.db.begin().await?;
            session::end_current(&mut tx, &req, &state).await?;
            tx.commit().await?;
            return Ok(render(
                StatusCode::TOO_MANY_REQUESTS,
                &CodePage {
                    meta,
                    error: Some(locked_message(until, now)),
                },
            ));
        }
    };
    let code = form.code.trim();
    let mut how = None;
    {
        let mut tx = state.db.begin().await?;
        if totp::looks_like_recovery_code(code) {
            if staff::use_recovery_code(&mut tx, &member.id, &totp::recovery_hash(code), now)
                .await?
            {
                how = Some("a recovery code");
            }
        } else if let Some(secret) = member.totp_secret.as_deref().and_then(totp::base32_decode) {
            if let Some(step) =
                totp::verify(&secret, code, now.div_euclid(1000), member.totp_last_step)
            {
                if staff::accept_totp_step(&mut tx, &member.id, step).await? {
                    how = Some("password and authenticator code");
                }
            }
        }
        tx.commit().await?;
    }
    let Some(how) = how else {
        audit_failure(
            &state,
            &member.email,
            ip,
            "wrong two-factor code",
            locks_if_wrong,
        )
        .await?;
        if locks_if_wrong {
            let mut tx = state.db.begin().await?;
            session::end_current(&mut tx, &req, &state).await?;
            tx.commit().await?;
        }
        let error = if locks_if_wrong {
            locked_message(now + lockout_ms(&state), now)
        } else {
            "That code is not right. Enter the 6-digit code your authenticator app shows now, or one of your recovery codes.".into()
        };
        let status = if locks_if_wrong {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return Ok(render(
            status,
            &CodePage {
                meta,
                error: Some(error),
            },
        ));
    };
    staff::clear_attempts(state.db.pool(), &member.email).await?;
    let how = if how == "a recovery code" {
        let left = staff::recovery_codes_left(state.db.pool(), &member.id).await?;
        format!("password and a recovery code ({left} left)")
    } else {
        how.to_owned()
    };
    let token = begin_session(&state, &req, &member, Stage::Active, ip, &how).await?;
    let mut resp = redirect("/console/");
    resp.add_cookie(&session::cookie(&state, &token))
        .map_err(|e| ConsoleError::Unexpected(e.into()))?;
    Ok(resp)
}

pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    signed_in: SignedIn,
    _form: ConsoleForm<TokenOnly>,
) -> Result<HttpResponse, ConsoleError> {
    let SignedIn(current) = signed_in;
    let now = state.now_ms();
    let ip = ip.to_string();
    let mut tx = state.db.begin().await?;
    session::end_current(&mut tx, &req, &state).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: &current.actor(),
            action: "sign_out",
            subject: &current.staff.email,
            client_ip: Some(&ip),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let mut resp = redirect("/console/login?signed_out=1");
    resp.add_cookie(&session::removal_cookie(&state))
        .map_err(|e| ConsoleError::Unexpected(e.into()))?;
    Ok(resp)
}

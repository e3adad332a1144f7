//! Signing in and out: `/console/login` (email and password), `/console/login/code` (the
//! two-factor code where enrolled) and `/console/logout`.
//!
//! An unknown email and a wrong password get the same answer in the same time (the password
//! is checked against a dummy hash, in the same bounded hashing pool). Each attempt is counted
//! before it is checked, so a lock-out holds even against parallel guesses:
//!
//! - wrong passwords lock the (typed email, source address) pair briefly: one address cannot
//!   keep guessing, and a stranger cannot lock the real user out from elsewhere;
//! - many failures for one email from all addresses together (a distributed attack) slow every
//!   attempt on it down progressively, and never lock;
//! - wrong two-factor codes are counted per account apart from passwords and lock the code
//!   step; only a correct code clears them, so a known password buys no extra guesses.
//!
//! Every lock-out answers 429 with `Retry-After`.

use super::form::{AnonForm, ConsoleForm, TokenOnly};
use super::page::ConsoleMeta;
use super::session::{self, PendingTotp, SignedIn};
use super::ConsoleError;
use crate::clock::format_utc;
use crate::config::Secret;
use crate::db::audit;
use crate::db::sign_in_throttle::{self as throttle, Attempt, Rule};
use crate::db::staff::{self, StaffMember};
use crate::db::staff_sessions::Stage;
use crate::staff::password::{self, HashParams};
use crate::staff::seed_box;
use crate::staff::totp;
use crate::web::rate_limit::Action;
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp, CsrfToken};
use actix_web::http::header::HeaderValue;
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
        "Too many failed sign-ins for this account from your address, so sign-in from here is paused for {minutes} minute{} to protect it (until {}). If this wasn't you, tell an admin.",
        if minutes == 1 { "" } else { "s" },
        format_utc(until)
    )
}

fn code_locked_message(until: i64, now: i64) -> String {
    let minutes = ((until - now).max(1_000) + 59_999) / 60_000;
    format!(
        "Too many wrong two-factor codes for this account, so the code step is paused for {minutes} minute{} to protect it (until {}). If this wasn't you, tell an admin.",
        if minutes == 1 { "" } else { "s" },
        format_utc(until)
    )
}

/// A lock-out page: 429 with `Retry-After` in whole seconds.
pub fn locked_response(mut resp: HttpResponse, until: i64, now: i64) -> HttpResponse {
    *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let secs = ((until - now).max(1_000) + 999) / 1_000;
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

pub fn lockout_ms(state: &AppState) -> i64 {
    state.settings.console.lockout_minutes as i64 * 60_000
}

/// Failures further apart than this do not add up.
fn window_ms(state: &AppState) -> i64 {
    lockout_ms(state).max(15 * 60_000)
}

fn source_rule(state: &AppState) -> Rule {
    Rule {
        window_ms: window_ms(state),
        after_failures: state.settings.console.lockout_after_failures,
        lockout_ms: lockout_ms(state),
    }
}

fn code_rule(state: &AppState) -> Rule {
    Rule {
        window_ms: window_ms(state),
        after_failures: state.settings.console.code_lockout_after_failures,
        lockout_ms: lockout_ms(state),
    }
}

/// Fail closed: an attempt the throttle could not count is not made.
fn fail_closed(e: sqlx::Error, now: i64) -> Attempt {
    tracing::error!(error = %e, "sign-in throttle unavailable");
    Attempt::Locked {
        until: now + 60_000,
    }
}

/// Counts a password attempt for `email` from `ip`; `Err(until)` when that pair is locked.
pub async fn reserve_password(
    state: &AppState,
    email: &str,
    ip: ClientIp,
    now: i64,
) -> Result<bool, i64> {
    let attempt =
        throttle::reserve_source(&state.db, email, &ip.to_string(), now, source_rule(state))
            .await
            .unwrap_or_else(|e| fail_closed(e, now));
    match attempt {
        Attempt::Allowed { locks_if_wrong } => Ok(locks_if_wrong),
        Attempt::Locked { until } => Err(until),
    }
}

/// Counts a second-factor attempt for an account; `Err(until)` when its code step is locked.
pub async fn reserve_code(state: &AppState, staff_id: &str, now: i64) -> Result<bool, i64> {
    let attempt = throttle::reserve_code(&state.db, staff_id, now, code_rule(state))
        .await
        .unwrap_or_else(|e| fail_closed(e, now));
    match attempt {
        Attempt::Allowed { locks_if_wrong } => Ok(locks_if_wrong),
        Attempt::Locked { until } => Err(until),
    }
}

/// The delay before checking a password for `email`: none until the account has had
/// `slowdown_after_failures` failures from all addresses together, then 1 s, 2 s, 4 s … up to
/// `slowdown_max_seconds`. Slows a distributed attack; the real user still gets in.
pub fn slowdown(failures_before: i64, after: u32, max_seconds: u64) -> std::time::Duration {
    let over = failures_before - i64::from(after);
    if over < 0 {
        return std::time::Duration::ZERO;
    }
    let secs = 1u64 << over.min(6);
    std::time::Duration::from_secs(secs.min(max_seconds))
}

async fn slow_down_if_attacked(state: &AppState, email: &str, now: i64) {
    let s = &state.settings.console;
    match throttle::count_account(&state.db, email, now, window_ms(state)).await {
        Ok(before) => {
            let delay = slowdown(before, s.slowdown_after_failures, s.slowdown_max_seconds);
            if !delay.is_zero() {
                tracing::warn!(
                    subject = email,
                    failures = before,
                    delay_ms = delay.as_millis() as u64,
                    "many failed sign-ins for one account: slowing it down"
                );
                tokio::time::sleep(delay).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "sign-in account counter unavailable"),
    }
}

/// Audits a failed attempt, and the lock-out it caused (`lock`: the lock's description).
pub async fn audit_failure(
    state: &AppState,
    email: &str,
    ip: ClientIp,
    detail: &str,
    lock: Option<String>,
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
    if let Some(detail) = lock {
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
        tracing::warn!(subject = email, client_ip = %ip, "{detail}");
    }
    tx.commit().await
}

pub fn password_lock_detail(state: &AppState) -> String {
    format!(
        "{} failed sign-ins in a row from this address: sign-in from it paused for {} minutes",
        state.settings.console.lockout_after_failures, state.settings.console.lockout_minutes
    )
}

pub fn code_lock_detail(state: &AppState) -> String {
    format!(
        "{} wrong two-factor codes in a row: the code step paused for {} minutes",
        state.settings.console.code_lockout_after_failures, state.settings.console.lockout_minutes
    )
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
    state.enforce(Action::StaffLogin, ip).await?;
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
    let member = match password_step(&state, &email, form.password, ip, now).await? {
        PasswordStep::Passed(member) => member,
        PasswordStep::Wrong => return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, WRONG.into())),
        PasswordStep::Locked { until } => {
            let page = page(StatusCode::TOO_MANY_REQUESTS, locked_message(until, now));
            return Ok(locked_response(page, until, now));
        }
    };
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
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

/// What the password step came to.
enum PasswordStep {
    Passed(StaffMember),
    Wrong,
    /// Locked until then: by earlier failures, or by this one.
    Locked {
        until: i64,
    },
}

/// The password step of signing in: throttled per address, slowed down while the account is
/// attacked, checked against a dummy hash when there is no such (enabled) member, audited when
/// wrong. The right password clears this address's count and the account-wide one — never the
/// second factor's — and upgrades a hash made with weaker parameters.
async fn password_step(
    state: &AppState,
    email: &str,
    password: Secret,
    ip: ClientIp,
    now: i64,
) -> Result<PasswordStep, ConsoleError> {
    let locks_if_wrong = match reserve_password(state, email, ip, now).await {
        Ok(locks) => locks,
        Err(until) => return Ok(PasswordStep::Locked { until }),
    };
    slow_down_if_attacked(state, email, now).await;
    let member = staff::by_email(state.db.pool(), email)
        .await?
        .filter(|m| m.disabled_at.is_none());
    let params = HashParams::from_settings(&state.settings.console);
    let hash = member.as_ref().map(|m| m.password_hash.clone());
    let verified = password::verify(password.clone(), hash, params).await?;
    let member = match member {
        Some(m) if verified.ok => m,
        _ => {
            let lock = locks_if_wrong.then(|| password_lock_detail(state));
            audit_failure(state, email, ip, "wrong email or password", lock).await?;
            return Ok(if locks_if_wrong {
                PasswordStep::Locked {
                    until: now + lockout_ms(state),
                }
            } else {
                PasswordStep::Wrong
            });
        }
    };
    throttle::clear_source(state.db.pool(), email, &ip.to_string()).await?;
    throttle::clear_account(state.db.pool(), email).await?;
    if verified.needs_rehash {
        match password::hash(password, params).await {
            Ok(stronger) => {
                let pool = state.db.pool();
                staff::upgrade_hash(pool, &member.id, &member.password_hash, &stronger, now).await?
            }
            Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
        }
    }
    Ok(PasswordStep::Passed(member))
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

const RECOVERY: &str = "a recovery code";

/// Checks a typed second factor — an authenticator code, or a recovery code, which is spent —
/// and says how the member signed in, or `None` when it is wrong.
async fn check_second_factor(
    state: &AppState,
    member: &StaffMember,
    code: &str,
    now: i64,
) -> Result<Option<&'static str>, ConsoleError> {
    if totp::looks_like_recovery_code(code) {
        for (id, stored) in staff::unused_recovery_codes(state.db.pool(), &member.id).await? {
            if totp::recovery_code_matches(code, &stored).await? {
                let mut conn = state.db.pool().acquire().await?;
                return Ok(staff::use_recovery_code(&mut conn, &member.id, &id, now)
                    .await?
                    .then_some(RECOVERY));
            }
        }
        return Ok(None);
    }
    let Some(stored) = member.totp_secret.as_deref() else {
        return Ok(None);
    };
    let Some(secret) = seed_box::open(&state.secrets.totp_key, &member.id, stored) else {
        tracing::error!(staff = %member.id, "a TOTP seed could not be read (wrong secrets.totp_key?)");
        return Ok(None);
    };
    let Some(step) = totp::verify(&secret, code, now.div_euclid(1000), member.totp_last_step)
    else {
        return Ok(None);
    };
    let mut conn = state.db.pool().acquire().await?;
    if !staff::accept_totp_step(&mut conn, &member.id, step).await? {
        return Ok(None);
    }
    if seed_box::is_clear(stored) {
        // A seed from before encryption: sealed now that it is in use.
        let sealed = seed_box::seal(&state.secrets.totp_key, &member.id, &secret)
            .map_err(ConsoleError::from)?;
        staff::seal_totp_seed(state.db.pool(), &member.id, stored, &sealed).await?;
    }
    Ok(Some("password and authenticator code"))
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
    state.enforce(Action::StaffLogin, ip).await?;
    let member = current.staff.clone();
    let mut meta = ConsoleMeta::for_staff(&state, &current, "Two-factor code");
    meta.nav = false;
    meta.staff = String::new();
    let now = state.now_ms();
    let locks_if_wrong = match reserve_code(&state, &member.id, now).await {
        Ok(locks) => locks,
        Err(until) => return code_locked(&state, &req, meta, until, now).await,
    };
    let Some(how) = check_second_factor(&state, &member, form.code.trim(), now).await? else {
        let lock = locks_if_wrong.then(|| code_lock_detail(&state));
        audit_failure(&state, &member.email, ip, "wrong two-factor code", lock).await?;
        if locks_if_wrong {
            let until = now + lockout_ms(&state);
            return code_locked(&state, &req, meta, until, now).await;
        }
        let page = CodePage {
            meta,
            error: Some("That code is not right. Enter the 6-digit code your authenticator app shows now, or one of your recovery codes.".into()),
        };
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    throttle::clear_code(state.db.pool(), &member.id).await?;
    let how = if how == RECOVERY {
        let left = staff::recovery_codes_left(state.db.pool(), &member.id).await?;
        format!("password and a recovery code ({left} left)")
    } else {
        how.to_owned()
    };
    let token = begin_session(&state, &req, &member, Stage::Active, ip, &how).await?;
    let mut resp = redirect("/console/");
    resp.add_cookie(&session::cookie(&state, &token))
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

/// A code lock-out ends the session that guessed: it starts again from the password.
async fn code_locked(
    state: &AppState,
    req: &HttpRequest,
    meta: ConsoleMeta,
    until: i64,
    now: i64,
) -> Result<HttpResponse, ConsoleError> {
    let mut tx = state.db.begin().await?;
    session::end_current(&mut tx, req, state).await?;
    tx.commit().await?;
    let page = CodePage {
        meta,
        error: Some(code_locked_message(until, now)),
    };
    let page = render(StatusCode::TOO_MANY_REQUESTS, &page);
    Ok(locked_response(page, until, now))
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
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::slowdown;
    use std::time::Duration;

    #[test]
    fn the_slowdown_starts_at_the_threshold_doubles_and_is_capped() {
        let secs = |before| slowdown(before, 20, 10).as_secs();
        assert_eq!(slowdown(19, 20, 10), Duration::ZERO);
        assert_eq!([20, 21, 22, 23, 24, 1_000].map(secs), [1, 2, 4, 8, 10, 10]);
    }
}

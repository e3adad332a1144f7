//! The signed-in staff member's own account: password change and two-factor enrolment
//! (a QR code and the text secret, confirmed with a code, then one-time recovery codes).
//!
//! Both ask for the password again first (and enrolment, when two-factor is on already, for a
//! current code), so a session alone cannot take the account over; both end every other
//! session of the account (ASVS 7.5.1).

use super::form::ConsoleForm;
use super::login;
use super::login::begin_session;
use super::page::ConsoleMeta;
use super::session::{self, SignedIn};
use super::ConsoleError;
use crate::clock::format_utc;
use crate::config::Secret;
use crate::db::audit;
use crate::db::staff;
use crate::db::staff_sessions::Stage;
use crate::staff::password::{self, HashParams};
use crate::staff::seed_box;
use crate::staff::totp;
use crate::web::rate_limit::Action;
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    meta: ConsoleMeta,
    email: String,
    role: String,
    totp_enabled: bool,
    must_enrol: bool,
    recovery_left: i64,
    password_changed: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    changed: Option<String>,
}

async fn account_page(
    state: &AppState,
    current: &session::Current,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let s = &current.staff;
    let page = AccountPage {
        meta: ConsoleMeta::for_staff(state, current, "Your account"),
        email: s.email.clone(),
        role: s.role.to_string(),
        totp_enabled: s.totp_enabled(),
        must_enrol: current.owes_totp_enrolment(),
        recovery_left: staff::recovery_codes_left(state.db.pool(), &s.id).await?,
        password_changed: format_utc(s.password_changed_at),
        error,
        notice,
    };
    Ok(render(status, &page))
}

pub async fn show(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let notice = query.changed.is_some().then(|| {
        "Your password was changed, and every other session of your account was signed out."
            .to_owned()
    });
    account_page(&state, &signed_in.0, StatusCode::OK, None, notice).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: Secret,
    new_password: Secret,
    confirm_password: Secret,
}

pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    signed_in: SignedIn,
    form: ConsoleForm<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (SignedIn(current), ConsoleForm(form)) = (signed_in, form);
    state.enforce(Action::StaffLogin, ip).await?;
    let bad = |msg: String| {
        account_page(
            &state,
            &current,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(msg),
            None,
        )
    };
    let params = HashParams::from_settings(&state.settings.console);
    let verified = password::verify(
        form.current_password,
        Some(current.staff.password_hash.clone()),
        params,
    )
    .await?;
    if !verified.ok {
        return bad("Your current password is not right, so nothing was changed.".into()).await;
    }
    let (new, again) = (form.new_password.expose(), form.confirm_password.expose());
    if let Err(e) = password::check_new(new, again, &current.staff.email) {
        return bad(e.to_string()).await;
    }
    let hash = password::hash(form.new_password, params).await?;
    let now = state.now_ms();
    let ip_text = ip.to_string();
    let mut tx = state.db.begin().await?;
    // Ends every session of the account, this one included…
    staff::set_password(&mut tx, &current.staff.id, &hash, now).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: &current.actor(),
            action: "password_changed",
            subject: &current.staff.email,
            detail: "Changed their own password; all their sessions ended",
            client_ip: Some(&ip_text),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    // …and this browser continues in a fresh one.
    let mut member = current.staff.clone();
    member.password_hash = hash;
    let token = begin_session(&state, &req, &member, Stage::Active, ip, "a new password").await?;
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/account?changed=1"))
        .finish();
    resp.add_cookie(&session::cookie(&state, &token))
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

#[derive(Template)]
#[template(path = "console/totp.html")]
struct TotpPage {
    meta: ConsoleMeta,
    must_enrol: bool,
    already: bool,
    secret: String,
    secret_spaced: String,
    secret_mac: String,
    qr: Option<String>,
    uri: String,
    error: Option<String>,
}

/// Binds a proposed secret to the session, so the form cannot be fed another one.
fn secret_mac(state: &AppState, current: &session::Current, secret: &str) -> String {
    crate::domain::mac::hex_mac(
        state.secrets.cookie_key.expose().as_bytes(),
        &[
            b"totp-enrol:",
            current.id_hash().as_bytes(),
            b":",
            secret.as_bytes(),
        ],
    )
}

fn totp_page(
    state: &AppState,
    current: &session::Current,
    secret: String,
    error: Option<String>,
) -> TotpPage {
    let uri = totp::otpauth_uri(&state.settings.shop_name, &current.staff.email, &secret);
    let spaced = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    TotpPage {
        meta: ConsoleMeta::for_staff(state, current, "Two-factor sign-in"),
        must_enrol: current.owes_totp_enrolment(),
        already: current.staff.totp_enabled(),
        secret_mac: secret_mac(state, current, &secret),
        secret_spaced: spaced,
        qr: totp::qr_data_url(&uri),
        uri,
        secret,
        error,
    }
}

pub async fn enrol_form(state: web::Data<AppState>, signed_in: SignedIn) -> HttpResponse {
    // A secret is proposed here but stored only once confirmed (sealed: `seed_box`).
    let secret = totp::base32_encode(&totp::new_secret());
    render(
        StatusCode::OK,
        &totp_page(&state, &signed_in.0, secret, None),
    )
}

#[derive(Deserialize)]
pub struct EnrolForm {
    /// Re-authentication: the account's password…
    #[serde(default = "empty_secret")]
    password: Secret,
    /// …and, when two-factor is on already, a code from the current authenticator.
    #[serde(default)]
    current_code: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    secret_mac: String,
    #[serde(default)]
    code: String,
}

#[derive(Template)]
#[template(path = "console/recovery.html")]
struct RecoveryPage {
    meta: ConsoleMeta,
    codes: Vec<String>,
}

fn empty_secret() -> Secret {
    Secret::new("")
}

/// Why re-authentication refused, with what to tell the member.
enum Refusal {
    /// Too many wrong tries before this one: nothing was checked.
    Locked { until: i64, message: &'static str },
    /// Wrong; `locks`: this try started a lock-out.
    Wrong { message: &'static str, locks: bool },
}

/// Re-authentication for enrolment: `None` when it passed, or the page to answer with. Wrong
/// passwords count against this address like sign-ins, wrong codes against the account's code
/// step.
async fn reauthenticate(
    state: &AppState,
    req: &HttpRequest,
    current: &session::Current,
    ip: ClientIp,
    form: &EnrolForm,
) -> Result<Option<HttpResponse>, ConsoleError> {
    let now = state.now_ms();
    let refusal = match password_again(state, current, ip, form, now).await? {
        Some(refusal) => Some(refusal),
        None => current_code_again(state, req, current, ip, form, now).await?,
    };
    let again = |status: StatusCode, error: &str| {
        let page = totp_page(state, current, form.secret.clone(), Some(error.to_owned()));
        render(status, &page)
    };
    Ok(refusal.map(|refusal| match refusal {
        Refusal::Locked { until, message } => {
            login::locked_response(again(StatusCode::TOO_MANY_REQUESTS, message), until, now)
        }
        Refusal::Wrong { message, locks } => {
            let page = again(StatusCode::UNPROCESSABLE_ENTITY, message);
            if locks {
                login::locked_response(page, now + login::lockout_ms(state), now)
            } else {
                page
            }
        }
    }))
}

/// The account's password, typed again.
async fn password_again(
    state: &AppState,
    current: &session::Current,
    ip: ClientIp,
    form: &EnrolForm,
    now: i64,
) -> Result<Option<Refusal>, ConsoleError> {
    let member = &current.staff;
    let locks =
        match login::reserve_password(state, &member.email, ip, now).await {
            Ok(locks) => locks,
            Err(until) => return Ok(Some(Refusal::Locked {
                until,
                message:
                    "Too many wrong passwords from your address. Wait a few minutes and try again.",
            })),
        };
    let params = HashParams::from_settings(&state.settings.console);
    let hash = Some(member.password_hash.clone());
    if !password::verify(form.password.clone(), hash, params)
        .await?
        .ok
    {
        login::audit_failure(
            state,
            &member.email,
            ip,
            "wrong password to change two-factor sign-in",
            locks.then(|| login::password_lock_detail(state)),
        )
        .await?;
        return Ok(Some(Refusal::Wrong {
            message: "Your password is not right, so nothing was changed. Enter your password to change two-factor sign-in.",
            locks,
        }));
    }
    crate::db::sign_in_throttle::clear_source(state.db.pool(), &member.email, &ip.to_string())
        .await?;
    Ok(None)
}

/// When two-factor is on already: a code from the current authenticator. A lock-out ends the
/// session that guessed, as at sign-in.
async fn current_code_again(
    state: &AppState,
    req: &HttpRequest,
    current: &session::Current,
    ip: ClientIp,
    form: &EnrolForm,
    now: i64,
) -> Result<Option<Refusal>, ConsoleError> {
    let member = &current.staff;
    let Some(stored) = member.totp_secret.as_deref() else {
        return Ok(None);
    };
    let locks = match login::reserve_code(state, &member.id, now).await {
        Ok(locks) => locks,
        Err(until) => {
            return Ok(Some(Refusal::Locked {
                until,
                message: "Too many wrong two-factor codes for your account. Wait a few minutes and try again.",
            }))
        }
    };
    let step = seed_box::open(&state.secrets.totp_key, &member.id, stored).and_then(|seed| {
        totp::verify(
            &seed,
            &form.current_code,
            now.div_euclid(1000),
            member.totp_last_step,
        )
    });
    let accepted = match step {
        Some(step) => {
            let mut conn = state.db.pool().acquire().await?;
            staff::accept_totp_step(&mut conn, &member.id, step).await?
        }
        None => false,
    };
    if !accepted {
        login::audit_failure(
            state,
            &member.email,
            ip,
            "wrong two-factor code to change two-factor sign-in",
            locks.then(|| login::code_lock_detail(state)),
        )
        .await?;
        if locks {
            let mut tx = state.db.begin().await?;
            session::end_current(&mut tx, req, state).await?;
            tx.commit().await?;
        }
        return Ok(Some(Refusal::Wrong {
            message:
                "The code from your current authenticator app is not right, so nothing was changed.",
            locks,
        }));
    }
    crate::db::sign_in_throttle::clear_code(state.db.pool(), &member.id).await?;
    Ok(None)
}

pub async fn enrol(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    signed_in: SignedIn,
    form: ConsoleForm<EnrolForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (SignedIn(current), ConsoleForm(form)) = (signed_in, form);
    state.enforce(Action::StaffLogin, ip).await?;
    if let Some(page) = reauthenticate(&state, &req, &current, ip, &form).await? {
        return Ok(page);
    }
    let secret = proposed_secret(&state, &current, &form)?;
    let now = state.now_ms();
    let Some(step) = totp::verify(&secret, &form.code, now.div_euclid(1000), None) else {
        let page = totp_page(
            &state,
            &current,
            form.secret.clone(),
            Some("That code is not right. Check that the app shows this account, and enter the 6-digit code it shows now.".into()),
        );
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let (member, codes) = turn_on(&state, &current, &secret, step, ip, now).await?;
    // Every session of the account ended, this one included; this browser continues in a
    // fresh one.
    let token = begin_session(
        &state,
        &req,
        &member,
        Stage::Active,
        ip,
        "password and a new authenticator",
    )
    .await?;
    let fresh = session::Current::signed_in(member, token.clone());
    let mut meta = ConsoleMeta::for_staff(&state, &fresh, "Your recovery codes");
    meta.nav = true;
    let mut resp = render(StatusCode::OK, &RecoveryPage { meta, codes });
    resp.add_cookie(&session::cookie(&state, &token))
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

/// The secret the enrolment page proposed, if the form still carries it unchanged.
fn proposed_secret(
    state: &AppState,
    current: &session::Current,
    form: &EnrolForm,
) -> Result<Vec<u8>, ConsoleError> {
    let expected = secret_mac(state, current, &form.secret);
    match totp::base32_decode(&form.secret) {
        Some(s)
            if s.len() == totp::SECRET_BYTES
                && bool::from(expected.as_bytes().ct_eq(form.secret_mac.as_bytes())) =>
        {
            Ok(s)
        }
        _ => Err(ConsoleError::Web(AppError::BadRequest(
            "The enrolment form was out of date. Open two-factor sign-in again and scan the new code.".into(),
        ))),
    }
}

/// Turns two-factor sign-in on with a confirmed secret: the sealed seed and new recovery
/// codes stored, every session of the account ended, audited. Returns the member as now
/// stored and the recovery codes to show once.
async fn turn_on(
    state: &AppState,
    current: &session::Current,
    secret: &[u8],
    step: i64,
    ip: ClientIp,
    now: i64,
) -> Result<(staff::StaffMember, Vec<String>), ConsoleError> {
    let codes = totp::new_recovery_codes();
    let params = HashParams::from_settings(&state.settings.console);
    let mut hashes = Vec::with_capacity(codes.len());
    for code in &codes {
        hashes.push(totp::hash_recovery_code(code, params).await?);
    }
    let sealed = seed_box::seal(&state.secrets.totp_key, &current.staff.id, secret)
        .map_err(ConsoleError::from)?;
    let ip_text = ip.to_string();
    let mut tx = state.db.begin().await?;
    staff::enable_totp(&mut tx, &current.staff.id, &sealed, step, &hashes, now).await?;
    crate::db::staff_sessions::delete_for_staff(&mut tx, &current.staff.id).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: &current.actor(),
            action: "totp_enrolled",
            subject: &current.staff.email,
            detail: "Two-factor sign-in turned on; new recovery codes issued; all their other sessions ended",
            client_ip: Some(&ip_text),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let mut member = current.staff.clone();
    member.totp_secret = Some(sealed);
    member.totp_last_step = Some(step);
    Ok((member, codes))
}

//! One-time setup links (`/console/setup/{token}`, only the token's hash stored). Two kinds:
//!
//! - The first admin: on a start with no staff at all, the log shows a link; whoever opens it
//!   sets the first admin's email and password.
//! - A staff member's: an admin who adds someone or resets their password is shown a link for
//!   that person to choose their own password. It only sets the password; the person then
//!   signs in as usual, two-factor code included, so a link alone never opens a session of an
//!   account that has two-factor sign-in.
//!
//! A link stops working once used, when a newer one is made for the same purpose, or after
//! `console.setup_link_hours`.

use super::form::AnonForm;
use super::login::begin_session;
use super::page::ConsoleMeta;
use super::session;
use super::ConsoleError;
use crate::config::Secret;
use crate::db::audit;
use crate::db::staff::{self, Role, SetupLink, StaffMember};
use crate::db::staff_sessions::Stage;
use crate::domain::{ids, BuyerEmail};
use crate::staff::password::{self, HashParams};
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp, CsrfToken};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// Logs a setup link when there is no staff account yet.
pub async fn announce_if_needed(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.db.pool().acquire().await?;
    if staff::count(&mut conn).await? > 0 {
        return Ok(());
    }
    drop(conn);
    let now = state.now_ms();
    let token = ids::new_secret_token();
    let hours = state.settings.console.setup_link_hours as i64;
    staff::add_setup_token(
        state.db.pool(),
        &ids::token_hash(&token),
        now,
        now + hours * 3_600_000,
    )
    .await?;
    let link = format!("{}/console/setup/{token}", state.base_url);
    tracing::warn!(
        setup_link = %link,
        "no staff accounts yet: open the setup link to create the first admin (it works once, for {hours} hours; or use `coinfront staff add`)"
    );
    Ok(())
}

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    meta: ConsoleMeta,
    token: String,
    email: String,
    error: Option<String>,
}

/// A staff member's link: they choose a password for the account an admin made or reset.
#[derive(Template)]
#[template(path = "console/setup_password.html")]
struct ChoosePasswordPage {
    meta: ConsoleMeta,
    token: String,
    email: String,
    error: Option<String>,
}

fn used_up() -> ConsoleError {
    ConsoleError::Web(AppError::BadRequest(
        "This setup link has been used already, or it has expired. Sign in, or ask an admin; an operator can also add staff with `coinfront staff add`.".into(),
    ))
}

fn token_ok(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the link opens, or the "used up" page.
async fn open_link(state: &AppState, token: &str) -> Result<SetupLink, ConsoleError> {
    if !token_ok(token) {
        return Err(used_up());
    }
    staff::setup_link(state.db.pool(), &ids::token_hash(token), state.now_ms())
        .await?
        .ok_or_else(used_up)
}

pub async fn form(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    token: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let token = token.into_inner();
    Ok(match open_link(&state, &token).await? {
        SetupLink::FirstAdmin => render(
            StatusCode::OK,
            &SetupPage {
                meta: ConsoleMeta::anonymous(&state, "Create the first admin", &csrf.0),
                token,
                email: String::new(),
                error: None,
            },
        ),
        SetupLink::Staff(member) => render(
            StatusCode::OK,
            &ChoosePasswordPage {
                meta: ConsoleMeta::anonymous(&state, "Choose your password", &csrf.0),
                token,
                email: member.email,
                error: None,
            },
        ),
    })
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    email: String,
    password: Secret,
    confirm_password: Secret,
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    csrf: CsrfToken,
    token: web::Path<String>,
    form: AnonForm<SetupForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (token, AnonForm(form)) = (token.into_inner(), form);
    // Checked again when it is spent; this only spares the hashing for dead links.
    match open_link(&state, &token).await? {
        SetupLink::FirstAdmin => first_admin(&state, &req, ip, &csrf, token, form).await,
        SetupLink::Staff(member) => choose_password(&state, ip, &csrf, token, member, form).await,
    }
}

async fn first_admin(
    state: &AppState,
    req: &HttpRequest,
    ip: ClientIp,
    csrf: &CsrfToken,
    token: String,
    form: SetupForm,
) -> Result<HttpResponse, ConsoleError> {
    let page = |error: String| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                meta: ConsoleMeta::anonymous(state, "Create the first admin", &csrf.0),
                token: token.clone(),
                email: form.email.chars().take(254).collect(),
                error: Some(error),
            },
        )
    };
    let Ok(email) = BuyerEmail::parse(&form.email) else {
        return Ok(page("Enter a valid email address.".into()));
    };
    let (new, again) = (form.password.expose(), form.confirm_password.expose());
    if let Err(e) = password::check_new(new, again, email.as_str()) {
        return Ok(page(e.to_string()));
    }
    let hash = password::hash(
        form.password.clone(),
        HashParams::from_settings(&state.settings.console),
    )
    .await?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    if !staff::use_setup_token(&mut tx, &ids::token_hash(&token), now).await?
        || staff::count(&mut tx).await? > 0
    {
        tx.rollback().await?;
        return Err(used_up());
    }
    let Some(id) = staff::insert(&mut tx, email.as_str(), Role::Admin, &hash, now).await? else {
        tx.rollback().await?;
        return Err(used_up());
    };
    let ip_text = ip.to_string();
    audit::record(
        &mut tx,
        audit::Entry {
            actor: "setup",
            action: "staff_added",
            subject: email.as_str(),
            detail: "First admin created with the one-time setup link",
            new_value: Some("admin"),
            client_ip: Some(&ip_text),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let member = staff::by_id(state.db.pool(), &id).await?.ok_or_else(|| {
        ConsoleError::Web(AppError::Unexpected(anyhow::anyhow!("new admin not found")))
    })?;
    let token = begin_session(state, req, &member, Stage::Active, ip, "the setup link").await?;
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/account/totp"))
        .finish();
    resp.add_cookie(&session::cookie(state, &token))
        .map_err(|e| ConsoleError::Web(AppError::Unexpected(e.into())))?;
    Ok(resp)
}

/// A staff member's link: sets their password (ending any session the account still had),
/// then sends them to sign in with it.
async fn choose_password(
    state: &AppState,
    ip: ClientIp,
    csrf: &CsrfToken,
    token: String,
    member: StaffMember,
    form: SetupForm,
) -> Result<HttpResponse, ConsoleError> {
    let page = |error: String| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ChoosePasswordPage {
                meta: ConsoleMeta::anonymous(state, "Choose your password", &csrf.0),
                token: token.clone(),
                email: member.email.clone(),
                error: Some(error),
            },
        )
    };
    let (new, again) = (form.password.expose(), form.confirm_password.expose());
    if let Err(e) = password::check_new(new, again, &member.email) {
        return Ok(page(e.to_string()));
    }
    let hash = password::hash(
        form.password.clone(),
        HashParams::from_settings(&state.settings.console),
    )
    .await?;
    let now = state.now_ms();
    let mut tx = state.db.begin().await?;
    // Spent in the same transaction: a link used twice at once sets one password, and a link
    // revoked meanwhile (the account disabled, a newer link made) sets none.
    if !staff::use_staff_setup_token(&mut tx, &ids::token_hash(&token), &member.id, now).await? {
        tx.rollback().await?;
        return Err(used_up());
    }
    staff::set_password(&mut tx, &member.id, &hash, now).await?;
    let ip_text = ip.to_string();
    audit::record(
        &mut tx,
        audit::Entry {
            actor: &member.actor(),
            action: "password_set",
            subject: &member.email,
            detail: "Chose a password with a one-time setup link",
            client_ip: Some(&ip_text),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/login?set=1"))
        .finish())
}

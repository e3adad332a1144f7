//! The support console under `/console/`: staff sign-in (password, then a TOTP code where
//! enrolled), the review queue of held orders, order search and full order pages, and the
//! dashboard. Server-rendered like the shop, in the same style.
//!
//! Staff credentials (passwords, two-factor codes, their hashing) are `crate::staff`; the
//! `coinfront staff …` command is in `cli.rs`.
//!
//! Security in one place: sessions live in the database (`session`), every form carries a
//! session-bound CSRF token (`form`), cross-site posts are refused and nothing is cached
//! (`page::headers`), agents get 403 on admin pages (`session::Admin`).

pub mod account;
pub mod actions;
pub mod dashboard;
pub mod disputes;
pub mod error;
pub mod form;
pub mod login;
pub mod notifications;
pub mod orders;
pub mod page;
pub mod refunds;
pub mod review;
pub mod session;
pub mod settings;
pub mod setup;
pub mod support;
pub mod views;

pub use error::ConsoleError;

use crate::staff::{hashing, password, seed_box, totp};
use crate::web::AppError;

use crate::web::state::AppState;
use actix_web::middleware::from_fn;
use actix_web::{http::header, web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(from_fn(page::headers))
            .route("", web::get().to(to_dashboard))
            .route("/", web::get().to(dashboard::show))
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::submit))
            .route("/login/code", web::get().to(login::code_form))
            .route("/login/code", web::post().to(login::code_submit))
            .route("/logout", web::post().to(login::logout))
            .route("/setup/{token}", web::get().to(setup::form))
            .route("/setup/{token}", web::post().to(setup::submit))
            .route("/account", web::get().to(account::show))
            .route(
                "/account/password",
                web::post().to(account::change_password),
            )
            .route(
                "/account/notifications",
                web::get().to(notifications::show_own),
            )
            .route(
                "/account/notifications",
                web::post().to(notifications::save_own),
            )
            .route("/account/totp", web::get().to(account::enrol_form))
            .route("/account/totp", web::post().to(account::enrol))
            .route("/review", web::get().to(review::show))
            .route("/refunds", web::get().to(refunds::show))
            .route("/refunds/{id}", web::post().to(refunds::decide))
            .route("/support", web::get().to(support::show))
            .route("/support/{order}", web::post().to(support::reply))
            .route("/orders", web::get().to(orders::search))
            .route("/orders/{key}", web::get().to(orders::show))
            .route("/orders/{key}/approve", web::post().to(actions::approve))
            .route("/orders/{key}/reject", web::post().to(actions::reject))
            .route(
                "/orders/{key}/reject-fraud",
                web::post().to(actions::reject_fraud),
            )
            .route("/orders/{key}/notes", web::post().to(actions::note))
            .route("/orders/{key}/retry", web::post().to(actions::retry))
            .route(
                "/orders/{key}/dispute-evidence",
                web::post().to(disputes::submit_evidence),
            )
            .route(
                "/orders/{key}/fraud-warning-refund",
                web::post().to(disputes::refund_after_warning),
            )
            .route("/orders/{key}/erase", web::post().to(actions::erase))
            .route(
                "/orders/{key}/resend-receipt",
                web::post().to(actions::resend_receipt),
            )
            .route(
                "/orders/{key}/emails/{email}/resend",
                web::post().to(actions::resend_email),
            )
            // Admin pages (staff, lists, risk rules, prices, history) live under /settings.
            .configure(settings::routes)
            .default_service(web::to(not_found)),
    );
}

async fn to_dashboard() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::Web(AppError::NotFound))
}

/// At start-up: computes the dummy password hash before the first sign-in, clears ended
/// sessions, and logs the one-time setup link when there is no staff yet.
pub async fn on_start(state: &AppState) -> anyhow::Result<()> {
    password::warm_up(password::HashParams::from_settings(&state.settings.console)).await?;
    let now = state.now_ms();
    let s = &state.settings.console;
    crate::db::staff_sessions::delete_expired(
        state.db.pool(),
        now - s.idle_timeout_minutes as i64 * 60_000,
        now - s.absolute_timeout_hours as i64 * 3_600_000,
    )
    .await?;
    crate::db::sign_in_throttle::forget_old(state.db.pool(), now - 86_400_000).await?;
    upgrade_stored_secrets(state).await?;
    setup::announce_if_needed(state).await
}

/// Brings credentials stored by older versions up to today's form: TOTP seeds in clear are
/// sealed (`seed_box`), recovery codes kept as a bare SHA-256 are wrapped in argon2id with
/// their own salt (`totp::hash_recovery_code` hashes that same SHA-256, so they keep working).
/// Each row is only replaced if it still holds what was read, so a concurrent change wins.
pub async fn upgrade_stored_secrets(state: &AppState) -> anyhow::Result<()> {
    use crate::db::staff;
    let pool = state.db.pool();
    let seeds = staff::clear_totp_seeds(pool).await?;
    for (id, clear) in &seeds {
        let Some(seed) = totp::base32_decode(clear) else {
            tracing::warn!(staff = %id, "a stored TOTP seed is not base32; left as it is");
            continue;
        };
        let sealed = seed_box::seal(&state.secrets.totp_key, id, &seed)?;
        staff::seal_totp_seed(pool, id, clear, &sealed).await?;
    }
    let codes = staff::legacy_recovery_codes(pool).await?;
    let params = password::HashParams::from_settings(&state.settings.console);
    for (id, sha256) in &codes {
        let wrapped = hashing::hash(sha256.clone().into_bytes(), params.cost()).await?;
        staff::upgrade_recovery_code(pool, id, sha256, &wrapped).await?;
    }
    if !seeds.is_empty() || !codes.is_empty() {
        tracing::info!(
            totp_seeds = seeds.len(),
            recovery_codes = codes.len(),
            "upgraded stored staff credentials: seeds encrypted, recovery codes salted argon2id"
        );
    }
    Ok(())
}

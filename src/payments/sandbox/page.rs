//! The sandbox provider's hosted payment page (`/sandbox/pay/{session}`), mounted only when
//! the sandbox provider is on. Card numbers and CVCs live only in the request that carries
//! them: never stored, never logged, never echoed back into the page.

use super::cards::{check_cvc, check_expiry, CardNumber};
use super::{Attempt, AttemptResult, SandboxProvider, SandboxSession};
use crate::domain::{Currency, Money};
use crate::startup::AppState;
use crate::web::rate_limit::Action;
use crate::web::{render, AppError, ClientIp, CsrfToken, Meta, SafeForm};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "sandbox_pay.html")]
struct PayPage {
    meta: Meta,
    session_id: String,
    description: String,
    amount: String,
    method: String,
    error: Option<String>,
    expired: bool,
}

#[derive(Deserialize)]
pub struct PayForm {
    method: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvc: String,
}

fn sandbox(state: &AppState) -> Result<&Arc<SandboxProvider>, AppError> {
    state.sandbox.as_ref().ok_or(AppError::NotFound)
}

async fn load(state: &AppState, id: &str) -> Result<SandboxSession, AppError> {
    if id.len() > 100 {
        return Err(AppError::NotFound);
    }
    sandbox(state)?.session(id).await?.ok_or(AppError::NotFound)
}

fn page(
    state: &AppState,
    csrf: &str,
    s: &SandboxSession,
    method: &str,
    error: Option<String>,
) -> PayPage {
    let amount = s
        .currency
        .parse::<Currency>()
        .map(|c| Money::from_minor(s.amount_minor, c).to_string())
        .unwrap_or_else(|_| format!("{} {}", s.amount_minor, s.currency));
    PayPage {
        meta: state.meta("Sandbox payment — TEST MODE", csrf),
        session_id: s.id.clone(),
        description: s.description.clone(),
        amount,
        method: method.to_owned(),
        error,
        expired: s.status == "open" && state.now_ms() > s.expires_at,
    }
}

fn back_to_shop(s: &SandboxSession) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, s.return_url.clone()))
        .finish()
}

pub async fn show(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let s = load(&state, &id).await?;
    if s.status != "open" {
        return Ok(back_to_shop(&s));
    }
    let p = page(&state, &csrf.0, &s, &s.method, None);
    let status = if p.expired {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    Ok(render(status, &p))
}

#[tracing::instrument(name = "sandbox_payment_attempt", skip_all, fields(session = %id.as_str().get(..16).unwrap_or("")))]
pub async fn pay(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    id: web::Path<String>,
    form: SafeForm<PayForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    crate::web::rate_limit::enforce(&state, Action::PaymentAttempt, ip).await?;
    let s = load(&state, &id).await?;
    if s.status != "open" {
        return Ok(back_to_shop(&s));
    }
    if state.now_ms() > s.expires_at {
        return Ok(render(
            StatusCode::GONE,
            &page(&state, &csrf.0, &s, &form.method, None),
        ));
    }
    crate::risk::breaker::check_payment_allowed(&state, &s.order_reference).await?;
    let attempt = match form.method.as_str() {
        "card" => {
            let checked = CardNumber::parse(&form.card_number).and_then(|n| {
                check_expiry(&form.expiry, state.now_ms())?;
                check_cvc(&form.cvc)?;
                Ok(n)
            });
            match checked {
                Ok(n) => Attempt::Card(n),
                Err(e) => {
                    let p = page(&state, &csrf.0, &s, "card", Some(e.to_string()));
                    return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &p));
                }
            }
        }
        "wallet" => Attempt::Wallet,
        "bank_transfer" => Attempt::BankTransfer,
        _ => {
            let p = page(
                &state,
                &csrf.0,
                &s,
                "card",
                Some("Choose a way to pay.".into()),
            );
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    match sandbox(&state)?
        .attempt(&s, attempt, &ip.to_string())
        .await?
    {
        AttemptResult::Succeeded | AttemptResult::Pending | AttemptResult::AlreadyDone => {
            Ok(back_to_shop(&s))
        }
        AttemptResult::Declined(d) => {
            let p = page(&state, &csrf.0, &s, &form.method, Some(d.message().into()));
            Ok(render(StatusCode::PAYMENT_REQUIRED, &p))
        }
    }
}

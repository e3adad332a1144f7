//! The sandbox provider's hosted pages, mounted only when the sandbox provider is on (the shop
//! serves them, so they are routes here; the provider's logic is `payments::sandbox`):
//! `/sandbox/pay/{session}` for the method the buyer chose (the fee shown at checkout was for
//! that method), `/sandbox/paypal/{session}` for the redirect wallet's approval, and the crypto
//! quote with a stand-in for the buyer's wallet. Card numbers and CVCs live only in the request
//! that carries them: never stored, never logged, never echoed back into the page.

use crate::clock::format_utc;
use crate::domain::{Currency, Money};
use crate::payments::sandbox::cards::{check_cvc, check_expiry, CardNumber};
use crate::payments::sandbox::{
    Attempt, AttemptResult, CryptoQuote, SandboxProvider, SandboxSession,
};
use crate::web::rate_limit::Action;
use crate::web::state::AppState;
use crate::web::{render, AppError, ClientIp, CsrfToken, Meta, SafeForm};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::sync::Arc;

pub struct QuoteView {
    pub address: String,
    pub amount: String,
    /// The amount as a plain decimal, prefilled in the TEST MODE wallet.
    pub amount_plain: String,
    pub expires: String,
    pub expired: bool,
}

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
    quote: Option<QuoteView>,
}

#[derive(Template)]
#[template(path = "sandbox_paypal.html")]
struct PaypalPage {
    meta: Meta,
    session_id: String,
    description: String,
    amount: String,
}

#[derive(Deserialize)]
pub struct PayForm {
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    cvc: String,
    #[serde(default)]
    gift_code: String,
}

#[derive(Deserialize)]
pub struct PaypalForm {
    #[serde(default)]
    action: String,
}

#[derive(Deserialize)]
pub struct TransferForm {
    #[serde(default)]
    amount: String,
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

fn money(s: &SandboxSession, minor: i64) -> String {
    s.currency
        .parse::<Currency>()
        .map(|c| Money::from_minor(minor, c).to_string())
        .unwrap_or_else(|_| format!("{minor} {}", s.currency))
}

fn quote_view(state: &AppState, s: &SandboxSession, q: &CryptoQuote) -> QuoteView {
    let units = s
        .currency
        .parse::<Currency>()
        .map(|c| Money::from_minor(q.amount_minor, c).amount_text())
        .unwrap_or_default();
    QuoteView {
        address: q.address.clone(),
        amount: format!("{units} USDC-test"),
        amount_plain: s
            .currency
            .parse::<Currency>()
            .map(|c| Money::from_minor(q.amount_minor, c).to_major().to_string())
            .unwrap_or_default(),
        expires: format_utc(q.expires_at),
        expired: state.now_ms() > q.expires_at,
    }
}

fn page(
    state: &AppState,
    csrf: &str,
    s: &SandboxSession,
    error: Option<String>,
    quote: Option<QuoteView>,
) -> PayPage {
    PayPage {
        meta: state.meta("Sandbox payment — TEST MODE", csrf),
        session_id: s.id.clone(),
        description: s.description.clone(),
        amount: money(s, s.amount_minor),
        method: s.method.clone(),
        error,
        expired: s.status == "open" && state.now_ms() > s.expires_at,
        quote,
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
    let quote = match s.method.as_str() {
        "crypto" => sandbox(&state)?
            .current_crypto_quote(&s.id)
            .await?
            .map(|q| quote_view(&state, &s, &q)),
        _ => None,
    };
    let p = page(&state, &csrf.0, &s, None, quote);
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
    state.enforce(Action::PaymentAttempt, ip).await?;
    let s = load(&state, &id).await?;
    if s.status != "open" {
        return Ok(back_to_shop(&s));
    }
    if state.now_ms() > s.expires_at {
        return Ok(render(
            StatusCode::GONE,
            &page(&state, &csrf.0, &s, None, None),
        ));
    }
    let retry = |message: String| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&state, &csrf.0, &s, Some(message), None),
        )
    };
    let attempt = match s.method.as_str() {
        "card" => {
            let checked = CardNumber::parse(&form.card_number).and_then(|n| {
                check_expiry(&form.expiry, state.now_ms())?;
                check_cvc(&form.cvc)?;
                Ok(n)
            });
            match checked {
                Ok(n) => Attempt::Card(n),
                Err(e) => return Ok(retry(e.to_string())),
            }
        }
        "wallet" => Attempt::Wallet,
        "bank_transfer" => Attempt::BankTransfer,
        "gift_card" if form.gift_code.trim().is_empty() => {
            return Ok(retry("Enter the gift card code.".into()))
        }
        "gift_card" => Attempt::GiftCard(form.gift_code.chars().take(64).collect()),
        "crypto" => {
            let quote = sandbox(&state)?.crypto_quote(&s).await?;
            let view = quote_view(&state, &s, &quote);
            return Ok(render(
                StatusCode::OK,
                &page(&state, &csrf.0, &s, None, Some(view)),
            ));
        }
        // A redirect wallet: the buyer approves on the wallet's own page.
        "paypal" => {
            return Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/sandbox/paypal/{}", s.id)))
                .finish())
        }
        _ => return Ok(retry("This payment method is not available.".into())),
    };
    match sandbox(&state)?
        .attempt(&s, attempt, &ip.to_string())
        .await?
    {
        AttemptResult::Succeeded | AttemptResult::Pending | AttemptResult::AlreadyDone => {
            Ok(back_to_shop(&s))
        }
        AttemptResult::Declined(d) => {
            let p = page(&state, &csrf.0, &s, Some(d.message().into()), None);
            Ok(render(StatusCode::PAYMENT_REQUIRED, &p))
        }
    }
}

/// The redirect wallet's own approval page.
pub async fn paypal_show(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let s = load(&state, &id).await?;
    if s.status != "open" || s.method != "paypal" {
        return Ok(back_to_shop(&s));
    }
    let p = PaypalPage {
        meta: state.meta("PayPal (sandbox) — TEST MODE", &csrf.0),
        session_id: s.id.clone(),
        description: s.description.clone(),
        amount: money(&s, s.amount_minor),
    };
    Ok(render(StatusCode::OK, &p))
}

/// Approve pays and returns to the shop; cancel returns to the shop unpaid.
pub async fn paypal_decide(
    state: web::Data<AppState>,
    ip: ClientIp,
    id: web::Path<String>,
    form: SafeForm<PaypalForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    state.enforce(Action::PaymentAttempt, ip).await?;
    let s = load(&state, &id).await?;
    if s.status != "open" || s.method != "paypal" || form.action != "approve" {
        return Ok(back_to_shop(&s));
    }
    sandbox(&state)?
        .attempt(&s, Attempt::Paypal, &ip.to_string())
        .await?;
    Ok(back_to_shop(&s))
}

/// TEST MODE only: the buyer's crypto wallet sends `amount` to the quoted address.
pub async fn crypto_send(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    id: web::Path<String>,
    form: SafeForm<TransferForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    let s = load(&state, &id).await?;
    if s.status != "open" || s.method != "crypto" {
        return Ok(back_to_shop(&s));
    }
    // An unknown currency (not possible for sessions this shop made) counts in cents.
    let currency = s.currency.parse::<Currency>().unwrap_or(Currency::Usd);
    let amount = Money::parse_major_truncated(&form.amount, currency).map(|m| m.minor());
    let Some(amount) = amount else {
        let quote = sandbox(&state)?
            .current_crypto_quote(&s.id)
            .await?
            .map(|q| quote_view(&state, &s, &q));
        return Ok(render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(
                &state,
                &csrf.0,
                &s,
                Some("Enter the amount to send.".into()),
                quote,
            ),
        ));
    };
    match sandbox(&state)?.crypto_transfer(&s, amount).await? {
        Some(_) => Ok(back_to_shop(&s)),
        None => Ok(render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(
                &state,
                &csrf.0,
                &s,
                Some("Ask for a payment address first.".into()),
                None,
            ),
        )),
    }
}

//! Checkout: `POST /checkout` checks the form and the TikTok account and shows the confirm
//! page; `POST /checkout/confirm` has `orders::checkout` create the order and sends the buyer
//! to the provider's hosted payment page; `GET /checkout/return` brings the buyer back to their
//! order, and `GET /checkout/confirm` (the hosted page's "back", Stripe's `cancel_url`) shows
//! the confirm page of the order they left unpaid, to pay it or change it.

use super::catalog::{chosen_currency, parse_amount, CatalogPage, CheckoutValues, FieldErrors};
use super::quote::{self, Quote};
use crate::db::orders::{self, Order};
use crate::domain::order_token::order_token;
use crate::domain::{
    ids, BuyerEmail, Coins, Currency, Money, OrderStatus, PaymentMethod, TikTokUsername,
};
use crate::fulfillment::{SupplierError, TikTokAccount};
use crate::orders::checkout::{self, charge_for, Charge, CheckoutError, Confirmed, Screened};
use crate::payments::{Session, SessionRequest};
use crate::web::rate_limit::Action;
use crate::web::state::AppState;
use crate::web::{render, AppError, ClientIp, CsrfToken, Meta, SafeForm};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::time::Duration;

/// A confirm page stays valid this long.
const QUOTE_MAX_AGE_MS: i64 = 30 * 60 * 1000;
const RETURN_COOKIE: &str = "cf_return";

#[derive(Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    package: String,
    #[serde(default)]
    coins: String,
    #[serde(default)]
    tiktok_username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    payment_method: String,
    /// The "I am old enough" checkbox: present only when ticked.
    #[serde(default)]
    age_confirmed: Option<String>,
    /// Present when the buyer pressed "Check price" at the custom amount rather than
    /// "Continue": the page comes back with that amount priced and everything else kept.
    #[serde(default)]
    check_price: Option<String>,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    meta: Meta,
    quote: String,
    account: TikTokAccount,
    coins: String,
    subtotal: String,
    fee: Option<String>,
    total: String,
    total_minor: i64,
    currency: String,
    per_coin: String,
    method: String,
    email: String,
    /// Back from the payment page without paying: said above the order.
    notice: Option<String>,
}

/// Looks the account up, retrying a transient failure a couple of times before giving up.
async fn lookup(
    state: &AppState,
    username: &TikTokUsername,
) -> Result<Option<TikTokAccount>, SupplierError> {
    let mut last = None;
    for attempt in 0..3u64 {
        match state.supplier.lookup_account(username).await {
            Err(SupplierError::Transient(e)) => {
                tracing::info!(attempt, error = %e, "account look-up failed; retrying");
                last = Some(SupplierError::Transient(e));
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| SupplierError::Transient("no answer".into())))
}

#[tracing::instrument(name = "checkout", skip_all)]
pub async fn submit(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    form: SafeForm<CheckoutForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    // One snapshot of the prices for the whole request.
    let live = state.live.current();
    if form.check_price.is_some() {
        return Ok(price_check(&state, live, &csrf.0, form));
    }
    let values = CheckoutValues {
        package: form.package.clone(),
        coins: form.coins.clone(),
        tiktok_username: form.tiktok_username.clone(),
        email: form.email.clone(),
        payment_method: form.payment_method.clone(),
        age_confirmed: form.age_confirmed.is_some(),
    };
    let form_again = |currency: Option<Currency>, errors: FieldErrors| {
        let currency = currency.unwrap_or(live.catalog.base_currency());
        let page = CatalogPage::new(&state, live.clone(), &csrf.0, currency, values, errors);
        render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let checked = match parse_form(&state, &live.catalog, &form) {
        Parsed::Valid(checked) => checked,
        Parsed::Invalid(currency, errors) => return Ok(form_again(currency, errors)),
    };
    state.enforce(Action::AccountLookup, ip).await?;
    let account = match find_account(&state, &checked.username).await {
        Ok(account) => account,
        Err(message) => {
            let errors = FieldErrors {
                tiktok_username: Some(message),
                ..FieldErrors::default()
            };
            return Ok(form_again(Some(checked.currency), errors));
        }
    };
    let page = confirm_page(&state, &live.catalog, &csrf.0, &checked, account)?;
    Ok(render(StatusCode::OK, &page))
}

/// The checkout form with every field valid.
struct Checked {
    currency: Currency,
    coins: Coins,
    username: TikTokUsername,
    email: BuyerEmail,
    method: PaymentMethod,
}

enum Parsed {
    Valid(Checked),
    /// What is wrong at each field, with the currency (when that one was valid) to show the
    /// form again in.
    Invalid(Option<Currency>, FieldErrors),
}

/// Parses every field, or says what is wrong at each.
fn parse_form(state: &AppState, catalog: &crate::domain::Catalog, form: &CheckoutForm) -> Parsed {
    let mut errors = FieldErrors::default();
    let currency = chosen_currency(catalog, Some(&form.currency))
        .map_err(|e| errors.currency = Some(e))
        .ok();
    let coins = parse_amount(catalog, &form.package, &form.coins)
        .map_err(|e| errors.amount = Some(e))
        .ok();
    let username = TikTokUsername::parse(&form.tiktok_username)
        .map_err(|e| errors.tiktok_username = Some(e.to_string()))
        .ok();
    let email = BuyerEmail::parse(&form.email)
        .map_err(|e| errors.email = Some(e.to_string()))
        .ok();
    let offered = state
        .settings
        .payments
        .methods_for(currency.unwrap_or(catalog.base_currency()));
    let method = form
        .payment_method
        .parse::<PaymentMethod>()
        .map_err(|e| e.to_string())
        .and_then(|m| {
            offered.contains(&m).then_some(m).ok_or_else(|| {
                "That way to pay is not offered in this currency. Choose another.".to_owned()
            })
        })
        .map_err(|e| errors.payment_method = Some(e))
        .ok();
    if form.age_confirmed.is_none() {
        errors.age = Some(format!(
            "Please confirm you are {} or older. TikTok coins are for adults: the law and TikTok's own terms require it, and we record your confirmation with the order.",
            state.settings.shop.min_age
        ));
    }
    match (
        currency,
        coins,
        username,
        email,
        method,
        form.age_confirmed.is_some(),
    ) {
        (Some(currency), Some(coins), Some(username), Some(email), Some(method), true) => {
            Parsed::Valid(Checked {
                currency,
                coins,
                username,
                email,
                method,
            })
        }
        _ => Parsed::Invalid(currency, errors),
    }
}

/// The TikTok account the coins go to, or what to tell the buyer at the username field.
async fn find_account(
    state: &AppState,
    username: &TikTokUsername,
) -> Result<TikTokAccount, String> {
    match lookup(state, username).await {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(format!(
            "We could not find a TikTok account called {username}. Check the spelling — it is the name after the @ on the profile."
        )),
        Err(e) => {
            tracing::warn!(error = %e, "account look-up failed");
            Err("We could not reach TikTok to check this account just now. Please try again in a moment.".into())
        }
    }
}

/// The confirm page: the charge, and the sealed quote that `confirm` will order from.
fn confirm_page(
    state: &AppState,
    catalog: &crate::domain::Catalog,
    csrf: &str,
    c: &Checked,
    account: TikTokAccount,
) -> Result<ConfirmPage, AppError> {
    let unpriceable = || AppError::BadRequest("That amount cannot be priced.".into());
    let price = catalog.quote(c.coins, c.currency).ok_or_else(unpriceable)?;
    let charge = charge_for(state, catalog, &price, c.method).ok_or_else(unpriceable)?;
    let q = Quote {
        idempotency_key: ids::new_secret_token(),
        session: quote::session_binding(csrf),
        coins: c.coins.get(),
        currency: c.currency.code().into(),
        tiktok_username: c.username.as_str().into(),
        account_id: account.account_id.clone(),
        display_name: account.display_name.clone(),
        email: c.email.as_str().into(),
        payment_method: c.method.as_str().into(),
        min_age: state.settings.shop.min_age,
        total_minor: charge.total.minor(),
        issued_at: state.now_ms(),
    };
    Ok(ConfirmPage {
        meta: state.meta("Check and pay", csrf),
        quote: quote::seal(&state.secrets.cookie_key, &q),
        account,
        coins: c.coins.to_string(),
        subtotal: price.total.to_string(),
        fee: (charge.fee.minor() > 0).then(|| charge.fee.to_string()),
        total: charge.total.to_string(),
        total_minor: charge.total.minor(),
        currency: c.currency.code().into(),
        per_coin: charge.per_coin_text(c.coins),
        method: c.method.label().into(),
        email: c.email.as_str().into(),
        notice: None,
    })
}

/// "Check price" at the custom amount: the form again with that amount priced (or its error at
/// the Custom box), everything the buyer typed kept, and nothing else checked yet.
fn price_check(
    state: &AppState,
    live: std::sync::Arc<crate::live_settings::Snapshot>,
    csrf: &str,
    form: CheckoutForm,
) -> HttpResponse {
    let mut errors = FieldErrors::default();
    let currency = chosen_currency(&live.catalog, Some(&form.currency))
        .map_err(|e| errors.currency = Some(e))
        .unwrap_or(live.catalog.base_currency());
    let values = CheckoutValues {
        package: "custom".into(),
        coins: form.coins,
        tiktok_username: form.tiktok_username,
        email: form.email,
        payment_method: form.payment_method,
        age_confirmed: form.age_confirmed.is_some(),
    };
    let page = CatalogPage::new(state, live, csrf, currency, values, errors);
    let status = if page.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(status, &page)
}

#[derive(Deserialize)]
pub struct BackForm {
    #[serde(default)]
    quote: String,
}

/// "No, go back and change it" on the confirm page: the form again with everything the buyer
/// chose, read from the sealed quote the confirm page carries (so nothing personal goes into
/// a URL).
pub async fn back_to_form(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    form: SafeForm<BackForm>,
) -> HttpResponse {
    let SafeForm(form) = form;
    let live = state.live.current();
    // An old page still brings the buyer back to the form; only the charge needs a fresh quote.
    // A quote from another browser opens an empty form: it must not show someone's email.
    let Some(q) = quote::open(
        &state.secrets.cookie_key,
        &form.quote,
        state.now_ms(),
        i64::MAX,
    )
    .filter(|q| quote::belongs_to(q, &csrf.0)) else {
        return see_other("/");
    };
    let currency =
        chosen_currency(&live.catalog, Some(&q.currency)).unwrap_or(live.catalog.base_currency());
    let is_package = live.catalog.packages().iter().any(|p| p.get() == q.coins);
    let values = CheckoutValues {
        package: if is_package {
            q.coins.to_string()
        } else {
            "custom".into()
        },
        coins: if is_package {
            String::new()
        } else {
            q.coins.to_string()
        },
        tiktok_username: q.tiktok_username,
        email: q.email,
        payment_method: q.payment_method,
        age_confirmed: true,
    };
    let page = CatalogPage::new(
        &state,
        live,
        &csrf.0,
        currency,
        values,
        FieldErrors::default(),
    );
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    quote: String,
    /// What the page showed the buyer; compared, never charged.
    #[serde(default)]
    shown_total_minor: String,
    #[serde(default)]
    shown_currency: String,
}

#[tracing::instrument(name = "checkout_confirm", skip_all)]
pub async fn confirm(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    form: SafeForm<ConfirmForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    state.enforce(Action::Checkout, ip).await?;
    let now = state.now_ms();
    let q = quote::open(&state.secrets.cookie_key, &form.quote, now, QUOTE_MAX_AGE_MS).ok_or_else(|| {
        AppError::BadRequest(
            "This confirmation page is out of date. Please start your order again — nothing was charged.".into(),
        )
    })?;
    if !quote::belongs_to(&q, &csrf.0) {
        // A quote copied out of another browser: it must not lead to that buyer's order.
        tracing::warn!("refused a confirm page submitted from another browser session");
        return Err(AppError::Forbidden(
            "This confirmation page was opened in another browser. Please start your order again here — nothing was charged.".into(),
        ));
    }
    // The payment session is opened before the order is written, so that the order is written
    // once, with its session: one commit at confirm. A double submit that loses the race
    // leaves its session unused (it expires with the order's quote).
    let mut opened = None;
    let order = match orders::by_idempotency_key(state.db.pool(), &q.idempotency_key).await? {
        Some(existing) => existing,
        None => {
            let mut screened = screen_order(&state, &q, &form, ip, now).await?;
            if !screened.declined() {
                let session = open_session(&state, &screened.order).await?;
                screened.order.provider_session_id = Some(session.id.clone());
                opened = Some(session);
            }
            checkout::place(&state, screened)
                .await
                .map_err(checkout_error)?
        }
    };
    let token = order_token(&state.secrets.cookie_key, &order.idempotency_key);
    match order.status {
        OrderStatus::AwaitingPayment => {}
        OrderStatus::Declined => return Ok(declined_page(&state)),
        _ => return Ok(see_other(&format!("/orders/{token}"))),
    }
    let redirect = match (&order.provider_session_id, opened) {
        (Some(id), Some(session)) if *id == session.id => session.redirect_url,
        // Paying again (back from the hosted page, or a double submit): the session the order
        // has, resumed where the provider says it is still open, never a second one.
        (Some(id), _) => state.provider.session_url(id),
        // An order written before sessions were opened first, left without one.
        (None, _) => {
            let session = open_session(&state, &order).await?;
            orders::set_provider_session(state.db.pool(), &order.id, &session.id, now).await?;
            session.redirect_url
        }
    };
    // Read on the way back from the provider: `/checkout/return` (paid) and `GET
    // /checkout/confirm` (left unpaid).
    let cookie = Cookie::build(RETURN_COOKIE, token)
        .path("/checkout")
        .http_only(true)
        .secure(state.settings.http.effective_secure_cookies())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::days(1))
        .finish();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, redirect))
        .cookie(cookie)
        .finish())
}

/// The hosted payment page for `order`, opened at the provider.
async fn open_session(state: &AppState, order: &Order) -> Result<Session, AppError> {
    state
        .provider
        .create_session(&SessionRequest {
            order_reference: order.id.clone(),
            description: format!(
                "{} TikTok coins for @{} — order {}",
                order.coins, order.tiktok_username, order.order_number
            ),
            amount: order.amount,
            method: order.payment_method,
            return_url: format!("{}/checkout/return", state.base_url),
            webhook_url: format!("{}/webhooks/payments/{}", state.base_url, state.provider.name()),
            expires_at: order.expires_at,
            created_at: order.created_at,
            email: order.email.clone(),
            // The confirm page again, for this order (found by the cookie set below): pay it
            // or change it.
            cancel_url: format!("{}/checkout/confirm", state.base_url),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not create a payment session");
            AppError::Unavailable(
                "The payment page could not be opened just now. Nothing was charged; please try again.".into(),
            )
        })
}

fn stale_confirm() -> AppError {
    AppError::BadRequest(
        "This confirmation page is out of date. Please start your order again.".into(),
    )
}

/// What the buyer is told when the confirmed order cannot be made.
fn checkout_error(e: CheckoutError) -> AppError {
    match e {
        CheckoutError::Database(e) => e.into(),
        CheckoutError::Unpriceable => stale_confirm(),
        // An admin changed the prices after the confirm page was shown.
        CheckoutError::PriceChanged { coins, total } => AppError::BadRequest(format!(
            "The shop's prices changed while you were checking out: these {} coins now cost {}. Nothing was charged. Go back to the shop to see the new price and order again.",
            coins, total
        )),
        e => AppError::Unexpected(e.into()),
    }
}

/// Parses the confirm page into the order the buyer confirmed, priced and screened (not yet
/// written).
async fn screen_order(
    state: &AppState,
    q: &Quote,
    form: &ConfirmForm,
    ip: ClientIp,
    now: i64,
) -> Result<Screened, AppError> {
    let confirmed = Confirmed {
        idempotency_key: q.idempotency_key.clone(),
        coins: Coins::new(q.coins),
        currency: q.currency.parse().map_err(|_| stale_confirm())?,
        method: q.payment_method.parse().map_err(|_| stale_confirm())?,
        account: TikTokAccount {
            username: q.tiktok_username.clone(),
            account_id: q.account_id.clone(),
            display_name: q.display_name.clone(),
        },
        email: q.email.clone(),
        min_age: q.min_age,
        age_confirmed_at: q.issued_at,
        shown_total_minor: q.total_minor,
        client_amount_minor: form.shown_total_minor.trim().parse().ok(),
        client_currency: Some(form.shown_currency.trim().chars().take(8).collect())
            .filter(|s: &String| !s.is_empty()),
        client_ip: ip.to_string(),
    };
    checkout::screen(state, confirmed, now)
        .await
        .map_err(checkout_error)
}

#[derive(Template)]
#[template(path = "declined.html")]
struct DeclinedPage {
    meta: Meta,
}

/// Deliberately neutral: nothing here tells a fraudster which signal tripped.
fn declined_page(state: &AppState) -> HttpResponse {
    render(
        StatusCode::OK,
        &DeclinedPage {
            meta: state.meta("Order not accepted", ""),
        },
    )
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .finish()
}

/// `GET /checkout/confirm`: back from the provider's page without paying (Stripe's
/// `cancel_url`). The browser that started the checkout carries its order's token in a cookie:
/// an order still waiting for payment gets its confirm page again — the account, the amount,
/// the way to pay — whose "pay" resumes the same payment page and whose "change" goes back to
/// the form with everything filled in (a changed order is a new one; this one then expires
/// unpaid). Anything else goes to the order's page.
pub async fn confirm_again(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let token = req
        .cookie(RETURN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| crate::domain::order_token::well_formed(t));
    let order = match &token {
        Some(t) => orders::by_token_hash(state.db.pool(), &ids::token_hash(t)).await?,
        None => None,
    };
    let (Some(token), Some(order)) = (token, order) else {
        return Err(AppError::BadRequest(format!(
            "Nothing was charged. We could not find an order waiting for payment in this browser: start again from the shop, or open your order with the link in the email from {}, or under \"Find my order\".",
            state.settings.shop_name
        )));
    };
    let now = state.now_ms();
    if order.status != OrderStatus::AwaitingPayment || order.expires_at <= now {
        return Ok(see_other(&format!("/orders/{token}")));
    }
    let fee = Money::from_minor(order.fee_minor, order.amount.currency());
    let charge = Charge {
        fee,
        total: order.amount,
    };
    let subtotal = order.amount.checked_sub(fee).unwrap_or(order.amount);
    // The quote of the order itself (its idempotency key): confirming it again finds the order
    // instead of making another, and "change" fills the form from it.
    let q = Quote {
        idempotency_key: order.idempotency_key.clone(),
        session: quote::session_binding(&csrf.0),
        coins: order.coins.get(),
        currency: order.amount.currency().code().into(),
        tiktok_username: order.tiktok_username.clone(),
        account_id: order.tiktok_account_id.clone(),
        display_name: order.tiktok_display_name.clone(),
        email: order.email.clone(),
        payment_method: order.payment_method.as_str().into(),
        min_age: order
            .min_age
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(state.settings.shop.min_age),
        total_minor: order.amount.minor(),
        issued_at: now,
    };
    let page = ConfirmPage {
        meta: state.meta("Check and pay", &csrf.0),
        quote: quote::seal(&state.secrets.cookie_key, &q),
        account: TikTokAccount {
            username: order.tiktok_username.clone(),
            account_id: order.tiktok_account_id.clone(),
            display_name: order.tiktok_display_name.clone(),
        },
        coins: order.coins.to_string(),
        subtotal: subtotal.to_string(),
        fee: (order.fee_minor > 0).then(|| fee.to_string()),
        total: order.amount.to_string(),
        total_minor: order.amount.minor(),
        currency: order.amount.currency().code().into(),
        per_coin: charge.per_coin_text(order.coins),
        method: order.payment_method.label().into(),
        email: order.email.clone(),
        notice: Some(format!(
            "You left the payment page before paying, so nothing was charged. Order {} is kept for you until {}: pay it below, or change it.",
            order.order_number,
            crate::clock::format_utc(order.expires_at)
        )),
    };
    Ok(render(StatusCode::OK, &page))
}

/// Back from the provider: the browser that started the checkout carries its order's token in
/// a cookie scoped to this path. Any other browser is told where the link is.
pub async fn back_from_provider(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    if let Some(c) = req.cookie(RETURN_COOKIE) {
        if crate::domain::order_token::well_formed(c.value()) {
            return Ok(see_other(&format!("/orders/{}", c.value())));
        }
    }
    Err(AppError::BadRequest(format!(
        "Thank you. We could not match this browser to your order; the link to it is in the email from {} — or find it with your order number and email under \"Find my order\".",
        state.settings.shop_name
    )))
}

/// `GET /checkout/stripe/{session}`: resume paying on Stripe's hosted page (the order page's
/// "pay" link). Stripe's page URL is asked from Stripe, which alone knows it.
pub async fn resume_stripe(
    state: web::Data<AppState>,
    session: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let Some(stripe) = &state.stripe else {
        return Err(AppError::NotFound);
    };
    match stripe.open_session_url(&session).await {
        Ok(Some(url)) => Ok(see_other(&url)),
        Ok(None) => Err(AppError::BadRequest(
            "This payment page has closed. If you paid, your order page shows it; otherwise please order again — nothing was charged.".into(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "could not look up a Stripe session");
            Err(AppError::Unavailable(
                "The payment page could not be opened just now. Nothing was charged; please try again.".into(),
            ))
        }
    }
}

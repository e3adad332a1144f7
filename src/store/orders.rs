//! The buyer's private order page (`/orders/{token}`) and the order look-up.

use crate::clock::format_utc;
use crate::db::refunds as refund_rows;
use crate::db::{events, orders, payments};
use crate::domain::order_token as tokens;
use crate::domain::{ids, OrderStatus};
use crate::orders::payment_events::method_summary;
use crate::web::rate_limit::Action;
use crate::web::state::AppState;
use crate::web::{render, AppError, ClientIp, CsrfToken, Meta, SafeForm};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct RequestView {
    pub when: String,
    pub reason: String,
    pub message: String,
    pub status: String,
    pub decision: Option<String>,
}

fn request_status(status: &str) -> &'static str {
    match status {
        "open" => "Waiting for our support team (usually within one business day)",
        "approved" => "Approved — the refund is on its way",
        "failed" => "Approved — we are retrying the refund",
        "refunded" => "Refunded",
        "denied" => "Not refunded",
        _ => "Received",
    }
}

pub struct TimelineEntry {
    pub time: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    meta: Meta,
    order_number: String,
    coins: String,
    username: String,
    display_name: String,
    initial: String,
    amount: String,
    method: String,
    email: String,
    status_label: String,
    status_class: &'static str,
    next_step: String,
    pay_url: Option<String>,
    /// While something is about to happen, the page reloads itself every this many seconds (no
    /// JavaScript needed), so the buyer sees the delivery as soon as it happens.
    refresh: Option<u32>,
    /// The page would update itself (so it offers to stop, or to start again).
    updates_stoppable: bool,
    created: String,
    token: String,
    /// The buyer may ask for a refund (a paid order with no request under way).
    can_request_refund: bool,
    refund_requests: Vec<RequestView>,
    reasons: Vec<(&'static str, &'static str)>,
    refund_notice: Option<String>,
    refund_error: Option<String>,
    refund_values: (String, String),
    timeline: Vec<TimelineEntry>,
    /// When the coins are expected, from the shop's recent delivery times.
    expected: Option<String>,
    /// The order is well past the usual delivery time.
    late: bool,
    messages: Vec<MessageView>,
    message_error: Option<String>,
    message_value: String,
}

pub struct MessageView {
    pub who: String,
    pub when: String,
    pub body: String,
    pub from_buyer: bool,
}

/// What a page render needs besides the order: notices and the values of a form sent back.
#[derive(Default)]
struct Extras {
    refund_notice: Option<String>,
    refund_error: Option<String>,
    refund_values: (String, String),
    message_notice: bool,
    message_error: Option<String>,
    message_value: String,
    /// The buyer asked the page not to update itself.
    refresh_off: bool,
}

fn status_class(s: OrderStatus) -> &'static str {
    use OrderStatus::*;
    match s {
        Delivered => "good",
        AwaitingPayment | Paid | Queued | InReview | Fulfilling => "wait",
        _ => "bad",
    }
}

fn next_step(s: OrderStatus, expires: &str) -> String {
    use OrderStatus::*;
    match s {
        AwaitingPayment => format!("Waiting for your payment. The payment page stays open until {expires}."),
        Paid | Queued => "Your payment arrived. The coins are on their way to your TikTok account — usually within minutes.".into(),
        // No promise of its own here: the expected time below is the one the page gives.
        InReview => "Your payment arrived. Before sending the coins we are making a routine check. You don't need to do anything: we email you as soon as the coins are on their way.".into(),
        Fulfilling => "Sending the coins to your TikTok account now.".into(),
        Delivered => "Done — the coins are in your TikTok account. Open TikTok and check your coin balance.".into(),
        Blocked | Rejected => "We could not complete this order. Your payment is being refunded in full to the way you paid.".into(),
        FulfillmentFailed => "We could not deliver the coins. Your payment is being refunded in full; you will get an email when it is done.".into(),
        Refunded => "Your payment was refunded in full.".into(),
        PartiallyRefunded => "Part of your payment was refunded.".into(),
        Expired => "This order was not paid in time, so nothing was charged. You can start a new order at any time.".into(),
        Declined => "We could not accept this order. Nothing was charged.".into(),
        // Neutral: whoever reads this may be the card's owner, who did not place the order.
        Disputed => "Your bank has asked us about this payment, and we are answering with the details of the order. There is nothing you need to do here; your bank will tell you the outcome.".into(),
    }
}

/// What the buyer reads for each event. Internal details (risk reasons, staff notes) stay out.
fn describe(e: &events::OrderEvent) -> Option<String> {
    match (e.kind.as_str(), e.to_status.as_deref()) {
        ("order_created", _) => Some("Order placed".into()),
        ("payment_failed", _) => Some(failed_payment_text(&e.detail)),
        ("payment_pending", _) => Some(e.detail.clone()),
        ("refund_succeeded", _) => Some(e.detail.clone()),
        ("status_changed", Some(to)) => {
            let status: OrderStatus = to.parse().ok()?;
            Some(match status {
                OrderStatus::Paid => e.detail.clone(),
                OrderStatus::InReview => "Routine check before delivery".into(),
                OrderStatus::Queued => "Queued for delivery".into(),
                other => other.label().into(),
            })
        }
        _ => None,
    }
}

/// A failed attempt as the buyer reads it. The event's detail ends in the provider's code
/// (`Visa •••• 0002 declined (card_declined)`), which is for staff; the buyer gets words.
fn failed_payment_text(detail: &str) -> String {
    let (what, code) = match detail.rsplit_once(" declined (") {
        Some((what, code)) => (what, code.trim_end_matches(')')),
        None => (detail, ""),
    };
    let why = match code {
        "insufficient_funds" => "not enough funds",
        "expired_card" => "the card has expired",
        "incorrect_cvc" => "the security code was wrong",
        "processing_error" => "it could not be processed",
        "invalid_code" => "the gift card code is not valid",
        "insufficient_balance" => "the gift card balance is too low",
        "underpaid" => "less than the quoted amount arrived, so it is not a payment",
        _ => "declined",
    };
    format!("Payment not accepted: {what} — {why}")
}

#[derive(Deserialize)]
pub struct ShowQuery {
    refund: Option<String>,
    message: Option<String>,
    /// `off` stops the page's automatic updates (WCAG 2.2.1: a way to turn off a time limit).
    refresh: Option<String>,
}

async fn order_for_token(state: &AppState, token: &str) -> Result<orders::Order, AppError> {
    if !tokens::well_formed(token) {
        return Err(AppError::NotFound);
    }
    orders::by_token_hash(state.db.pool(), &ids::token_hash(token))
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn show(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    token: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, AppError> {
    let order = order_for_token(&state, &token).await?;
    let notice = (query.refund.as_deref() == Some("requested")).then(|| {
        "We received your refund request and emailed you a copy. Our support team answers within one business day.".to_owned()
    });
    let extras = Extras {
        refund_notice: notice,
        message_notice: query.message.as_deref() == Some("sent"),
        refresh_off: query.refresh.as_deref() == Some("off"),
        ..Default::default()
    };
    order_page(&state, &csrf.0, &token, order, extras).await
}

async fn order_page(
    state: &AppState,
    csrf: &str,
    token: &str,
    order: orders::Order,
    extras: Extras,
) -> Result<HttpResponse, AppError> {
    let status = if extras.refund_error.is_some() || extras.message_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = build_page(state, csrf, token, order, extras).await?;
    let mut resp = render(status, &page);
    // A private page: never cached by a shared or back-button cache.
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

async fn build_page(
    state: &AppState,
    csrf: &str,
    token: &str,
    order: orders::Order,
    extras: Extras,
) -> Result<OrderPage, AppError> {
    let pool = state.db.pool();
    let (events, payments, requests, conversation) = tokio::try_join!(
        events::for_order(pool, &order.id),
        payments::for_order(pool, &order.id),
        refund_rows::for_order(pool, &order.id),
        crate::db::support::conversation(pool, &order.id)
    )?;
    let refund_notice = extras.refund_notice.or_else(|| {
        extras.message_notice.then(|| {
            "Your message was sent. We answer within one business day, by email and here."
                .to_owned()
        })
    });
    let account = crate::fulfillment::TikTokAccount {
        account_id: order.tiktok_account_id.clone(),
        username: order.tiktok_username.clone(),
        display_name: order.tiktok_display_name.clone(),
    };
    let (expected, late) = expected_delivery(state, &order).await?;
    let refresh_seconds = refresh_seconds(&order, &payments);
    Ok(OrderPage {
        meta: state.meta(format!("Order {}", order.order_number), csrf),
        order_number: order.order_number.clone(),
        coins: order.coins.to_string(),
        username: order.tiktok_username.clone(),
        display_name: order.tiktok_display_name.clone(),
        initial: account.initial(),
        amount: order.amount.to_string(),
        method: paid_with(&order, &payments),
        email: order.email.clone(),
        status_label: order.status.label().into(),
        status_class: status_class(order.status),
        next_step: next_step(order.status, &format_utc(order.expires_at)),
        pay_url: pay_url(state, &order),
        refresh: refresh_seconds.filter(|_| !extras.refresh_off),
        updates_stoppable: refresh_seconds.is_some(),
        created: format_utc(order.created_at),
        timeline: timeline(&events),
        token: token.to_owned(),
        can_request_refund: can_request_refund(&order, &requests),
        refund_requests: requests.iter().map(RequestView::of).collect(),
        reasons: refund_rows::REASONS.to_vec(),
        refund_notice,
        refund_error: extras.refund_error,
        refund_values: extras.refund_values,
        expected,
        late,
        messages: message_views(&conversation, &state.settings.shop_name),
        message_error: extras.message_error,
        message_value: extras.message_value,
    })
}

/// How the order was paid ("Visa •••• 4242"): the successful payment, else the latest
/// attempt, else the method chosen at checkout.
fn paid_with(order: &orders::Order, payments: &[payments::PaymentRecord]) -> String {
    payments
        .iter()
        .rev()
        .find(|p| p.status == "succeeded")
        .or(payments.last())
        .map(|p| method_summary(&p.method, p.card_brand.as_deref(), p.card_last4.as_deref()))
        .unwrap_or_else(|| order.payment_method.label().into())
}

fn timeline(events: &[events::OrderEvent]) -> Vec<TimelineEntry> {
    events
        .iter()
        .filter_map(|e| {
            describe(e).map(|text| TimelineEntry {
                time: format_utc(e.at),
                text,
            })
        })
        .collect()
}

/// The provider's payment page while the order can still be paid.
fn pay_url(state: &AppState, order: &orders::Order) -> Option<String> {
    let payable = order.status == OrderStatus::AwaitingPayment && state.now_ms() < order.expires_at;
    let session = order.provider_session_id.as_deref().filter(|_| payable)?;
    Some(state.provider.session_url(session))
}

fn message_views(
    conversation: &[crate::db::support::Message],
    shop_name: &str,
) -> Vec<MessageView> {
    conversation
        .iter()
        .map(|m| MessageView {
            who: if m.from_buyer() {
                "You".into()
            } else {
                format!("{shop_name} support")
            },
            when: format_utc(m.created_at),
            body: m.body.clone(),
            from_buyer: m.from_buyer(),
        })
        .collect()
}

/// When the coins of a paid, not yet delivered order are expected, and whether it is late.
async fn expected_delivery(
    state: &AppState,
    order: &orders::Order,
) -> Result<(Option<String>, bool), AppError> {
    let waiting = matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::Queued | OrderStatus::Fulfilling | OrderStatus::InReview
    );
    let (true, Some(paid_at)) = (waiting, order.paid_at) else {
        return Ok((None, false));
    };
    let typical = crate::store::delivery::typical_minutes(state).await?;
    let by = paid_at + typical as i64 * 60_000;
    let text = format!(
        "Expected by about {} ({} of payment, going by our recent deliveries)",
        format_utc(by),
        crate::store::delivery::describe_minutes(typical)
    );
    Ok((
        Some(text),
        state.now_ms() > crate::store::delivery::late_after(paid_at, typical),
    ))
}

/// A paid order with money left and no request under way.
fn can_request_refund(order: &orders::Order, requests: &[refund_rows::RefundRequest]) -> bool {
    let under_way = requests
        .iter()
        .any(|r| matches!(r.status.as_str(), "open" | "approved" | "failed"));
    order.status.is_paid()
        && order.status != OrderStatus::Refunded
        && !under_way
        && order.refunded_minor < order.amount.minor()
}

impl RequestView {
    fn of(r: &refund_rows::RefundRequest) -> Self {
        RequestView {
            when: format_utc(r.created_at),
            reason: refund_rows::reason_label(&r.reason).into(),
            message: r.message.clone(),
            status: request_status(&r.status).into(),
            decision: r.decision_message.clone(),
        }
    }
}

/// While something is about to happen the page reloads itself; a held order waits for a
/// person, so it checks less often.
fn refresh_seconds(order: &orders::Order, payments: &[payments::PaymentRecord]) -> Option<u32> {
    if order.status == OrderStatus::InReview {
        Some(60)
    } else if matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::Queued | OrderStatus::Fulfilling
    ) || (order.status == OrderStatus::AwaitingPayment
        && payments.iter().any(|p| p.status == "pending"))
    {
        Some(10)
    } else {
        None
    }
}

#[derive(Deserialize)]
pub struct RefundForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

const MAX_MESSAGE: usize = 2000;

/// `POST /orders/{token}/refund`: the buyer asks for their money back.
pub async fn request_refund(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    token: web::Path<String>,
    form: SafeForm<RefundForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    let order = order_for_token(&state, &token).await?;
    state.enforce(Action::RefundRequest, ip).await?;
    let values = (
        form.reason.clone(),
        form.message
            .chars()
            .take(MAX_MESSAGE + 100)
            .collect::<String>(),
    );
    let message = crate::domain::text::normalise(&form.message, true);
    let error = if !refund_rows::REASONS.iter().any(|(c, _)| *c == form.reason) {
        Some("Choose what went wrong.")
    } else if message.chars().count() > MAX_MESSAGE {
        Some("Please keep the message under 2,000 characters.")
    } else if form.reason == "other" && message.is_empty() {
        Some("Tell us briefly what went wrong.")
    } else {
        None
    };
    if let Some(e) = error {
        return order_page(
            &state,
            &csrf.0,
            &token,
            order,
            refund_problem(e.into(), values),
        )
        .await;
    }
    use crate::orders::refunds::{RefundError, Requested};
    match crate::orders::refunds::request(&state, &order, &form.reason, &message).await {
        Ok(Requested::New(_)) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/orders/{}?refund=requested", token.as_str()),
            ))
            .finish()),
        Ok(Requested::AlreadyOpen(open)) => {
            let e = format!(
                "You already asked for a refund on {}; it is: {}. We will email you when it is decided.",
                format_utc(open.created_at),
                request_status(&open.status).to_lowercase()
            );
            order_page(&state, &csrf.0, &token, order, refund_problem(e, values)).await
        }
        Err(RefundError::Database(e)) => Err(e.into()),
        Err(e) => {
            order_page(
                &state,
                &csrf.0,
                &token,
                order,
                refund_problem(e.to_string(), values),
            )
            .await
        }
    }
}

fn refund_problem(error: String, values: (String, String)) -> Extras {
    Extras {
        refund_error: Some(error),
        refund_values: values,
        ..Default::default()
    }
}

#[derive(Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    message: String,
}

/// `POST /orders/{token}/messages`: the buyer writes to support about the order.
pub async fn send_message(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    token: web::Path<String>,
    form: SafeForm<MessageForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    let order = order_for_token(&state, &token).await?;
    state.enforce(Action::SupportMessage, ip).await?;
    match crate::orders::support::buyer_writes(&state, &order, &form.message).await {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                format!("/orders/{}?message=sent#support", token.as_str()),
            ))
            .finish()),
        Err(crate::orders::support::SupportError::Database(e)) => Err(e.into()),
        Err(e) => {
            let value = form
                .message
                .chars()
                .take(crate::orders::support::MAX_MESSAGE + 100)
                .collect();
            let extras = Extras {
                message_error: Some(e.to_string()),
                message_value: value,
                ..Default::default()
            };
            order_page(&state, &csrf.0, &token, order, extras).await
        }
    }
}

#[derive(Template)]
#[template(path = "lookup.html")]
struct LookupPage {
    meta: Meta,
    sent: bool,
    error: Option<String>,
    order_number: String,
    email: String,
}

pub async fn lookup_form(state: web::Data<AppState>, csrf: CsrfToken) -> HttpResponse {
    let page = LookupPage {
        meta: state.meta("Find my order", &csrf.0),
        sent: false,
        error: None,
        order_number: String::new(),
        email: String::new(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LookupForm {
    #[serde(default)]
    order_number: String,
    #[serde(default)]
    email: String,
}

/// Always the same answer, whether or not the order exists, so the form cannot be used to
/// learn which orders or emails the shop has. The link goes only to the order's own email.
pub async fn lookup(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    ip: ClientIp,
    form: SafeForm<LookupForm>,
) -> Result<HttpResponse, AppError> {
    let SafeForm(form) = form;
    state.enforce(Action::OrderLookup, ip).await?;
    let mut page = LookupPage {
        meta: state.meta("Find my order", &csrf.0),
        sent: false,
        error: None,
        order_number: form.order_number.chars().take(40).collect(),
        email: form.email.chars().take(254).collect(),
    };
    let email = crate::domain::BuyerEmail::parse(&form.email);
    if form.order_number.trim().is_empty() || email.is_err() {
        page.error = Some(
            "Enter the order number from your receipt (it starts with CF-) and the email you used."
                .into(),
        );
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let number = ids::normalise_order_number(&form.order_number);
    if let (Some(order), Ok(email)) = (orders::by_number(state.db.pool(), &number).await?, email) {
        if order.email == email.as_str() {
            crate::orders::notify::order_link_requested(&state, &order).await?;
        }
    }
    page.sent = true;
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::failed_payment_text;

    #[test]
    fn a_failed_payment_reads_without_the_providers_code() {
        assert_eq!(
            failed_payment_text("Visa •••• 0002 declined (card_declined)"),
            "Payment not accepted: Visa •••• 0002 — declined"
        );
        assert_eq!(
            failed_payment_text("Visa •••• 9995 declined (insufficient_funds)"),
            "Payment not accepted: Visa •••• 9995 — not enough funds"
        );
        assert_eq!(
            failed_payment_text("PayPal declined (some_new_code)"),
            "Payment not accepted: PayPal — declined"
        );
    }
}

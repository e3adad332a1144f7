//! The decisions an agent posts about one order. Each goes through `orders::review` (one
//! guarded transaction) and then back to where the agent came from, with a message; when
//! someone else acted first, the agent gets a 409 page saying so and nothing changes.

use super::form::ConsoleForm;
use super::session::{Admin, Staff};
use super::ConsoleError;
use crate::db::orders::{self, Order};
use crate::orders::review::{self, Outcome};
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct DecisionForm {
    /// Where to go afterwards: `review` or the order page.
    #[serde(default)]
    back: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    note: String,
}

/// Finds an order by id or by order number.
pub async fn find(state: &AppState, key: &str) -> Result<Order, ConsoleError> {
    let pool = state.db.pool();
    let found = if key.to_ascii_uppercase().starts_with("CF-") {
        orders::by_number(pool, &crate::domain::ids::normalise_order_number(key)).await?
    } else {
        orders::by_id(pool, key).await?
    };
    found.ok_or(ConsoleError::Web(AppError::NotFound))
}

fn clean(text: &str, max: usize) -> String {
    crate::domain::text::normalise_at_most(text, true, max)
}

fn after(
    order: &Order,
    back: &str,
    done: &str,
    outcome: Outcome,
) -> Result<HttpResponse, ConsoleError> {
    let page = format!("/console/orders/{}", order.order_number);
    match outcome {
        Outcome::Done => {
            let to = if back == "review" {
                format!("/console/review?done={done}&order={}", order.order_number)
            } else {
                format!("{page}?done={done}&order={}", order.order_number)
            };
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish())
        }
        Outcome::AlreadyMoved { status } => Err(ConsoleError::Conflict {
            message: format!(
                "Order {} was already handled by someone else: it is now \u{201c}{}\u{201d} ({}). Nothing was changed — open the order to see who did what.",
                order.order_number,
                status.label(),
                status.as_str()
            ),
            back: page,
        }),
        Outcome::RefundUnderWay => Err(ConsoleError::Conflict {
            message: format!(
                "Order {} is being refunded (or was), so its coins cannot be delivered as well. Nothing was changed.",
                order.order_number
            ),
            back: page,
        }),
        Outcome::NotFound => Err(ConsoleError::Web(AppError::NotFound)),
    }
}

pub async fn approve(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let order = find(&state, &key).await?;
    let outcome =
        review::approve(&state, &order.id, &current.actor(), &clean(&form.note, 500)).await?;
    after(&order, &form.back, "approved", outcome)
}

async fn reject_as(
    state: &AppState,
    current: &super::session::Current,
    key: &str,
    form: DecisionForm,
    fraud: bool,
) -> Result<HttpResponse, ConsoleError> {
    let order = find(state, key).await?;
    let reason = clean(&form.reason, 500);
    if fraud && reason.is_empty() {
        return Err(ConsoleError::Web(AppError::BadRequest(
            "Say why this is fraud: the reason goes on the block list with your name. Nothing was changed.".into(),
        )));
    }
    let outcome = review::reject(state, &order.id, &current.actor(), &reason, fraud).await?;
    after(
        &order,
        &form.back,
        if fraud { "fraud" } else { "rejected" },
        outcome,
    )
}

pub async fn reject(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    reject_as(&state, &staff.0, &key, form.0, false).await
}

pub async fn reject_fraud(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    reject_as(&state, &staff.0, &key, form.0, true).await
}

pub async fn note(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let order = find(&state, &key).await?;
    let body = clean(&form.note, 4000);
    if body.is_empty() {
        return Err(ConsoleError::Web(AppError::BadRequest(
            "The note was empty, so nothing was added.".into(),
        )));
    }
    let outcome = review::add_note(&state, &order.id, &current.actor(), &body).await?;
    after(&order, &form.back, "noted", outcome)
}

pub async fn retry(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let order = find(&state, &key).await?;
    let outcome = review::retry_fulfillment(&state, &order.id, &current.actor()).await?;
    after(&order, &form.back, "retried", outcome)
}

pub async fn resend_receipt(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let order = find(&state, &key).await?;
    let outcome = review::resend_receipt(&state, &order.id, &current.actor()).await?;
    after(&order, &form.back, "resent", outcome)
}

pub async fn resend_email(
    state: web::Data<AppState>,
    staff: Staff,
    path: web::Path<(String, String)>,
    form: ConsoleForm<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let (key, email_id) = path.into_inner();
    let order = find(&state, &key).await?;
    let outcome = review::resend_email(&state, &order.id, &email_id, &current.actor()).await?;
    after(&order, &form.back, "email-resent", outcome)
}

#[derive(Deserialize)]
pub struct EraseForm {
    /// The box that says the request comes from this buyer.
    #[serde(default)]
    confirm: String,
}

/// Erases the personal data of the order's buyer (every order with its email): admins only,
/// after ticking the confirmation.
pub async fn erase(
    state: web::Data<AppState>,
    admin: Admin,
    key: web::Path<String>,
    form: ConsoleForm<EraseForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Admin(current), ConsoleForm(form)) = (admin, form);
    let order = find(&state, &key).await?;
    if form.confirm != "yes" {
        return Err(ConsoleError::Web(AppError::BadRequest(
            "Tick the box to confirm the request comes from this buyer. Nothing was erased.".into(),
        )));
    }
    use crate::orders::erasure::{erase_buyer, Erased};
    let done = match erase_buyer(&state, &order.id, &current.actor()).await? {
        Erased::Orders(numbers) => {
            tracing::info!(orders = numbers.len(), "erased a buyer's personal data");
            "erased"
        }
        Erased::Already => "erased-already",
        Erased::NotFound => return Err(ConsoleError::Web(AppError::NotFound)),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!(
                "/console/orders/{}?done={done}&order={}",
                order.order_number, order.order_number
            ),
        ))
        .finish())
}

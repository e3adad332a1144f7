//! An order's chargebacks in the console: amount, reason, deadline and status, with the
//! one-click "submit evidence" (built from what the shop recorded about the delivery), and the
//! refund an early fraud warning proposes.

use super::actions::find;
use super::form::ConsoleForm;
use super::session::Staff;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::disputes as rows;
use crate::db::orders::Order;
use crate::domain::Money;
use crate::orders::disputes::{self, EvidenceOutcome};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// One dispute as the order page shows it.
pub struct DisputeLine {
    pub id: String,
    pub amount: String,
    pub reason: String,
    pub status: String,
    pub due: String,
    /// "Submitted … by …", or empty while none was sent.
    pub evidence: String,
    pub can_submit: bool,
}

pub async fn lines(state: &AppState, order: &Order) -> Result<Vec<DisputeLine>, sqlx::Error> {
    Ok(rows::for_order(state.db.pool(), &order.id)
        .await?
        .into_iter()
        .map(|d| {
            let closed = matches!(d.status.as_str(), "won" | "lost" | "warning_closed");
            DisputeLine {
                amount: d
                    .currency
                    .parse()
                    .map(|c| Money::from_minor(d.amount_minor, c).to_string())
                    .unwrap_or_else(|_| format!("{} {}", d.amount_minor, d.currency)),
                reason: d.reason.replace('_', " "),
                status: d.status.replace('_', " "),
                due: d
                    .evidence_due_by
                    .map(format_utc)
                    .unwrap_or_else(|| "—".into()),
                evidence: match (d.evidence_submitted_at, &d.evidence_submitted_by) {
                    (Some(at), Some(by)) => format!(
                        "Submitted {} by {by}{}",
                        format_utc(at),
                        d.evidence_file_id
                            .as_deref()
                            .map(|f| format!(", with the service documentation ({f})"))
                            .unwrap_or_default()
                    ),
                    _ => String::new(),
                },
                can_submit: d.evidence_submitted_at.is_none() && !closed,
                id: d.id,
            }
        })
        .collect())
}

#[derive(Deserialize)]
pub struct EvidenceForm {
    #[serde(default)]
    dispute: String,
}

fn back(order: &Order, done: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!(
                "/console/orders/{}?done={done}&order={}",
                order.order_number, order.order_number
            ),
        ))
        .finish()
}

/// `POST /console/orders/{key}/dispute-evidence`
pub async fn submit_evidence(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    form: ConsoleForm<EvidenceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let order = find(&state, &key).await?;
    match disputes::submit_evidence(&state, &order, form.dispute.trim(), &current.actor()).await? {
        EvidenceOutcome::Submitted => Ok(back(&order, "evidence")),
        EvidenceOutcome::AlreadySubmitted => Ok(back(&order, "evidence-already")),
        EvidenceOutcome::NoSuchDispute => Err(ConsoleError::NotFound),
        EvidenceOutcome::Failed(why) => Err(ConsoleError::BadRequest(format!(
            "The evidence was not accepted: {why}. Nothing was recorded as sent; you can try again."
        ))),
    }
}

/// `POST /console/orders/{key}/fraud-warning-refund`
pub async fn refund_after_warning(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    _form: ConsoleForm<EvidenceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let order = find(&state, &key).await?;
    if disputes::refund_after_warning(&state, &order, &current.actor()).await? {
        Ok(back(&order, "warning-refunded"))
    } else {
        Err(ConsoleError::BadRequest(
            "This order cannot be refunded now (not paid, or already disputed).".into(),
        ))
    }
}

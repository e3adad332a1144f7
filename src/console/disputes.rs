//! An order's chargebacks in the console: amount, reason, deadline and status, with the
//! one-click "submit evidence" (built from what the shop recorded about the delivery), and the
//! refund an early fraud warning proposes.

use super::actions::find;
use super::form::ConsoleForm;
use super::session::Staff;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::disputes::{self as rows, BuyerDispute, OpenDispute};
use crate::db::orders::Order;
use crate::domain::Money;
use crate::orders::disputes::{self, EvidenceOutcome};
use crate::web::state::AppState;
use crate::web::AppError;
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

fn amount_of(d: &rows::Dispute) -> String {
    d.currency
        .parse()
        .map(|c| Money::from_minor(d.amount_minor, c).to_string())
        .unwrap_or_else(|_| format!("{} {}", d.amount_minor, d.currency))
}

fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The sentence a held order carries when its buyer — the same email, TikTok username or card
/// — has a chargeback, on this order or another (newest first in `disputes`).
pub fn review_marker(disputes: &[BuyerDispute]) -> Option<String> {
    let latest = disputes.first()?;
    let d = &latest.dispute;
    let more = match disputes.len() {
        1 => String::new(),
        n => format!(" ({} chargebacks in all for this buyer)", n),
    };
    let what = format!(
        "{} for {}, reason {}, now {}, opened {}",
        d.id,
        amount_of(d),
        d.reason.replace('_', " "),
        d.status.replace('_', " "),
        format_utc(d.created_at)
    );
    if latest.same_order {
        return Some(format!(
            "Chargeback on this order itself ({what}){more}: do not deliver. Answer or accept it on the order's page."
        ));
    }
    let mut shares = Vec::new();
    if latest.same_email {
        shares.push("email");
    }
    if latest.same_username {
        shares.push("TikTok username");
    }
    if latest.same_card {
        shares.push("card");
    }
    let advice = if d.status == "won" {
        "The card issuer decided it in the shop's favour: judge this order on its own."
    } else {
        "That buyer was block-listed for it: reject this order as fraud unless you know the chargeback was a mistake."
    };
    Some(format!(
        "Chargeback on this buyer's order {} (same {}): {what}{more}. {advice}",
        latest.order_number,
        and_list(&shares)
    ))
}

/// A chargeback waiting for the shop's answer, as the review queue lists it.
pub struct AwaitingLine {
    pub order_number: String,
    pub dispute: String,
    pub amount: String,
    pub reason: String,
    pub due: String,
    pub sentence: String,
}

pub fn awaiting_line(o: &OpenDispute) -> AwaitingLine {
    let d = &o.dispute;
    let due = d
        .evidence_due_by
        .map(format_utc)
        .unwrap_or_else(|| "the deadline Stripe shows".into());
    let sentence = match o.delivered_at {
        Some(at) => format!(
            "Coins delivered {}: submit the evidence (one click on the order's page) before {due}.",
            format_utc(at)
        ),
        None => "The coins were never delivered, so there is nothing to contest: accept the dispute in Stripe's Dashboard (or let the deadline pass); the money goes back to the card.".to_owned(),
    };
    AwaitingLine {
        order_number: o.order_number.clone(),
        dispute: d.id.clone(),
        amount: amount_of(d),
        reason: d.reason.replace('_', " "),
        due: d
            .evidence_due_by
            .map(format_utc)
            .unwrap_or_else(|| "—".into()),
        sentence,
    }
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
        EvidenceOutcome::NoSuchDispute => Err(ConsoleError::Web(AppError::NotFound)),
        EvidenceOutcome::Failed(why) => Err(ConsoleError::Web(AppError::BadRequest(format!(
            "The evidence was not accepted: {why}. Nothing was recorded as sent; you can try again."
        )))),
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
        Err(ConsoleError::Web(AppError::BadRequest(
            "This order cannot be refunded now (not paid, or already disputed).".into(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(status: &str, same_order: bool) -> BuyerDispute {
        BuyerDispute {
            dispute: rows::Dispute {
                id: "dp_1".into(),
                order_id: "o1".into(),
                provider: "stripe".into(),
                amount_minor: 728,
                currency: "USD".into(),
                reason: "product_not_received".into(),
                status: status.into(),
                evidence_due_by: None,
                evidence_submitted_at: None,
                evidence_submitted_by: None,
                evidence_file_id: None,
                created_at: 0,
                updated_at: 0,
            },
            order_number: "CF-1".into(),
            same_order,
            same_email: false,
            same_username: true,
            same_card: true,
        }
    }

    #[test]
    fn the_marker_says_what_the_buyer_shares_and_what_to_do() {
        assert_eq!(review_marker(&[]), None);
        let m = review_marker(&[on("needs_response", false)]).unwrap();
        assert!(m.starts_with("Chargeback on this buyer's order CF-1 (same TikTok username and card): dp_1 for US$7.28, reason product not received, now needs response"), "{m}");
        assert!(
            m.ends_with("reject this order as fraud unless you know the chargeback was a mistake.")
        );
        let m = review_marker(&[on("won", false), on("lost", false)]).unwrap();
        assert!(
            m.contains("(2 chargebacks in all for this buyer)")
                && m.ends_with("judge this order on its own."),
            "{m}"
        );
        let m = review_marker(&[on("needs_response", true)]).unwrap();
        assert!(
            m.starts_with("Chargeback on this order itself") && m.contains("do not deliver"),
            "{m}"
        );
    }
}

//! Stripe's events, translated into the shop's `ProviderEvent`s. The shop puts its order id in
//! `client_reference_id` and in the metadata of the session, its payment intent and every
//! refund, so most events name their order; disputes and early fraud warnings name the payment
//! intent (or charge) instead, and the shop finds the order through its payments.

use crate::payments::{CardDetails, DisputeDetails, EventData, EventKind, ProviderEvent};
use serde_json::Value;

/// The event types the shop acts on; everything else is acknowledged and ignored.
pub const USED_EVENTS: [&str; 14] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "payment_intent.payment_failed",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "radar.early_fraud_warning.created",
    "charge.refunded",
];

fn text(v: &Value) -> Option<String> {
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(200).collect())
}

/// An id field that may be expanded into its object.
fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

fn amount(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0).max(0)
}

fn currency(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_ascii_uppercase()
}

/// A card's details from a PaymentMethod object (`card.brand`, …). The number never comes.
pub fn card_of_payment_method(pm: &Value) -> Option<CardDetails> {
    let card = &pm["card"];
    Some(CardDetails {
        brand: text(&card["brand"])?,
        last4: text(&card["last4"])?,
        country: text(&card["country"]).unwrap_or_default(),
        fingerprint: text(&card["fingerprint"])?,
        bin: None,
    })
}

fn order_of(obj: &Value) -> String {
    text(&obj["client_reference_id"])
        .or_else(|| text(&obj["metadata"]["order_id"]))
        .unwrap_or_default()
}

fn blank() -> EventData {
    EventData {
        order_reference: String::new(),
        session_id: String::new(),
        object_id: String::new(),
        method: "card".into(),
        amount_minor: 0,
        currency: String::new(),
        failure_code: None,
        failure_message: None,
        card: None,
        reference: None,
        late: false,
        payment_ref: None,
        dispute: None,
    }
}

/// Translates a verified Stripe event. `Err` is a body that is not a Stripe event at all.
pub fn translate(body: &Value) -> Result<ProviderEvent, String> {
    let id = text(&body["id"]).ok_or("no event id")?;
    let kind_name = body["type"].as_str().ok_or("no event type")?;
    let created = body["created"].as_i64().unwrap_or(0);
    let obj = &body["data"]["object"];
    if !obj.is_object() {
        return Err("no data.object".into());
    }
    let method = text(&obj["metadata"]["method"]).unwrap_or_else(|| "card".into());
    let mut d = blank();
    d.method = method;
    let kind = match kind_name {
        "checkout.session.completed"
        | "checkout.session.async_payment_succeeded"
        | "checkout.session.async_payment_failed"
        | "checkout.session.expired" => {
            d.order_reference = order_of(obj);
            d.session_id = text(&obj["id"]).unwrap_or_default();
            d.payment_ref = id_of(&obj["payment_intent"]);
            // The payment intent is the payment; a session without one (not in payment mode)
            // is named by itself.
            d.object_id = d
                .payment_ref
                .clone()
                .unwrap_or_else(|| d.session_id.clone());
            d.amount_minor = amount(&obj["amount_total"]);
            d.currency = currency(&obj["currency"]);
            match kind_name {
                "checkout.session.completed" => match obj["payment_status"].as_str() {
                    Some("paid") | Some("no_payment_required") => EventKind::PaymentSucceeded,
                    // A delayed method (bank debit, voucher): `async_payment_*` follows.
                    _ => EventKind::PaymentPending,
                },
                "checkout.session.async_payment_succeeded" => EventKind::PaymentSucceeded,
                "checkout.session.async_payment_failed" => {
                    d.failure_code = Some("async_payment_failed".into());
                    d.failure_message = Some("The delayed payment did not arrive".into());
                    // The same payment as the pending one: it moves pending → failed.
                    EventKind::PaymentFailed
                }
                _ => EventKind::SessionExpired,
            }
        }
        "payment_intent.payment_failed" => {
            d.order_reference = order_of(obj);
            let pi = text(&obj["id"]).unwrap_or_default();
            d.payment_ref = Some(pi.clone());
            let err = &obj["last_payment_error"];
            // Each attempt is a charge of its own; the intent stays the same across them.
            d.object_id = id_of(&err["charge"])
                .or_else(|| id_of(&obj["latest_charge"]))
                .unwrap_or_else(|| format!("{pi}:{id}"));
            d.amount_minor = amount(&obj["amount"]);
            d.currency = currency(&obj["currency"]);
            d.failure_code = text(&err["decline_code"])
                .or_else(|| text(&err["code"]))
                .or_else(|| Some("card_declined".into()));
            d.failure_message = text(&err["message"]);
            d.card = card_of_payment_method(&err["payment_method"]);
            EventKind::PaymentFailed
        }
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            d.order_reference = text(&obj["metadata"]["order_id"]).unwrap_or_default();
            d.reference = text(&obj["metadata"]["refund_id"]);
            d.object_id = text(&obj["id"]).unwrap_or_default();
            d.payment_ref = id_of(&obj["payment_intent"]);
            d.amount_minor = amount(&obj["amount"]);
            d.currency = currency(&obj["currency"]);
            if d.reference.is_none() {
                // Made outside the shop (in Stripe's dashboard): counting it from two events
                // (created, updated) would count it twice, so it is left to the operator.
                tracing::warn!(event = %id, "a refund the shop did not make; not applied");
                EventKind::Unused
            } else {
                match obj["status"].as_str() {
                    Some("succeeded") => EventKind::RefundSucceeded,
                    Some("failed") | Some("canceled") => {
                        d.failure_message = text(&obj["failure_reason"])
                            .map(|r| r.replace('_', " "))
                            .or_else(|| Some("the card issuer refused it".into()));
                        EventKind::RefundFailed
                    }
                    // pending, requires_action: a later update settles it.
                    _ => EventKind::Unused,
                }
            }
        }
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            d.object_id = text(&obj["id"]).unwrap_or_default();
            d.payment_ref = id_of(&obj["payment_intent"]);
            d.session_id = id_of(&obj["charge"]).unwrap_or_default();
            d.amount_minor = amount(&obj["amount"]);
            d.currency = currency(&obj["currency"]);
            d.dispute = Some(DisputeDetails {
                reason: text(&obj["reason"]).unwrap_or_else(|| "general".into()),
                status: text(&obj["status"]).unwrap_or_else(|| "needs_response".into()),
                evidence_due_by: obj["evidence_details"]["due_by"].as_i64(),
            });
            match kind_name {
                "charge.dispute.created" => EventKind::DisputeCreated,
                "charge.dispute.updated" => EventKind::DisputeUpdated,
                _ => EventKind::DisputeClosed,
            }
        }
        "radar.early_fraud_warning.created" => {
            d.object_id = text(&obj["id"]).unwrap_or_default();
            d.payment_ref = id_of(&obj["payment_intent"]);
            d.session_id = id_of(&obj["charge"]).unwrap_or_default();
            d.failure_code = text(&obj["fraud_type"]);
            EventKind::FraudWarning
        }
        // `charge.refunded` carries the charge, not the refund (and no refund list on current
        // API versions): the `refund.*` events, which carry the shop's refund id, settle it.
        _ => EventKind::Unused,
    };
    Ok(ProviderEvent {
        id,
        kind,
        created,
        data: d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Value {
        json!({"id": "evt_1", "object": "event", "type": kind, "created": 1, "data": {"object": object}})
    }

    #[test]
    fn a_paid_session_is_a_payment_and_an_unpaid_one_is_pending() {
        let session = json!({"id": "cs_1", "client_reference_id": "ord_1", "payment_intent": "pi_1",
            "amount_total": 700, "currency": "usd", "payment_status": "paid", "metadata": {"method": "card"}});
        let e = translate(&event("checkout.session.completed", session.clone())).unwrap();
        assert_eq!(e.kind, EventKind::PaymentSucceeded);
        assert_eq!(
            (
                e.data.order_reference.as_str(),
                e.data.object_id.as_str(),
                e.data.amount_minor,
                e.data.currency.as_str()
            ),
            ("ord_1", "pi_1", 700, "USD")
        );
        let mut unpaid = session;
        unpaid["payment_status"] = json!("unpaid");
        let e = translate(&event("checkout.session.completed", unpaid)).unwrap();
        assert_eq!(e.kind, EventKind::PaymentPending);
    }

    #[test]
    fn a_failed_attempt_carries_its_decline_and_card() {
        let pi = json!({"id": "pi_1", "amount": 700, "currency": "eur", "metadata": {"order_id": "ord_1"},
            "last_payment_error": {"charge": "ch_9", "code": "card_declined", "decline_code": "stolen_card",
                "message": "Your card was declined.",
                "payment_method": {"card": {"brand": "visa", "last4": "0002", "country": "GB", "fingerprint": "fp1"}}}});
        let e = translate(&event("payment_intent.payment_failed", pi)).unwrap();
        assert_eq!(e.kind, EventKind::PaymentFailed);
        assert_eq!(e.data.object_id, "ch_9");
        assert_eq!(e.data.failure_code.as_deref(), Some("stolen_card"));
        let card = e.data.card.unwrap();
        assert_eq!((card.last4.as_str(), card.country.as_str()), ("0002", "GB"));
    }

    #[test]
    fn unknown_events_are_unused_and_junk_is_refused() {
        assert_eq!(
            translate(&event("customer.created", json!({"id": "cus_1"})))
                .unwrap()
                .kind,
            EventKind::Unused
        );
        assert!(translate(&json!({"type": "x"})).is_err());
        assert!(translate(&json!({"id": "evt", "type": "x", "data": {}})).is_err());
    }

    #[test]
    fn refunds_without_the_shops_id_are_not_applied() {
        let r = json!({"id": "re_1", "amount": 100, "currency": "usd", "status": "succeeded", "metadata": {}});
        assert_eq!(
            translate(&event("refund.updated", r)).unwrap().kind,
            EventKind::Unused
        );
        let r = json!({"id": "re_1", "amount": 100, "currency": "usd", "status": "failed",
            "failure_reason": "expired_or_canceled_card", "metadata": {"order_id": "o", "refund_id": "rf"}});
        let e = translate(&event("refund.failed", r)).unwrap();
        assert_eq!(e.kind, EventKind::RefundFailed);
        assert_eq!(
            e.data.failure_message.as_deref(),
            Some("expired or canceled card")
        );
    }
}

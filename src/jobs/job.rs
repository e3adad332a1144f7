//! Every kind of job the queue carries, as one type. A job row stores its kind (the serde tag)
//! in the `kind` column and the variant's fields as the JSON `payload`, so rows written before
//! this type existed (same kinds, same fields) still run. A row whose payload does not fit its
//! kind is not run with made-up values: it fails for good, with its error in the log and in the
//! row's `last_error`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Decide after payment: fulfil, hold for review, or refund (`orders::screening`).
    ScreenOrder {
        order_id: String,
        /// The payment arrived after the order expired.
        #[serde(default)]
        late: bool,
    },
    /// Credit the coins (`orders::fulfillment`).
    FulfillOrder {
        order_id: String,
        /// Look the recipient up again first (an approval after a held account change).
        #[serde(default, skip_serializing_if = "is_false")]
        recheck_recipient: bool,
    },
    /// Refund whatever is left of the order (`orders::refunds`).
    RefundOrder {
        order_id: String,
        #[serde(default = "default_refund_reason")]
        reason: String,
    },
    /// Deliver one outbox email (`mail::send`).
    SendEmail { email_id: String },
    /// The sandbox provider delivers a signed webhook to `url`.
    SandboxWebhook { url: String, body: String },
    /// The sandbox provider settles a payment that was pending.
    SandboxSettle {
        session_id: String,
        payment_id: String,
    },
    /// One staff member's notification digest for the period starting at `from`
    /// (`staff_digest`).
    StaffDigest { staff_id: String, from: i64 },
    /// Prune old records for one period of `retention.every_minutes` (`retention`): the
    /// period in the dedupe key makes it once per period across all instances.
    PruneOldRecords { period: i64 },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_refund_reason() -> String {
    "refund".into()
}

impl Job {
    // The `kind` column's values (the serde tags; a test holds them equal), for the queries
    // and dedupe keys that name a kind.
    pub const SCREEN_ORDER: &'static str = "screen_order";
    pub const FULFILL_ORDER: &'static str = "fulfill_order";
    pub const REFUND_ORDER: &'static str = "refund_order";
    pub const SEND_EMAIL: &'static str = "send_email";
    pub const SANDBOX_WEBHOOK: &'static str = "sandbox_webhook";
    pub const SANDBOX_SETTLE: &'static str = "sandbox_settle";
    pub const STAFF_DIGEST: &'static str = "staff_digest";
    pub const PRUNE_OLD_RECORDS: &'static str = "prune_old_records";

    /// The `kind` column: the serde tag of the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::ScreenOrder { .. } => Job::SCREEN_ORDER,
            Job::FulfillOrder { .. } => Job::FULFILL_ORDER,
            Job::RefundOrder { .. } => Job::REFUND_ORDER,
            Job::SendEmail { .. } => Job::SEND_EMAIL,
            Job::SandboxWebhook { .. } => Job::SANDBOX_WEBHOOK,
            Job::SandboxSettle { .. } => Job::SANDBOX_SETTLE,
            Job::StaffDigest { .. } => Job::STAFF_DIGEST,
            Job::PruneOldRecords { .. } => Job::PRUNE_OLD_RECORDS,
        }
    }

    /// The order the job is about, for the ones that are about an order.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Job::ScreenOrder { order_id, .. }
            | Job::FulfillOrder { order_id, .. }
            | Job::RefundOrder { order_id, .. } => Some(order_id),
            Job::SendEmail { .. }
            | Job::SandboxWebhook { .. }
            | Job::SandboxSettle { .. }
            | Job::StaffDigest { .. }
            | Job::PruneOldRecords { .. } => None,
        }
    }

    /// The `payload` column: the variant's fields without the tag.
    pub fn payload(&self) -> Result<String, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        if let Value::Object(fields) = &mut value {
            fields.remove("kind");
        }
        Ok(value.to_string())
    }

    /// Reads a stored row back: its `kind` column and its `payload` column.
    pub fn decode(kind: &str, payload: &str) -> Result<Job, String> {
        let mut value: Value =
            serde_json::from_str(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let Value::Object(fields) = &mut value else {
            return Err("payload is not a JSON object".into());
        };
        fields.insert("kind".into(), Value::String(kind.into()));
        serde_json::from_value(value).map_err(|e| format!("payload does not fit {kind:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::Job;

    fn every_kind() -> Vec<Job> {
        vec![
            Job::ScreenOrder {
                order_id: "o1".into(),
                late: true,
            },
            Job::FulfillOrder {
                order_id: "o1".into(),
                recheck_recipient: false,
            },
            Job::FulfillOrder {
                order_id: "o1".into(),
                recheck_recipient: true,
            },
            Job::RefundOrder {
                order_id: "o1".into(),
                reason: "Rejected".into(),
            },
            Job::SendEmail {
                email_id: "e1".into(),
            },
            Job::SandboxWebhook {
                url: "http://x/webhooks".into(),
                body: "{}".into(),
            },
            Job::SandboxSettle {
                session_id: "s1".into(),
                payment_id: "p1".into(),
            },
            Job::StaffDigest {
                staff_id: "st1".into(),
                from: 1_700_000_000_000,
            },
            Job::PruneOldRecords { period: 472_222 },
        ]
    }

    #[test]
    fn every_kind_round_trips_through_its_columns() {
        for job in every_kind() {
            let tag = serde_json::to_value(&job).unwrap()["kind"].clone();
            assert_eq!(tag, job.kind());
            let payload = job.payload().unwrap();
            assert!(!payload.contains("\"kind\""), "{payload}");
            assert_eq!(Job::decode(job.kind(), &payload).unwrap(), job);
        }
    }

    /// The payloads as rows written before the typed jobs hold them.
    #[test]
    fn rows_written_before_the_typed_jobs_still_decode() {
        let rows = [
            ("screen_order", r#"{"order_id":"o1","late":false}"#),
            ("fulfill_order", r#"{"order_id":"o1"}"#),
            (
                "fulfill_order",
                r#"{"order_id":"o1","recheck_recipient":true}"#,
            ),
            ("refund_order", r#"{"order_id":"o1","reason":"Rejected"}"#),
            ("send_email", r#"{"email_id":"e1"}"#),
            ("sandbox_webhook", r#"{"url":"http://x/w","body":"{}"}"#),
            ("sandbox_settle", r#"{"session_id":"s1","payment_id":"p1"}"#),
            ("staff_digest", r#"{"staff_id":"st1","from":1700000000000}"#),
        ];
        for (kind, payload) in rows {
            let job = Job::decode(kind, payload).unwrap();
            assert_eq!(job.kind(), kind);
            // And written again the same way.
            let again: serde_json::Value = serde_json::from_str(&job.payload().unwrap()).unwrap();
            let before: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert_eq!(again, before);
        }
    }

    #[test]
    fn a_payload_that_does_not_fit_is_an_error_not_an_empty_id() {
        assert!(Job::decode("screen_order", "{}").is_err());
        assert!(Job::decode("screen_order", r#"{"order_id":7}"#).is_err());
        assert!(Job::decode("send_email", "null").is_err());
        assert!(Job::decode("send_email", "not json").is_err());
        assert!(Job::decode("no_such_kind", r#"{"order_id":"o1"}"#).is_err());
    }
}

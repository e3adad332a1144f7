//! What the shop emails buyers about, and the facts each email is written from.

/// Stands in for the order link in stored email bodies. The link opens the order, and the
/// database alone must not (see `domain::order_token`): the send job fills it in from the order's
/// idempotency key and the shop's secret, the same way every time, so a resend is still the
/// same message.
pub const ORDER_LINK_SLOT: &str = "[[order-link]]";

/// One email's reason, with what only that kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Email {
    PaymentReceived,
    /// The receipt.
    Delivered,
    /// Plain and reassuring: the buyer is never told why (no fraud details).
    HeldForReview,
    /// The order will not be delivered and the money goes back. `reason` is shown to the
    /// buyer as it is, so callers pass buyer-safe wording, never risk reasons.
    CancelledRefunded {
        amount: String,
        reason: String,
    },
    /// The buyer asked for their order link (order look-up).
    OrderLink,
    RefundRequested,
    /// `message` is the agent's answer to the buyer.
    RefundDenied {
        message: String,
    },
    RefundCompleted {
        amount: String,
    },
    /// `message` is a support agent's reply to the buyer, shown as it is.
    SupportReply {
        message: String,
    },
}

impl Email {
    /// The `emails.kind` value, also the usual second half of a dedupe key.
    pub fn kind(&self) -> &'static str {
        match self {
            Email::PaymentReceived => "payment_received",
            Email::Delivered => "delivered",
            Email::HeldForReview => "held_for_review",
            Email::CancelledRefunded { .. } => "cancelled_refunded",
            Email::OrderLink => "order_link",
            Email::RefundRequested => "refund_requested",
            Email::RefundDenied { .. } => "refund_denied",
            Email::RefundCompleted { .. } => "refund_completed",
            Email::SupportReply { .. } => "support_reply",
        }
    }

    pub fn subject(&self, f: &Facts) -> String {
        let n = &f.order_number;
        match self {
            Email::PaymentReceived => format!("Payment received for order {n}"),
            Email::Delivered => format!(
                "Your receipt: {} coins delivered to @{} ({n})",
                f.coins, f.username
            ),
            Email::HeldForReview => format!("Order {n}: a quick check before delivery"),
            Email::CancelledRefunded { amount, .. } => {
                format!("Order {n} cancelled: {amount} is being refunded")
            }
            Email::OrderLink => format!("The link to your order {n}"),
            Email::RefundRequested => format!("We received your refund request for {n}"),
            Email::RefundDenied { .. } => format!("About your refund request for {n}"),
            Email::RefundCompleted { amount } => format!("Refund of {amount} sent for order {n}"),
            Email::SupportReply { .. } => format!("A reply about your order {n}"),
        }
    }
}

/// The facts about an order that emails show, already formatted for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub shop_name: String,
    pub order_number: String,
    /// "1,400"
    pub coins: String,
    /// Without the leading `@`.
    pub username: String,
    /// "US$7.28"
    pub amount: String,
    /// "Visa •••• 4242", "Bank transfer"
    pub method: String,
    /// When the order was placed, "2026-11-24 16:10 UTC".
    pub placed: String,
    /// When the event this email is about happened.
    pub at: String,
    /// The buyer's private order page, or [`ORDER_LINK_SLOT`] to have the send job fill it in.
    pub order_url: String,
    /// Where a reply goes (Reply-To, or From when there is none).
    pub support_address: String,
}

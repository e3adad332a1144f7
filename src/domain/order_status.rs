//! The order state machine (DESIGN.md section 4). The database guard
//! `UPDATE … WHERE status = $expected` mirrors `OrderStatus::can_move_to`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    AwaitingPayment,
    Paid,
    Queued,
    InReview,
    Blocked,
    Fulfilling,
    Delivered,
    Rejected,
    FulfillmentFailed,
    Refunded,
    PartiallyRefunded,
    Expired,
    Declined,
    /// The buyer's card issuer is reversing the payment (a chargeback).
    Disputed,
}

use OrderStatus::*;

impl OrderStatus {
    pub const ALL: [OrderStatus; 14] = [
        AwaitingPayment,
        Paid,
        Queued,
        InReview,
        Blocked,
        Fulfilling,
        Delivered,
        Rejected,
        FulfillmentFailed,
        Refunded,
        PartiallyRefunded,
        Expired,
        Declined,
        Disputed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AwaitingPayment => "awaiting_payment",
            Paid => "paid",
            Queued => "queued",
            InReview => "in_review",
            Blocked => "blocked",
            Fulfilling => "fulfilling",
            Delivered => "delivered",
            Rejected => "rejected",
            FulfillmentFailed => "fulfillment_failed",
            Refunded => "refunded",
            PartiallyRefunded => "partially_refunded",
            Expired => "expired",
            Declined => "declined",
            Disputed => "disputed",
        }
    }

    /// What the buyer reads on the order page.
    pub fn label(self) -> &'static str {
        match self {
            AwaitingPayment => "Waiting for payment",
            Paid => "Payment received",
            Queued => "Payment received — delivery queued",
            InReview => "Payment received — being checked",
            Blocked => "Cancelled — being refunded",
            Fulfilling => "Delivering coins",
            Delivered => "Coins delivered",
            Rejected => "Cancelled — refunded",
            FulfillmentFailed => "Delivery failed",
            Refunded => "Refunded",
            PartiallyRefunded => "Partly refunded",
            Expired => "Expired — not paid",
            Declined => "Declined",
            // Neutral: the buyer (or the card's real owner) is told what happens, not accused.
            Disputed => "Payment being reviewed with your bank",
        }
    }

    /// Whether the buyer has paid for this order (now or before a refund).
    pub fn is_paid(self) -> bool {
        !matches!(self, AwaitingPayment | Expired | Declined)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Delivered | Refunded | Expired | Declined | Rejected)
    }

    /// The allowed transitions. Everything else is refused.
    pub fn can_move_to(self, to: OrderStatus) -> bool {
        match (self, to) {
            (AwaitingPayment, Paid | Expired | Declined) => true,
            // A late payment for an expired order is still money received: it must be handled.
            (Expired, Paid) => true,
            (Paid, Queued | InReview | Blocked) => true,
            (InReview, Queued | Rejected) => true,
            (Queued, Fulfilling | InReview) => true,
            (Fulfilling, Delivered | Queued | InReview | FulfillmentFailed) => true,
            (FulfillmentFailed, Queued) => true,
            // A chargeback can come for any payment the shop received, whatever happened since.
            (from, Disputed) => from.is_paid() && from != Disputed,
            // Decided in the shop's favour after the coins went out.
            (Disputed, Delivered) => true,
            // The issuer is already returning the money: a refund would pay it twice.
            (Disputed, Refunded | PartiallyRefunded) => false,
            (from, Refunded | PartiallyRefunded) => from.is_paid() && from != Refunded,
            _ => false,
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for OrderStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
        }
    }

    #[test]
    fn happy_path_is_allowed() {
        let path = [AwaitingPayment, Paid, Queued, Fulfilling, Delivered];
        for w in path.windows(2) {
            assert!(w[0].can_move_to(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn unpaid_orders_cannot_be_fulfilled_or_refunded() {
        for to in [Queued, Fulfilling, Delivered, Refunded, PartiallyRefunded] {
            assert!(!AwaitingPayment.can_move_to(to), "awaiting_payment -> {to}");
        }
        assert!(!Declined.can_move_to(Paid));
        assert!(!Expired.can_move_to(Refunded));
    }

    #[test]
    fn held_and_blocked_orders_never_reach_fulfillment_directly() {
        assert!(!InReview.can_move_to(Fulfilling));
        assert!(!Blocked.can_move_to(Queued));
        assert!(!Blocked.can_move_to(Fulfilling));
        assert!(!Rejected.can_move_to(Queued));
        assert!(InReview.can_move_to(Queued));
        assert!(Blocked.can_move_to(Refunded));
    }

    #[test]
    fn any_paid_order_can_be_disputed_and_a_disputed_one_is_not_refunded() {
        for s in OrderStatus::ALL {
            assert_eq!(s.can_move_to(Disputed), s.is_paid() && s != Disputed, "{s}");
        }
        assert!(!Disputed.can_move_to(Refunded));
        assert!(!Disputed.can_move_to(Queued));
        assert!(Disputed.can_move_to(Delivered));
    }

    #[test]
    fn refunds_only_from_paid_states_and_not_twice() {
        assert!(Delivered.can_move_to(Refunded));
        assert!(PartiallyRefunded.can_move_to(Refunded));
        assert!(PartiallyRefunded.can_move_to(PartiallyRefunded));
        assert!(!Refunded.can_move_to(Refunded));
        assert!(!Refunded.can_move_to(PartiallyRefunded));
    }
}

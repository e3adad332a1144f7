//! The order lifecycle: every state change with its audit event and follow-up jobs, in one
//! transaction. Handlers and workers call these; none of them writes order state directly.

pub mod checkout;
pub mod disputes;
pub mod erasure;
pub mod expiry;
pub mod fulfillment;
pub mod notify;
pub mod payment_events;
pub mod refunds;
pub mod review;
pub mod screening;
pub mod support;

//! Email to buyers through a durable outbox: an email is rendered and stored in the `emails`
//! table in the transaction of the event that causes it ([`outbox::enqueue`]), and a
//! `send_email` job delivers it ([`send`]) through the configured transport. An order never
//! waits for mail, and a mail server that is down only delays it.

pub mod kinds;
pub mod mailer;
pub mod message;
pub mod outbox;
pub mod render;
pub mod send;
pub mod transport;

pub use kinds::{Email, Facts};
pub use mailer::Mailer;
pub use outbox::NewEmail;

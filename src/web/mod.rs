//! HTTP plumbing shared by the shop and the console: the handlers' shared state (`state.rs`:
//! `AppState`), error pages, forms with CSRF, the client IP, rate limits, security headers and
//! request ids.

pub mod client_ip;
pub mod csrf;
pub mod errors;
pub mod form;
pub mod middleware;
pub mod rate_limit;
pub mod render;
pub mod state;

pub use client_ip::ClientIp;
pub use csrf::CsrfToken;
pub use errors::AppError;
pub use form::SafeForm;
pub use render::{render, Meta};

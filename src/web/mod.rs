//! HTTP plumbing shared by the shop and the console: error pages, forms with CSRF, the client
//! IP, rate limits, security headers and request ids.

pub mod client_ip;
pub mod csrf;
pub mod errors;
pub mod form;
pub mod middleware;
pub mod rate_limit;
pub mod render;

pub use client_ip::ClientIp;
pub use csrf::CsrfToken;
pub use errors::AppError;
pub use form::SafeForm;
pub use render::{render, Meta};

//! Pure types and rules of the shop: no database, no HTTP.
//!
//! Every type here is parsed once at the edge ("parse, don't validate") and is valid for the
//! rest of its life.

pub mod coins;
pub mod email;
pub mod ids;
pub mod mac;
pub mod money;
pub mod order_status;
pub mod order_token;
pub mod payment_method;
pub mod pricing;
pub mod risk_list;
pub mod setting;
pub mod text;
pub mod username;

pub use coins::Coins;
pub use email::BuyerEmail;
pub use money::{Currency, Money};
pub use order_status::OrderStatus;
pub use payment_method::PaymentMethod;
pub use pricing::{Catalog, PriceQuote};
pub use username::TikTokUsername;

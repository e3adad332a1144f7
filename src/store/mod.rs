//! The buyer's side of the shop: catalog, checkout, order pages, health endpoints.

pub mod assets;
pub mod catalog;
pub mod checkout;
pub mod delivery;
pub mod health;
pub mod metrics;
pub mod orders;
pub mod policies;
pub mod quote;
pub mod webhooks;

use crate::web::AppError;
use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(catalog::show))
        .route("/checkout", web::post().to(checkout::submit))
        .route("/checkout/confirm", web::post().to(checkout::confirm))
        .route("/checkout/back", web::post().to(checkout::back_to_form))
        .route(
            "/checkout/return",
            web::get().to(checkout::back_from_provider),
        )
        .route("/orders/lookup", web::get().to(orders::lookup_form))
        .route("/orders/lookup", web::post().to(orders::lookup))
        .route("/orders/{token}", web::get().to(orders::show))
        .route(
            "/orders/{token}/refund",
            web::post().to(orders::request_refund),
        )
        .route(
            "/orders/{token}/messages",
            web::post().to(orders::send_message),
        )
        .route(
            "/webhooks/payments/{provider}",
            web::post().to(webhooks::receive),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/policies/{name}", web::get().to(policies::show))
        .route("/static/{file}", web::get().to(assets::serve))
        .route(
            "/sandbox/pay/{session}",
            web::get().to(crate::payments::sandbox::page::show),
        )
        .route(
            "/sandbox/pay/{session}",
            web::post().to(crate::payments::sandbox::page::pay),
        )
        .route(
            "/sandbox/paypal/{session}",
            web::get().to(crate::payments::sandbox::page::paypal_show),
        )
        .route(
            "/sandbox/paypal/{session}",
            web::post().to(crate::payments::sandbox::page::paypal_decide),
        )
        .route(
            "/sandbox/crypto/{session}",
            web::post().to(crate::payments::sandbox::page::crypto_send),
        );
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

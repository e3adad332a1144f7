//! The buyer's side of the shop: catalog, checkout, order pages, payment webhooks, the sandbox
//! provider's hosted pages (when it is the provider), health endpoints.

pub mod assets;
pub mod catalog;
pub mod checkout;
pub mod delivery;
pub mod health;
pub mod metrics;
pub mod orders;
pub mod policies;
pub mod quote;
pub mod sandbox_page;
pub mod webhooks;

use crate::web::AppError;
use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use self::sandbox_page as sandbox;
    cfg.route("/", web::get().to(catalog::show))
        .service(
            web::resource("/checkout")
                .wrap(no_store())
                .route(web::post().to(checkout::submit)),
        )
        .service(
            web::resource("/checkout/confirm")
                .wrap(no_store())
                .route(web::get().to(checkout::confirm_again))
                .route(web::post().to(checkout::confirm)),
        )
        .service(
            web::resource("/checkout/back")
                .wrap(no_store())
                .route(web::post().to(checkout::back_to_form)),
        )
        .route(
            "/checkout/return",
            web::get().to(checkout::back_from_provider),
        )
        .service(
            web::resource("/checkout/stripe/{session}")
                .wrap(no_store())
                .route(web::get().to(checkout::resume_stripe)),
        )
        .service(
            web::resource("/orders/lookup")
                .wrap(no_store())
                .route(web::get().to(orders::lookup_form))
                .route(web::post().to(orders::lookup)),
        )
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
        .route("/metrics/shop", web::get().to(metrics::shop))
        .route("/policies/{name}", web::get().to(policies::show))
        .route("/static/{file}", web::get().to(assets::serve))
        .service(
            web::resource("/sandbox/pay/{session}")
                .wrap(no_store())
                .route(web::get().to(sandbox::show))
                .route(web::post().to(sandbox::pay)),
        )
        .service(
            web::resource("/sandbox/paypal/{session}")
                .wrap(no_store())
                .route(web::get().to(sandbox::paypal_show))
                .route(web::post().to(sandbox::paypal_decide)),
        )
        .service(
            web::resource("/sandbox/crypto/{session}")
                .wrap(no_store())
                .route(web::post().to(sandbox::crypto_send)),
        );
}

/// Pages that show a buyer's quote, order or payment are kept out of every cache (shared
/// proxies and the back button alike).
fn no_store() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((actix_web::http::header::CACHE_CONTROL, "no-store"))
}

pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

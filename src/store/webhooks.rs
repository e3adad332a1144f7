//! `POST /webhooks/payments/{provider}`: signed events from the payment provider. A bad or
//! stale signature is 400 and changes nothing; a replay is 200 and changes nothing; a failure
//! on our side is 500 (503 when the provider's API could not complete the event), so the
//! provider retries. An event the shop does not use is 200.

use crate::orders::payment_events;
use crate::web::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};

pub async fn receive(
    state: web::Data<AppState>,
    provider: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if provider.as_str() != state.provider.name() {
        return HttpResponse::NotFound().finish();
    }
    let header = req
        .headers()
        .get(state.provider.signature_header())
        .and_then(|v| v.to_str().ok());
    let event = match state.provider.parse_webhook(header, &body, state.now_ms()) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "refused a webhook");
            return HttpResponse::BadRequest()
                .content_type("text/plain; charset=utf-8")
                .body(e.to_string());
        }
    };
    // What the event leaves out (a card's details), from the provider's API.
    let event = match state.provider.enrich(event).await {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "could not complete a webhook's event; the provider will retry");
            return HttpResponse::ServiceUnavailable().finish();
        }
    };
    match payment_events::apply(&state, state.provider.name(), &event).await {
        Ok(outcome) => {
            tracing::info!(event = %event.id, kind = event.kind.as_str(), ?outcome, "webhook applied");
            HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body("ok")
        }
        Err(e) => {
            tracing::error!(error = %e, event = %event.id, "webhook could not be applied; the provider will retry");
            HttpResponse::InternalServerError().finish()
        }
    }
}

//! `/console/support`: open buyer conversations, longest waiting first, with a reply box. The
//! buyer gets the reply by email and on their order page.

use super::form::ConsoleForm;
use super::page::ConsoleMeta;
use super::session::Staff;
use super::views::OrderLine;
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::orders;
use crate::orders::support;
use crate::web::render;
use crate::web::state::AppState;
use crate::web::AppError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct Thread {
    pub order: OrderLine,
    pub order_id: String,
    pub waiting_since: String,
    pub messages: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/support.html")]
struct SupportPage {
    meta: ConsoleMeta,
    flash: bool,
    threads: Vec<Thread>,
}

#[derive(Deserialize)]
pub struct Flash {
    sent: Option<String>,
}

pub async fn show(
    state: web::Data<AppState>,
    staff: Staff,
    flash: web::Query<Flash>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let pool = state.db.pool();
    let mut threads = Vec::new();
    for (order_id, since) in crate::db::support::open_queue(pool, 50).await? {
        let Some(order) = orders::by_id(pool, &order_id).await? else {
            continue;
        };
        let messages = crate::db::support::conversation(pool, &order_id)
            .await?
            .into_iter()
            .map(|m| {
                (
                    if m.from_buyer() {
                        "Buyer".to_owned()
                    } else {
                        m.author.trim_start_matches("staff:").to_owned()
                    },
                    format_utc(m.created_at),
                    m.body,
                )
            })
            .collect();
        threads.push(Thread {
            order: OrderLine::of(&order),
            order_id,
            waiting_since: format_utc(since),
            messages,
        });
    }
    let page = SupportPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Support"),
        flash: flash.sent.is_some(),
        threads,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    message: String,
}

pub async fn reply(
    state: web::Data<AppState>,
    staff: Staff,
    order_id: web::Path<String>,
    form: ConsoleForm<ReplyForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    match support::staff_replies(&state, &order_id, &current.actor(), &form.message).await {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/console/support?sent=1"))
            .finish()),
        Err(support::SupportError::Database(e)) => Err(e.into()),
        Err(e) => Err(ConsoleError::Web(AppError::BadRequest(e.to_string()))),
    }
}

//! `/console/orders`: search (order number, email, TikTok username, card last 4) with status
//! and date filters; `/console/orders/{id}`: everything about one order.

use super::actions::find;
use super::page::ConsoleMeta;
use super::review::FlashQuery;
use super::session::Staff;
use super::views::{self, OrderLine, RiskView};
use super::ConsoleError;
use crate::clock::format_utc;
use crate::db::orders::{Search, Term};
use crate::db::{events, notes, orders, payments};
use crate::domain::{ids, OrderStatus};
use crate::orders::payment_events::method_summary;
use crate::web::render;
use crate::web::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: Option<u32>,
}

pub struct StatusOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/orders.html")]
struct SearchPage {
    meta: ConsoleMeta,
    q: String,
    from: String,
    to: String,
    statuses: Vec<StatusOption>,
    searched_by: Option<&'static str>,
    error: Option<String>,
    results: Vec<OrderLine>,
    page: u32,
    more: Option<String>,
    prev: Option<String>,
}

/// What a search term is taken to be: its label, and what to look for.
fn classify(q: &str) -> Option<(&'static str, Term)> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let upper = q.to_ascii_uppercase();
    Some(
        if upper.starts_with("CF-") || (upper.starts_with("CF") && q.len() == 10) {
            (
                "order number",
                Term::OrderNumber(ids::normalise_order_number(q)),
            )
        } else if q.len() == 4 && q.bytes().all(|b| b.is_ascii_digit()) {
            ("card last 4", Term::CardLast4(q.to_owned()))
        } else if q.contains('@') && !q.starts_with('@') {
            ("email", Term::EmailPrefix(q.to_lowercase()))
        } else {
            (
                "TikTok username",
                Term::UsernamePrefix(q.trim_start_matches('@').to_ascii_lowercase()),
            )
        },
    )
}

fn day_start(text: &str) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| Some(dt.and_utc().timestamp_millis()))
        .ok_or_else(|| format!("{t:?} is not a date: use YYYY-MM-DD."))
}

fn link(q: &SearchQuery, page: u32) -> String {
    serde_urlencoded::to_string([
        ("q", q.q.as_str()),
        ("status", q.status.as_str()),
        ("from", q.from.as_str()),
        ("to", q.to.as_str()),
        ("page", &page.to_string()),
    ])
    .map(|s| format!("/console/orders?{s}"))
    .unwrap_or_else(|_| "/console/orders".into())
}

pub async fn search(
    state: web::Data<AppState>,
    staff: Staff,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let query = query.into_inner();
    let status = query.status.parse::<OrderStatus>().ok();
    let statuses = OrderStatus::ALL
        .into_iter()
        .map(|s| StatusOption {
            value: s.as_str(),
            label: s.label(),
            selected: Some(s) == status,
        })
        .collect();
    let mut page = SearchPage {
        meta: ConsoleMeta::for_staff(&state, &current, "Orders"),
        q: query.q.chars().take(100).collect(),
        from: query.from.chars().take(10).collect(),
        to: query.to.chars().take(10).collect(),
        statuses,
        searched_by: None,
        error: None,
        results: Vec::new(),
        page: query.page.unwrap_or(0),
        more: None,
        prev: None,
    };
    let (from, to) = match (day_start(&query.from), day_start(&query.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            page.error = Some(e);
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let mut filter = Search {
        term: None,
        status,
        created_from: from,
        created_before: to.map(|t| t + 86_400_000),
        limit: PAGE + 1,
        offset: i64::from(page.page) * PAGE,
    };
    if let Some((by, term)) = classify(&query.q) {
        page.searched_by = Some(by);
        filter.term = Some(term);
    }
    let rows = orders::search(state.db.pool(), &filter).await?;
    for order in rows.iter().take(PAGE as usize) {
        page.results.push(OrderLine::of(order));
    }
    if rows.len() as i64 > PAGE {
        page.more = Some(link(&query, page.page + 1));
    }
    if page.page > 0 {
        page.prev = Some(link(&query, page.page - 1));
    }
    Ok(render(StatusCode::OK, &page))
}

pub struct EventLine {
    pub when: String,
    pub actor: String,
    pub kind: String,
    pub change: String,
    pub detail: String,
}

pub struct PaymentLine {
    pub when: String,
    pub method: String,
    pub status: String,
    pub amount: String,
    pub failure: String,
    pub country: String,
    pub fingerprint: String,
    pub reference: String,
}

pub struct NoteLine {
    pub when: String,
    pub author: String,
    pub body: String,
}

#[derive(Template)]
#[template(path = "console/order.html")]
struct OrderPage {
    meta: ConsoleMeta,
    flash: Option<String>,
    order: OrderLine,
    display_name: String,
    account_id: String,
    client_ip: String,
    refunded: String,
    paid: String,
    delivered: String,
    in_review: bool,
    can_retry: bool,
    can_resend: bool,
    timeline: Vec<EventLine>,
    payments: Vec<PaymentLine>,
    risk: Vec<RiskView>,
    notes: Vec<NoteLine>,
    others: Vec<OrderLine>,
    emails: Vec<EmailLine>,
    disputes: Vec<super::disputes::DisputeLine>,
    /// An early fraud warning's fraud type, while a refund could still answer it.
    warning: Option<String>,
    /// The buyer's personal data was erased (the erase form is not offered again).
    erased: bool,
}

/// One of the order's emails as the console lists it.
struct EmailLine {
    id: String,
    kind: String,
    to: String,
    subject: String,
    written: String,
    /// "Sent …" or "Queued …" (with the attempts so far).
    state: String,
    sent: bool,
    /// Its body was deleted (retention or erasure): listed, no longer resent.
    body_deleted: bool,
}

impl EventLine {
    fn of(e: events::OrderEvent) -> EventLine {
        EventLine {
            when: format_utc(e.at),
            actor: e.actor,
            kind: e.kind.replace('_', " "),
            change: match (e.from_status, e.to_status) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => format!("→ {t}"),
                _ => String::new(),
            },
            detail: e.detail,
        }
    }
}

impl PaymentLine {
    fn of(p: payments::PaymentRecord) -> PaymentLine {
        PaymentLine {
            when: format_utc(p.created_at),
            method: method_summary(&p.method, p.card_brand.as_deref(), p.card_last4.as_deref()),
            amount: p
                .currency
                .parse()
                .map(|c| crate::domain::Money::from_minor(p.amount_minor, c).to_string())
                .unwrap_or_else(|_| format!("{} {}", p.amount_minor, p.currency)),
            status: p.status,
            failure: p.failure_code.unwrap_or_default(),
            country: p.card_country.unwrap_or_default(),
            fingerprint: p
                .card_fingerprint
                .map(|f| f.chars().take(16).collect())
                .unwrap_or_default(),
            reference: p.provider_ref,
        }
    }
}

impl NoteLine {
    fn of(n: notes::Note) -> NoteLine {
        NoteLine {
            when: format_utc(n.created_at),
            author: n.author,
            body: n.body,
        }
    }
}

impl EmailLine {
    fn of(e: crate::db::emails::StoredEmail) -> EmailLine {
        EmailLine {
            kind: e.kind.replace('_', " "),
            to: e.to_address,
            subject: e.subject,
            written: format_utc(e.created_at),
            state: match e.sent_at {
                Some(at) => format!("Sent {}", format_utc(at)),
                None if e.attempts == 0 => "Queued".into(),
                None => format!("Queued — {} failed attempts so far", e.attempts),
            },
            sent: e.sent_at.is_some(),
            body_deleted: e.body_deleted_at.is_some(),
            id: e.id,
        }
    }
}

pub async fn show(
    state: web::Data<AppState>,
    staff: Staff,
    key: web::Path<String>,
    query: web::Query<FlashQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let order = find(&state, &key).await?;
    let pool = state.db.pool();
    let (timeline, attempts, notes, emails) = tokio::try_join!(
        events::for_order(pool, &order.id),
        payments::for_order(pool, &order.id),
        notes::for_order(pool, &order.id),
        crate::db::emails::for_order(pool, &order.id),
    )?;
    let currency = order.amount.currency();
    let dash_or_time = |at: Option<i64>| at.map(format_utc).unwrap_or_else(|| "—".into());
    let page = OrderPage {
        meta: ConsoleMeta::for_staff(&state, &current, format!("Order {}", order.order_number)),
        flash: views::flash(query.done.as_deref(), query.order.as_deref()),
        display_name: order.tiktok_display_name.clone(),
        account_id: order.tiktok_account_id.clone(),
        client_ip: order.client_ip.clone(),
        refunded: crate::domain::Money::from_minor(order.refunded_minor, currency).to_string(),
        paid: dash_or_time(order.paid_at),
        delivered: dash_or_time(order.delivered_at),
        in_review: order.status == OrderStatus::InReview,
        can_retry: order.status == OrderStatus::FulfillmentFailed,
        can_resend: order.status == OrderStatus::Delivered,
        emails: emails.into_iter().map(EmailLine::of).collect(),
        timeline: timeline.into_iter().map(EventLine::of).collect(),
        payments: attempts.into_iter().map(PaymentLine::of).collect(),
        risk: views::assessments(&state, &order.id).await?,
        notes: notes.into_iter().map(NoteLine::of).collect(),
        others: views::other_orders(&state, &order).await?,
        disputes: super::disputes::lines(&state, &order).await?,
        warning: crate::orders::disputes::refund_proposed(&state, &order).await?,
        erased: crate::db::erasure::is_erased(&order.email),
        order: OrderLine::of(&order),
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::classify;
    use crate::db::orders::Term;
    use crate::db::params::like_prefix;

    /// The value searched for, as the query binds it.
    fn bound(term: Term) -> String {
        match term {
            Term::OrderNumber(v) | Term::CardLast4(v) => v,
            Term::EmailPrefix(v) | Term::UsernamePrefix(v) => like_prefix(&v),
        }
    }

    #[test]
    fn search_terms_are_read_for_what_they_are() {
        assert_eq!(bound(classify("cf-7k3m9qxd").unwrap().1), "CF-7K3M9QXD");
        assert_eq!(classify("4242").unwrap().0, "card last 4");
        assert_eq!(
            bound(classify("Ana@Example.com").unwrap().1),
            "ana@example.com%"
        );
        let (by, v) = classify("@Ana_Buyer").unwrap();
        assert_eq!((by, bound(v).as_str()), ("TikTok username", "ana\\_buyer%"));
        assert!(classify("  ").is_none());
    }
}

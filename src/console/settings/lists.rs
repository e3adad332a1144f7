//! `/console/settings/lists`: the block and allow lists. Entries in force and those that
//! ended in the last 30 days, with who added them, why and until when; adding an entry (the
//! value checked for its kind, a reason required, an optional expiry) and ending one early.
//! Screening reads the same table, so a change applies to the next order.

use super::super::form::{ConsoleForm, TokenOnly};
use super::super::page::ConsoleMeta;
use super::super::session::{Admin, Current};
use super::super::ConsoleError;
use crate::clock::{format_utc, Millis};
use crate::db::risk_lists::{self as lists, Entry, EntryFilter, NewEntry};
use crate::domain::risk_list::{self, List, ListKind};
use crate::risk::lists::Added;
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// How far back ended entries are shown.
const ENDED_SHOWN_MS: i64 = 30 * 86_400_000;
const SHOWN: i64 = 200;
const MAX_REASON: usize = 500;
/// Ten years: long enough for "for good" to be left blank instead.
const MAX_EXPIRY_MS: i64 = 3650 * 86_400_000;

pub struct EntryLine {
    pub id: String,
    pub list: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub reason: String,
    pub added_by: String,
    pub added: String,
    /// "never", the expiry, or when and by whom it was removed.
    pub until: String,
}

impl EntryLine {
    fn of(e: Entry) -> Self {
        let until = match (&e.removed_by, e.removed_at, e.expires_at) {
            (Some(by), Some(at), _) => format!("removed {} by {by}", format_utc(at)),
            (_, _, Some(t)) => format_utc(t),
            _ => "never".into(),
        };
        EntryLine {
            list: e.list.as_str(),
            kind: e.kind.describe(),
            added: format_utc(e.created_at),
            until,
            id: e.id,
            value: e.value,
            reason: e.reason,
            added_by: e.added_by,
        }
    }
}

pub struct KindOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

fn kind_options(selected: &str) -> Vec<KindOption> {
    ListKind::ALL
        .into_iter()
        .map(|k| KindOption {
            value: k.as_str(),
            label: k.describe(),
            selected: k.as_str() == selected,
        })
        .collect()
}

/// The add form as typed, shown again with an error.
#[derive(Deserialize, Default, Clone)]
pub struct AddForm {
    #[serde(default)]
    list: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
    /// A number of `expires_unit`s from now; blank for no expiry.
    #[serde(default)]
    expires_in: String,
    /// `hours` or `days`.
    #[serde(default)]
    expires_unit: String,
    /// `YYYY-MM-DD`: in force to the end of that day (UTC).
    #[serde(default)]
    expires_on: String,
}

#[derive(Template)]
#[template(path = "console/settings/lists.html")]
struct ListsPage {
    meta: ConsoleMeta,
    notice: Option<String>,
    error: Option<String>,
    active: Vec<EntryLine>,
    active_more: bool,
    ended: Vec<EntryLine>,
    q: String,
    filter_kinds: Vec<KindOption>,
    form: AddForm,
    form_kinds: Vec<KindOption>,
}

#[derive(Deserialize, Default)]
pub struct ListsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    done: Option<String>,
}

async fn page(
    state: &AppState,
    current: &Current,
    status: StatusCode,
    query: &ListsQuery,
    notice: Option<String>,
    error: Option<String>,
    form: AddForm,
) -> Result<HttpResponse, ConsoleError> {
    let pool = state.db.pool();
    let now = state.now_ms();
    let q: String = query.q.trim().chars().take(200).collect();
    let filter = EntryFilter {
        kind: ListKind::parse(&query.kind),
        value_contains: (!q.is_empty()).then(|| q.clone()),
    };
    let mut active = lists::entries(pool, now, None, &filter, SHOWN + 1).await?;
    let active_more = active.len() as i64 > SHOWN;
    active.truncate(SHOWN as usize);
    let ended = lists::entries(pool, now, Some(now - ENDED_SHOWN_MS), &filter, SHOWN).await?;
    let form_kinds = kind_options(&form.kind);
    let page = ListsPage {
        meta: ConsoleMeta::for_staff(state, current, "Block and allow lists"),
        notice,
        error,
        active: active.into_iter().map(EntryLine::of).collect(),
        active_more,
        ended: ended.into_iter().map(EntryLine::of).collect(),
        q,
        filter_kinds: kind_options(&query.kind),
        form,
        form_kinds,
    };
    Ok(render(status, &page))
}

pub async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<ListsQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let notice = match query.done.as_deref() {
        Some("added") => Some("Added. It applies from the next order on.".to_owned()),
        Some("removed") => Some("Removed. It no longer applies to new orders.".to_owned()),
        _ => None,
    };
    let form = AddForm {
        list: "block".into(),
        expires_unit: "days".into(),
        ..Default::default()
    };
    page(&state, &current, StatusCode::OK, &query, notice, None, form).await
}

/// When an entry should stop applying: `Ok(None)` for never. A number of hours or days, or a
/// date (in force to the end of that day, UTC); not both.
pub fn parse_expiry(
    amount: &str,
    unit: &str,
    date: &str,
    now: Millis,
) -> Result<Option<Millis>, String> {
    let (amount, date) = (amount.trim(), date.trim());
    let at = match (amount.is_empty(), date.is_empty()) {
        (true, true) => return Ok(None),
        (false, false) => {
            return Err("Give either a number of hours or days, or a date — not both.".into())
        }
        (false, true) => {
            let n: i64 = amount.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("{amount:?} is not a whole number of hours or days above zero.")
            })?;
            let unit_ms = match unit {
                "hours" => 3_600_000,
                "days" => 86_400_000,
                _ => return Err("Choose hours or days for the expiry.".into()),
            };
            now.saturating_add(n.saturating_mul(unit_ms))
        }
        (true, false) => {
            let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| format!("{date:?} is not a date: use YYYY-MM-DD."))?;
            let end = day
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .ok_or_else(|| format!("{date:?} is too far away."))?;
            let at = end.and_utc().timestamp_millis();
            if at <= now {
                return Err(format!("{date} has passed: choose a date from today on."));
            }
            at
        }
    };
    if at - now > MAX_EXPIRY_MS {
        return Err("Expiries are limited to ten years; leave the expiry blank to keep the entry until it is removed.".into());
    }
    Ok(Some(at))
}

/// Text from a form: one line, without invisible characters, trimmed, at most `max` characters.
fn clean(text: &str, max: usize) -> String {
    crate::domain::text::normalise_at_most(text, false, max)
}

pub async fn add(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    form: ConsoleForm<AddForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Admin(current), ConsoleForm(form)) = (admin, form);
    let now = state.now_ms();
    let checked = check(&form, now);
    let (list, kind, value, reason, expires_at) = match checked {
        Ok(parts) => parts,
        Err(message) => {
            let mut typed = form.clone();
            typed.value = clean(&form.value, 200);
            typed.reason = clean(&form.reason, MAX_REASON);
            return page(
                &state,
                &current,
                StatusCode::UNPROCESSABLE_ENTITY,
                &ListsQuery::default(),
                None,
                Some(message),
                typed,
            )
            .await;
        }
    };
    let actor = current.actor();
    let entry = NewEntry {
        list,
        kind,
        value: &value,
        reason: &reason,
        added_by: &actor,
        expires_at,
    };
    match crate::risk::lists::add(&state.db, entry, &ip.to_string(), now).await? {
        Added::Added(_) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/console/settings/lists?done=added"))
            .finish()),
        Added::AlreadyListed(existing) => {
            let message = format!(
                "That {} is on the {} list already (added {} by {}: {}). Remove that entry first to change it.",
                kind.describe(),
                list.as_str(),
                format_utc(existing.created_at),
                existing.added_by,
                existing.reason
            );
            let query = ListsQuery::default();
            page(
                &state,
                &current,
                StatusCode::CONFLICT,
                &query,
                None,
                Some(message),
                form,
            )
            .await
        }
    }
}

type Checked = (List, ListKind, String, String, Option<Millis>);

/// The add form's fields, parsed; or the first thing wrong with them.
fn check(form: &AddForm, now: Millis) -> Result<Checked, String> {
    let list = List::parse(&form.list).ok_or("Choose the block list or the allow list.")?;
    let kind = ListKind::parse(&form.kind).ok_or("Choose what kind of value to list.")?;
    let value = risk_list::parse_value(kind, &form.value)?;
    let reason = clean(&form.reason, MAX_REASON);
    if reason.is_empty() {
        return Err(
            "Say why: the reason is shown to agents whenever the entry matches an order.".into(),
        );
    }
    let expires_at = parse_expiry(&form.expires_in, &form.expires_unit, &form.expires_on, now)?;
    Ok((list, kind, value, reason, expires_at))
}

pub async fn remove(
    state: web::Data<AppState>,
    admin: Admin,
    ip: ClientIp,
    id: web::Path<String>,
    _form: ConsoleForm<TokenOnly>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let entry = lists::entry_by_id(state.db.pool(), &id)
        .await?
        .ok_or(ConsoleError::Web(AppError::NotFound))?;
    // Ended already (expired, or removed by someone else) is the same page: nothing to do.
    crate::risk::lists::end(
        &state.db,
        &entry,
        &current.actor(),
        &ip.to_string(),
        state.now_ms(),
    )
    .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/settings/lists?done=removed"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01 00:00 UTC

    #[test]
    fn expiry_is_a_duration_or_a_date_never_both() {
        assert_eq!(parse_expiry("", "days", "", NOW), Ok(None));
        assert_eq!(
            parse_expiry("2", "hours", "", NOW),
            Ok(Some(NOW + 7_200_000))
        );
        assert_eq!(
            parse_expiry(" 3 ", "days", "", NOW),
            Ok(Some(NOW + 3 * 86_400_000))
        );
        // A date means "through that day": until the next midnight UTC.
        assert_eq!(
            parse_expiry("", "days", "2026-01-01", NOW),
            Ok(Some(NOW + 86_400_000))
        );
        for bad in [
            ("0", "days", ""),
            ("-1", "days", ""),
            ("1.5", "days", ""),
            ("2", "weeks", ""),
            ("", "days", "2025-12-31"),
            ("", "days", "31/12/2026"),
            ("1", "days", "2026-02-01"),
            ("99999999999", "days", ""),
        ] {
            assert!(parse_expiry(bad.0, bad.1, bad.2, NOW).is_err(), "{bad:?}");
        }
    }
}

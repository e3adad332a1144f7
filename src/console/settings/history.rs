//! `/console/settings/history`: the audit log, newest first — who did what, when, about
//! what, the old and the new value, from which address — filtered by action, subject or actor
//! and paged by keyset (the `before` cursor), so entries written while someone reads do not
//! shift the pages.

use super::super::page::ConsoleMeta;
use super::super::session::Admin;
use super::super::ConsoleError;
use super::AuditLine;
use crate::db::audit::{self, Cursor, Filter, Match};
use crate::web::render;
use crate::web::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    actor: String,
    /// `{at}.{id}` of the last entry of the previous page.
    #[serde(default)]
    before: String,
}

pub struct ActionOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/settings/history.html")]
struct HistoryPage {
    meta: ConsoleMeta,
    error: Option<String>,
    actions: Vec<ActionOption>,
    subject: String,
    actor: String,
    entries: Vec<AuditLine>,
    filtered: bool,
    newest: Option<String>,
    older: Option<String>,
}

fn parse_cursor(text: &str) -> Option<Cursor> {
    let (at, id) = text.split_once('.')?;
    let ok_id = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    Some(Cursor {
        at: at.parse().ok()?,
        id: ok_id.then(|| id.to_owned())?,
    })
}

fn short(text: &str) -> String {
    text.trim().chars().take(200).collect()
}

fn link(action: &str, subject: &str, actor: &str, before: Option<&Cursor>) -> String {
    let before = before
        .map(|c| format!("{}.{}", c.at, c.id))
        .unwrap_or_default();
    let mut pairs = vec![("action", action), ("subject", subject), ("actor", actor)];
    if !before.is_empty() {
        pairs.push(("before", &before));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    match serde_urlencoded::to_string(&pairs) {
        Ok(q) if !q.is_empty() => format!("/console/settings/history?{q}"),
        _ => "/console/settings/history".into(),
    }
}

pub async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let pool = state.db.pool();
    let (action, subject, actor) = (
        short(&query.action),
        short(&query.subject),
        short(&query.actor),
    );
    let mut error = None;
    let before = match query.before.trim() {
        "" => None,
        text => {
            let c = parse_cursor(text);
            if c.is_none() {
                error = Some(
                    "That page link is not one this page made, so the newest entries are shown."
                        .to_owned(),
                );
            }
            c
        }
    };
    let filter = Filter {
        action: (!action.is_empty()).then(|| Match::Exact(action.clone())),
        subject: (!subject.is_empty()).then(|| Match::Contains(subject.clone())),
        actor: (!actor.is_empty()).then(|| Match::Contains(actor.clone())),
    };
    let mut rows = audit::page(pool, &filter, before.as_ref(), PAGE + 1).await?;
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let older = more.then(|| rows.last()).flatten().map(|last| {
        let c = Cursor {
            at: last.at,
            id: last.id.clone(),
        };
        link(&action, &subject, &actor, Some(&c))
    });
    let actions = audit::actions(pool)
        .await?
        .into_iter()
        .map(|a| ActionOption {
            label: a.replace('_', " "),
            selected: a == action,
            value: a,
        })
        .collect();
    let page = HistoryPage {
        meta: ConsoleMeta::for_staff(&state, &current, "History"),
        error,
        actions,
        filtered: filter.action.is_some() || filter.subject.is_some() || filter.actor.is_some(),
        newest: before
            .is_some()
            .then(|| link(&action, &subject, &actor, None)),
        older,
        entries: rows.into_iter().map(AuditLine::of).collect(),
        subject,
        actor,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            at: 1_767_225_600_000,
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        };
        let url = link("staff_added", "", "", Some(&c));
        let text = url.split("before=").nth(1).unwrap();
        assert_eq!(parse_cursor(text), Some(c));
        for junk in ["", "123", "abc.def", "1.", "1.x y", "1.<script>"] {
            assert_eq!(parse_cursor(junk), None, "{junk}");
        }
        assert_eq!(link("", "", "", None), "/console/settings/history");
    }
}

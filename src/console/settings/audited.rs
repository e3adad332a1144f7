//! What the admin pages that save live settings (risk rules, prices) share: the save with its
//! audit entry and the instance's reload, and the answer when someone else saved first.

use crate::console::session::Current;
use crate::console::ConsoleError;
use crate::live_settings::SaveError;
use crate::live_settings::{self, Save, Saved};
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::ClientIp;
use actix_web::http::header;
use actix_web::HttpResponse;

/// A stale save is a 409 page that sends the admin back to the page to review the values
/// now in force; nothing was changed.
pub fn save_error(e: SaveError, back: &str) -> ConsoleError {
    match e {
        SaveError::Stale => ConsoleError::Conflict {
            message: "Someone else saved these settings after you opened the page, so nothing was changed. Open the page again to see the values now in force, then make your change.".into(),
            back: back.to_owned(),
        },
        SaveError::Db(e) => e.into(),
    }
}

/// What one page saves: which setting (its page is `/console/settings/{name}`), the new value
/// (`None` reverts to the config file's), the version the page showed, the audit action, and
/// the word the page's notice is chosen by once it is done.
pub struct Change<'a> {
    pub name: &'a str,
    pub value: Option<serde_json::Value>,
    pub based_on: i64,
    pub action: &'a str,
    pub done: &'a str,
}

/// Saves with its audit entry, reloads this instance's snapshot at once, and sends the admin
/// back to the setting's page with `?done=` the change's word, or `unchanged`.
pub async fn store(
    state: &AppState,
    current: &Current,
    ip: &ClientIp,
    change: Change<'_>,
) -> Result<HttpResponse, ConsoleError> {
    let page = format!("/console/settings/{}", change.name);
    let file_value = state.live.file_value(change.name).ok_or_else(|| {
        ConsoleError::Web(AppError::Unexpected(anyhow::anyhow!(
            "{} is not a live setting",
            change.name
        )))
    })?;
    let actor = current.staff.actor();
    let client_ip = ip.0.to_string();
    let saved = live_settings::save(
        &state.db,
        Save {
            name: change.name,
            value: change.value,
            file_value,
            based_on: change.based_on,
            actor: &actor,
            action: change.action,
            client_ip: &client_ip,
        },
        state.now_ms(),
    )
    .await
    .map_err(|e| save_error(e, &page))?;
    state.live.reload_if_changed(&state.db).await?;
    let done = if saved == Saved::Unchanged {
        "unchanged"
    } else {
        change.done
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("{page}?done={done}")))
        .finish())
}

/// Back to the config file's value: `store` with no value.
pub async fn revert(
    state: &AppState,
    current: &Current,
    ip: &ClientIp,
    name: &str,
    based_on: i64,
    action: &str,
) -> Result<HttpResponse, ConsoleError> {
    let change = Change {
        name,
        value: None,
        based_on,
        action,
        done: "reverted",
    };
    store(state, current, ip, change).await
}

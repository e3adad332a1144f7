//! Changing the block and allow lists: an admin adds an entry or ends one early, each change
//! in one transaction with its audit entry. Screening reads the same table
//! (`db::risk_lists`), so a change applies to the next order.

use crate::clock::{format_utc, Millis};
use crate::db::risk_lists::{self as rows, Entry, NewEntry};
use crate::db::{audit, Db};
use crate::domain::risk_list::{List, ListKind};
use serde_json::json;

/// What adding came to.
#[derive(Debug, Clone)]
pub enum Added {
    /// The new entry's id.
    Added(String),
    /// The same value is on the same list already: nothing was written.
    AlreadyListed(Entry),
}

/// Adds an entry unless the same value is listed already. Adds of one value are serialised
/// (`lock_value`), so two admins cannot list it twice.
pub async fn add(
    db: &Db,
    e: NewEntry<'_>,
    client_ip: &str,
    now: Millis,
) -> Result<Added, sqlx::Error> {
    let mut tx = db.begin().await?;
    rows::lock_value(&mut tx, db.backend(), e.list, e.kind, e.value).await?;
    if let Some(existing) = rows::active_entry(&mut tx, e.list, e.kind, e.value, now).await? {
        tx.rollback().await?;
        return Ok(Added::AlreadyListed(existing));
    }
    let id = rows::add(&mut tx, e.clone(), now).await?;
    let new_value = json!({
        "list": e.list.as_str(),
        "kind": e.kind.as_str(),
        "value": e.value,
        "reason": e.reason,
        "expires": e.expires_at.map(format_utc).unwrap_or_else(|| "never".into()),
    })
    .to_string();
    audit::record(
        &mut tx,
        audit::Entry {
            actor: e.added_by,
            action: "list_entry_added",
            subject: &subject(e.list, e.kind, e.value),
            detail: &format!("Entry {id}: {}", e.reason),
            new_value: Some(&new_value),
            client_ip: Some(client_ip),
            ..Default::default()
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Added::Added(id))
}

/// Ends an entry now; it stays as history. False when it had ended already (expired, or
/// removed by someone else first): nothing is done or recorded then.
pub async fn end(
    db: &Db,
    entry: &Entry,
    actor: &str,
    client_ip: &str,
    now: Millis,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    if !rows::end(&mut tx, &entry.id, actor, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let old_value = json!({
        "list": entry.list.as_str(),
        "kind": entry.kind.as_str(),
        "value": entry.value,
        "reason": entry.reason,
        "added_by": entry.added_by,
        "expires": entry.expires_at.map(format_utc).unwrap_or_else(|| "never".into()),
    })
    .to_string();
    audit::record(
        &mut tx,
        audit::Entry {
            actor,
            action: "list_entry_removed",
            subject: &subject(entry.list, entry.kind, &entry.value),
            detail: &format!("Entry {} ended", entry.id),
            old_value: Some(&old_value),
            new_value: Some("removed"),
            client_ip: Some(client_ip),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// How an entry is named in the audit log, added or ended alike.
fn subject(list: List, kind: ListKind, value: &str) -> String {
    format!("{} list: {} {}", list.as_str(), kind.describe(), value)
}

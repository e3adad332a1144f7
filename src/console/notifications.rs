//! Notification digests in the console: `/console/account/notifications` for the signed-in
//! staff member's own choice, and `/console/settings/staff/{id}/notifications` for an admin
//! choosing for someone else. Both show the same form (whether, how often, which kinds of
//! waiting work); each save is written with its audit entry (old and new value).

use super::form::ConsoleForm;
use super::page::ConsoleMeta;
use super::session::{Admin, Current, Staff};
use super::ConsoleError;
use crate::db::audit;
use crate::db::staff::{self, StaffMember};
use crate::db::staff_digests::{self, Choice};
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::{render, ClientIp};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct Interval {
    pub value: u64,
    pub label: String,
    pub selected: bool,
}

/// One kind of waiting work, as a checkbox.
pub struct Topic {
    pub name: &'static str,
    pub label: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "console/notifications.html")]
struct NotificationsPage {
    meta: ConsoleMeta,
    /// Whose choice this is (their email), when an admin chooses for someone else.
    other: Option<String>,
    action: String,
    enabled: bool,
    intervals: Vec<Interval>,
    topics: Vec<Topic>,
    /// Whether this is the role's default rather than a saved choice.
    is_default: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn interval_label(minutes: u64) -> String {
    match minutes {
        1 => "Every minute".into(),
        60 => "Every hour".into(),
        1440 => "Every day".into(),
        10_080 => "Every week".into(),
        m if m % 1440 == 0 => format!("Every {} days", m / 1440),
        m if m % 60 == 0 => format!("Every {} hours", m / 60),
        m => format!("Every {m} minutes"),
    }
}

/// The choice in force for `member`: saved, or their role's default.
async fn current_choice(
    state: &AppState,
    member: &StaffMember,
) -> Result<(Choice, bool), ConsoleError> {
    Ok(
        match staff_digests::for_staff(state.db.pool(), &member.id).await? {
            Some(stored) => (stored.choice, false),
            None => (
                crate::staff_digest::default_choice(
                    &state.settings.notifications,
                    member.is_admin(),
                ),
                true,
            ),
        },
    )
}

struct View<'a> {
    current: &'a Current,
    member: &'a StaffMember,
    choice: Choice,
    is_default: bool,
    notice: Option<String>,
    error: Option<String>,
}

fn page(state: &AppState, status: StatusCode, v: View<'_>) -> HttpResponse {
    let me = v.member.id == v.current.staff.id;
    let settings = &state.settings.notifications;
    let mut choices = settings.every_minutes_choices.clone();
    if !choices.contains(&v.choice.every_minutes) {
        // A saved interval the settings no longer offer is still shown as chosen.
        choices.push(v.choice.every_minutes);
    }
    let intervals = choices
        .into_iter()
        .map(|m| Interval {
            value: m,
            label: interval_label(m),
            selected: m == v.choice.every_minutes,
        })
        .collect();
    let c = v.choice;
    let topic = |name, label: String, checked| Topic {
        name,
        label,
        checked,
    };
    let topics = vec![
        topic(
            "held",
            format!(
                "Held orders waiting more than {} minutes for review",
                settings.held_after_minutes
            ),
            c.held,
        ),
        topic("refunds", "New refund requests".into(), c.refunds),
        topic(
            "support",
            "Support messages awaiting an answer".into(),
            c.support,
        ),
        topic(
            "dead_jobs",
            "Background jobs that failed for good".into(),
            c.dead_jobs,
        ),
        topic(
            "screening",
            "Screening events (a surge of failed payments)".into(),
            c.screening,
        ),
    ];
    let (title, action, other) = if me {
        (
            "Notifications".to_owned(),
            "/console/account/notifications".to_owned(),
            None,
        )
    } else {
        (
            format!("Notifications for {}", v.member.email),
            format!("/console/settings/staff/{}/notifications", v.member.id),
            Some(v.member.email.clone()),
        )
    };
    render(
        status,
        &NotificationsPage {
            meta: ConsoleMeta::for_staff(state, v.current, title),
            other,
            action,
            enabled: c.enabled,
            intervals,
            topics,
            is_default: v.is_default,
            notice: v.notice,
            error: v.error,
        },
    )
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

async fn show_for(
    state: &AppState,
    current: &Current,
    member: &StaffMember,
    saved: bool,
) -> Result<HttpResponse, ConsoleError> {
    let (choice, is_default) = current_choice(state, member).await?;
    let notice = saved.then(|| "Saved.".to_owned());
    Ok(page(
        state,
        StatusCode::OK,
        View {
            current,
            member,
            choice,
            is_default,
            notice,
            error: None,
        },
    ))
}

pub async fn show_own(
    state: web::Data<AppState>,
    staff: Staff,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Staff(current) = staff;
    let member = current.staff.clone();
    show_for(&state, &current, &member, query.saved.is_some()).await
}

async fn member_by_id(state: &AppState, id: &str) -> Result<StaffMember, ConsoleError> {
    staff::by_id(state.db.pool(), id)
        .await?
        .ok_or(ConsoleError::Web(AppError::NotFound))
}

pub async fn show_other(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let Admin(current) = admin;
    let member = member_by_id(&state, &id).await?;
    show_for(&state, &current, &member, query.saved.is_some()).await
}

/// The form. Unticked checkboxes are absent.
#[derive(Deserialize)]
pub struct ChoiceForm {
    enabled: Option<String>,
    every_minutes: String,
    held: Option<String>,
    refunds: Option<String>,
    support: Option<String>,
    dead_jobs: Option<String>,
    screening: Option<String>,
}

impl ChoiceForm {
    /// The choice, or the message saying what is wrong.
    fn parse(&self, offered: &[u64], kept: u64) -> Result<Choice, String> {
        let every_minutes = self
            .every_minutes
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|m| offered.contains(m) || *m == kept)
            .ok_or_else(|| "Choose how often from the list.".to_owned())?;
        let choice = Choice {
            enabled: self.enabled.is_some(),
            every_minutes,
            held: self.held.is_some(),
            refunds: self.refunds.is_some(),
            support: self.support.is_some(),
            dead_jobs: self.dead_jobs.is_some(),
            screening: self.screening.is_some(),
        };
        if choice.enabled
            && !(choice.held
                || choice.refunds
                || choice.support
                || choice.dead_jobs
                || choice.screening)
        {
            return Err(
                "Tick at least one kind of work for the digest to list, or turn the digest off."
                    .into(),
            );
        }
        Ok(choice)
    }
}

fn describe(c: &Choice) -> String {
    if !c.enabled {
        return "off".into();
    }
    let kinds: Vec<&str> = [
        (c.held, "held orders"),
        (c.refunds, "refund requests"),
        (c.support, "support messages"),
        (c.dead_jobs, "dead jobs"),
        (c.screening, "screening events"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    format!(
        "{}: {}",
        interval_label(c.every_minutes).to_lowercase(),
        kinds.join(", ")
    )
}

async fn save_for(
    state: &AppState,
    ip: ClientIp,
    current: &Current,
    member: &StaffMember,
    form: &ChoiceForm,
    done_url: &str,
) -> Result<HttpResponse, ConsoleError> {
    let (old, is_default) = current_choice(state, member).await?;
    let choice = match form.parse(
        &state.settings.notifications.every_minutes_choices,
        old.every_minutes,
    ) {
        Ok(c) => c,
        Err(message) => {
            // The page again with what was sent, ticked as it was.
            let shown = Choice {
                enabled: form.enabled.is_some(),
                every_minutes: old.every_minutes,
                held: form.held.is_some(),
                refunds: form.refunds.is_some(),
                support: form.support.is_some(),
                dead_jobs: form.dead_jobs.is_some(),
                screening: form.screening.is_some(),
            };
            return Ok(page(
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
                View {
                    current,
                    member,
                    choice: shown,
                    is_default,
                    notice: None,
                    error: Some(message),
                },
            ));
        }
    };
    let now = state.now_ms();
    let ip_text = ip.to_string();
    let (old_text, new_text) = (describe(&old), describe(&choice));
    let mut tx = state.db.begin().await?;
    staff_digests::save(&mut tx, &member.id, &choice, now).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            actor: &current.actor(),
            action: "notifications_changed",
            subject: &member.email,
            detail: "Notification digest",
            old_value: Some(&old_text),
            new_value: Some(&new_text),
            client_ip: Some(&ip_text),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, done_url))
        .finish())
}

pub async fn save_own(
    state: web::Data<AppState>,
    ip: ClientIp,
    staff: Staff,
    form: ConsoleForm<ChoiceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Staff(current), ConsoleForm(form)) = (staff, form);
    let member = current.staff.clone();
    save_for(
        &state,
        ip,
        &current,
        &member,
        &form,
        "/console/account/notifications?saved=1",
    )
    .await
}

pub async fn save_other(
    state: web::Data<AppState>,
    ip: ClientIp,
    admin: Admin,
    id: web::Path<String>,
    form: ConsoleForm<ChoiceForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (Admin(current), ConsoleForm(form)) = (admin, form);
    let member = member_by_id(&state, &id).await?;
    let done = format!(
        "/console/settings/staff/{}/notifications?saved=1",
        member.id
    );
    save_for(&state, ip, &current, &member, &form, &done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(every: &str, enabled: bool, held: bool) -> ChoiceForm {
        let on = |b: bool| b.then(|| "on".to_owned());
        ChoiceForm {
            enabled: on(enabled),
            every_minutes: every.into(),
            held: on(held),
            refunds: None,
            support: None,
            dead_jobs: None,
            screening: None,
        }
    }

    #[test]
    fn only_offered_intervals_and_at_least_one_kind() {
        let offered = [15, 60];
        assert_eq!(
            form("15", true, true)
                .parse(&offered, 60)
                .unwrap()
                .every_minutes,
            15
        );
        assert!(form("16", true, true).parse(&offered, 60).is_err());
        assert!(form("-1", true, true).parse(&offered, 60).is_err());
        assert!(form("99999999999999999999", true, true)
            .parse(&offered, 60)
            .is_err());
        // A saved interval no longer offered can be kept.
        assert_eq!(
            form("30", true, true)
                .parse(&offered, 30)
                .unwrap()
                .every_minutes,
            30
        );
        assert!(form("60", true, false).parse(&offered, 60).is_err());
        assert!(
            !form("60", false, false)
                .parse(&offered, 60)
                .unwrap()
                .enabled
        );
    }

    #[test]
    fn labels() {
        assert_eq!(interval_label(15), "Every 15 minutes");
        assert_eq!(interval_label(240), "Every 4 hours");
        assert_eq!(interval_label(1440), "Every day");
        assert_eq!(interval_label(2880), "Every 2 days");
    }
}

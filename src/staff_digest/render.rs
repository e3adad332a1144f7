//! The digest email, plain text and HTML, from `templates/email/staff_digest.{txt,html}`:
//! one section per kind of waiting work, each line linking into the console.

use super::{Deps, Gathered};
use crate::clock::{format_utc, Millis};
use crate::db::staff_digests::{Found, Item};
use crate::mail::render::{header_text, tidy, Rendered};
use askama::Template;

/// One line: what waits, and where in the console to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub lines: Vec<Line>,
    /// How many more there are than the lines listed.
    pub more: i64,
    pub queue_label: String,
    pub queue_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub shop_name: String,
    pub subject: String,
    /// "2026-11-24 15:00 UTC to 2026-11-24 16:00 UTC"
    pub period: String,
    pub sections: Vec<Section>,
    pub settings_url: String,
}

#[derive(Template)]
#[template(path = "email/staff_digest.txt")]
struct TextBody<'a> {
    d: &'a Digest,
}

#[derive(Template)]
#[template(path = "email/staff_digest.html")]
struct HtmlBody<'a> {
    d: &'a Digest,
}

fn order_url(base: &str, item: &Item) -> Option<String> {
    item.order_number
        .as_deref()
        .map(|n| format!("{base}/console/orders/{n}"))
}

fn section(
    base: &str,
    found: &Found,
    title: &str,
    queue: (&str, &str),
    line: impl Fn(&Item) -> String,
) -> Option<Section> {
    if found.total == 0 {
        return None;
    }
    let queue_url = format!("{base}{}", queue.1);
    let lines: Vec<Line> = found
        .items
        .iter()
        .map(|item| Line {
            text: line(item),
            url: order_url(base, item).unwrap_or_else(|| queue_url.clone()),
        })
        .collect();
    let listed = i64::try_from(lines.len()).unwrap_or(i64::MAX);
    Some(Section {
        title: format!("{title} ({})", found.total),
        more: found.total.saturating_sub(listed).max(0),
        lines,
        queue_label: queue.0.to_owned(),
        queue_url,
    })
}

fn order(item: &Item) -> &str {
    item.order_number.as_deref().unwrap_or("—")
}

/// Free text from the database (job errors, surge details) on one short line.
fn short(text: &str) -> String {
    let one_line = header_text(text);
    match one_line.char_indices().nth(160) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

impl Digest {
    pub fn new(deps: &Deps<'_>, g: &Gathered, from: Millis, until: Millis) -> Digest {
        let base = deps.base_url.trim_end_matches('/');
        let held_after = deps.settings.held_after_minutes;
        let sections: Vec<Section> = [
            section(
                base,
                &g.held,
                &format!("Held orders waiting more than {held_after} minutes"),
                ("Open the review queue", "/console/review"),
                |i| format!("{} held since {}", order(i), format_utc(i.at)),
            ),
            section(
                base,
                &g.refunds,
                "New refund requests",
                ("Open refund requests", "/console/refunds"),
                |i| {
                    format!(
                        "{}: {} (asked {})",
                        order(i),
                        short(&i.detail.replace('_', " ")),
                        format_utc(i.at)
                    )
                },
            ),
            section(
                base,
                &g.support,
                "Support messages awaiting an answer",
                ("Open support", "/console/support"),
                |i| format!("{} waiting since {}", order(i), format_utc(i.at)),
            ),
            section(
                base,
                &g.dead_jobs,
                "Background jobs that failed for good",
                ("Open the dashboard", "/console/"),
                |i| format!("{} at {}", short(&i.detail), format_utc(i.at)),
            ),
            section(
                base,
                &g.screening,
                "Screening events",
                ("Open the dashboard", "/console/"),
                |i| format!("{} (from {})", short(&i.detail), format_utc(i.at)),
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let waiting: i64 = [&g.held, &g.refunds, &g.support, &g.dead_jobs, &g.screening]
            .iter()
            .map(|f| f.total)
            .fold(0, i64::saturating_add);
        let subject = header_text(&format!(
            "{}: {} waiting for staff ({} to {})",
            deps.shop_name,
            if waiting == 1 {
                "1 thing".to_owned()
            } else {
                format!("{waiting} things")
            },
            format_utc(from),
            format_utc(until)
        ));
        Digest {
            shop_name: deps.shop_name.to_owned(),
            subject,
            period: format!("{} to {}", format_utc(from), format_utc(until)),
            sections,
            settings_url: format!("{base}/console/account/notifications"),
        }
    }

    pub fn render(&self) -> Result<Rendered, askama::Error> {
        Ok(Rendered {
            subject: self.subject.clone(),
            text: tidy(&TextBody { d: self }.render()?),
            html: HtmlBody { d: self }.render()?,
        })
    }
}

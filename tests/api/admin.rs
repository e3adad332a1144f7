//! The admin pages over real HTTP: staff (add with a one-time setup link, disable, enable,
//! reset), the block and allow lists (applied to the next order, expiring on time), the
//! history page, and who may use them (admins only, with the session's CSRF token).

use crate::helpers::{
    assert_is_redirect_to, extract_hidden, post_from, spawn_app, Browser, Checkout, TestApp,
    STAFF_PASSWORD,
};
use coinfront::db::audit;
use coinfront::db::staff;

const BOSS: &str = "boss@example.com";
const STAFF: &str = "/console/settings/staff";
const LISTS: &str = "/console/settings/lists";
const HISTORY: &str = "/console/settings/history";
const NEW_PASSWORD: &str = "marble orchard lantern";

/// The one-time setup link a page shows, as a path.
fn setup_path(html: &str) -> String {
    let at = html
        .find("/console/setup/")
        .unwrap_or_else(|| panic!("no setup link on the page: {html}"));
    html[at..]
        .chars()
        .take("/console/setup/".len() + 64)
        .collect()
}

/// Opens a setup link in a fresh browser and chooses `password` with it.
async fn use_setup_link(app: &TestApp, path: &str, password: &str) -> reqwest::Response {
    let browser = Browser::new(app.address.clone());
    let page = browser.get(path).await;
    assert_eq!(page.status(), 200, "the setup link opens");
    let html = page.text().await.unwrap();
    assert!(html.contains("Choose your password"), "{html}");
    let csrf = extract_hidden(&html, "csrf_token").unwrap();
    browser
        .post_form(
            path,
            &[
                ("csrf_token", &csrf),
                ("password", password),
                ("confirm_password", password),
            ],
        )
        .await
}

async fn staff_id(app: &TestApp, email: &str) -> String {
    staff::by_email(app.state.db.pool(), email)
        .await
        .unwrap()
        .expect("staff member exists")
        .id
}

/// Posts one of the staff page's forms.
async fn on_staff_page(
    browser: &Browser,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    post_from(browser, STAFF, action, fields).await
}

async fn add_list_entry(admin: &Browser, fields: &[(&str, &str)]) -> reqwest::Response {
    post_from(admin, LISTS, LISTS, fields).await
}

/// The newest audit entry with `action`.
async fn last_audit(app: &TestApp, action: &str) -> audit::AuditRow {
    let filter = audit::Filter {
        action: Some(audit::Match::Exact(action.into())),
        ..Default::default()
    };
    audit::page(app.state.db.pool(), &filter, None, 1)
        .await
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("no {action} entry"))
}

#[tokio::test]
async fn an_added_person_chooses_a_password_with_the_link_and_signs_in() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;

    let r = on_staff_page(
        &admin,
        STAFF,
        &[("email", "New.Agent@Example.com"), ("role", "agent")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Added new.agent@example.com as agent"),
        "{html}"
    );
    assert!(html.contains("It is shown only now"));
    let link = setup_path(&html);
    // Only the hash is kept, so the list page cannot show it again.
    let list = admin.get_html(STAFF).await;
    assert!(
        list.contains("waiting for setup link") && !list.contains(&link),
        "{list}"
    );

    // The link page refuses a weak password with a message, then takes a good one.
    let weak = use_setup_link(&app, &link, "password1234").await;
    assert_eq!(weak.status(), 422);
    assert!(weak.text().await.unwrap().contains("common passwords"));
    let r = use_setup_link(&app, &link, NEW_PASSWORD).await;
    assert_is_redirect_to(&r, "/console/login?set=1");
    // Used once: dead for a GET and a second post.
    let dead = Browser::new(app.address.clone()).get(&link).await;
    assert_eq!(dead.status(), 400);
    assert!(dead.text().await.unwrap().contains("used already"));

    let person = Browser::new(app.address.clone());
    let r = app
        .console_sign_in(&person, "new.agent@example.com", NEW_PASSWORD)
        .await;
    assert_is_redirect_to(&r, "/console/");
    assert_eq!(person.get("/console/review").await.status(), 200);
    // An agent: no admin pages.
    assert_eq!(person.get(STAFF).await.status(), 403);

    let added = last_audit(&app, "staff_added").await;
    assert_eq!(added.actor, format!("staff:{BOSS}"));
    assert_eq!(added.subject, "new.agent@example.com");
    assert!(added.new_value.unwrap().contains("\"role\":\"agent\""));
    assert_eq!(added.client_ip.as_deref(), Some("127.0.0.1"));
    let set = last_audit(&app, "password_set").await;
    assert_eq!(set.actor, "staff:new.agent@example.com");
}

#[tokio::test]
async fn a_new_admin_from_a_link_must_still_enrol_two_factor() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let r = on_staff_page(
        &admin,
        STAFF,
        &[("email", "second@example.com"), ("role", "admin")],
    )
    .await;
    let link = setup_path(&r.text().await.unwrap());
    assert_is_redirect_to(
        &use_setup_link(&app, &link, NEW_PASSWORD).await,
        "/console/login",
    );
    let browser = Browser::new(app.address.clone());
    let r = app
        .console_sign_in(&browser, "second@example.com", NEW_PASSWORD)
        .await;
    assert_is_redirect_to(&r, "/console/account/totp");
    assert_is_redirect_to(&browser.get(STAFF).await, "/console/account/totp");
}

#[tokio::test]
async fn the_add_form_explains_what_is_wrong() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    app.add_staff("taken@example.com", staff::Role::Agent).await;
    let before = app.count("SELECT COUNT(*) FROM staff").await;
    for (fields, status, message) in [
        (
            vec![("email", "not an email"), ("role", "agent")],
            422,
            "Enter the new person&#39;s email address",
        ),
        (vec![("role", "agent")], 422, "email address"),
        (
            vec![("email", "ok@example.com"), ("role", "owner")],
            422,
            "Choose a role: agent or admin.",
        ),
        (vec![("email", "ok@example.com")], 422, "Choose a role"),
        (
            vec![("email", "Taken@Example.com"), ("role", "admin")],
            409,
            "taken@example.com has a staff account already",
        ),
    ] {
        let r = on_staff_page(&admin, STAFF, &fields).await;
        assert_eq!(r.status(), status, "{fields:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "{fields:?}: {html}");
        // The form comes back with what was typed.
        if let Some((_, email)) = fields.iter().find(|(k, _)| *k == "email") {
            assert!(html.contains(&format!("value=\"{email}\"")), "{html}");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM staff").await, before);
    // Buttons for a staff member who does not exist: a 404 page, not an error.
    for action in ["disable", "enable", "reset"] {
        let r = on_staff_page(&admin, &format!("{STAFF}/no-such-id/{action}"), &[]).await;
        assert_eq!(r.status(), 404, "{action}");
    }
}

#[tokio::test]
async fn disabling_ends_open_sessions_at_once_and_stops_sign_in() {
    let app = spawn_app().await;
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let id = staff_id(&app, "agent@example.com").await;
    assert_eq!(agent.get("/console/").await.status(), 200);

    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/disable"), &[]).await;
    assert_is_redirect_to(&r, "/console/settings/staff?done=disabled");
    let html = admin
        .get_html(r.headers()["location"].to_str().unwrap())
        .await;
    assert!(
        html.contains("Disabled agent@example.com: their sessions have ended"),
        "{html}"
    );
    // The agent's open session is refused on its very next request.
    assert_is_redirect_to(&agent.get("/console/").await, "/console/login");
    let r = app
        .console_sign_in(&agent, "agent@example.com", STAFF_PASSWORD)
        .await;
    assert_eq!(r.status(), 422);
    let entry = last_audit(&app, "staff_disabled").await;
    assert_eq!(
        (entry.old_value.as_deref(), entry.new_value.as_deref()),
        (Some("active"), Some("disabled"))
    );

    // Disabling again changes nothing and records nothing.
    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/disable"), &[]).await;
    assert_is_redirect_to(&r, "/console/settings/staff?done=disabled");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'staff_disabled'")
            .await,
        1
    );

    // Enabled again, the account signs in with the password it had.
    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/enable"), &[]).await;
    assert_is_redirect_to(&r, "/console/settings/staff?done=enabled");
    let r = app
        .console_sign_in(&agent, "agent@example.com", STAFF_PASSWORD)
        .await;
    assert_is_redirect_to(&r, "/console/");
    let entry = last_audit(&app, "staff_enabled").await;
    assert_eq!(entry.new_value.as_deref(), Some("active"));

    // An admin cannot disable themselves.
    let me = staff_id(&app, BOSS).await;
    let r = on_staff_page(&admin, &format!("{STAFF}/{me}/disable"), &[]).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You cannot disable your own account"));
    assert_eq!(admin.get(STAFF).await.status(), 200);
}

#[tokio::test]
async fn two_admins_disabling_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let a = app.sign_in_as_admin("a@example.com").await;
    let b = app.sign_in_as_admin("b@example.com").await;
    let (id_a, id_b) = (
        staff_id(&app, "a@example.com").await,
        staff_id(&app, "b@example.com").await,
    );
    let (html_a, html_b) = (a.get_html(STAFF).await, b.get_html(STAFF).await);
    let csrf_a = extract_hidden(&html_a, "csrf_token").unwrap();
    let csrf_b = extract_hidden(&html_b, "csrf_token").unwrap();
    let (to_b, to_a) = (
        format!("{STAFF}/{id_b}/disable"),
        format!("{STAFF}/{id_a}/disable"),
    );
    let (form_a, form_b) = (
        [("csrf_token", csrf_a.as_str())],
        [("csrf_token", csrf_b.as_str())],
    );
    let (ra, rb) = tokio::join!(a.post_form(&to_b, &form_a), b.post_form(&to_a, &form_b));
    // One wins; the other is refused (the last admin) or finds its own session ended.
    let statuses = [ra.status().as_u16(), rb.status().as_u16()];
    assert!(statuses.contains(&303), "{statuses:?}");
    assert!(!statuses.contains(&500), "{statuses:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff WHERE role = 'admin' AND disabled_at IS NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'staff_disabled'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_password_reset_refuses_the_old_password_and_the_link_sets_a_new_one() {
    let app = spawn_app().await;
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let id = staff_id(&app, "agent@example.com").await;

    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/reset"), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Password reset link for agent@example.com"),
        "{html}"
    );
    let link = setup_path(&html);
    // Their session ended and the old password is refused.
    assert_is_redirect_to(&agent.get("/console/").await, "/console/login");
    let r = app
        .console_sign_in(&agent, "agent@example.com", STAFF_PASSWORD)
        .await;
    assert_eq!(r.status(), 422);

    // A second reset makes a new link; the first one stops working.
    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/reset"), &[]).await;
    let newer = setup_path(&r.text().await.unwrap());
    assert_ne!(newer, link);
    assert_eq!(
        Browser::new(app.address.clone()).get(&link).await.status(),
        400
    );

    assert_is_redirect_to(
        &use_setup_link(&app, &newer, NEW_PASSWORD).await,
        "/console/login",
    );
    let r = app
        .console_sign_in(&agent, "agent@example.com", NEW_PASSWORD)
        .await;
    assert_is_redirect_to(&r, "/console/");
    let entry = last_audit(&app, "staff_password_reset").await;
    assert_eq!(entry.subject, "agent@example.com");
    assert!(entry.old_value.unwrap().contains("password_set"));
    assert!(entry
        .new_value
        .unwrap()
        .contains("\"password\":\"cleared\""));

    // Your own password is changed on Your account, not reset here; a disabled account
    // must be enabled first.
    let me = staff_id(&app, BOSS).await;
    let r = on_staff_page(&admin, &format!("{STAFF}/{me}/reset"), &[]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("use Your account"));
    on_staff_page(&admin, &format!("{STAFF}/{id}/disable"), &[]).await;
    let r = on_staff_page(&admin, &format!("{STAFF}/{id}/reset"), &[]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("Enable the account first"));
}

#[tokio::test]
async fn disabling_kills_an_unused_setup_link() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let r = on_staff_page(
        &admin,
        STAFF,
        &[("email", "temp@example.com"), ("role", "agent")],
    )
    .await;
    let link = setup_path(&r.text().await.unwrap());
    let id = staff_id(&app, "temp@example.com").await;
    on_staff_page(&admin, &format!("{STAFF}/{id}/disable"), &[]).await;
    let r = Browser::new(app.address.clone()).get(&link).await;
    assert_eq!(r.status(), 400);
}

/// The checkout's answer for an order to `username` (the confirm page's title).
async fn checkout_as(app: &TestApp, username: &str) -> reqwest::Response {
    let html = app
        .post_checkout(&Checkout {
            username,
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    app.confirm(&html).await
}

#[tokio::test]
async fn a_list_entry_with_a_reason_blocks_orders_until_it_expires() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let r = add_list_entry(
        &admin,
        &[
            ("list", "block"),
            ("kind", "tiktok_username"),
            ("value", "@Scam_Target"),
            ("reason", "chargebacks on three orders"),
            ("expires_in", "2"),
            ("expires_unit", "hours"),
            ("expires_on", ""),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/lists?done=added");
    let html = admin.get_html(LISTS).await;
    for shown in [
        "scam_target",
        "chargebacks on three orders",
        "staff:boss@example.com",
        "TikTok username",
    ] {
        assert!(html.contains(shown), "{shown}: {html}");
    }

    // The next order to that username is declined before payment.
    let r = checkout_as(&app, "scam_target").await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("We could not accept this order"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders WHERE status = 'declined'")
            .await,
        1
    );
    // Other buyers are unaffected.
    let other = app
        .buy(&Checkout {
            username: "fine_buyer",
            email: "fine@example.com",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&other, "delivered").await;

    // Two hours on, the entry has expired and the same username buys normally.
    app.clock.advance_secs(2 * 3600 + 1);
    let path = app
        .buy(&Checkout {
            username: "scam_target",
            ..Default::default()
        })
        .await;
    app.wait_for_status(&path, "delivered").await;
    // The page lists it under "ended" (a new sign-in: the old session timed out).
    let admin = app.sign_in_as_admin("boss2@example.com").await;
    let html = admin.get_html(LISTS).await;
    let ended = html.split("Ended in the last 30 days").nth(1).unwrap();
    assert!(ended.contains("scam_target"), "{html}");

    let entry = last_audit(&app, "list_entry_added").await;
    assert_eq!(entry.actor, format!("staff:{BOSS}"));
    assert!(entry.subject.contains("scam_target"));
    let new_value = entry.new_value.unwrap();
    assert!(
        new_value.contains("chargebacks on three orders")
            && new_value.contains("\"list\":\"block\"")
    );
}

#[tokio::test]
async fn a_removed_entry_stops_matching_at_once_and_stays_as_history() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let r = add_list_entry(
        &admin,
        &[
            ("list", "block"),
            ("kind", "email"),
            ("value", "Ana@Example.com"),
            ("reason", "testing cards"),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/lists?done=added");
    assert!(checkout_as(&app, "ana_buyer")
        .await
        .text()
        .await
        .unwrap()
        .contains("We could not accept this order"));
    // The same value twice is refused with who listed it.
    let r = add_list_entry(
        &admin,
        &[
            ("list", "block"),
            ("kind", "email"),
            ("value", "ana@example.com"),
            ("reason", "again"),
        ],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("on the block list already"));

    let id: String = {
        use sqlx::Row;
        sqlx::query("SELECT id FROM risk_lists")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0)
    };
    let r = post_from(&admin, LISTS, &format!("{LISTS}/{id}/remove"), &[]).await;
    assert_is_redirect_to(&r, "/console/settings/lists?done=removed");
    let path = app.buy(&Checkout::default()).await;
    app.wait_for_status(&path, "delivered").await;
    let html = admin.get_html(LISTS).await;
    let ended = html.split("Ended in the last 30 days").nth(1).unwrap();
    assert!(
        ended.contains("ana@example.com") && ended.contains("removed"),
        "{html}"
    );
    let entry = last_audit(&app, "list_entry_removed").await;
    assert!(entry.old_value.unwrap().contains("testing cards"));
    assert_eq!(entry.new_value.as_deref(), Some("removed"));
    // Removing it again does nothing; an unknown entry is a 404.
    let r = post_from(&admin, LISTS, &format!("{LISTS}/{id}/remove"), &[]).await;
    assert_is_redirect_to(&r, "/console/settings/lists?done=removed");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'list_entry_removed'")
            .await,
        1
    );
    let r = post_from(&admin, LISTS, &format!("{LISTS}/nope/remove"), &[]).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_ip_entry_matches_the_address_orders_come_from() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let r = add_list_entry(
        &admin,
        &[
            ("list", "block"),
            ("kind", "ip"),
            ("value", " 127.0.0.1 "),
            ("reason", "card testing wave"),
            ("expires_on", "2999-01-01"),
        ],
    )
    .await;
    // Ten years at most: a far date is refused with a message.
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("limited to ten years"));
    let tomorrow = chrono::DateTime::from_timestamp_millis(app.now_ms() + 86_400_000)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let r = add_list_entry(
        &admin,
        &[
            ("list", "block"),
            ("kind", "ip"),
            ("value", " 127.0.0.1 "),
            ("reason", "card testing wave"),
            ("expires_on", &tomorrow),
        ],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/lists?done=added");
    assert!(checkout_as(&app, "anyone")
        .await
        .text()
        .await
        .unwrap()
        .contains("We could not accept this order"));
}

#[tokio::test]
async fn the_list_form_explains_what_is_wrong() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let good = [
        ("list", "block"),
        ("kind", "ip"),
        ("value", "203.0.113.7"),
        ("reason", "why"),
        ("expires_in", ""),
        ("expires_unit", "days"),
        ("expires_on", ""),
    ];
    let with = |key: &'static str, value: &'static str| {
        let mut f = good.to_vec();
        f.retain(|(k, _)| *k != key);
        f.push((key, value));
        f
    };
    for (fields, message) in [
        (with("value", "999.1.1.1"), "Enter one IP address"),
        (with("value", "203.0.113.0/24"), "ranges are not supported"),
        (with("value", ""), "Enter the IP address to list"),
        (with("reason", "   "), "Say why"),
        (
            with("list", "grey"),
            "Choose the block list or the allow list",
        ),
        (with("kind", "phone"), "Choose what kind of value"),
        (with("expires_in", "soon"), "is not a whole number"),
        (with("expires_unit", "weeks"), "Choose hours or days"),
        (with("expires_on", "31/12/2030"), "is not a date"),
        (with("expires_on", "2001-01-01"), "has passed"),
        (
            {
                let mut f = with("expires_in", "3");
                f.retain(|(k, _)| *k != "expires_on");
                f.push(("expires_on", "2030-01-01"));
                f
            },
            "not both",
        ),
        (vec![], "Choose the block list"),
    ] {
        // "weeks" only matters with a number.
        let fields = if message == "Choose hours or days" {
            let mut f = fields;
            f.retain(|(k, _)| *k != "expires_in");
            f.push(("expires_in", "2"));
            f
        } else {
            fields
        };
        let r = add_list_entry(&admin, &fields).await;
        assert_eq!(r.status(), 422, "{fields:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "{message}: {html}");
    }
    let r = add_list_entry(
        &admin,
        &[
            ("list", "allow"),
            ("kind", "email_domain"),
            ("value", "not a domain"),
            ("reason", "<b>regulars</b>"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("Enter an email domain"));
    // What was typed comes back, escaped.
    assert!(html.contains("&#60;b&#62;regulars&#60;/b&#62;") && !html.contains("<b>regulars"));
    assert_eq!(app.count("SELECT COUNT(*) FROM risk_lists").await, 0);
    // Filters with odd input are just searches.
    let r = admin.get(&format!("{LISTS}?q=%25_%5C&kind=nonsense")).await;
    assert_eq!(r.status(), 200);
}

/// The audit table's rows (not the filter form's options).
fn log_rows(html: &str) -> &str {
    html.split_once("<tbody>")
        .map(|(_, rows)| rows)
        .unwrap_or("")
}

#[tokio::test]
async fn the_history_page_shows_who_when_and_old_and_new_values() {
    let app = spawn_app().await;
    let agent = app.sign_in_as_agent("agent@example.com").await;
    drop(agent);
    let admin = app.sign_in_as_admin(BOSS).await;
    let id = staff_id(&app, "agent@example.com").await;
    on_staff_page(&admin, &format!("{STAFF}/{id}/reset"), &[]).await;
    on_staff_page(&admin, &format!("{STAFF}/{id}/disable"), &[]).await;
    add_list_entry(
        &admin,
        &[
            ("list", "allow"),
            ("kind", "email"),
            ("value", "vip@example.com"),
            ("reason", "regular buyer"),
        ],
    )
    .await;

    let html = admin.get_html(HISTORY).await;
    let rows = log_rows(&html);
    for shown in [
        "<td>staff disabled</td>",
        "<td>staff password reset</td>",
        "<td>list entry added</td>",
        "<td>staff:boss@example.com</td>",
        "<td>agent@example.com</td>",
        "vip@example.com",
        "<td>127.0.0.1</td>",
        "<td><code>active</code></td><td><code>disabled</code></td>",
        "&#34;password&#34;:&#34;cleared&#34;",
        "&#34;reason&#34;:&#34;regular buyer&#34;",
    ] {
        assert!(rows.contains(shown), "{shown}: {rows}");
    }
    // Newest first: the list entry before the disable before the reset.
    let pos = |s: &str| rows.find(s).unwrap();
    assert!(pos("<td>list entry added</td>") < pos("<td>staff disabled</td>"));
    assert!(pos("<td>staff disabled</td>") < pos("<td>staff password reset</td>"));
    // "When" is there too, in the shop's format.
    let when = coinfront::clock::format_utc(app.now_ms());
    assert!(rows.contains(&format!("<td>{when}</td>")), "{when}");

    // Filters: by action, by subject, by actor.
    let only = admin
        .get_html(&format!("{HISTORY}?action=staff_disabled"))
        .await;
    let only = log_rows(&only);
    assert!(
        only.contains("<td>staff disabled</td>") && !only.contains("<td>list entry added</td>")
    );
    let about = admin.get_html(&format!("{HISTORY}?subject=VIP@")).await;
    let about = log_rows(&about);
    assert!(
        about.contains("<td>list entry added</td>") && !about.contains("<td>staff disabled</td>")
    );
    let by = admin
        .get_html(&format!("{HISTORY}?actor=agent%40example"))
        .await;
    let by = log_rows(&by);
    assert!(
        by.contains("<td>sign in</td>") && !by.contains("<td>staff disabled</td>"),
        "{by}"
    );
    let none = admin.get_html(&format!("{HISTORY}?actor=nobody")).await;
    assert!(none.contains("No entries match"));

    // The index shows the latest changes too.
    let index = admin.get_html("/console/settings").await;
    assert!(log_rows(&index).contains("<td>list entry added</td>"));
}

#[tokio::test]
async fn history_pages_through_everything_once() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    // 120 entries at the same millisecond: paging must not skip or repeat any.
    let now = app.now_ms() - 1;
    let mut tx = app.state.db.begin().await.unwrap();
    for i in 0..120 {
        let subject = format!("setting-{i:03}");
        audit::record(
            &mut tx,
            audit::Entry {
                actor: "cli",
                action: "test_entry",
                subject: &subject,
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut seen = Vec::new();
    let mut path = format!("{HISTORY}?action=test_entry");
    for _ in 0..5 {
        let html = admin.get_html(&path).await;
        for part in html.split("setting-").skip(1) {
            seen.push(part[..3].to_owned());
        }
        match html.split("<a href=\"").find_map(|a| {
            let (href, rest) = a.split_once('"')?;
            rest.starts_with(">Older")
                .then(|| href.replace("&#38;", "&"))
        }) {
            Some(next) => path = next,
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..120).map(|i| format!("{i:03}")).collect();
    assert_eq!(seen, expected);
    // A cursor this page did not make: a message, and the newest entries.
    let r = admin.get(&format!("{HISTORY}?before=garbage")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("not one this page made"));
}

#[tokio::test]
async fn agents_are_refused_every_admin_page_get_and_post() {
    let app = spawn_app().await;
    let agent = app.sign_in_as_agent("agent@example.com").await;
    let victim = app.add_staff("other@example.com", staff::Role::Agent).await;
    let before_staff = app.count("SELECT COUNT(*) FROM staff").await;
    for path in [
        "/console/settings",
        STAFF,
        LISTS,
        HISTORY,
        &format!("{HISTORY}?action=sign_in"),
        "/console/settings/risk",
        "/console/settings/prices",
    ] {
        let r = agent.get(path).await;
        assert_eq!(r.status(), 403, "GET {path}");
        assert!(r.text().await.unwrap().contains("This page is for admins"));
    }
    // With the agent's own valid form token, so only the role refuses them.
    let csrf = extract_hidden(&agent.get_html("/console/").await, "csrf_token").unwrap();
    let posts = [
        (
            STAFF.to_owned(),
            vec![("email", "sneaky@example.com"), ("role", "admin")],
        ),
        (format!("{STAFF}/{victim}/disable"), vec![]),
        (format!("{STAFF}/{victim}/enable"), vec![]),
        (format!("{STAFF}/{victim}/reset"), vec![]),
        (
            LISTS.to_owned(),
            vec![
                ("list", "allow"),
                ("kind", "email"),
                ("value", "me@example.com"),
                ("reason", "me"),
            ],
        ),
        (format!("{LISTS}/any/remove"), vec![]),
        (
            "/console/settings/risk".to_owned(),
            vec![("review_threshold", "1"), ("based_on", "0")],
        ),
        (
            "/console/settings/risk/test".to_owned(),
            vec![("review_threshold", "1"), ("based_on", "0")],
        ),
        (
            "/console/settings/risk/revert".to_owned(),
            vec![("based_on", "0")],
        ),
        (
            "/console/settings/prices".to_owned(),
            vec![
                ("from_coins_1", "0"),
                ("price_per_coin_1", "0.001"),
                ("confirm", "yes"),
            ],
        ),
        (
            "/console/settings/prices/revert".to_owned(),
            vec![("based_on", "0")],
        ),
    ];
    for (path, fields) in posts {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(fields);
        let r = agent.post_form(&path, &form).await;
        assert_eq!(r.status(), 403, "POST {path}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM staff").await, before_staff);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff WHERE disabled_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM risk_lists").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM live_settings").await, 0);
    // (The first-admin link logged at start-up is the only one.)
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff_setup_tokens WHERE staff_id IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn admin_forms_need_the_session_token() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(BOSS).await;
    let victim = app.add_staff("other@example.com", staff::Role::Agent).await;
    // Someone else's session gives a token that is useless with this one.
    let other = app.sign_in_as_agent("agent@example.com").await;
    let foreign = extract_hidden(&other.get_html("/console/").await, "csrf_token").unwrap();
    for token in [None, Some(""), Some(foreign.as_str())] {
        for (path, fields) in [
            (
                STAFF.to_owned(),
                vec![("email", "sneaky@example.com"), ("role", "admin")],
            ),
            (format!("{STAFF}/{victim}/disable"), vec![]),
            (format!("{STAFF}/{victim}/reset"), vec![]),
            (
                LISTS.to_owned(),
                vec![
                    ("list", "block"),
                    ("kind", "email"),
                    ("value", "x@example.com"),
                    ("reason", "x"),
                ],
            ),
        ] {
            let mut form = fields;
            if let Some(t) = token {
                form.push(("csrf_token", t));
            }
            let r = admin.post_form(&path, &form).await;
            assert_eq!(r.status(), 403, "POST {path} with {token:?}");
            assert!(r.text().await.unwrap().contains("security token"));
        }
    }
    // A cross-site post is refused before anything reads it.
    let csrf = extract_hidden(&admin.get_html(STAFF).await, "csrf_token").unwrap();
    let r = admin
        .client
        .post(admin.url(&format!("{STAFF}/{victim}/disable")))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM staff WHERE disabled_at IS NOT NULL")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM risk_lists").await, 0);
    assert!(staff::by_email(app.state.db.pool(), "sneaky@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn two_admins_adding_the_same_entry_at_once_make_one() {
    let app = spawn_app().await;
    let first = app.sign_in_as_admin(BOSS).await;
    let second = app.sign_in_as_admin("deputy@example.com").await;
    let fields = [
        ("list", "block"),
        ("kind", "ip"),
        ("value", "203.0.113.9"),
        ("reason", "card testing from here"),
    ];
    for _ in 0..5 {
        sqlx::query("DELETE FROM risk_lists")
            .execute(app.state.db.pool())
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            add_list_entry(&first, &fields),
            add_list_entry(&second, &fields)
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [303, 409]);
        assert_eq!(app.count("SELECT COUNT(*) FROM risk_lists").await, 1);
    }
}

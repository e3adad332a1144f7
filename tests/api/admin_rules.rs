//! Admin pages for risk rules and prices: a change is tested against past orders, saved with
//! its audit entry, and in force for the next order; a price the risk rules would flag needs
//! a second, explicit confirmation.

use crate::backtest::{hand_count, seed_history, HISTORY};
use crate::helpers::{assert_is_redirect_to, spawn_app, Browser, Checkout, TestApp};
use coinfront::live_settings::LiveSettings;
use sqlx::Row;

const ADMIN: &str = "boss@example.com";

/// Every `<input name=… value=…>` of the first form on the page whose action is `action`.
pub(crate) fn form_inputs(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action}"));
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[at..at + tag[at..].find('"')?].to_owned())
    };
    form.split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

/// Posts the form of `page` that targets `form_action` to `post_to`, with some fields changed.
async fn submit(
    browser: &Browser,
    page: &str,
    form_action: &str,
    post_to: &str,
    changes: &[(&str, &str)],
) -> reqwest::Response {
    let html = browser.get_html(page).await;
    submit_from(browser, &html, form_action, post_to, changes).await
}

pub(crate) async fn submit_from(
    browser: &Browser,
    html: &str,
    form_action: &str,
    post_to: &str,
    changes: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields = form_inputs(html, form_action);
    for (k, v) in changes {
        match fields.iter_mut().find(|(name, _)| name == k) {
            Some(f) => f.1 = (*v).to_owned(),
            None => fields.push(((*k).to_owned(), (*v).to_owned())),
        }
    }
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post_form(post_to, &pairs).await
}

/// Tests `changes` on the risk page, then saves exactly what was tested.
pub(crate) async fn test_then_save(
    browser: &Browser,
    page_html: &str,
    changes: &[(&str, &str)],
) -> reqwest::Response {
    let tested = submit_from(
        browser,
        page_html,
        "/console/settings/risk/test",
        "/console/settings/risk/test",
        changes,
    )
    .await;
    assert_eq!(tested.status(), 200);
    let tested = tested.text().await.unwrap();
    assert!(tested.contains("Save these values"));
    submit_from(
        browser,
        &tested,
        "/console/settings/risk/test",
        "/console/settings/risk",
        &[],
    )
    .await
}

/// The backtest table's order counts, [allow, review, block], for one column.
fn column(html: &str, col: &str) -> [u64; 3] {
    let cells: Vec<u64> = html
        .split(&format!("data-col=\"{col}\">"))
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].parse().unwrap())
        .collect();
    cells.try_into().expect("three decisions")
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<(String, String, String, String)> {
    sqlx::query(
        "SELECT actor, detail, old_value, new_value FROM audit_log WHERE action = $1 ORDER BY at",
    )
    .bind(action)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

#[tokio::test]
async fn a_backtest_on_the_page_matches_a_hand_replay_over_1200_orders() {
    let app = spawn_app().await;
    seed_history(&app).await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let r = submit(
        &admin,
        "/console/settings/risk",
        "/console/settings/risk/test",
        "/console/settings/risk/test",
        &[
            ("review_threshold", "30"),
            ("block_threshold", "70"),
            ("days", "30"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let (current, _) = hand_count(65, 75);
    let (proposed, _) = hand_count(30, 70);
    assert_eq!(column(&html, "current-orders"), current);
    assert_eq!(column(&html, "proposed-orders"), proposed);
    assert!(
        html.contains(&format!("{HISTORY} orders were screened")),
        "the 50 older ones are outside 30 days"
    );
    // Nothing is saved by a test; the proposal stays in the form, with a save button.
    assert_eq!(app.state.live.current().risk.review_threshold, 65);
    assert!(html.contains("value=\"30\"") && html.contains("Save these values"));
    assert!(html.contains("In force: 65"));

    // A longer period takes in the older orders too.
    let r = submit(
        &admin,
        "/console/settings/risk",
        "/console/settings/risk/test",
        "/console/settings/risk/test",
        &[("days", "60")],
    )
    .await;
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("{} orders were screened", HISTORY + 50)),
        "{html}"
    );
}

#[tokio::test]
async fn a_saved_rule_change_applies_to_the_next_order_and_is_audited() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let buyer = Browser::new(app.address.clone());
    let throwaway = Checkout {
        email: "someone@mailinator.com",
        ..Default::default()
    };
    // 30 points for a disposable email: under the review threshold of 65.
    let first = buyer.buy(&throwaway).await;
    app.wait_for_status(&first, "delivered").await;

    let tested = submit(
        &admin,
        "/console/settings/risk",
        "/console/settings/risk/test",
        "/console/settings/risk/test",
        &[("disposable_email.points", "70")],
    )
    .await
    .text()
    .await
    .unwrap();
    let saved = submit_from(
        &admin,
        &tested,
        "/console/settings/risk/test",
        "/console/settings/risk",
        &[],
    )
    .await;
    assert_is_redirect_to(&saved, "/console/settings/risk?done=saved");
    let page = admin.get_html("/console/settings/risk?done=saved").await;
    assert!(
        page.contains("Saved.") && page.contains("override the config file"),
        "{page}"
    );

    let second = buyer.buy(&throwaway).await;
    app.wait_for_status(&second, "in_review").await;

    let rows = audit_rows(&app, "risk_rules_changed").await;
    assert_eq!(rows.len(), 1);
    let (actor, detail, old, new) = &rows[0];
    assert_eq!(actor, &format!("staff:{ADMIN}"));
    assert_eq!(detail, "disposable_email.points: 30 → 70");
    assert!(
        old.contains("\"disposable_email\":{\"points\":30}"),
        "{old}"
    );
    assert!(
        new.contains("\"disposable_email\":{\"points\":70}"),
        "{new}"
    );

    // Reverting goes back to the file's values, audited too.
    let r = submit(
        &admin,
        "/console/settings/risk",
        "/console/settings/risk/revert",
        "/console/settings/risk/revert",
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/risk?done=reverted");
    assert_eq!(app.state.live.current().risk.disposable_email.points, 30);
    assert_eq!(audit_rows(&app, "risk_rules_reverted").await.len(), 1);
}

#[tokio::test]
async fn another_instance_picks_up_a_saved_change() {
    let app = spawn_app().await;
    // A second instance's view of the same database.
    let other = LiveSettings::load(&app.state.db, &app.state.settings)
        .await
        .unwrap();
    let admin = app.sign_in_as_admin(ADMIN).await;
    let page = admin.get_html("/console/settings/risk").await;
    let r = test_then_save(&admin, &page, &[("review_threshold", "50")]).await;
    assert_is_redirect_to(&r, "/console/settings/risk?done=saved");
    assert_eq!(other.current().risk.review_threshold, 65);
    assert!(other.reload_if_changed(&app.state.db).await.unwrap());
    assert_eq!(other.current().risk.review_threshold, 50);
    assert!(!other.reload_if_changed(&app.state.db).await.unwrap());
}

#[tokio::test]
async fn bad_or_contradictory_values_are_explained_and_nothing_is_saved() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    for (changes, message) in [
        (
            vec![("card_testing.points", "lots")],
            "Enter a whole number.",
        ),
        (vec![("velocity.max_amount_24h", "-5")], "Enter an amount"),
        (vec![("review_threshold", "")], "Enter a value."),
        (
            vec![("review_threshold", "90"), ("block_threshold", "80")],
            "not above block threshold",
        ),
        (vec![("days", "0")], "Enter a number of days"),
        (vec![("block_threshold", "150")], "at most 100"),
    ] {
        for action in ["/console/settings/risk/test", "/console/settings/risk"] {
            let r = submit(
                &admin,
                "/console/settings/risk",
                "/console/settings/risk/test",
                action,
                &changes,
            )
            .await;
            if action == "/console/settings/risk" && changes[0].0 == "days" {
                // The save ignores the test period.
                assert_is_redirect_to(&r, "/console/settings/risk?done=unchanged");
                continue;
            }
            assert_eq!(r.status(), 422, "{changes:?} to {action}");
            let html = r.text().await.unwrap();
            assert!(html.contains(message), "{message} in {html}");
            assert!(html.contains("correct the marked values"));
        }
    }
    assert_eq!(audit_rows(&app, "risk_rules_changed").await.len(), 0);
    assert!(!app.state.live.current().is_overridden("risk"));
}

#[tokio::test]
async fn a_save_based_on_an_older_version_is_refused() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let stale_page = admin.get_html("/console/settings/risk").await;
    let r = test_then_save(&admin, &stale_page, &[("review_threshold", "60")]).await;
    assert_is_redirect_to(&r, "/console/settings/risk?done=saved");
    // A second admin (or tab) saves from the page loaded before that change.
    let r = test_then_save(&admin, &stale_page, &[("review_threshold", "55")]).await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Someone else saved these settings"));
    assert_eq!(app.state.live.current().risk.review_threshold, 60);
}

#[tokio::test]
async fn a_price_the_rules_would_flag_needs_a_confirmation() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let page = admin.get_html("/console/settings/prices").await;
    assert!(page.contains("0.0104") && page.contains("0.0106"));
    assert!(
        !page.contains("would be"),
        "the default prices raise no flag"
    );

    // A typo: the top tier at a fifth of the market rate.
    let r = submit(
        &admin,
        "/console/settings/prices",
        "/console/settings/prices",
        "/console/settings/prices",
        &[("price_per_coin_4", "0.0021")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let warning = r.text().await.unwrap();
    assert!(
        warning.contains("the risk rules would flag these prices"),
        "{warning}"
    );
    assert!(warning.contains("would be blocked"));
    assert!(warning.contains("Save anyway"));
    assert!(
        !app.state.live.current().is_overridden("prices"),
        "nothing saved yet"
    );

    let r = submit_from(
        &admin,
        &warning,
        "/console/settings/prices",
        "/console/settings/prices",
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/prices?done=saved");
    let rows = audit_rows(&app, "prices_changed_despite_warning").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "tiers.4.price_per_coin: 0.0098 → 0.0021");

    // The catalog sells at the new price at once: 200,000 coins now cost less.
    let catalog = Browser::new(app.address.clone());
    let html = catalog.get_html("/?coins=200000").await;
    let expected = app
        .state
        .live
        .current()
        .catalog
        .quote(
            coinfront::domain::Coins::new(200_000),
            "USD".parse().unwrap(),
        )
        .unwrap()
        .total
        .to_string();
    assert!(html.contains(&expected), "{expected} in the catalog page");
}

#[tokio::test]
async fn a_fair_price_change_saves_at_once_and_shows_on_the_catalog() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let r = submit(
        &admin,
        "/console/settings/prices",
        "/console/settings/prices",
        "/console/settings/prices",
        &[("price_per_coin_1", "0.0105")],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/prices?done=saved");
    // 70 coins at 0.0105 = 0.735 → US$0.74 (was 0.728 → US$0.73).
    let html = Browser::new(app.address.clone()).get_html("/").await;
    assert!(html.contains("0.74"), "{html}");
    let rows = audit_rows(&app, "prices_changed").await;
    assert_eq!(rows[0].1, "tiers.1.price_per_coin: 0.0104 → 0.0105");
}

#[tokio::test]
async fn prices_that_are_not_a_valid_price_list_are_explained() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    for (changes, message) in [
        (
            vec![("price_per_coin_2", "abc")],
            "Tier 2: Enter a price per coin",
        ),
        (
            vec![("from_coins_3", "ten")],
            "Tier 3: Enter the number of coins",
        ),
        (
            vec![("price_per_coin_3", "0.02")],
            "never higher than the tier before it",
        ),
        (
            vec![("from_coins_1", "5")],
            "the first price tier must start at 0 coins",
        ),
        (
            vec![("reference_price_per_coin", "0")],
            "Enter the market price",
        ),
        (
            vec![
                ("from_coins_1", ""),
                ("price_per_coin_1", ""),
                ("from_coins_2", ""),
                ("price_per_coin_2", ""),
                ("from_coins_3", ""),
                ("price_per_coin_3", ""),
                ("from_coins_4", ""),
                ("price_per_coin_4", ""),
            ],
            "not a valid price list",
        ),
    ] {
        let r = submit(
            &admin,
            "/console/settings/prices",
            "/console/settings/prices",
            "/console/settings/prices",
            &changes,
        )
        .await;
        assert_eq!(r.status(), 422, "{changes:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "{message} in {html}");
    }
    assert!(!app.state.live.current().is_overridden("prices"));
}

#[tokio::test]
async fn admin_forms_need_the_session_csrf_token() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    for action in [
        "/console/settings/risk",
        "/console/settings/risk/test",
        "/console/settings/risk/revert",
        "/console/settings/prices",
        "/console/settings/prices/revert",
    ] {
        let r = admin
            .post_form(action, &[("review_threshold", "1"), ("based_on", "0")])
            .await;
        assert_eq!(r.status(), 403, "{action}");
        let r = admin
            .post_form(action, &[("csrf_token", "forged"), ("based_on", "0")])
            .await;
        assert_eq!(r.status(), 403, "{action}");
    }
}

#[tokio::test]
async fn an_order_confirmed_after_a_price_change_is_not_created_at_a_price_never_shown() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let buyer = Browser::new(app.address.clone());
    let confirm_page = buyer
        .post_checkout(&Checkout::default())
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm_page.contains("7.28"), "700 coins at 0.0104");
    let r = submit(
        &admin,
        "/console/settings/prices",
        "/console/settings/prices",
        "/console/settings/prices",
        &[("price_per_coin_1", "0.0105")],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/prices?done=saved");

    let r = buyer.confirm(&confirm_page).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("prices changed while you were checking out"),
        "{html}"
    );
    assert!(html.contains("Nothing was charged"));
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
}

#[tokio::test]
async fn values_edited_after_the_test_are_tested_again_before_they_are_saved() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let tested = submit(
        &admin,
        "/console/settings/risk",
        "/console/settings/risk/test",
        "/console/settings/risk/test",
        &[("review_threshold", "60")],
    )
    .await
    .text()
    .await
    .unwrap();
    // The admin changes another value and clicks save without testing it.
    let r = submit_from(
        &admin,
        &tested,
        "/console/settings/risk/test",
        "/console/settings/risk",
        &[("block_threshold", "70")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let retested = r.text().await.unwrap();
    assert!(
        retested.contains("differ from the ones you tested"),
        "{retested}"
    );
    assert!(
        retested.contains("orders were screened"),
        "the new values' test is shown"
    );
    assert!(!app.state.live.current().is_overridden("risk"));
    // Saving from that page saves what it tested.
    let r = submit_from(
        &admin,
        &retested,
        "/console/settings/risk/test",
        "/console/settings/risk",
        &[],
    )
    .await;
    assert_is_redirect_to(&r, "/console/settings/risk?done=saved");
    let risk = app.state.live.current().risk.clone();
    assert_eq!((risk.review_threshold, risk.block_threshold), (60, 70));
}

#[tokio::test]
async fn a_price_edited_after_the_warning_is_warned_about_again() {
    let app = spawn_app().await;
    let admin = app.sign_in_as_admin(ADMIN).await;
    let warning = submit(
        &admin,
        "/console/settings/prices",
        "/console/settings/prices",
        "/console/settings/prices",
        &[("price_per_coin_4", "0.002")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(warning.contains("Save anyway"));
    // Another slip of the finger on the warning page: the confirmation was for 0.002.
    let r = submit_from(
        &admin,
        &warning,
        "/console/settings/prices",
        "/console/settings/prices",
        &[("price_per_coin_4", "0.0002")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let again = r.text().await.unwrap();
    assert!(again.contains("the risk rules would flag these prices"));
    assert!(again.contains("0.0002"));
    assert!(!app.state.live.current().is_overridden("prices"));
}

#[tokio::test]
async fn of_two_saves_from_the_same_version_exactly_one_lands() {
    use coinfront::live_settings::{save, Save, SaveError, Saved};
    let app = spawn_app().await;
    let file_value = serde_json::to_value(app.state.live.file_risk()).unwrap();
    for based_on in [0, 1] {
        let attempt = |threshold: u32| {
            let mut risk = app.state.live.file_risk().clone();
            risk.review_threshold = threshold;
            let value = serde_json::to_value(&risk).unwrap();
            let (db, file_value) = (app.state.db.clone(), file_value.clone());
            let now = app.now_ms();
            async move {
                save(
                    &db,
                    Save {
                        name: "risk",
                        value: Some(value),
                        file_value,
                        based_on,
                        actor: "staff:a@example.com",
                        action: "risk_rules_changed",
                        client_ip: "127.0.0.1",
                    },
                    now,
                )
                .await
            }
        };
        let (a, b) = tokio::join!(attempt(40 + based_on as u32), attempt(50 + based_on as u32));
        let landed = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Ok(Saved::Version(_))))
            .count();
        let stale = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(SaveError::Stale)))
            .count();
        assert_eq!((landed, stale), (1, 1), "{a:?} {b:?}");
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'risk_rules_changed'")
            .await,
        2
    );
}

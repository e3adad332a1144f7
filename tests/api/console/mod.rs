//! The support console over real HTTP: sign-in, lock-out, sessions and their timeouts, roles,
//! CSRF and cross-site refusal, two-factor sign-in, the review queue's decisions (alone and
//! racing each other), order search and pages, the audit trail, the one-time setup link and
//! `coinfront staff add` through the real binary. One file per page (or group of pages); the
//! helpers they share are here.

mod orders;
mod review;
mod setup;
mod sign_in;
mod two_factor;

use crate::helpers::{
    assert_is_redirect_to, extract_hidden, fresh_database, post_from, spawn_app, spawn_app_with,
    Browser, Checkout, TestApp, STAFF_PASSWORD,
};
use coinfront::db::sign_in_throttle as throttle;
use coinfront::db::staff::{self, Role};
use coinfront::staff::totp;
use sqlx::Row;

const AGENT: &str = "agent@example.com";
const WRONG: &str = "That email and password don&#39;t match a staff account";

/// An order held for review: a stolen-card decline, then a good card.
async fn held_order(app: &TestApp, email: &str, username: &str) -> (String, String) {
    let started = app
        .start_order(&Checkout {
            email,
            username,
            ..Default::default()
        })
        .await;
    let failed = |n: i64| async move {
        let sql = "SELECT COUNT(*) FROM payments WHERE status = 'failed' AND email = $1";
        count_where(app, sql, email).await >= n
    };
    let before = if failed(1).await {
        count_where(
            app,
            "SELECT COUNT(*) FROM payments WHERE status = 'failed' AND email = $1",
            email,
        )
        .await
    } else {
        0
    };
    let r = app.pay_card(&started, "4000000000009979", "123").await;
    assert_eq!(r.status(), 402);
    // The decline reaches the shop by webhook: let it land before the good card does.
    crate::helpers::eventually("the decline recorded", || failed(before + 1)).await;
    let path = app
        .order_path_after(app.pay_card(&started, "4242424242424242", "123").await)
        .await;
    app.wait_for_status(&path, "in_review").await;
    let number = order_number(app, &path).await;
    (path, number)
}

async fn order_number(app: &TestApp, order_path: &str) -> String {
    let token = order_path.trim_start_matches("/orders/");
    sqlx::query("SELECT order_number FROM orders WHERE token_hash = $1")
        .bind(coinfront::domain::ids::token_hash(token))
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get("order_number")
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cf_staff=") || v.starts_with("__Host-cf_staff="))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// A GET with a hand-made cookie header (no cookie jar).
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn count_where(app: &TestApp, sql: &str, arg: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(arg.to_owned())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

async fn enter_code(browser: &Browser, code: &str) -> reqwest::Response {
    post_from(
        browser,
        "/console/login/code",
        "/console/login/code",
        &[("code", code)],
    )
    .await
}

#![allow(dead_code)]

use coinfront::clock::{Clock, ManualClock};
use coinfront::config::{Secret, Settings};
use coinfront::startup::{AppState, Application};
use std::sync::Arc;
use std::time::Duration;

pub const WEBHOOK_KEY: &str = "test-webhook-signing-key-0123456789abcdef";

/// A database for one test, removed afterwards.
pub enum TestDb {
    Sqlite,
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    use sqlx::Connection;
                    sqlx::any::install_default_drivers();
                    if let Ok(mut conn) = sqlx::AnyConnection::connect(&url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                })
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub browser: Browser,
    pub port: u16,
    pub clock: ManualClock,
    pub state: Arc<AppState>,
    pub data_dir: tempfile::TempDir,
    _db: TestDb,
}

pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    s.secrets.cookie_key = Some(Secret::new("test-cookie-key-0123456789abcdef0123456789"));
    s.secrets.webhook_signing_key = Some(Secret::new(WEBHOOK_KEY));
    s.supplier.sandbox_delay_ms = 0;
    s.jobs.poll_interval_ms = 20;
    s.jobs.backoff_base_ms = 50;
    s.jobs.backoff_max_ms = 500;
    s.payments.sandbox_bank_transfer_settle_seconds = 0;
    s.db_max_connections = 8;
    // Tests drive many orders from 127.0.0.1; the rate-limit tests set their own limits.
    let roomy = coinfront::config::Limit {
        per_minute: 10_000,
        burst: 10_000,
    };
    s.rate_limits = coinfront::config::RateLimitSettings {
        store: None,
        checkout: roomy,
        payment_attempt: roomy,
        account_lookup: roomy,
        order_lookup: roomy,
        refund_request: roomy,
        staff_login: roomy,
        support_message: roomy,
    };
    s
}

pub async fn fresh_database(data_dir: &std::path::Path) -> (String, TestDb) {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let name = format!("cf_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::AnyConnection::connect(&admin_url)
                .await
                .expect("TEST_POSTGRES_URL is set but PostgreSQL cannot be reached");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin_url.split('?').next().unwrap();
            let root = &base[..base.rfind('/').expect("database URL has a path")];
            (
                format!("{root}/{name}"),
                TestDb::Postgres { admin_url, name },
            )
        }
        _ => (
            format!("sqlite://{}?mode=rwc", data_dir.join("test.db").display()),
            TestDb::Sqlite,
        ),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        coinfront::telemetry::init(coinfront::config::LogFormat::Pretty);
    }
    let data_dir = tempfile::tempdir().unwrap();
    let (url, db) = fresh_database(data_dir.path()).await;
    let mut settings = test_settings(data_dir.path());
    settings.database_url = Some(url);
    configure(&mut settings);
    let clock = ManualClock::starting_now();
    let app = Application::build(settings, Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let browser = Browser::new(format!("http://127.0.0.1:{port}"));
    TestApp {
        browser,
        port,
        clock,
        state,
        data_dir,
        _db: db,
    }
}

/// A buyer's browser: a cookie jar and the shop's address. Works against an app in this
/// process or a server started as a separate process.
pub struct Browser {
    pub address: String,
    pub client: reqwest::Client,
}

impl Browser {
    pub fn new(address: String) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser { address, client }
    }

    /// A browser of its own (cookie jar) that reaches the shop through a reverse proxy on
    /// 127.0.0.1 from `ip` (the app must trust 127.0.0.1 as a proxy).
    pub fn from_address(address: String, ip: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_str(ip).expect("an address"),
        );
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .unwrap();
        Browser { address, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    /// The CSRF token from the catalog page (which also sets the cookie it is bound to).
    pub async fn csrf(&self) -> String {
        let html = self.get_html("/").await;
        extract_hidden(&html, "csrf_token").expect("page has a csrf token")
    }
}

impl TestApp {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

impl std::ops::Deref for TestApp {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

/// The value of a hidden input in a page.
pub fn extract_hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub fn assert_is_redirect_to(resp: &reqwest::Response, prefix: &str) {
    assert!(
        resp.status().is_redirection(),
        "expected a redirect, got {}",
        resp.status()
    );
    let loc = resp
        .headers()
        .get("location")
        .expect("location header")
        .to_str()
        .unwrap();
    assert!(
        loc.starts_with(prefix) || loc.contains(prefix),
        "redirect to {loc}, expected {prefix}"
    );
}

/// Polls until `check` returns true or the time runs out.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub struct Checkout<'a> {
    pub package: &'a str,
    pub coins: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub currency: &'a str,
    pub method: &'a str,
}

impl Default for Checkout<'_> {
    fn default() -> Self {
        Checkout {
            package: "700",
            coins: "",
            username: "ana_buyer",
            email: "ana@example.com",
            currency: "USD",
            method: "card",
        }
    }
}

/// A started order: the hosted payment page it was sent to.
pub struct Started {
    pub pay_url: String,
    pub session_path: String,
}

impl Browser {
    /// Checkout steps that report a dead server as an error instead of panicking (for tests
    /// that kill the server on purpose).
    pub async fn post_checkout_checked(&self, c: &Checkout<'_>) -> Result<String, reqwest::Error> {
        let page = self.client.get(self.url("/")).send().await?.text().await?;
        let csrf = extract_hidden(&page, "csrf_token").unwrap_or_default();
        let form = [
            ("csrf_token", csrf.as_str()),
            ("package", c.package),
            ("coins", c.coins),
            ("tiktok_username", c.username),
            ("email", c.email),
            ("currency", c.currency),
            ("payment_method", c.method),
            ("age_confirmed", "yes"),
        ];
        self.client
            .post(self.url("/checkout"))
            .form(&form)
            .send()
            .await?
            .text()
            .await
    }

    pub async fn confirm_checked(
        &self,
        confirm_html: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let field = |name| extract_hidden(confirm_html, name).unwrap_or_default();
        let form = [
            ("csrf_token", field("csrf_token")),
            ("quote", field("quote")),
            ("shown_total_minor", field("shown_total_minor")),
            ("shown_currency", field("shown_currency")),
        ];
        self.client
            .post(self.url("/checkout/confirm"))
            .form(&form)
            .send()
            .await
    }

    pub async fn pay_card_checked(
        &self,
        started: &Started,
        number: &str,
        cvc: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let page = self
            .client
            .get(self.url(&started.session_path))
            .send()
            .await?
            .text()
            .await?;
        let csrf = extract_hidden(&page, "csrf_token").unwrap_or_default();
        let form = [
            ("csrf_token", csrf.as_str()),
            ("method", "card"),
            ("card_number", number),
            ("expiry", "12/34"),
            ("cvc", cvc),
        ];
        self.client
            .post(self.url(&started.session_path))
            .form(&form)
            .send()
            .await
    }

    pub async fn post_checkout(&self, c: &Checkout<'_>) -> reqwest::Response {
        let csrf = self.csrf().await;
        self.post_form(
            "/checkout",
            &[
                ("csrf_token", csrf.as_str()),
                ("package", c.package),
                ("coins", c.coins),
                ("tiktok_username", c.username),
                ("email", c.email),
                ("currency", c.currency),
                ("payment_method", c.method),
                ("age_confirmed", "yes"),
            ],
        )
        .await
    }

    /// Fills the form, confirms the account, and follows the redirect to the payment page.
    pub async fn start_order(&self, c: &Checkout<'_>) -> Started {
        let confirm = self.post_checkout(c).await;
        assert_eq!(confirm.status(), 200, "checkout form accepted");
        let html = confirm.text().await.unwrap();
        let resp = self.confirm(&html).await;
        if !resp.status().is_redirection() {
            let body = resp.text().await.unwrap_or_default();
            let title = body
                .split("<h1>")
                .nth(1)
                .and_then(|t| t.split("</h1>").next())
                .unwrap_or_default()
                .to_owned();
            panic!("confirm did not lead to payment: {title}");
        }
        assert_is_redirect_to(&resp, "/sandbox/pay/");
        let pay_url = resp.headers()["location"].to_str().unwrap().to_owned();
        let session_path = pay_url.trim_start_matches(&self.address).to_owned();
        Started {
            pay_url,
            session_path,
        }
    }

    /// Submits a confirm page as a browser would.
    pub async fn confirm(&self, confirm_html: &str) -> reqwest::Response {
        let total = extract_hidden(confirm_html, "shown_total_minor").unwrap();
        self.confirm_claiming(confirm_html, &total).await
    }

    /// Submits a confirm page as a tampered browser would: claiming it showed `shown_total_minor`.
    pub async fn confirm_claiming(
        &self,
        confirm_html: &str,
        shown_total_minor: &str,
    ) -> reqwest::Response {
        let csrf = extract_hidden(confirm_html, "csrf_token").expect("confirm page csrf");
        let quote = extract_hidden(confirm_html, "quote").expect("confirm page quote");
        let currency = extract_hidden(confirm_html, "shown_currency").unwrap();
        self.post_form(
            "/checkout/confirm",
            &[
                ("csrf_token", &csrf),
                ("quote", &quote),
                ("shown_total_minor", shown_total_minor),
                ("shown_currency", &currency),
            ],
        )
        .await
    }

    /// The hosted payment page a confirm redirected to.
    pub fn started_from(&self, confirm: &reqwest::Response) -> Started {
        let pay_url = confirm.headers()["location"].to_str().unwrap().to_owned();
        let session_path = pay_url.trim_start_matches(&self.address).to_owned();
        Started {
            pay_url,
            session_path,
        }
    }

    /// Pays on the sandbox page with a card; returns the response (a redirect on success).
    pub async fn pay_card(&self, started: &Started, number: &str, cvc: &str) -> reqwest::Response {
        self.pay(
            started,
            &[
                ("method", "card"),
                ("card_number", number),
                ("expiry", "12/34"),
                ("cvc", cvc),
            ],
        )
        .await
    }

    pub async fn pay(&self, started: &Started, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = self.get_html(&started.session_path).await;
        let csrf = extract_hidden(&page, "csrf_token").expect("payment page csrf");
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &csrf)];
        form.extend_from_slice(fields);
        self.post_form(&started.session_path, &form).await
    }

    /// After a successful payment: follows the return redirect to the private order page.
    pub async fn order_path_after(&self, paid: reqwest::Response) -> String {
        assert_is_redirect_to(&paid, "/checkout/return");
        let back = self.get("/checkout/return").await;
        assert_is_redirect_to(&back, "/orders/");
        back.headers()["location"].to_str().unwrap().to_owned()
    }

    /// A whole checkout paid with `card`; returns the order page path.
    pub async fn buy_with_card(&self, c: &Checkout<'_>, card: &str) -> String {
        let started = self.start_order(c).await;
        let paid = self.pay_card(&started, card, "123").await;
        self.order_path_after(paid).await
    }

    /// A whole checkout with a good card; returns the order page path.
    pub async fn buy(&self, c: &Checkout<'_>) -> String {
        let started = self.start_order(c).await;
        let paid = self.pay_card(&started, "4242424242424242", "123").await;
        self.order_path_after(paid).await
    }
}

impl TestApp {
    pub async fn order_status(&self, order_path: &str) -> String {
        let token = order_path.trim_start_matches("/orders/");
        let hash = coinfront::domain::ids::token_hash(token);
        let row = sqlx::query("SELECT status FROM orders WHERE token_hash = $1")
            .bind(hash)
            .fetch_one(self.state.db.pool())
            .await
            .unwrap();
        use sqlx::Row;
        row.get::<String, _>("status")
    }

    pub async fn wait_for_status(&self, order_path: &str, status: &str) {
        let mut last = String::new();
        for _ in 0..400 {
            last = self.order_status(order_path).await;
            if last == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("order never reached {status}; last status {last}");
    }

    /// Like `wait_for_status`, moving the app's clock on a second per poll so that retries
    /// scheduled with backoff come due.
    pub async fn wait_for_status_advancing(&self, order_path: &str, status: &str) {
        let mut last = String::new();
        for _ in 0..400 {
            last = self.order_status(order_path).await;
            if last == status {
                return;
            }
            self.clock.advance_secs(1);
            self.state.jobs_ready.notify_waiters();
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("order never reached {status}; last status {last}");
    }

    /// Waits until the job queue has nothing due and nothing running: every consequence of
    /// what the test did so far has happened. Use it before asserting that something did
    /// *not* happen, instead of sleeping.
    pub async fn wait_until_idle(&self) {
        for _ in 0..800 {
            if coinfront::jobs::is_idle(&self.state.db, self.now_ms())
                .await
                .unwrap()
            {
                return;
            }
            self.state.jobs_ready.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the job queue never went idle");
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(self.state.db.pool())
            .await
            .unwrap()
            .get::<i64, _>(0)
    }

    /// The first column of every row `sql` returns, as text.
    pub async fn texts(&self, sql: &'static str) -> Vec<String> {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_all(self.state.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }

    /// Puts a value on the block or allow list, as an agent would (no expiry).
    pub async fn list_value(
        &self,
        list: coinfront::domain::risk_list::List,
        kind: coinfront::domain::risk_list::ListKind,
        value: &str,
        reason: &str,
    ) {
        let entry = coinfront::db::risk_lists::NewEntry {
            list,
            kind,
            value,
            reason,
            added_by: "agent@shop",
            expires_at: None,
        };
        let mut tx = self.state.db.begin().await.unwrap();
        coinfront::db::risk_lists::add(&mut tx, entry, self.now_ms())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

/// Signs a webhook body as the sandbox provider does, at the app's current time.
pub fn signed(app: &TestApp, body: &str) -> String {
    coinfront::payments::signature::sign(
        WEBHOOK_KEY.as_bytes(),
        app.now_ms() / 1000,
        body.as_bytes(),
    )
}

impl TestApp {
    pub async fn post_webhook(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/webhooks/payments/sandbox"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("Coinfront-Signature", sig);
        }
        req.send().await.unwrap()
    }

    /// The single order's id, amount and session (for tests that build their own events).
    pub async fn only_order(&self) -> (String, i64, String, String) {
        use sqlx::Row;
        let r = sqlx::query("SELECT id, amount_minor, currency, provider_session_id FROM orders")
            .fetch_one(self.state.db.pool())
            .await
            .unwrap();
        (
            r.get("id"),
            r.get("amount_minor"),
            r.get("currency"),
            r.get::<Option<String>, _>("provider_session_id")
                .unwrap_or_default(),
        )
    }
}

/// A provider event as JSON.
pub fn event_json(
    id: &str,
    kind: &str,
    order_id: &str,
    session: &str,
    object: &str,
    amount: i64,
    currency: &str,
) -> String {
    serde_json::json!({
        "id": id,
        "type": kind,
        "created": 0,
        "data": {
            "order_reference": order_id,
            "session_id": session,
            "object_id": object,
            "method": "card",
            "amount_minor": amount,
            "currency": currency,
            "failure_code": if kind == "payment.failed" { Some("card_declined") } else { None },
            "card": { "brand": "visa", "last4": "4242", "country": "US", "fingerprint": "fp_test" }
        }
    })
    .to_string()
}

/// The password test staff accounts are given.
pub const STAFF_PASSWORD: &str = "tangerine elephant violin";

impl TestApp {
    /// A staff account straight in the database (no TOTP); returns its id.
    pub async fn add_staff(&self, email: &str, role: coinfront::db::staff::Role) -> String {
        let hash = coinfront::staff::password::hash(
            coinfront::config::Secret::new(STAFF_PASSWORD),
            coinfront::staff::password::HashParams::default(),
        )
        .await
        .unwrap();
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        coinfront::db::staff::insert(&mut conn, email, role, &hash, self.now_ms())
            .await
            .unwrap()
            .expect("new staff email")
    }

    /// Signs `browser` in to the console with email and password; returns the response.
    pub async fn console_sign_in(
        &self,
        browser: &Browser,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = browser.get_html("/console/login").await;
        let csrf = extract_hidden(&page, "csrf_token").expect("sign-in page csrf");
        browser
            .post_form(
                "/console/login",
                &[
                    ("csrf_token", &csrf),
                    ("email", email),
                    ("password", password),
                ],
            )
            .await
    }

    /// A new browser signed in as an agent (the account is created if it does not exist).
    pub async fn sign_in_as_agent(&self, email: &str) -> Browser {
        let exists = coinfront::db::staff::by_email(self.state.db.pool(), email)
            .await
            .unwrap()
            .is_some();
        if !exists {
            self.add_staff(email, coinfront::db::staff::Role::Agent)
                .await;
        }
        let browser = Browser::new(self.address.clone());
        let resp = self.console_sign_in(&browser, email, STAFF_PASSWORD).await;
        assert_is_redirect_to(&resp, "/console/");
        browser
    }
}

/// Posts a console form with the CSRF token of `page` (a console page the browser can open).
pub async fn post_from(
    browser: &Browser,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let html = browser.get_html(page).await;
    let csrf = extract_hidden(&html, "csrf_token").expect("page has a csrf token");
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser.post_form(action, &form).await
}

impl TestApp {
    /// An admin with two-factor sign-in already on; returns its TOTP secret.
    pub async fn add_admin_with_totp(&self, email: &str) -> Vec<u8> {
        use coinfront::staff::totp;
        let id = self
            .add_staff(email, coinfront::db::staff::Role::Admin)
            .await;
        let secret = totp::new_secret();
        // Sealed as the console stores it.
        let sealed =
            coinfront::staff::seed_box::seal(&self.state.secrets.totp_key, &id, &secret).unwrap();
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        coinfront::db::staff::enable_totp(&mut conn, &id, &sealed, 0, &[], self.now_ms())
            .await
            .unwrap();
        secret
    }

    /// A new browser signed in as a new admin with two-factor sign-in (password, then code).
    pub async fn sign_in_as_admin(&self, email: &str) -> Browser {
        let secret = self.add_admin_with_totp(email).await;
        let browser = Browser::new(self.address.clone());
        let resp = self.console_sign_in(&browser, email, STAFF_PASSWORD).await;
        assert_is_redirect_to(&resp, "/console/login/code");
        let code = coinfront::staff::totp::code_at(&secret, self.now_ms() / 1000);
        let resp = post_from(
            &browser,
            "/console/login/code",
            "/console/login/code",
            &[("code", &code)],
        )
        .await;
        assert_is_redirect_to(&resp, "/console/");
        browser
    }
}

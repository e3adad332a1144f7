//! Three server processes on one PostgreSQL database, as an operator runs the shop behind a
//! load balancer: over a thousand checkouts spread across them (every step of a checkout may
//! land on a different instance), each paid webhook delivered twice at once to two different
//! instances, and one instance killed with SIGKILL and restarted half-way. Afterwards every
//! order is paid once and delivered once, with one receipt of each kind, no job is left behind
//! or run twice, and the ledger adds up; a signed-in agent works on every instance, and a risk
//! rule saved on one is in force on the others within the reload interval.
//!
//! Needs PostgreSQL: ignored in a plain `cargo test`, run by name by `.ci/run` with
//! `TEST_POSTGRES_URL` set (it fails, rather than skips, without it).

use crate::admin_rules::test_then_save;
use crate::crash::{running_jobs_of, wait_for_running_jobs, wait_until_taken_over, RECOVERY_GOAL};
use crate::helpers::{extract_hidden, fresh_database, Browser, STAFF_PASSWORD};
use crate::process::{free_port, ServerProcess, TOTP_KEY};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use sqlx::Row;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INSTANCES: usize = 3;
const ORDERS: usize = 1000;
const BUYERS: usize = 24;
/// The instance killed (and restarted) once this many orders are paid.
const KILL_AFTER: usize = ORDERS / 2;
const VICTIM: usize = 1;

/// The webhook side of the load balancer: every event the payment provider sends goes to two
/// different instances at once (a different pair each time), as a provider retrying on a
/// timeout, or a balancer that duplicates, would make it. It answers 200 when either copy was
/// accepted, so the provider retries only if neither was.
struct Duplicator {
    instances: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
    events: AtomicUsize,
    copies_ok: AtomicUsize,
    copies_refused: AtomicUsize,
    copies_unreachable: AtomicUsize,
}

async fn duplicate(req: HttpRequest, body: web::Bytes, dup: web::Data<Duplicator>) -> HttpResponse {
    dup.events.fetch_add(1, Ordering::SeqCst);
    let n = dup.next.fetch_add(1, Ordering::SeqCst);
    let k = dup.instances.len();
    let send = |base: &str| {
        let mut r = dup
            .http
            .post(format!("{base}{}", req.uri()))
            .body(body.clone());
        for name in ["content-type", "coinfront-signature"] {
            if let Some(v) = req.headers().get(name) {
                r = r.header(name, v.as_bytes());
            }
        }
        r.send()
    };
    let (a, b) = tokio::join!(
        send(&dup.instances[n % k]),
        send(&dup.instances[(n + 1) % k])
    );
    let mut accepted = false;
    for copy in [a, b] {
        match copy {
            Ok(r) if r.status().is_success() => {
                accepted = true;
                dup.copies_ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(r) => {
                eprintln!("a webhook copy answered {}", r.status());
                dup.copies_refused.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                dup.copies_unreachable.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if accepted {
        HttpResponse::Ok().body("ok")
    } else {
        HttpResponse::BadGateway().finish()
    }
}

/// The buyers' side of the load balancer: each request goes to the next instance in turn,
/// and one that cannot be reached (or fails with a 5xx) is tried on the next, as a balancer's
/// health checks and retries do.
struct Balancer {
    instances: Vec<String>,
    next: AtomicUsize,
}

impl Balancer {
    async fn send<F, Fut>(&self, what: &str, request: F) -> reqwest::Response
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
    {
        for _ in 0..100 {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let base = self.instances[n % self.instances.len()].clone();
            match request(base).await {
                Ok(r) if !r.status().is_server_error() => return r,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("{what}: no instance answered in 100 tries");
    }
}

/// A buyer: one cookie jar, whichever instance answers; its own address, passed by the
/// balancer (a trusted proxy) in `X-Forwarded-For`.
fn buyer_client(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The path of the hosted payment page an absolute URL points at.
fn pay_path(location: &str) -> String {
    let at = location.find("/sandbox/pay/").expect("a payment page URL");
    location[at..].to_owned()
}

/// Pays on the hosted page at `path` with a good card, retrying across instances; an
/// already-paid session (its page no longer offers a form) counts as paid.
async fn pay(lb: &Balancer, client: &reqwest::Client, path: &str) {
    for _ in 0..50 {
        let page = lb
            .send("payment page", |base| {
                client.get(format!("{base}{path}")).send()
            })
            .await;
        if page.status() != 200 {
            return;
        }
        let html = page.text().await.unwrap_or_default();
        let Some(csrf) = extract_hidden(&html, "csrf_token") else {
            continue;
        };
        let form = [
            ("csrf_token", csrf.as_str()),
            ("method", "card"),
            ("card_number", "4242424242424242"),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ];
        let r = lb
            .send("payment", |base| {
                client.post(format!("{base}{path}")).form(&form).send()
            })
            .await;
        if r.status().is_redirection() {
            return;
        }
    }
    panic!("could not pay {path}");
}

/// One whole checkout of a 700-coin package, each step on whichever instance the balancer
/// picks.
async fn checkout(lb: &Balancer, client: &reqwest::Client, username: &str, email: &str) {
    let home = lb
        .send("catalog", |base| client.get(format!("{base}/")).send())
        .await;
    let csrf = extract_hidden(&home.text().await.unwrap(), "csrf_token").expect("csrf");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("package", "700"),
        ("coins", ""),
        ("tiktok_username", username),
        ("email", email),
        ("currency", "USD"),
        ("payment_method", "card"),
        ("age_confirmed", "yes"),
    ];
    let confirm = lb
        .send("checkout", |base| {
            client.post(format!("{base}/checkout")).form(&form).send()
        })
        .await;
    assert_eq!(confirm.status(), 200, "checkout form accepted");
    let html = confirm.text().await.unwrap();
    let field = |name| extract_hidden(&html, name).unwrap_or_default();
    let form = [
        ("csrf_token", field("csrf_token")),
        ("quote", field("quote")),
        ("shown_total_minor", field("shown_total_minor")),
        ("shown_currency", field("shown_currency")),
    ];
    let started = lb
        .send("confirm", |base| {
            client
                .post(format!("{base}/checkout/confirm"))
                .form(&form)
                .send()
        })
        .await;
    assert!(
        started.status().is_redirection(),
        "confirm led to payment: {}",
        started.status()
    );
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    pay(lb, client, &pay_path(&location)).await;
}

async fn count(db: &coinfront::db::Db, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// A staff account straight in the database; with a two-factor seed for an admin.
async fn add_staff(
    db: &coinfront::db::Db,
    email: &str,
    role: coinfront::db::staff::Role,
) -> (String, Option<Vec<u8>>) {
    let hash = coinfront::staff::password::hash(
        coinfront::config::Secret::new(STAFF_PASSWORD),
        coinfront::staff::password::HashParams::default(),
    )
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut conn = db.pool().acquire().await.unwrap();
    let id = coinfront::db::staff::insert(&mut conn, email, role, &hash, now)
        .await
        .unwrap()
        .expect("a new staff email");
    if role != coinfront::db::staff::Role::Admin {
        return (id, None);
    }
    let secret = coinfront::staff::totp::new_secret();
    let key = coinfront::config::Secret::new(TOTP_KEY);
    let sealed = coinfront::staff::seed_box::seal(&key, &id, &secret).unwrap();
    coinfront::db::staff::enable_totp(&mut conn, &id, &sealed, 0, &[], now)
        .await
        .unwrap();
    (id, Some(secret))
}

/// Signs in on `browser`'s instance (with a code when `totp` is given).
async fn sign_in(browser: &Browser, email: &str, totp: Option<&[u8]>) {
    let page = browser.get_html("/console/login").await;
    let csrf = extract_hidden(&page, "csrf_token").expect("sign-in csrf");
    let r = browser
        .post_form(
            "/console/login",
            &[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", STAFF_PASSWORD),
            ],
        )
        .await;
    let Some(secret) = totp else {
        crate::helpers::assert_is_redirect_to(&r, "/console/");
        return;
    };
    crate::helpers::assert_is_redirect_to(&r, "/console/login/code");
    let code =
        coinfront::staff::totp::code_at(secret, chrono::Utc::now().timestamp_millis() / 1000);
    let page = browser.get_html("/console/login/code").await;
    let csrf = extract_hidden(&page, "csrf_token").expect("code page csrf");
    let r = browser
        .post_form(
            "/console/login/code",
            &[("csrf_token", csrf.as_str()), ("code", &code)],
        )
        .await;
    crate::helpers::assert_is_redirect_to(&r, "/console/");
}

/// The value of the risk page's `review_threshold` field as an instance shows it (the value
/// in force there).
async fn review_threshold_on(browser: &Browser) -> String {
    let html = browser.get_html("/console/settings/risk").await;
    crate::admin_rules::form_inputs(&html, "/console/settings/risk/test")
        .into_iter()
        .find(|(name, _)| name == "review_threshold")
        .map(|(_, v)| v)
        .expect("the risk page shows review_threshold")
}

#[tokio::test]
#[ignore = "needs PostgreSQL (TEST_POSTGRES_URL); .ci/run runs it by name"]
async fn three_instances_share_one_postgresql_database() {
    let started = Instant::now();
    assert!(
        std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()),
        "this test needs TEST_POSTGRES_URL=postgres://…: several instances share PostgreSQL only"
    );
    let dir = tempfile::tempdir().unwrap();
    let (url, _guard) = fresh_database(dir.path()).await;
    let db = coinfront::db::Db::connect(&url, 4).await.unwrap();
    db.migrate().await.unwrap();

    // Fixed ports, so the restarted instance is where the balancer looks for it.
    let ports: Vec<u16> = (0..INSTANCES).map(|_| free_port()).collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let duplicator = web::Data::new(Duplicator {
        instances: bases.clone(),
        next: AtomicUsize::new(0),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        events: AtomicUsize::new(0),
        copies_ok: AtomicUsize::new(0),
        copies_refused: AtomicUsize::new(0),
        copies_unreachable: AtomicUsize::new(0),
    });
    let dup_data = duplicator.clone();
    let dup_server = HttpServer::new(move || {
        App::new()
            .app_data(dup_data.clone())
            .default_service(web::post().to(duplicate))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let public = format!("http://{}", dup_server.addrs()[0]);
    tokio::spawn(dup_server.run());

    // The provider sends its webhooks to the public address (the duplicator); buyers' own
    // addresses come through the balancer in X-Forwarded-For.
    let env_owned: Vec<(String, String)> = vec![
        ("COINFRONT_PUBLIC_BASE_URL".into(), public.clone()),
        (
            "COINFRONT_HTTP__TRUSTED_PROXIES".into(),
            "[\"127.0.0.1\"]".into(),
        ),
        ("COINFRONT_SUPPLIER__SANDBOX_DELAY_MS".into(), "20".into()),
        ("COINFRONT_JOBS__WORKERS".into(), "4".into()),
        ("COINFRONT_HTTP__WORKERS".into(), "2".into()),
        ("COINFRONT_DB_MAX_CONNECTIONS".into(), "6".into()),
    ];
    let env: Vec<(&str, &str)> = env_owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let data_dir = |i: usize| {
        let d = dir.path().join(format!("instance-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let mut servers: Vec<ServerProcess> = (0..INSTANCES)
        .map(|i| ServerProcess::start_on(&data_dir(i), &url, "first.log", &env, ports[i]))
        .collect();

    let lb = Arc::new(Balancer {
        instances: bases.clone(),
        next: AtomicUsize::new(0),
    });
    let paid = Arc::new(AtomicUsize::new(0));
    let next_order = Arc::new(AtomicUsize::new(0));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|b| {
            let (lb, paid, next_order) = (lb.clone(), paid.clone(), next_order.clone());
            tokio::spawn(async move {
                let client = buyer_client(&format!("203.0.113.{}", b + 1));
                loop {
                    let n = next_order.fetch_add(1, Ordering::SeqCst);
                    if n >= ORDERS {
                        return;
                    }
                    checkout(
                        &lb,
                        &client,
                        &format!("three_{n}"),
                        &format!("buyer{n}@example.com"),
                    )
                    .await;
                    paid.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Half-way, SIGKILL one instance with jobs in its hands, and start it again.
    while paid.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = servers[VICTIM].instance.clone();
    wait_for_running_jobs(&db, &victim).await;
    servers[VICTIM].kill_hard();
    let killed_at = Instant::now();
    let orphans = running_jobs_of(&db, &victim).await;
    servers[VICTIM] =
        ServerProcess::start_on(&data_dir(VICTIM), &url, "second.log", &env, ports[VICTIM]);
    let restarted_after = killed_at.elapsed();
    let taken_over = wait_until_taken_over(&db, &victim, killed_at + Duration::from_secs(60)).await;
    let recovery = taken_over - killed_at;

    for b in buyers {
        b.await.expect("a buyer's checkouts");
    }
    // Checkouts cut short by the kill (an order made, its confirm page lost, so the buyer
    // started again) are paid by their buyers on another visit, as people do. (Orders paid at
    // the provider whose webhook is still on its way are not among them.)
    let stranded: Vec<String> = sqlx::query(
        "SELECT o.provider_session_id FROM orders o JOIN sandbox_sessions s ON s.id = o.provider_session_id
         WHERE o.status = 'awaiting_payment' AND s.status = 'open'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let client = buyer_client("203.0.113.250");
    for session in &stranded {
        pay(&lb, &client, &format!("/sandbox/pay/{session}")).await;
    }

    // Everything settles: every order delivered, no job due or running, every email sent.
    let orders = count(&db, "SELECT COUNT(*) FROM orders").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let delivered = count(
            &db,
            "SELECT COUNT(*) FROM orders WHERE status = 'delivered'",
        )
        .await;
        let busy = count(
            &db,
            "SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')",
        )
        .await;
        let unsent = count(&db, "SELECT COUNT(*) FROM emails WHERE sent_at IS NULL").await;
        if delivered == orders && busy == 0 && unsent == 0 {
            break;
        }
        if Instant::now() > deadline {
            let by_status: Vec<(String, i64)> =
                sqlx::query("SELECT status, COUNT(*) FROM orders GROUP BY status")
                    .fetch_all(db.pool())
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
            panic!("never settled: orders {by_status:?}, {busy} jobs busy, {unsent} emails unsent");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();

    // Paid exactly once.
    assert!(orders >= ORDERS as i64, "{orders} orders");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM (SELECT order_id FROM order_events WHERE to_status = 'paid' GROUP BY order_id HAVING COUNT(*) <> 1) AS t").await,
        0,
        "one 'paid' event per order"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM (SELECT o.id FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.status = 'succeeded' GROUP BY o.id HAVING COUNT(p.id) <> 1) AS t").await,
        0,
        "one successful payment per order"
    );
    // Delivered exactly once: one supplier credit each, one delivery event each.
    let credits = count(&db, "SELECT COUNT(*) FROM sandbox_ledger").await;
    let duplicates = credits
        - count(&db, "SELECT COUNT(DISTINCT order_id) FROM sandbox_ledger").await
        + count(
            &db,
            "SELECT COUNT(*) FROM order_events WHERE to_status = 'delivered'",
        )
        .await
        - orders;
    assert_eq!(credits, orders, "one supplier credit per order");
    assert_eq!(duplicates, 0, "nothing delivered twice");
    // The ledger adds up: each credit is the order's coins, and the sums match.
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM orders o JOIN sandbox_ledger l ON l.order_id = o.id WHERE l.coins <> o.coins OR l.account_id <> o.tiktok_account_id").await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT CAST(COALESCE(SUM(coins), 0) AS BIGINT) FROM sandbox_ledger"
        )
        .await,
        count(
            &db,
            "SELECT CAST(COALESCE(SUM(coins), 0) AS BIGINT) FROM orders WHERE status = 'delivered'"
        )
        .await
    );
    // One receipt of each kind per order, every one sent.
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM (SELECT order_id, kind FROM emails GROUP BY order_id, kind HAVING COUNT(*) <> 1) AS t").await,
        0,
        "one email of a kind per order"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM emails WHERE kind = 'delivered'").await,
        orders,
        "a delivery receipt per order"
    );
    // No job left behind; none run again except the ones the killed instance held. A job run
    // again after a failure says why in `last_error`.
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM jobs WHERE status <> 'done'").await,
        0,
        "every job done"
    );
    let rerun = count(
        &db,
        "SELECT COUNT(*) FROM jobs WHERE attempts > 1 AND last_error IS NULL",
    )
    .await;
    assert!(
        rerun <= orphans,
        "{rerun} jobs ran again without a failure, but only {orphans} were taken from the killed instance"
    );
    for s in &servers {
        let log = std::fs::read_to_string(&s.log).unwrap();
        assert!(
            !log.contains("lease lost"),
            "a run lost its lease: {}",
            s.log.display()
        );
    }
    // The webhooks: two copies of each at once, to two different instances.
    let events = duplicator.events.load(Ordering::SeqCst);
    let copies_ok = duplicator.copies_ok.load(Ordering::SeqCst);
    let refused = duplicator.copies_refused.load(Ordering::SeqCst);
    let unreachable = duplicator.copies_unreachable.load(Ordering::SeqCst);
    assert!(
        events >= orders as usize,
        "{events} webhooks for {orders} orders"
    );
    assert_eq!(
        refused, 0,
        "every copy that reached an instance was accepted"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM webhook_events").await,
        orders,
        "each event recorded once"
    );

    // A signed-in agent's session works on every instance.
    let (_, _) = add_staff(&db, "agent@shop.test", coinfront::db::staff::Role::Agent).await;
    let agent = Browser::new(bases[0].clone());
    sign_in(&agent, "agent@shop.test", None).await;
    for base in &bases {
        let r = agent
            .client
            .get(format!("{base}/console/account"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the agent's session on {base}");
        assert!(r.text().await.unwrap().contains("agent@shop.test"));
    }

    // A risk rule saved on one instance is in force on the others within the reload interval.
    let (_, secret) = add_staff(&db, "admin@shop.test", coinfront::db::staff::Role::Admin).await;
    let admin = Browser::new(bases[0].clone());
    sign_in(&admin, "admin@shop.test", secret.as_deref()).await;
    let before = review_threshold_on(&admin).await;
    let changed = if before == "50" { "51" } else { "50" };
    let page = admin.get_html("/console/settings/risk").await;
    let saved = test_then_save(&admin, &page, &[("review_threshold", changed)]).await;
    crate::helpers::assert_is_redirect_to(&saved, "/console/settings/risk?done=saved");
    let saved_at = Instant::now();
    let reload = Duration::from_secs(
        coinfront::config::Settings::default()
            .console
            .settings_reload_seconds,
    );
    let mut picked_up = Duration::ZERO;
    for base in &bases[1..] {
        let view = Browser {
            address: base.clone(),
            client: admin.client.clone(),
        };
        while review_threshold_on(&view).await != changed {
            assert!(
                saved_at.elapsed() < reload + Duration::from_secs(2),
                "{base} did not pick up the saved rule within {reload:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        picked_up = picked_up.max(saved_at.elapsed());
    }

    println!(
        "three instances on PostgreSQL: {orders} orders ({} cut short by the kill and paid on a second visit), each paid once and delivered once; duplicates delivered: {duplicates}; \
         {events} paid webhooks sent as {} copies to two instances at once ({copies_ok} accepted, {unreachable} sent to the killed instance); \
         jobs recovered: {orphans} running on the killed instance, taken over {:.2} s after the SIGKILL (its restart took {:.2} s); {rerun} jobs started again without a failure; \
         agent session on all {INSTANCES} instances; risk rule in force everywhere {:.2} s after saving (reload every {} s); whole run {:.1} s",
        stranded.len(),
        events * 2,
        recovery.as_secs_f64(),
        restarted_after.as_secs_f64(),
        picked_up.as_secs_f64(),
        reload.as_secs(),
        drained.as_secs_f64(),
    );
    assert!(
        recovery < RECOVERY_GOAL,
        "taken over {recovery:?} after the SIGKILL"
    );
    for s in &mut servers {
        s.kill_hard();
    }
}

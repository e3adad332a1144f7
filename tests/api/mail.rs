//! Email through the outbox: the order look-up over real HTTP, the file and SMTP transports,
//! retries while the mail server is down, stable Message-IDs and header injection.

use crate::helpers::{eventually, extract_hidden, spawn_app, spawn_app_with, Checkout, TestApp};
use coinfront::db::emails::{self, StoredEmail};
use coinfront::mail::outbox::{self, NewEmail};
use coinfront::mail::{Email, Facts};
use sqlx::Row;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

// --- helpers -----------------------------------------------------------------------------

struct Bought {
    order_id: String,
    order_number: String,
    /// The full private link, as the buyer's browser saw it.
    link: String,
}

async fn buy(app: &TestApp) -> Bought {
    let path = app.buy(&Checkout::default()).await;
    let token_hash = coinfront::domain::ids::token_hash(path.trim_start_matches("/orders/"));
    let row = sqlx::query("SELECT id, order_number FROM orders WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    Bought {
        order_id: row.get("id"),
        order_number: row.get("order_number"),
        link: app.url(&path),
    }
}

async fn lookup(app: &TestApp, order_number: &str, email: &str) -> reqwest::Response {
    let form = app.get_html("/orders/lookup").await;
    let csrf = extract_hidden(&form, "csrf_token").expect("look-up form has a csrf token");
    app.post_form(
        "/orders/lookup",
        &[
            ("csrf_token", csrf.as_str()),
            ("order_number", order_number),
            ("email", email),
        ],
    )
    .await
}

async fn emails_of_kind(app: &TestApp, kind: &str) -> Vec<StoredEmail> {
    let rows = sqlx::query("SELECT id FROM emails WHERE kind = $1 ORDER BY created_at, id")
        .bind(kind)
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in rows {
        let id: String = r.get("id");
        out.push(
            emails::load(app.state.db.pool(), &id)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

struct Progress {
    attempts: i64,
    sent_at: Option<i64>,
    last_error: Option<String>,
    abandoned_at: Option<i64>,
}

async fn progress(app: &TestApp, id: &str) -> Progress {
    let r =
        sqlx::query("SELECT attempts, sent_at, last_error, abandoned_at FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    Progress {
        attempts: r.get("attempts"),
        sent_at: r.get("sent_at"),
        last_error: r.get("last_error"),
        abandoned_at: r.get("abandoned_at"),
    }
}

fn outbox_dir(app: &TestApp) -> PathBuf {
    app.state.settings.outbox_dir()
}

/// Every file in a folder, by name.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The outbox files whose subject is an order-link email's.
fn order_link_files(dir: &Path) -> Vec<Eml> {
    files_in(dir)
        .iter()
        .filter(|n| n.ends_with(".eml"))
        .filter_map(|n| std::fs::read(dir.join(n)).ok())
        .map(|raw| Eml::parse(&raw))
        .filter(|e| e.header("Subject").starts_with("The link to your order"))
        .collect()
}

/// A just-good-enough MIME reader for the messages the shop writes: unfolded headers and the
/// decoded parts of a multipart body.
struct Eml {
    raw: String,
    headers: Vec<(String, String)>,
    parts: Vec<(String, String)>,
}

impl Eml {
    fn parse(raw: &[u8]) -> Eml {
        let raw = String::from_utf8(raw.to_vec()).expect("a message is ASCII on the wire");
        let (head, body) = split_head(&raw);
        let headers = parse_headers(head);
        let mut eml = Eml {
            raw: raw.clone(),
            headers,
            parts: Vec::new(),
        };
        if let Some(boundary) = param(eml.header("Content-Type"), "boundary") {
            let delimiter = format!("--{boundary}");
            for chunk in body.split(&delimiter).skip(1) {
                if chunk.starts_with("--") {
                    break;
                }
                let (part_head, part_body) = split_head(chunk.trim_start_matches("\r\n"));
                let part_headers = parse_headers(part_head);
                let get = |name: &str| {
                    part_headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let decoded = decode(&get("Content-Transfer-Encoding"), part_body);
                eml.parts.push((get("Content-Type"), decoded));
            }
        }
        eml
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|(t, _)| t.starts_with(content_type))
            .map(|(_, b)| b.as_str())
            .unwrap_or_else(|| panic!("no {content_type} part in\n{}", self.raw))
    }
}

fn split_head(s: &str) -> (&str, &str) {
    s.split_once("\r\n\r\n").unwrap_or((s, ""))
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn param(header: &str, name: &str) -> Option<String> {
    header.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case(name)
            .then(|| v.trim_matches('"').to_owned())
    })
}

fn decode(encoding: &str, body: &str) -> String {
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let mut out = Vec::new();
            let b = joined.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 2 < b.len() + 1 {
                    let hex = std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("=XX escape"));
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            out
        }
        "base64" => {
            use base64::Engine;
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .expect("base64 body")
        }
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes).expect("utf-8 body")
}

/// Waits until the email is sent, moving the test clock on so that retries come due.
async fn wait_until_sent(app: &TestApp, id: &str) {
    for _ in 0..400 {
        if progress(app, id).await.sent_at.is_some() {
            return;
        }
        app.clock.advance_ms(1_000);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("email {id} was never sent");
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The smallest SMTP server that lettre will talk to: accepts every message and hands its
/// bytes to the test. Runs on its own thread until the test process ends.
fn tiny_smtp_server(listener: TcpListener) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = smtp_session(stream, &tx);
            });
        }
    });
    rx
}

fn smtp_session(stream: std::net::TcpStream, tx: &mpsc::Sender<Vec<u8>>) -> std::io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 tiny ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.to_ascii_uppercase();
        if cmd.starts_with("DATA") {
            w.write_all(b"354 go on\r\n")?;
            let mut data = Vec::new();
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.extend_from_slice(l.as_bytes());
            }
            let _ = tx.send(data);
            w.write_all(b"250 queued\r\n")?;
        } else if cmd.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            w.write_all(b"250 tiny\r\n")?;
        } else {
            w.write_all(b"250 ok\r\n")?;
        }
    }
}

fn smtp_to(port: u16) -> impl FnOnce(&mut coinfront::config::Settings) {
    move |s| {
        s.mail.transport = "smtp".into();
        s.mail.smtp_host = "127.0.0.1".into();
        s.mail.smtp_port = port;
        s.mail.smtp_security = "none".into();
        s.mail.from = "Coin Shop <shop@coins.example>".into();
        s.mail.reply_to = Some("help@coins.example".into());
        // Enough tries that the test, not the queue, decides when the server comes back.
        s.jobs.max_attempts = 1_000;
    }
}

fn facts_for(b: &Bought) -> Facts {
    Facts {
        shop_name: "coinfront".into(),
        order_number: b.order_number.clone(),
        coins: "700".into(),
        username: "ana_buyer".into(),
        amount: "US$7.28".into(),
        method: "Visa •••• 4242".into(),
        placed: "2026-11-24 16:10 UTC".into(),
        at: "2026-11-24 16:12 UTC".into(),
        order_url: b.link.clone(),
        support_address: "shop@coinfront.invalid".into(),
    }
}

async fn enqueue_directly(app: &TestApp, new: &NewEmail) -> String {
    let mut tx = app.state.db.begin().await.unwrap();
    let written = outbox::enqueue(&mut tx, &app.state.mailer, new, app.now_ms())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(written.is_some());
    sqlx::query("SELECT id FROM emails WHERE dedupe_key = $1")
        .bind(&new.dedupe_key)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get("id")
}

// --- the order look-up --------------------------------------------------------------------

#[tokio::test]
async fn order_lookup_writes_one_eml_with_the_order_link() {
    let app = spawn_app().await;
    let order = buy(&app).await;
    let resp = lookup(&app, &order.order_number.to_lowercase(), "ANA@example.com").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("we have sent its link"));

    let dir = outbox_dir(&app);
    eventually("the order-link email in the outbox", || async {
        order_link_files(&dir).len() == 1
    })
    .await;
    let rows = emails_of_kind(&app, "order_link").await;
    assert_eq!(rows.len(), 1, "one outbox row");
    let row = &rows[0];
    assert_eq!(row.order_id.as_deref(), Some(order.order_id.as_str()));
    assert_eq!(row.to_address, "ana@example.com");
    // The outbox holds a slot, never a working link: the database alone opens no order.
    let token = order.link.rsplit('/').next().unwrap();
    assert!(!row.text_body.contains(token) && !row.html_body.contains(token));
    assert!(row
        .text_body
        .contains(coinfront::mail::kinds::ORDER_LINK_SLOT));
    wait_until_sent(&app, &row.id).await;
    // The order's other emails (its receipt) are written by their own jobs: let them finish.
    app.wait_until_idle().await;

    // Named by the email's id, and nothing half-written beside it.
    let file = dir.join(format!("{}.eml", row.id));
    let eml = Eml::parse(&std::fs::read(&file).expect("{id}.eml"));
    assert!(files_in(&dir).iter().all(|n| !n.ends_with(".tmp")));
    assert_eq!(eml.header("Message-ID"), row.message_id);
    assert_eq!(
        row.message_id,
        format!("<{}@coinfront.invalid>", row.id),
        "Message-ID from the id and the From domain"
    );
    assert_eq!(eml.header("To"), "ana@example.com");
    assert_eq!(eml.header("From"), "coinfront <shop@coinfront.invalid>");
    assert!(eml.header("Date").contains(" GMT") || eml.header("Date").contains("+0000"));
    assert!(
        eml.part("text/plain").contains(&order.link),
        "link in the text part: {}",
        eml.part("text/plain")
    );
    assert!(eml
        .part("text/html")
        .contains(&format!("href=\"{}\"", order.link)));
    assert!(eml.part("text/plain").contains(&order.order_number));

    // Asked again at once: the same window, so nothing new is written.
    let again = lookup(&app, &order.order_number, "ana@example.com").await;
    assert_eq!(again.status(), 200);
    app.wait_until_idle().await;
    assert_eq!(emails_of_kind(&app, "order_link").await.len(), 1);
    assert_eq!(order_link_files(&dir).len(), 1);

    // Ten minutes later a new look-up sends a new email.
    app.clock
        .advance_ms(coinfront::mail::outbox::ORDER_LINK_WINDOW_MS);
    lookup(&app, &order.order_number, "ana@example.com").await;
    eventually("a second order-link email", || async {
        order_link_files(&dir).len() == 2
    })
    .await;
    assert_eq!(emails_of_kind(&app, "order_link").await.len(), 2);
}

#[tokio::test]
async fn a_wrong_email_or_number_writes_nothing_and_the_page_answers_the_same() {
    let app = spawn_app().await;
    let order = buy(&app).await;
    // The page echoes what was typed; apart from that (and the CSRF token) it is the same.
    async fn page(app: &TestApp, number: &str, email: &str) -> String {
        let resp = lookup(app, number, email).await;
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        let token = extract_hidden(&html, "csrf_token").unwrap_or_default();
        html.replace(&token, "")
            .replace(&format!("value=\"{number}\""), "value=\"N\"")
            .replace(&format!("value=\"{email}\""), "value=\"E\"")
    }
    let wrong_email = page(&app, &order.order_number, "mallory@example.com").await;
    let wrong_number = page(&app, "CF-ZZZZZZZZ", "ana@example.com").await;
    let right = page(&app, &order.order_number, "ana@example.com").await;
    assert_eq!(
        wrong_email, right,
        "same page whether or not anything matched"
    );
    assert_eq!(wrong_number, right);

    // Only the matching request wrote an email.
    let dir = outbox_dir(&app);
    eventually("the one order-link email", || async {
        order_link_files(&dir).len() == 1
    })
    .await;
    let rows = emails_of_kind(&app, "order_link").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].to_address, "ana@example.com");
    let to_mallory: i64 = sqlx::query("SELECT COUNT(*) FROM emails WHERE to_address <> $1")
        .bind("ana@example.com")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(to_mallory, 0);
}

// --- the order emails ----------------------------------------------------------------------

#[tokio::test]
async fn each_order_email_is_written_once_with_the_orders_facts() {
    use coinfront::orders::notify;
    let app = spawn_app().await;
    let bought = buy(&app).await;
    eventually("the payment recorded", || async {
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'succeeded'")
            .await
            == 1
    })
    .await;
    let order = coinfront::db::orders::by_id(app.state.db.pool(), &bought.order_id)
        .await
        .unwrap()
        .unwrap();
    // Twice, as a retried job or a replayed event would: still one email of each kind.
    for _ in 0..2 {
        let mut tx = app.state.db.begin().await.unwrap();
        let (state, o, now) = (&app.state, &order, app.now_ms());
        notify::payment_received(state, &mut tx, o, now)
            .await
            .unwrap();
        notify::held_for_review(state, &mut tx, o, now)
            .await
            .unwrap();
        notify::delivered(state, &mut tx, o, now).await.unwrap();
        let reason = "We could not reach the TikTok account.";
        notify::cancelled_refunded(state, &mut tx, o, o.amount, reason, now)
            .await
            .unwrap();
        notify::refund_requested(state, &mut tx, o, now)
            .await
            .unwrap();
        notify::refund_denied(state, &mut tx, o, "The coins were spent.", now)
            .await
            .unwrap();
        notify::refund_completed(state, &mut tx, o, o.amount, now)
            .await
            .unwrap();
        notify::support_reply(state, &mut tx, o, "Hello!\nAll good.", now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    for kind in [
        "payment_received",
        "held_for_review",
        "delivered",
        "cancelled_refunded",
        "refund_requested",
        "refund_denied",
        "refund_completed",
        "support_reply",
    ] {
        let rows = emails_of_kind(&app, kind).await;
        assert_eq!(rows.len(), 1, "one {kind} email");
        assert_eq!(rows[0].order_id.as_deref(), Some(bought.order_id.as_str()));
        wait_until_sent(&app, &rows[0].id).await;
    }

    // The receipt, as the buyer gets it.
    let receipt = emails_of_kind(&app, "delivered").await.remove(0);
    let raw = std::fs::read(outbox_dir(&app).join(format!("{}.eml", receipt.id))).unwrap();
    let eml = Eml::parse(&raw);
    assert_eq!(
        eml.header("Subject"),
        format!(
            "Your receipt: 700 coins delivered to @ana_buyer ({})",
            bought.order_number
        )
    );
    for part in [eml.part("text/plain"), eml.part("text/html")] {
        for fact in [
            bought.order_number.as_str(),
            "700",
            "@ana_buyer",
            &order.amount.to_string(),
            "Visa •••• 4242",
            bought.link.as_str(),
            "refund",
        ] {
            assert!(part.contains(fact), "{fact} in the receipt:\n{part}");
        }
    }
    // Refunds and support replies are told apart: a later one gets its own email.
    app.clock.advance_secs(60);
    let mut later = order.clone();
    later.refunded_minor = order.amount.minor();
    let mut tx = app.state.db.begin().await.unwrap();
    let now = app.now_ms();
    notify::refund_completed(&app.state, &mut tx, &later, order.amount, now)
        .await
        .unwrap();
    notify::support_reply(&app.state, &mut tx, &later, "One more thing.", now)
        .await
        .unwrap();
    // The once-per-order kinds stay at one.
    notify::delivered(&app.state, &mut tx, &later, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(emails_of_kind(&app, "refund_completed").await.len(), 2);
    assert_eq!(emails_of_kind(&app, "support_reply").await.len(), 2);
    assert_eq!(emails_of_kind(&app, "delivered").await.len(), 1);

    let cancelled = emails_of_kind(&app, "cancelled_refunded").await.remove(0);
    assert!(cancelled
        .text_body
        .contains("We could not reach the TikTok account."));
}

// --- delivery and resends -----------------------------------------------------------------

#[tokio::test]
async fn a_forced_resend_rewrites_the_same_file_with_the_same_message_id() {
    let app = spawn_app_with(|s| s.jobs.workers = 0).await;
    let order = buy(&app).await;
    let new = NewEmail {
        order_id: Some(order.order_id.clone()),
        dedupe_key: format!("{}:delivered", order.order_id),
        to: "ana@example.com".into(),
        email: Email::Delivered,
        facts: facts_for(&order),
    };
    let id = enqueue_directly(&app, &new).await;
    // The same key again writes nothing: one email per order and kind.
    let mut tx = app.state.db.begin().await.unwrap();
    assert!(
        outbox::enqueue(&mut tx, &app.state.mailer, &new, app.now_ms())
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    let jobs: i64 = sqlx::query("SELECT COUNT(*) FROM jobs WHERE kind = 'send_email'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "one send job per email");

    coinfront::mail::send::send(&app.state.mail_context(), &id, None)
        .await
        .unwrap();
    let file = outbox_dir(&app).join(format!("{id}.eml"));
    let first = std::fs::read(&file).unwrap();
    let sent = progress(&app, &id).await;
    assert!(sent.sent_at.is_some());
    assert_eq!(sent.attempts, 1);

    // A crash between sending and recording it: the job runs again.
    sqlx::query("UPDATE emails SET sent_at = NULL WHERE id = $1")
        .bind(&id)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    app.clock.advance_secs(3600);
    coinfront::mail::send::send(&app.state.mail_context(), &id, None)
        .await
        .unwrap();
    let second = std::fs::read(&file).unwrap();
    assert_eq!(first, second, "byte for byte the same message");
    let eml = Eml::parse(&second);
    assert_eq!(
        eml.header("Message-ID"),
        format!("<{id}@coinfront.invalid>")
    );
    assert_eq!(
        files_in(&outbox_dir(&app)),
        [format!("{id}.eml")],
        "one file, no leftovers"
    );

    // Already sent: running the job again does nothing at all.
    std::fs::remove_file(&file).unwrap();
    coinfront::mail::send::send(&app.state.mail_context(), &id, None)
        .await
        .unwrap();
    assert!(!file.exists());
}

#[tokio::test]
async fn the_message_is_multipart_text_and_html() {
    let app = spawn_app_with(|s| {
        s.jobs.workers = 0;
        s.mail.reply_to = Some("Help Desk <help@coinfront.invalid>".into());
    })
    .await;
    let order = buy(&app).await;
    let new = NewEmail {
        order_id: Some(order.order_id.clone()),
        dedupe_key: format!("{}:delivered", order.order_id),
        to: "ana@example.com".into(),
        email: Email::Delivered,
        facts: facts_for(&order),
    };
    let id = enqueue_directly(&app, &new).await;
    coinfront::mail::send::send(&app.state.mail_context(), &id, None)
        .await
        .unwrap();
    let raw = std::fs::read(outbox_dir(&app).join(format!("{id}.eml"))).unwrap();
    let eml = Eml::parse(&raw);
    assert_eq!(eml.header("MIME-Version"), "1.0");
    assert!(eml
        .header("Content-Type")
        .starts_with("multipart/alternative;"));
    assert_eq!(
        eml.header("Reply-To"),
        "\"Help Desk\" <help@coinfront.invalid>"
    );
    assert_eq!(eml.parts.len(), 2, "exactly a text and an HTML part");
    assert!(eml.parts[0].0.starts_with("text/plain; charset=utf-8"));
    assert!(eml.parts[1].0.starts_with("text/html; charset=utf-8"));
    let text = eml.part("text/plain");
    let html = eml.part("text/html");
    for fact in [
        order.order_number.as_str(),
        "700",
        "@ana_buyer",
        "US$7.28",
        "Visa •••• 4242",
        order.link.as_str(),
    ] {
        assert!(text.contains(fact), "{fact} in the text part:\n{text}");
        assert!(html.contains(fact), "{fact} in the HTML part:\n{html}");
    }
    assert!(html.contains("<table"), "the HTML part is HTML");
    assert!(!text.contains('<'), "the text part is plain text");
}

// --- header injection -----------------------------------------------------------------------

#[tokio::test]
async fn buyer_input_cannot_inject_headers() {
    let app = spawn_app_with(|s| s.jobs.workers = 0).await;
    let order = buy(&app).await;

    // A To value with a line break is refused for good, and nothing is written or sent.
    let mut facts = facts_for(&order);
    facts.username = "ana\r\nBcc: victim@example.com\r\nX-Injected: yes".into();
    let bad_to = NewEmail {
        order_id: Some(order.order_id.clone()),
        dedupe_key: format!("{}:held_for_review", order.order_id),
        to: "ana@example.com\r\nBcc: victim@example.com".into(),
        email: Email::HeldForReview,
        facts: facts.clone(),
    };
    let id = enqueue_directly(&app, &bad_to).await;
    let result = coinfront::mail::send::send(&app.state.mail_context(), &id, None).await;
    assert!(
        matches!(result, Err(coinfront::jobs::JobError::Permanent(_))),
        "{result:?}"
    );
    let p = progress(&app, &id).await;
    assert!(p.sent_at.is_none() && p.abandoned_at.is_some());
    assert!(p.last_error.unwrap_or_default().contains("recipient"));
    assert!(!outbox_dir(&app).join(format!("{id}.eml")).exists());

    // A subject built from a hostile username stays one header.
    let bad_subject = NewEmail {
        dedupe_key: format!("{}:delivered", order.order_id),
        to: "ana@example.com".into(),
        email: Email::Delivered,
        ..bad_to
    };
    let id = enqueue_directly(&app, &bad_subject).await;
    coinfront::mail::send::send(&app.state.mail_context(), &id, None)
        .await
        .unwrap();
    let raw = std::fs::read(outbox_dir(&app).join(format!("{id}.eml"))).unwrap();
    let eml = Eml::parse(&raw);
    for name in eml.header_names() {
        assert!(
            !name.eq_ignore_ascii_case("Bcc") && !name.eq_ignore_ascii_case("X-Injected"),
            "injected header {name}"
        );
    }
    assert!(eml
        .header("Subject")
        .contains("Bcc: victim@example.com X-Injected: yes"));
    assert_eq!(eml.header("To"), "ana@example.com");
}

// --- SMTP -----------------------------------------------------------------------------------

#[tokio::test]
async fn an_smtp_failure_keeps_the_email_queued_and_it_is_sent_once_the_server_is_back() {
    let port = closed_port();
    let app = spawn_app_with(smtp_to(port)).await;
    let order = buy(&app).await;
    let resp = lookup(&app, &order.order_number, "ana@example.com").await;
    assert_eq!(resp.status(), 200, "the buyer is not kept waiting on mail");
    eventually("the order-link email", || async {
        emails_of_kind(&app, "order_link").await.len() == 1
    })
    .await;
    let id = emails_of_kind(&app, "order_link").await[0].id.clone();

    // The server is down: every try fails, the email stays queued.
    for _ in 0..400 {
        if progress(&app, &id).await.attempts >= 3 {
            break;
        }
        app.clock.advance_ms(1_000);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let down = progress(&app, &id).await;
    assert!(down.attempts >= 3, "retried: {} attempts", down.attempts);
    assert!(down.sent_at.is_none() && down.abandoned_at.is_none());
    assert!(down.last_error.unwrap_or_default().contains("SMTP"));
    let job_status: String =
        sqlx::query("SELECT status FROM jobs WHERE kind = 'send_email' AND dedupe_key = $1")
            .bind(format!("send_email:{id}"))
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get(0);
    assert!(
        job_status == "pending" || job_status == "running",
        "still queued: {job_status}"
    );

    // The server comes back on the same port: the next retry delivers it.
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    let received = tiny_smtp_server(listener);
    wait_until_sent(&app, &id).await;
    // The order's other emails (payment received, receipt) share the server: find this one.
    let expected_id = format!("<{id}@coins.example>");
    let eml = loop {
        let raw = received
            .recv_timeout(Duration::from_secs(10))
            .expect("the server got the message");
        let eml = Eml::parse(&raw);
        if eml.header("Message-ID") == expected_id {
            break eml;
        }
    };
    let row = emails::load(app.state.db.pool(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(eml.header("Message-ID"), row.message_id);
    assert_eq!(row.message_id, format!("<{id}@coins.example>"));
    assert_eq!(eml.header("From"), "\"Coin Shop\" <shop@coins.example>");
    assert_eq!(eml.header("Reply-To"), "help@coins.example");
    assert!(eml.part("text/plain").contains(&order.link));
    assert!(progress(&app, &id).await.attempts >= 4);
}

#[tokio::test]
async fn a_send_that_ran_out_of_tries_is_revived_while_the_email_is_unsent() {
    let port = closed_port();
    let app = spawn_app_with(|s| {
        smtp_to(port)(s);
        s.jobs.max_attempts = 2;
    })
    .await;
    let order = buy(&app).await;
    lookup(&app, &order.order_number, "ana@example.com").await;
    eventually("the order-link email", || async {
        emails_of_kind(&app, "order_link").await.len() == 1
    })
    .await;
    let id = emails_of_kind(&app, "order_link").await[0].id.clone();
    let job_status = || async {
        sqlx::query("SELECT status FROM jobs WHERE dedupe_key = $1")
            .bind(format!("send_email:{id}"))
            .fetch_one(app.state.db.pool())
            .await
            .unwrap()
            .get::<String, _>(0)
    };
    for _ in 0..400 {
        if job_status().await == "dead" {
            break;
        }
        app.clock.advance_ms(1_000);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(job_status().await, "dead");
    assert!(progress(&app, &id).await.sent_at.is_none());

    // Not before the pause is over.
    let pool = app.state.db.pool();
    assert_eq!(
        outbox::revive_dead_sends(pool, app.now_ms()).await.unwrap(),
        0
    );
    app.clock.advance_ms(outbox::REVIVE_AFTER_MS);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
    let received = tiny_smtp_server(listener);
    // This email, and the order's other unsent emails that died with it.
    assert!(outbox::revive_dead_sends(pool, app.now_ms()).await.unwrap() >= 1);
    app.state.jobs_ready.notify_waiters();
    wait_until_sent(&app, &id).await;
    assert!(received.recv_timeout(Duration::from_secs(10)).is_ok());
    // The send is recorded before its job is marked done (two commits): wait for both.
    eventually("the send job to finish", || async {
        job_status().await == "done"
    })
    .await;
    // Sent emails are never revived. (The order's other emails may die again against the
    // one-message server above and be revived: only this one is known to be sent.)
    app.clock.advance_ms(outbox::REVIVE_AFTER_MS * 2);
    outbox::revive_dead_sends(pool, app.now_ms()).await.unwrap();
    assert_eq!(job_status().await, "done");
    assert!(progress(&app, &id).await.sent_at.is_some());
}

/// The SMTP path against a real SMTP server process: `.ci/run` starts a sink, sets
/// `SMTP_SINK_PORT` and `SMTP_SINK_DIR` (where the sink writes each message it receives) and
/// runs this test by name with `--ignored` on both backends. Plain `cargo test` lists it as
/// ignored, with the reason, instead of passing it without a server.
#[tokio::test]
#[ignore = "needs a real SMTP server: SMTP_SINK_PORT and SMTP_SINK_DIR (.ci/run starts one)"]
async fn an_order_email_goes_through_a_real_smtp_server() {
    let (Ok(port), Ok(dir)) = (
        std::env::var("SMTP_SINK_PORT"),
        std::env::var("SMTP_SINK_DIR"),
    ) else {
        panic!("SMTP_SINK_PORT and SMTP_SINK_DIR must name a running SMTP sink (see .ci/run)");
    };
    let port: u16 = port.parse().expect("SMTP_SINK_PORT is a port");
    let dir = PathBuf::from(dir);
    let app = spawn_app_with(smtp_to(port)).await;
    let order = buy(&app).await;
    lookup(&app, &order.order_number, "ana@example.com").await;
    eventually("the order-link email", || async {
        emails_of_kind(&app, "order_link").await.len() == 1
    })
    .await;
    let row = emails_of_kind(&app, "order_link").await.remove(0);
    wait_until_sent(&app, &row.id).await;

    // The sink wrote it to disk as received; find it by its Message-ID.
    let mut found = None;
    for _ in 0..200 {
        found = files_in(&dir)
            .iter()
            .filter(|n| n.ends_with(".eml"))
            .filter_map(|n| std::fs::read(dir.join(n)).ok())
            .map(|raw| Eml::parse(&raw))
            .find(|e| e.header("Message-ID") == row.message_id);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let eml = found.unwrap_or_else(|| panic!("{} not in {}", row.message_id, dir.display()));
    assert_eq!(eml.header("To"), "ana@example.com");
    assert_eq!(eml.header("From"), "\"Coin Shop\" <shop@coins.example>");
    assert!(eml
        .header("Content-Type")
        .starts_with("multipart/alternative;"));
    assert_eq!(eml.parts.len(), 2);
    assert!(eml.part("text/plain").contains(&order.link));
    assert!(eml
        .part("text/html")
        .contains(&format!("href=\"{}\"", order.link)));
}

// --- configuration --------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_from_or_reply_to_address_stops_start_up_naming_the_key() {
    for (configure, key) in [
        (
            Box::new(|s: &mut coinfront::config::Settings| s.mail.from = "not an address".into())
                as Box<dyn Fn(&mut coinfront::config::Settings)>,
            "mail.from",
        ),
        (
            Box::new(|s: &mut coinfront::config::Settings| {
                s.mail.reply_to = Some("help@example.com\r\nBcc: x@example.com".into())
            }),
            "mail.reply_to",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = crate::helpers::test_settings(dir.path());
        configure(&mut settings);
        let clock = std::sync::Arc::new(coinfront::clock::ManualClock::starting_now());
        let err = match coinfront::startup::Application::build(settings, clock).await {
            Ok(_) => panic!("{key}: start-up should fail"),
            Err(e) => e,
        };
        let config = err
            .downcast_ref::<coinfront::config::ConfigError>()
            .unwrap_or_else(|| panic!("a ConfigError: {err:#}"));
        assert_eq!(config.key, key);
    }

    // And from the real binary: exit code 2 and one line naming the key.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coinfront"))
        .current_dir(dir.path())
        .env("COINFRONT_DATA_DIR", dir.path().join("data"))
        .env("COINFRONT_MAIL__FROM", "nobody")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().next().unwrap_or("").contains("mail.from"),
        "{stderr}"
    );
}

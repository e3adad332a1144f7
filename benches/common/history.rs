//! A shop's history, for the benchmarks of what grows with it (`backtest`, `startup`): `orders`
//! paid orders spread over the last `days` days, each with what the shop keeps for one — the
//! order; its payment (after a failed one now and then) and the provider's webhook; its events;
//! the pre-payment and pre-fulfillment assessments with the real `Signals` JSON; the jobs that
//! ran for it, done; its emails — and a fate: mostly delivered, some refunded, some rejected,
//! a few rejected as fraud (the `block_listed` event), a few disputed (a chargeback), the
//! refunds that went with them, and the agents' audit log of their rejections.
//!
//! The signals and fates are drawn from `seed` in the same order as the backtest bench drew
//! them before this module existed, so its replay counts stay comparable; everything else comes
//! from a second generator.
//!
//! Filled fast: multi-row INSERTs of generated literals on one connection of its own, in
//! transactions of `TX_ORDERS` orders, with the tables' secondary indexes dropped first and
//! built again at the end (one sort each instead of millions of random inserts); on SQLite the
//! fill's connection writes with `synchronous = OFF`, on PostgreSQL without waiting for the
//! commit flush. Values are generated here (never read from outside), quoted all the same.

use anyhow::Context;
use coinfront::domain::risk_list::{List, ListHit, ListKind};
use coinfront::risk::signals::{FailedCards, PerScope, Recipient, Signals, Velocity};
use coinfront::risk::{self, RiskSettings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{AnyConnection, Connection, Row};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;
/// Orders per multi-row statement round (one statement per table).
const CHUNK: usize = 1_000;
/// Orders per transaction.
const TX_ORDERS: usize = 50_000;

/// The tables this fills: their secondary indexes are dropped during the fill.
const TABLES: [&str; 11] = [
    "orders",
    "payments",
    "webhook_events",
    "order_events",
    "risk_assessments",
    "jobs",
    "emails",
    "refunds",
    "disputes",
    "audit_log",
    "staff",
];

pub struct History {
    /// Paid orders, each assessed before fulfillment.
    pub orders: usize,
    /// Spread over the `days` days before `now`.
    pub days: i64,
    pub seed: u64,
    /// Epoch milliseconds.
    pub now: i64,
}

/// What a fill wrote.
pub struct Filled {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Fills the (migrated, empty) database at `url` with `h`'s history. On SQLite nothing else
/// may have the database open meanwhile.
pub async fn fill(url: &str, h: &History) -> anyhow::Result<Filled> {
    let started = Instant::now();
    sqlx::any::install_default_drivers();
    let postgres = url.starts_with("postgres");
    let mut conn = AnyConnection::connect(url)
        .await
        .context("connecting to fill")?;
    if postgres {
        exec(&mut conn, "SET synchronous_commit = off").await?;
        exec(&mut conn, "SET maintenance_work_mem = '256MB'").await?;
        // The foreign-key triggers off for this session (the rows are consistent by
        // construction): checking each of millions of rows cost more than inserting it.
        exec(&mut conn, "SET session_replication_role = replica").await?;
    } else {
        // For the fill only (the caller has no other connection open): no journal, no sync; a
        // crash mid-fill loses a scratch database. WAL again at the end, as the shop uses it.
        exec(&mut conn, "PRAGMA journal_mode = OFF").await?;
        exec(&mut conn, "PRAGMA synchronous = OFF").await?;
        exec(&mut conn, "PRAGMA cache_size = -262144").await?;
        exec(&mut conn, "PRAGMA temp_store = MEMORY").await?;
    }
    let indexes = drop_indexes(&mut conn, postgres).await?;

    let mut rows = 0u64;
    exec(&mut conn, "BEGIN").await?;
    rows += staff(&mut conn, h.now).await?;
    // The next chunk is generated on another thread while the database stores this one.
    let generate = |mut g: Generator, from: usize| {
        tokio::task::spawn_blocking(move || {
            let mut t = Tables::default();
            for i in from..(from + CHUNK).min(g.orders) {
                g.order(i, &mut t);
            }
            (g, t)
        })
    };
    let mut next = Some(generate(Generator::new(h), 0));
    let mut n = 0;
    while let Some(chunk) = next.take() {
        let (g, t) = chunk.await?;
        n = (n + CHUNK).min(h.orders);
        if n < h.orders {
            next = Some(generate(g, n));
        }
        rows += t.insert(&mut conn).await?;
        if n % TX_ORDERS == 0 && n < h.orders {
            exec(&mut conn, "COMMIT").await?;
            exec(&mut conn, "BEGIN").await?;
        }
    }
    exec(&mut conn, "COMMIT").await?;

    for sql in &indexes {
        exec(&mut conn, sql).await?;
    }
    if postgres {
        // Autovacuum would have analysed tables this size long ago; a scratch database
        // that was just filled has no statistics yet.
        exec(&mut conn, "ANALYZE").await?;
    } else {
        exec(&mut conn, "PRAGMA journal_mode = WAL").await?;
    }
    conn.close().await?;
    Ok(Filled {
        rows,
        elapsed: started.elapsed(),
    })
}

async fn exec(conn: &mut AnyConnection, sql: &str) -> anyhow::Result<()> {
    // The simple protocol: no prepared statement kept per distinct (huge) text.
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("running {}", &sql[..sql.len().min(120)]))?;
    Ok(())
}

/// Drops the secondary indexes of the filled tables (not the ones behind a primary key or a
/// unique constraint, which SQLite and PostgreSQL keep) and returns the statements that
/// make them again.
async fn drop_indexes(conn: &mut AnyConnection, postgres: bool) -> anyhow::Result<Vec<String>> {
    let tables = TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = if postgres {
        format!(
            "SELECT indexname::text AS name, indexdef AS sql FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename IN ({tables})
               AND indexname NOT IN (SELECT conname::text FROM pg_constraint)"
        )
    } else {
        format!(
            "SELECT name, sql FROM sqlite_master
             WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ({tables})"
        )
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?;
    let mut create = Vec::new();
    for row in rows {
        let name: String = row.try_get("name")?;
        create.push(row.try_get::<String, _>("sql")?);
        exec(conn, &format!("DROP INDEX \"{name}\"")).await?;
    }
    Ok(create)
}

/// Three staff accounts: a shop this size has a team (and start-up then has no setup link to
/// announce).
async fn staff(conn: &mut AnyConnection, now: i64) -> anyhow::Result<u64> {
    let mut sql = String::from(
        "INSERT INTO staff (id, email, role, password_hash, password_changed_at, created_at, updated_at) VALUES ",
    );
    for (i, role) in ["admin", "agent", "agent"].iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "('staff-{i}', 'staff{i}@example.com', '{role}', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', {t}, {t}, {t})",
            t = now - 90 * DAY
        );
    }
    exec(conn, &sql).await?;
    Ok(3)
}

/// One multi-row INSERT in the making.
struct Insert {
    head: &'static str,
    values: String,
    rows: u64,
}

impl Insert {
    fn new(head: &'static str) -> Insert {
        Insert {
            head,
            values: String::new(),
            rows: 0,
        }
    }

    /// Starts a row; the caller writes the parenthesised tuple.
    fn row(&mut self) -> &mut String {
        if self.rows > 0 {
            self.values.push(',');
        }
        self.rows += 1;
        &mut self.values
    }

    async fn run(self, conn: &mut AnyConnection) -> anyhow::Result<u64> {
        if self.rows == 0 {
            return Ok(0);
        }
        exec(conn, &format!("{} VALUES {}", self.head, self.values)).await?;
        Ok(self.rows)
    }
}

/// One chunk's rows, per table.
struct Tables {
    orders: Insert,
    payments: Insert,
    webhooks: Insert,
    events: Insert,
    assessments: Insert,
    jobs: Insert,
    emails: Insert,
    refunds: Insert,
    disputes: Insert,
    audit: Insert,
}

impl Default for Tables {
    fn default() -> Tables {
        Tables {
            orders: Insert::new(
                "INSERT INTO orders (id, order_number, token_hash, idempotency_key, status, coins, amount_minor, currency,
                    base_amount_minor, tiktok_username, tiktok_account_id, tiktok_display_name, email, payment_method,
                    client_ip, age_confirmed_at, min_age, client_amount_minor, client_currency, provider, provider_session_id,
                    refunded_minor, created_at, updated_at, expires_at, paid_at, delivered_at)",
            ),
            payments: Insert::new(
                "INSERT INTO payments (id, order_id, provider, provider_ref, method, status, amount_minor, currency,
                    failure_code, card_brand, card_last4, card_country, card_fingerprint, email, client_ip,
                    tiktok_username, created_at, updated_at, card_bin, email_domain, client_net)",
            ),
            webhooks: Insert::new(
                "INSERT INTO webhook_events (provider, event_id, event_type, order_id, received_at, outcome)",
            ),
            events: Insert::new(
                "INSERT INTO order_events (id, order_id, at, actor, kind, from_status, to_status, detail)",
            ),
            assessments: Insert::new(
                "INSERT INTO risk_assessments (id, order_id, stage, score, decision, reasons, signals, created_at)",
            ),
            jobs: Insert::new(
                "INSERT INTO jobs (id, kind, payload, dedupe_key, status, attempts, run_at, lease_until, locked_by,
                    last_error, created_at, updated_at)",
            ),
            emails: Insert::new(
                "INSERT INTO emails (id, order_id, kind, dedupe_key, to_address, subject, text_body, html_body,
                    message_id, created_at, sent_at, attempts, last_error, abandoned_at, body_deleted_at)",
            ),
            refunds: Insert::new(
                "INSERT INTO refunds (id, order_id, request_id, amount_minor, currency, status, provider_refund_id,
                    failure, created_by, created_at, updated_at)",
            ),
            disputes: Insert::new(
                "INSERT INTO disputes (id, order_id, provider, amount_minor, currency, reason, status,
                    evidence_due_by, created_at, updated_at)",
            ),
            audit: Insert::new(
                "INSERT INTO audit_log (id, at, actor, action, subject, detail, client_ip)",
            ),
        }
    }
}

impl Tables {
    async fn insert(self, conn: &mut AnyConnection) -> anyhow::Result<u64> {
        // Parents before the rows that reference them.
        let mut rows = self.orders.run(conn).await?;
        for t in [
            self.payments,
            self.webhooks,
            self.events,
            self.assessments,
            self.jobs,
            self.emails,
            self.refunds,
            self.disputes,
            self.audit,
        ] {
            rows += t.run(conn).await?;
        }
        Ok(rows)
    }
}

/// A SQL string literal.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

struct Generator {
    orders: usize,
    days: i64,
    now: i64,
    /// The signals and fates, drawn as the backtest bench always drew them.
    rng: StdRng,
    /// Everything else.
    extra: StdRng,
    settings: RiskSettings,
}

impl Generator {
    fn new(h: &History) -> Generator {
        Generator {
            orders: h.orders,
            days: h.days,
            now: h.now,
            rng: StdRng::seed_from_u64(h.seed),
            extra: StdRng::seed_from_u64(h.seed ^ 0x05ee_d0fe_47a5),
            settings: RiskSettings::default(),
        }
    }

    /// Order `n` and everything that goes with it.
    fn order(&mut self, n: usize, t: &mut Tables) {
        // The signals and the fate, drawn as before this module existed (a time first, no
        // longer used: a shop's rows are written in time order, as they are here).
        let _ = self.rng.gen_range(MINUTE..self.days * DAY);
        let step = (self.days * DAY - MINUTE) / self.orders.max(1) as i64;
        let at =
            self.now - self.days * DAY + n as i64 * step + self.extra.gen_range(0..step.max(1));
        let signals = signals(&mut self.rng);
        let assessment = risk::rules::evaluate(&signals, &self.settings);
        let mut status = match (assessment.decision, self.rng.gen_range(0..100)) {
            (risk::Decision::Block, _) => "blocked",
            (risk::Decision::Review, 0..=59) => "rejected",
            (_, 0..=3) => "refunded",
            (_, 4..=5) => "partially_refunded",
            _ => "delivered",
        };
        let fraud = status == "rejected" && self.rng.gen_range(0..3) == 0;

        let x = &mut self.extra;
        let created = at - x.gen_range(MINUTE..10 * MINUTE);
        let paid = at - x.gen_range(1_000..MINUTE.min(at - created));
        let id = format!("order-{n:07}");
        let user = format!("user_{}", n % 20_000);
        let email = format!("buyer{}@example.com", n % 25_000);
        let ip = format!("10.0.{}.{}", (n / 256) % 256, n % 256);
        let amount = signals.amount_base_minor;
        // A chargeback on one order in 250 that was paid and not blocked; lost ones end
        // refunded by the issuer, the open ones leave the order disputed.
        let dispute = (status != "blocked" && x.gen_range(0..250) == 0)
            .then(|| ["needs_response", "under_review", "won", "lost"][x.gen_range(0..4)]);
        match dispute {
            Some("needs_response" | "under_review") => status = "disputed",
            Some("lost") => status = "refunded",
            _ => {}
        }
        let delivered = matches!(
            status,
            "delivered" | "refunded" | "partially_refunded" | "disputed"
        ) && !(status == "refunded" && dispute.is_none() && x.gen_bool(0.5));
        let finished = at
            + x.gen_range(
                2_000..if status == "rejected" {
                    6 * 3_600_000
                } else {
                    20_000
                },
            );
        let delivered_at = delivered.then_some(at + x.gen_range(1_000..20_000));
        let refunded_minor = match status {
            "refunded" | "blocked" | "rejected" => amount,
            "partially_refunded" => amount / 2,
            _ => 0,
        };
        let fingerprint = format!("fp_{:06}", n % 400_000);

        let _ = write!(
            t.orders.row(),
            "({id}, 'CF-{n:08}', 'hash-{n:07}', 'key-{n:07}', {status}, {coins}, {amount}, 'USD', {amount}, {user}, 'tt_{n}', {user},
              {email}, 'card', {ip}, {created}, 18, {client_amount}, 'USD', 'sandbox', 'sess_{n:07}', {refunded_minor},
              {created}, {finished}, {expires}, {paid}, {delivered_at})",
            id = q(&id),
            status = q(status),
            coins = signals.coins,
            user = q(&user),
            email = q(&email),
            ip = q(&ip),
            client_amount = if signals.price_mismatch { amount + 1 } else { amount },
            expires = created + 30 * MINUTE,
            delivered_at = opt(delivered_at),
        );

        // A failed attempt first when the order's own signals say it had one.
        if signals.failed_payments_1h.order > 0 {
            payment(
                t,
                n,
                0,
                &id,
                "failed",
                Some("card_declined"),
                amount,
                &email,
                &ip,
                &user,
                &fingerprint,
                paid - 30_000,
            );
        }
        payment(
            t,
            n,
            1,
            &id,
            "succeeded",
            None,
            amount,
            &email,
            &ip,
            &user,
            &fingerprint,
            paid,
        );
        let _ = write!(
            t.webhooks.row(),
            "('sandbox', 'evt_{n:07}', 'payment.succeeded', {id}, {paid}, 'processed')",
            id = q(&id)
        );

        let event = |t: &mut Tables,
                     k: usize,
                     at: i64,
                     actor: &str,
                     kind: &str,
                     from: Option<&str>,
                     to: Option<&str>,
                     detail: &str| {
            let _ = write!(
                t.events.row(),
                "('ev-{n:07}-{k}', {id}, {at}, {actor}, {kind}, {from}, {to}, {detail})",
                id = q(&id),
                actor = q(actor),
                kind = q(kind),
                from = from.map_or("NULL".into(), q),
                to = to.map_or("NULL".into(), q),
                detail = q(detail),
            );
        };
        event(
            t,
            0,
            created,
            "buyer",
            "order_created",
            None,
            Some("awaiting_payment"),
            "",
        );
        event(
            t,
            1,
            paid,
            "provider",
            "status_changed",
            Some("awaiting_payment"),
            Some("paid"),
            "card payment succeeded",
        );
        let screened = match assessment.decision {
            risk::Decision::Allow => "queued",
            risk::Decision::Review => "in_review",
            risk::Decision::Block => "blocked",
        };
        event(
            t,
            2,
            at,
            "risk",
            "status_changed",
            Some("paid"),
            Some(screened),
            "screened",
        );
        if let Some(d) = delivered_at {
            event(
                t,
                3,
                d,
                "system",
                "status_changed",
                Some("fulfilling"),
                Some("delivered"),
                "credited (supplier ref sb-1)",
            );
        }
        if status == "rejected" {
            event(
                t,
                3,
                finished,
                "staff:staff1@example.com",
                "status_changed",
                Some("in_review"),
                Some("rejected"),
                "rejected by an agent",
            );
            let _ = write!(
                t.audit.row(),
                "('au-{n:07}', {finished}, 'staff:staff1@example.com', 'order.reject', {id}, '', '192.0.2.10')",
                id = q(&id)
            );
        }
        if fraud {
            event(
                t,
                4,
                finished,
                "staff:bench@example.com",
                "block_listed",
                None,
                None,
                "rejected as fraud",
            );
        }
        if refunded_minor > 0 {
            event(
                t,
                5,
                finished + 1_000,
                "system",
                "refund_succeeded",
                None,
                None,
                "refund of the payment",
            );
            let _ = write!(
                t.refunds.row(),
                "('rf-{n:07}', {id}, NULL, {refunded_minor}, 'USD', 'succeeded', 're_{n:07}', NULL, 'system', {finished}, {finished})",
                id = q(&id)
            );
        }
        if let Some(d) = dispute {
            event(
                t,
                6,
                finished + DAY,
                "provider",
                "dispute_opened",
                None,
                None,
                "chargeback: fraudulent",
            );
            let _ = write!(
                t.disputes.row(),
                "('dp-{n:07}', {id}, 'stripe', {amount}, 'USD', 'fraudulent', {d}, {due}, {opened}, {opened})",
                id = q(&id),
                d = q(d),
                due = finished + 8 * DAY,
                opened = finished + DAY,
            );
        }

        // The assessment before payment saw no payment yet.
        let before = Signals {
            failed_payments_1h: PerScope::default(),
            failed_payments_24h: PerScope::default(),
            failed_cards_1h: FailedCards::default(),
            fraud_declines_24h: 0,
            ..signals.clone()
        };
        let before_assessment = risk::rules::evaluate(&before, &self.settings);
        for (k, stage, a, s, when) in [
            (0, "pre_payment", &before_assessment, &before, created),
            (1, "pre_fulfillment", &assessment, &signals, at),
        ] {
            let _ = write!(
                t.assessments.row(),
                "('ra-{n:07}-{k}', {id}, '{stage}', {score}, '{decision}', {reasons}, {signals}, {when})",
                id = q(&id),
                score = a.score,
                decision = a.decision.as_str(),
                reasons = q(&serde_json::to_string(&a.reasons).expect("reasons serialise")),
                signals = q(&serde_json::to_string(s).expect("signals serialise")),
            );
        }

        // The jobs that ran for it, kept (done) until retention prunes them.
        let job = |t: &mut Tables, k: usize, kind: &str, payload: String, at: i64| {
            let _ = write!(
                t.jobs.row(),
                "('job-{n:07}-{k}', {kind}, {payload}, NULL, 'done', 1, {at}, NULL, NULL, NULL, {at}, {done})",
                kind = q(kind),
                payload = q(&payload),
                done = at + 50,
            );
        };
        job(
            t,
            0,
            "screen_order",
            format!("{{\"order_id\":\"{id}\",\"late\":false}}"),
            paid,
        );
        if delivered_at.is_some() {
            job(
                t,
                1,
                "fulfill_order",
                format!("{{\"order_id\":\"{id}\"}}"),
                at,
            );
        }
        if refunded_minor > 0 {
            job(
                t,
                2,
                "refund_order",
                format!("{{\"order_id\":\"{id}\",\"reason\":\"requested_by_customer\"}}"),
                finished,
            );
        }
        let coins = signals.coins;
        let mail = |t: &mut Tables, k: usize, kind: &str, subject: &str, at: i64| {
            let mid = format!("em-{n:07}-{k}");
            let _ = write!(
                t.emails.row(),
                "({mid_q}, {id}, {kind_q}, {dedupe}, {email}, {subject}, {text}, {html}, '<{mid}@coinfront.example>', {at}, {sent}, 1, NULL, NULL, NULL)",
                mid_q = q(&mid),
                id = q(&id),
                kind_q = q(kind),
                dedupe = q(&format!("{id}:{kind}")),
                email = q(&email),
                subject = q(subject),
                text = q(&format!("Hello,\n\n{subject}.\nOrder CF-{n:08}: {coins} coins for @{user}, {amount} USD minor units.\n\nThank you for your order.\n")),
                html = q(&format!("<!doctype html><html><body><h1>{subject}</h1><p>Order <b>CF-{n:08}</b>: {coins} coins for @{user}.</p><p>Thank you for your order.</p></body></html>")),
                sent = at + 800,
            );
            job(
                t,
                3 + k,
                "send_email",
                format!("{{\"email_id\":\"{mid}\"}}"),
                at,
            );
        };
        mail(
            t,
            0,
            "payment_received",
            &format!("Payment received for order CF-{n:08}"),
            paid,
        );
        if delivered_at.is_some() {
            mail(
                t,
                1,
                "delivered",
                &format!("Your receipt: coins delivered (CF-{n:08})"),
                at + 20_000,
            );
        } else if refunded_minor > 0 {
            mail(
                t,
                1,
                "cancelled_refunded",
                &format!("Order CF-{n:08} cancelled and refunded"),
                finished,
            );
        }
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

#[allow(clippy::too_many_arguments)]
fn payment(
    t: &mut Tables,
    n: usize,
    k: usize,
    order_id: &str,
    status: &str,
    failure: Option<&str>,
    amount: i64,
    email: &str,
    ip: &str,
    user: &str,
    fingerprint: &str,
    at: i64,
) {
    let _ = write!(
        t.payments.row(),
        "('pay-{n:07}-{k}', {order}, 'sandbox', 'pi_{n:07}_{k}', 'card', {status}, {amount}, 'USD', {failure}, 'visa', '4242', 'US',
          {fp}, {email}, {ip}, {user}, {at}, {at}, '424242', 'example.com', {net})",
        order = q(order_id),
        status = q(status),
        failure = failure.map_or("NULL".into(), q),
        fp = q(fingerprint),
        email = q(email),
        ip = q(ip),
        user = q(user),
        net = q(&format!("{}.0/24", ip.rsplit_once('.').map_or(ip, |(a, _)| a))),
    );
}

/// Varied signals: repeat buyers with velocity, declines, some card testing, disposable
/// emails, now and then a price mismatch or a list hit.
fn signals(rng: &mut StdRng) -> Signals {
    let coins = [70u64, 350, 700, 1_400, 3_500, 7_000, 17_500][rng.gen_range(0..7)];
    // Integer arithmetic for money: 4 % over the coin count, rounded half up.
    let amount = ((coins * 104 + 50) / 100) as i64;
    let per_scope = |rng: &mut StdRng, busy: bool| PerScope {
        order: rng.gen_range(0..if busy { 4 } else { 2 }),
        email: rng.gen_range(0..if busy { 6 } else { 2 }),
        ip: rng.gen_range(0..if busy { 8 } else { 2 }),
        card: rng.gen_range(0..if busy { 5 } else { 2 }),
        username: rng.gen_range(0..2),
    };
    let busy = rng.gen_range(0..20) == 0;
    let velocity = |rng: &mut StdRng| Velocity {
        orders: rng.gen_range(1..if busy { 15 } else { 4 }),
        amount_minor: rng.gen_range(amount..amount * 4),
    };
    let list_hits = if rng.gen_range(0..200) == 0 {
        vec![ListHit {
            list: if rng.gen_bool(0.5) {
                List::Block
            } else {
                List::Allow
            },
            kind: ListKind::Email,
            value: "someone@example.com".into(),
            reason: "chargeback in March".into(),
            added_by: "staff:bench@example.com".into(),
        }]
    } else {
        Vec::new()
    };
    Signals {
        coins,
        amount_base_minor: amount,
        price_per_coin: rust_decimal::Decimal::new(104, 4),
        reference_price_per_coin: rust_decimal::Decimal::new(106, 4),
        price_mismatch: rng.gen_range(0..100) == 0,
        disposable_email: rng.gen_range(0..25) == 0,
        failed_payments_1h: per_scope(rng, busy),
        failed_payments_24h: per_scope(rng, busy),
        failed_cards_1h: FailedCards {
            email: rng.gen_range(0..if busy { 4 } else { 1 }),
            username: rng.gen_range(0..if busy { 3 } else { 1 }),
            ip: rng.gen_range(0..if busy { 6 } else { 2 }),
        },
        recipient: Recipient {
            payers_1h: rng.gen_range(0..if busy { 3 } else { 2 }),
            payers_24h: rng.gen_range(0..if busy { 4 } else { 2 }),
            ..Default::default()
        },
        fraud_declines_24h: if busy { rng.gen_range(0..2) } else { 0 },
        velocity_24h_username: velocity(rng),
        velocity_24h_email: velocity(rng),
        velocity_24h_ip: velocity(rng),
        prior_paid_orders: rng.gen_range(0..30),
        rate_limited_1h: if busy { rng.gen_range(0..5) } else { 0 },
        list_hits,
        ..Signals::default()
    }
}

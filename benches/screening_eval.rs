//! `cargo bench --bench screening_eval`: how the fraud screening treats people, measured on
//! labelled traffic. Honest buyers and attackers are replayed over real HTTP against the app
//! (release build, started in-process on a random port), interleaved in time as a shop sees
//! them, each person with their own cookie jar, address (`X-Forwarded-For` from a trusted
//! proxy), email and cards (distinct Luhn-valid numbers whose last four pick the sandbox's
//! outcome, after Stripe's test-card table).
//!
//! Time is simulated: the shop's clock (and with it the rate limiters and the surge window)
//! jumps to each event's moment, and every event runs to quiet — its webhook delivered, the
//! order screened, the coins credited — before the next one. So a six-hour day replays in
//! seconds, the same seed gives the same table, and nothing depends on the machine's speed.
//!
//! It prints, per population and in total: bad orders never fulfilled (of all, and of those
//! whose payment went through), good orders held for review, good orders refused or blocked
//! or unable to pay, and how long good orders waited between payment and delivery.
//!
//! `BENCH_SET=tuning` (the default) is the set the rules were tuned on; `BENCH_SET=holdout`
//! is a second set with other shapes and sizes, built before tuning and not looked at while
//! tuning. `BENCH_SEED` (42) changes every draw; `BENCH_POSTGRES_URL` runs on PostgreSQL too.

#[path = "common/mod.rs"]
mod common;

use anyhow::{bail, Context};
use coinfront::clock::ManualClock;
use coinfront::config::{Secret, Settings};
use coinfront::startup::{AppState, Application};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Good,
    Bad,
}

/// A person: who they are to the shop.
struct Person {
    pop: &'static str,
    label: Label,
    ip: String,
    email: String,
}

/// One order a person means to place, and the cards they will try on it, in order, until one
/// goes through.
struct PlannedOrder {
    person: usize,
    at: i64,
    package: u64,
    username: String,
    cards: Vec<String>,
    /// Between attempts.
    gap: i64,
}

/// What became of one order.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Set once the confirm led to the payment page.
    session: Option<String>,
    /// Refused before any payment page: "declined" (screening), "limited" (429), "other".
    refused_at_checkout: Option<String>,
    paid: bool,
    done: bool,
}

/// The sandbox's outcomes by last four digits (see `payments::sandbox::cards`).
mod ending {
    pub const DECLINE: &str = "0002";
    pub const NO_FUNDS: &str = "9995";
    pub const LOST: &str = "9987";
    pub const STOLEN: &str = "9979";
    pub const EXPIRED: &str = "0069";
    pub const CVC: &str = "0127";
    pub const SPECIAL: [&str; 9] = [
        "0002", "9995", "9987", "9979", "6975", "0069", "0127", "0119", "0019",
    ];
}

struct World {
    rng: StdRng,
    people: Vec<Person>,
    orders: Vec<PlannedOrder>,
    next_ip: u32,
    next_name: u32,
}

/// Issuer prefixes honest buyers' cards come from (many banks, a few big ones).
const HONEST_BINS: [&str; 12] = [
    "414720", "426684", "440066", "453275", "476173", "485340", "510510", "520082", "542418",
    "400022", "431940", "546616",
];
const EMAIL_DOMAINS: [&str; 6] = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "hotmail.com",
    "proton.me",
];

impl World {
    fn new(seed: u64) -> World {
        World {
            rng: StdRng::seed_from_u64(seed),
            people: Vec::new(),
            orders: Vec::new(),
            next_ip: 1,
            next_name: 1,
        }
    }

    /// A residential-looking address of its own, spread over many networks.
    fn fresh_ip(&mut self) -> String {
        self.next_ip += 1;
        let n = self.next_ip;
        format!(
            "{}.{}.{}.{}",
            11 + (n % 180),
            (n / 180) % 250,
            self.rng.gen_range(0..250),
            self.rng.gen_range(2..250)
        )
    }

    fn name(&mut self, what: &str) -> String {
        self.next_name += 1;
        format!("{what}{}x{}", self.next_name, self.rng.gen_range(100..999))
    }

    fn email(&mut self, what: &str) -> String {
        let domain = *EMAIL_DOMAINS.choose(&mut self.rng).expect("domains");
        format!("{}@{domain}", self.name(what))
    }

    fn person(&mut self, pop: &'static str, label: Label, ip: String, email: String) -> usize {
        self.people.push(Person {
            pop,
            label,
            ip,
            email,
        });
        self.people.len() - 1
    }

    /// A Luhn-valid 16-digit number: `bin`, random digits, one digit that fixes the checksum,
    /// then `last4`.
    fn card(&mut self, bin: &str, last4: &str) -> String {
        let middle: String = (0..5)
            .map(|_| char::from(b'0' + self.rng.gen_range(0..10u8)))
            .collect();
        (0..10)
            .map(|d| format!("{bin}{middle}{d}{last4}"))
            .find(|c| coinfront::payments::sandbox::cards::luhn_valid(c))
            .expect("one check digit works")
    }

    /// An honest card that works.
    fn good_card(&mut self) -> String {
        let bin = *HONEST_BINS.choose(&mut self.rng).expect("bins");
        let last4 = loop {
            let l = format!("{:04}", self.rng.gen_range(0..10_000));
            if !ending::SPECIAL.contains(&l.as_str()) {
                break l;
            }
        };
        self.card(bin, &last4)
    }

    /// An honest card that declines for an honest reason.
    fn honest_decline(&mut self) -> String {
        let bin = *HONEST_BINS.choose(&mut self.rng).expect("bins");
        let last4 = *[
            ending::NO_FUNDS,
            ending::DECLINE,
            ending::EXPIRED,
            ending::CVC,
        ]
        .choose(&mut self.rng)
        .expect("endings");
        self.card(bin, last4)
    }

    /// A card from a stolen list: mostly dead, some lost or stolen, a few that work.
    fn list_card(&mut self, bins: &[String], works_percent: u32) -> String {
        let bin = bins.choose(&mut self.rng).expect("bins").clone();
        let roll = self.rng.gen_range(0..100);
        if roll < works_percent {
            let last4 = format!("{:04}", self.rng.gen_range(1000..9000));
            if !ending::SPECIAL.contains(&last4.as_str()) {
                return self.card(&bin, &last4);
            }
        }
        let last4 = match roll % 10 {
            0 | 1 => ending::STOLEN,
            2 => ending::LOST,
            3 | 4 => ending::NO_FUNDS,
            5 => ending::EXPIRED,
            _ => ending::DECLINE,
        };
        self.card(&bin, last4)
    }

    fn bins(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| format!("4{:05}", self.rng.gen_range(10_000..99_999)))
            .collect()
    }

    fn package(&mut self, weights: &[(u64, u32)]) -> u64 {
        let total: u32 = weights.iter().map(|w| w.1).sum();
        let mut roll = self.rng.gen_range(0..total);
        for &(p, w) in weights {
            if roll < w {
                return p;
            }
            roll -= w;
        }
        weights[0].0
    }

    fn order(
        &mut self,
        person: usize,
        at: i64,
        package: u64,
        username: String,
        cards: Vec<String>,
    ) {
        let gap = self.rng.gen_range(15_000..60_000);
        self.orders.push(PlannedOrder {
            person,
            at,
            package,
            username,
            cards,
            gap,
        });
    }
}

const EVERYDAY: &[(u64, u32)] = &[
    (70, 20),
    (350, 30),
    (700, 25),
    (1400, 12),
    (3500, 8),
    (7000, 4),
    (17500, 1),
];
const BIG: &[(u64, u32)] = &[(7000, 1), (17500, 2)];

/// The shapes of a set: sizes, timings and how attackers behave.
struct Shape {
    hours: i64,
    ordinary: usize,
    honest_decline_share: u32,
    repeat_whales: usize,
    decline_then_other_card: usize,
    retry_same_card: usize,
    /// (buyers, addresses) behind carrier NAT.
    nat: (usize, usize),
    office: usize,
    parents: (usize, usize),
    gifts: usize,
    two_parents_one_child: usize,
    promotion: usize,
    testers: usize,
    tester_cards: usize,
    /// (identities, cards each, bins shared, recipients shared)
    distributed: (usize, usize, usize, usize),
    persistent: usize,
    funnels: (usize, usize, i64),
    slow_drip: usize,
    stolen_then_good: usize,
    known_email_impostors: usize,
}

fn tuning() -> Shape {
    Shape {
        hours: 6,
        ordinary: 320,
        honest_decline_share: 6,
        repeat_whales: 10,
        decline_then_other_card: 20,
        retry_same_card: 12,
        nat: (40, 1),
        office: 0,
        parents: (6, 3),
        gifts: 20,
        two_parents_one_child: 0,
        promotion: 60,
        testers: 3,
        tester_cards: 25,
        distributed: (60, 2, 2, 3),
        persistent: 5,
        funnels: (2, 8, 10),
        slow_drip: 1,
        stolen_then_good: 10,
        known_email_impostors: 5,
    }
}

fn holdout() -> Shape {
    Shape {
        hours: 8,
        ordinary: 450,
        honest_decline_share: 10,
        repeat_whales: 15,
        decline_then_other_card: 30,
        retry_same_card: 20,
        nat: (90, 2),
        office: 30,
        parents: (10, 4),
        gifts: 40,
        two_parents_one_child: 4,
        promotion: 120,
        testers: 5,
        tester_cards: 40,
        distributed: (120, 1, 6, 12),
        persistent: 8,
        funnels: (3, 5, 50),
        slow_drip: 2,
        stolen_then_good: 15,
        known_email_impostors: 8,
    }
}

/// Everyone and everything they will do, drawn from the seed.
fn build(shape: &Shape, seed: u64) -> World {
    let mut w = World::new(seed);
    let day = shape.hours * HOUR;
    // Attacks start after the first hours, so the shop has a baseline of its own.
    let attacks_from = 2 * HOUR;
    let in_attack_window = |w: &mut World| w.rng.gen_range(attacks_from..day - 20 * MIN);

    for _ in 0..shape.ordinary {
        let (ip, email) = (w.fresh_ip(), w.email("buyer"));
        let p = w.person("ordinary buyers", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let mut cards = Vec::new();
        if w.rng.gen_range(0..100) < shape.honest_decline_share {
            cards.push(w.honest_decline());
        }
        cards.push(w.good_card());
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }
    for _ in 0..shape.repeat_whales {
        let (ip, email) = (w.fresh_ip(), w.email("whale"));
        let p = w.person("repeat big spenders", Label::Good, ip, email);
        let (card, user) = (w.good_card(), w.name("whale"));
        let n = w.rng.gen_range(3..6);
        for i in 0..n {
            let at = i * (day / n) + w.rng.gen_range(0..day / n - 10 * MIN);
            let pkg = w.package(BIG);
            w.order(p, at, pkg, user.clone(), vec![card.clone()]);
        }
    }
    for _ in 0..shape.decline_then_other_card {
        let (ip, email) = (w.fresh_ip(), w.email("unlucky"));
        let p = w.person("decline, then another card", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let cards = vec![w.honest_decline(), w.good_card()];
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }
    for _ in 0..shape.retry_same_card {
        let (ip, email) = (w.fresh_ip(), w.email("retrier"));
        let p = w.person("retries a declined card", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let bad = w.honest_decline();
        let tries = w.rng.gen_range(2..5);
        let mut cards = vec![bad; tries];
        cards.push(w.good_card());
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }
    let nat_ips: Vec<String> = (0..shape.nat.1.max(1))
        .map(|i| format!("100.64.{}.{}", 7 + i, 9 + i))
        .collect();
    for i in 0..shape.nat.0 {
        let ip = nat_ips[i % nat_ips.len()].clone();
        let email = w.email("phone");
        let p = w.person("phones behind one carrier NAT", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let mut cards = Vec::new();
        if w.rng.gen_range(0..100) < shape.honest_decline_share * 2 {
            cards.push(w.honest_decline());
        }
        cards.push(w.good_card());
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }
    for _ in 0..shape.office {
        // One office network, each desk its own address.
        let ip = format!("198.51.100.{}", w.rng.gen_range(2..250));
        let email = w.email("office");
        let p = w.person("an office network", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let mut cards = Vec::new();
        if w.rng.gen_range(0..100) < shape.honest_decline_share * 2 {
            cards.push(w.honest_decline());
        }
        cards.push(w.good_card());
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }
    for _ in 0..shape.parents.0 {
        let (ip, email) = (w.fresh_ip(), w.email("parent"));
        let p = w.person("a parent for several children", Label::Good, ip, email);
        let card = w.good_card();
        let at = w.rng.gen_range(0..day - 40 * MIN);
        for k in 0..shape.parents.1 {
            let (pkg, user) = (w.package(EVERYDAY), w.name("kid"));
            w.order(p, at + k as i64 * 5 * MIN, pkg, user, vec![card.clone()]);
        }
    }
    for _ in 0..shape.gifts {
        let (ip, email) = (w.fresh_ip(), w.email("gifter"));
        let p = w.person("a gift for a friend", Label::Good, ip, email);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let cards = vec![w.good_card()];
        let (pkg, user) = (
            w.package(&[(3500, 3), (7000, 2), (17500, 1)]),
            w.name("friend"),
        );
        w.order(p, at, pkg, user, cards);
    }
    for _ in 0..shape.two_parents_one_child {
        let child = w.name("kid");
        let at = w.rng.gen_range(0..day - 3 * HOUR);
        for k in 0..2 {
            let (ip, email) = (w.fresh_ip(), w.email("coparent"));
            let p = w.person("two parents, one child", Label::Good, ip, email);
            let card = w.good_card();
            let pkg = w.package(EVERYDAY);
            w.order(p, at + k * 2 * HOUR, pkg, child.clone(), vec![card]);
        }
    }
    let promo_at = w.rng.gen_range(attacks_from..day - HOUR);
    for _ in 0..shape.promotion {
        let (ip, email) = (w.fresh_ip(), w.email("promo"));
        let p = w.person("a promotion burst", Label::Good, ip, email);
        let at = promo_at + w.rng.gen_range(0..10 * MIN);
        let mut cards = Vec::new();
        if w.rng.gen_range(0..100) < shape.honest_decline_share + 4 {
            cards.push(w.honest_decline());
        }
        cards.push(w.good_card());
        let (pkg, user) = (w.package(EVERYDAY), w.name("fan"));
        w.order(p, at, pkg, user, cards);
    }

    // --- attackers ---
    for _ in 0..shape.testers {
        let (ip, email) = (w.fresh_ip(), w.email("tester"));
        let p = w.person("a card tester", Label::Bad, ip, email);
        let bins = w.bins(2);
        let start = in_attack_window(&mut w);
        let cards: Vec<String> = (0..shape.tester_cards)
            .map(|_| w.list_card(&bins, 12))
            .collect();
        // One small order per few cards: a tester starts over after each success.
        for (k, chunk) in cards.chunks(5).enumerate() {
            let user = w.name("drop");
            w.order(p, start + k as i64 * 4 * MIN, 70, user, chunk.to_vec());
        }
    }
    {
        let (n, per, nbins, nusers) = shape.distributed;
        let bins = w.bins(nbins);
        let users: Vec<String> = (0..nusers.max(1)).map(|_| w.name("drop")).collect();
        let start = in_attack_window(&mut w);
        for k in 0..n {
            let (ip, email) = (w.fresh_ip(), w.email("rotator"));
            let p = w.person(
                "distributed testers, rotating addresses",
                Label::Bad,
                ip,
                email,
            );
            let cards: Vec<String> = (0..per).map(|_| w.list_card(&bins, 12)).collect();
            let user = users[k % users.len()].clone();
            let at = start + k as i64 * 20_000 + w.rng.gen_range(0..10_000);
            w.order(p, at, 70, user, cards);
        }
    }
    for _ in 0..shape.persistent {
        let (ip, email) = (w.fresh_ip(), w.email("persistent"));
        let p = w.person("persistent failures", Label::Bad, ip, email);
        let bins = w.bins(3);
        let mut cards: Vec<String> = (0..8).map(|_| w.list_card(&bins, 0)).collect();
        cards.push(w.list_card(&bins, 100));
        let at = in_attack_window(&mut w);
        let user = w.name("drop");
        let pkg = w.package(EVERYDAY);
        w.orders.push(PlannedOrder {
            person: p,
            at,
            package: pkg,
            username: user,
            cards,
            gap: 8 * MIN,
        });
    }
    for _ in 0..shape.funnels.0 {
        let target = w.name("cashout");
        let start = in_attack_window(&mut w);
        let (payers, span) = (shape.funnels.1, shape.funnels.2 * MIN);
        for k in 0..payers {
            let (ip, email) = (w.fresh_ip(), w.email("mule"));
            let p = w.person("a cash-out funnel", Label::Bad, ip, email);
            let card = w.good_card();
            let at = start + k as i64 * span / payers as i64 + w.rng.gen_range(0..30_000);
            w.order(p, at, 17500, target.clone(), vec![card]);
        }
    }
    for _ in 0..shape.slow_drip {
        let (ip, email) = (w.fresh_ip(), w.email("drip"));
        let p = w.person("a slow-drip tester", Label::Bad, ip, email);
        let bins = w.bins(1);
        let start = w.rng.gen_range(HOUR..2 * HOUR);
        let mut at = start;
        while at < day - 10 * MIN {
            let card = w.list_card(&bins, 10);
            let user = w.name("drop");
            w.order(p, at, 70, user, vec![card]);
            at += w.rng.gen_range(6 * MIN..9 * MIN);
        }
    }
    for _ in 0..shape.stolen_then_good {
        let (ip, email) = (w.fresh_ip(), w.email("thief"));
        let p = w.person(
            "a stolen-card decline, then a card that works",
            Label::Bad,
            ip,
            email,
        );
        let bins = w.bins(1);
        let last4 = if w.rng.gen_bool(0.5) {
            ending::STOLEN
        } else {
            ending::LOST
        };
        let first = w.card(&bins[0], last4);
        let second = w.list_card(&bins, 100);
        let at = w.rng.gen_range(0..day - 10 * MIN);
        let (pkg, user) = (w.package(EVERYDAY), w.name("drop"));
        w.order(p, at, pkg, user, vec![first, second]);
    }
    // Impostors type a repeat buyer's email during the distributed wave, from new addresses
    // with working cards from the wave's prefixes.
    let whales: Vec<String> = w
        .people
        .iter()
        .filter(|p| p.pop == "repeat big spenders")
        .map(|p| p.email.clone())
        .collect();
    let wave_start = w
        .orders
        .iter()
        .filter(|o| w.people[o.person].pop == "distributed testers, rotating addresses")
        .map(|o| o.at)
        .min()
        .unwrap_or(attacks_from);
    let wave_bins: Vec<String> = w
        .orders
        .iter()
        .filter(|o| w.people[o.person].pop == "distributed testers, rotating addresses")
        .flat_map(|o| o.cards.iter().map(|c| c[..6].to_owned()))
        .collect();
    for k in 0..shape.known_email_impostors {
        if whales.is_empty() || wave_bins.is_empty() {
            break;
        }
        let email = whales[k % whales.len()].clone();
        let ip = w.fresh_ip();
        let p = w.person(
            "impostors typing a known buyer's email",
            Label::Bad,
            ip,
            email,
        );
        let card = w.list_card(&wave_bins, 100);
        let at = wave_start + 5 * MIN + k as i64 * MIN;
        let user = w.name("drop");
        w.order(p, at, 7000, user, vec![card]);
    }
    w
}

fn settings(db_url: String, data_dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: data_dir.to_path_buf(),
        database_url: Some(db_url),
        ..Settings::default()
    };
    s.secrets.cookie_key = Some(Secret::new("eval-cookie-key-0123456789abcdef0123456789"));
    s.secrets.webhook_signing_key = Some(Secret::new("eval-webhook-key-0123456789abcdef"));
    s.supplier.sandbox_delay_ms = 0;
    s.jobs.poll_interval_ms = 5;
    s.http.trusted_proxies = vec![IpAddr::V4(Ipv4Addr::LOCALHOST).into()];
    // Everything else, the rate limits and the risk rules included, as shipped.
    s
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

struct Driver {
    base: String,
    state: Arc<AppState>,
    clock: ManualClock,
    start: i64,
    clients: Vec<reqwest::Client>,
}

impl Driver {
    fn client(&self, person: usize) -> &reqwest::Client {
        &self.clients[person]
    }

    async fn move_clock_to(&self, offset: i64) {
        let target = self.start + offset;
        let now = coinfront::clock::Clock::now_ms(&self.clock);
        if target > now {
            self.clock.advance_ms(target - now);
            // Work that the clock just made due (retries, settlements).
            self.state.jobs_ready.notify_one();
        }
    }

    /// Until no job is due or running: the event's consequences have all happened.
    async fn quiet(&self) -> anyhow::Result<()> {
        for _ in 0..20_000 {
            let now = coinfront::clock::Clock::now_ms(&self.clock);
            if coinfront::jobs::is_idle(&self.state.db, now).await? {
                return Ok(());
            }
            self.state.jobs_ready.notify_one();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bail!("the job queue did not go quiet")
    }

    async fn start_order(
        &self,
        o: &PlannedOrder,
        ip: &str,
        email: &str,
    ) -> anyhow::Result<Outcome> {
        let c = self.client(o.person);
        let url = |p: &str| format!("{}{p}", self.base);
        let page = c
            .get(url("/"))
            .header("X-Forwarded-For", ip)
            .send()
            .await?
            .text()
            .await?;
        let csrf = hidden(&page, "csrf_token").context("catalog csrf")?;
        let package = o.package.to_string();
        let form = [
            ("csrf_token", csrf.as_str()),
            ("package", package.as_str()),
            ("coins", ""),
            ("tiktok_username", o.username.as_str()),
            ("email", email),
            ("currency", "USD"),
            ("payment_method", "card"),
            ("age_confirmed", "yes"),
        ];
        let r = c
            .post(url("/checkout"))
            .header("X-Forwarded-For", ip)
            .form(&form)
            .send()
            .await?;
        let status = r.status();
        let html = r.text().await?;
        if status.as_u16() == 429 {
            return Ok(refused("limited"));
        }
        let Some(quote) = hidden(&html, "quote") else {
            return Ok(refused(&format!("checkout {status}")));
        };
        let field = |n| hidden(&html, n).unwrap_or_default();
        let form = [
            ("csrf_token", field("csrf_token")),
            ("quote", quote),
            ("shown_total_minor", field("shown_total_minor")),
            ("shown_currency", field("shown_currency")),
        ];
        let r = c
            .post(url("/checkout/confirm"))
            .header("X-Forwarded-For", ip)
            .form(&form)
            .send()
            .await?;
        if r.status().as_u16() == 429 {
            return Ok(refused("limited"));
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match location {
            Some(l) if l.contains("/sandbox/pay/") => Ok(Outcome {
                session: Some(l.trim_start_matches(&self.base).to_owned()),
                ..Outcome::default()
            }),
            _ => {
                let body = r.text().await.unwrap_or_default();
                Ok(refused(
                    if body.contains("We could not accept this order") {
                        "declined"
                    } else {
                        "other"
                    },
                ))
            }
        }
    }

    /// One card on the hosted page. `Ok(true)` when it went through.
    async fn pay(
        &self,
        person: usize,
        ip: &str,
        session: &str,
        card: &str,
    ) -> anyhow::Result<bool> {
        let c = self.client(person);
        let url = format!("{}{session}", self.base);
        let page = c.get(&url).header("X-Forwarded-For", ip).send().await?;
        if page.status().as_u16() == 429 {
            return Ok(false);
        }
        let page = page.text().await?;
        let Some(csrf) = hidden(&page, "csrf_token") else {
            return Ok(false);
        };
        let form = [
            ("csrf_token", csrf.as_str()),
            ("method", "card"),
            ("card_number", card),
            ("expiry", "12/34"),
            ("cvc", "123"),
        ];
        let r = c
            .post(&url)
            .header("X-Forwarded-For", ip)
            .form(&form)
            .send()
            .await?;
        Ok(r.status().is_redirection())
    }
}

fn refused(why: &str) -> Outcome {
    Outcome {
        refused_at_checkout: Some(why.to_owned()),
        done: true,
        ..Outcome::default()
    }
}

/// One event of the replay: an order placed, or the n-th card tried on it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: i64,
    order: usize,
    attempt: usize,
}

#[derive(Default, Clone)]
struct Tally {
    label: Option<Label>,
    orders: u32,
    paid: u32,
    fulfilled: u32,
    held: u32,
    refused: u32,
    bad_fulfilled_paid: u32,
    waits: Vec<i64>,
    /// Why orders were held, refused or let through: reason codes and how often.
    why: BTreeMap<String, u32>,
}

async fn replay(
    world: &World,
    db_url: String,
    dir: &std::path::Path,
) -> anyhow::Result<BTreeMap<&'static str, Tally>> {
    let clock = ManualClock::starting_now();
    let app = Application::build(settings(db_url, dir), Arc::new(clock.clone()))
        .await
        .context("building the app")?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let server = tokio::spawn(app.run_until_stopped());
    let clients = world
        .people
        .iter()
        .map(|_| {
            reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = coinfront::clock::Clock::now_ms(&clock);
    let d = Driver {
        base,
        state: state.clone(),
        clock,
        start,
        clients,
    };
    let mut queue: std::collections::BinaryHeap<std::cmp::Reverse<Event>> = world
        .orders
        .iter()
        .enumerate()
        .map(|(i, o)| {
            std::cmp::Reverse(Event {
                at: o.at,
                order: i,
                attempt: 0,
            })
        })
        .collect();
    let mut outcomes = vec![Outcome::default(); world.orders.len()];
    while let Some(std::cmp::Reverse(ev)) = queue.pop() {
        let o = &world.orders[ev.order];
        let person = &world.people[o.person];
        d.move_clock_to(ev.at).await;
        if ev.attempt == 0 {
            outcomes[ev.order] = d.start_order(o, &person.ip, &person.email).await?;
        }
        let out = &mut outcomes[ev.order];
        if !out.done {
            if let (Some(session), Some(card)) = (out.session.clone(), o.cards.get(ev.attempt)) {
                if d.pay(o.person, &person.ip, &session, card).await? {
                    out.paid = true;
                    out.done = true;
                } else if ev.attempt + 1 < o.cards.len() {
                    queue.push(std::cmp::Reverse(Event {
                        at: ev.at + o.gap,
                        order: ev.order,
                        attempt: ev.attempt + 1,
                    }));
                } else {
                    out.done = true;
                }
            }
        }
        d.quiet().await?;
    }
    // Let anything scheduled (retries) run out.
    d.move_clock_to(world.orders.iter().map(|o| o.at).max().unwrap_or(0) + HOUR)
        .await;
    d.quiet().await?;

    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for (o, out) in world.orders.iter().zip(&outcomes) {
        let person = &world.people[o.person];
        let t = tallies.entry(person.pop).or_default();
        t.label = Some(person.label);
        t.orders += 1;
        let Some(session) = &out.session else {
            t.refused += 1;
            let why = out.refused_at_checkout.clone().unwrap_or_default();
            let reasons: Option<String> = sqlx::query(
                "SELECT ra.reasons FROM risk_assessments ra JOIN orders o ON o.id = ra.order_id
                 WHERE o.email = $1 AND o.tiktok_username = $2 AND o.status = 'declined'
                 ORDER BY ra.created_at DESC LIMIT 1",
            )
            .bind(&person.email)
            .bind(&o.username)
            .fetch_optional(state.db.pool())
            .await?
            .map(|r| coinfront::db::col(&r, "reasons"))
            .transpose()?;
            let key = format!("refused at checkout ({why}): {}", codes(reasons.as_deref()));
            *t.why.entry(key).or_default() += 1;
            continue;
        };
        let id = session.rsplit('/').next().unwrap_or_default().to_owned();
        let row = sqlx::query(
            "SELECT o.status, o.paid_at, o.delivered_at,
                    (SELECT reasons FROM risk_assessments ra WHERE ra.order_id = o.id
                     ORDER BY ra.created_at DESC, ra.id DESC LIMIT 1) AS reasons
             FROM orders o JOIN sandbox_sessions s ON s.order_reference = o.id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_one(state.db.pool())
        .await?;
        let status: String = coinfront::db::col(&row, "status")?;
        let paid_at: Option<i64> = coinfront::db::col(&row, "paid_at")?;
        let delivered_at: Option<i64> = coinfront::db::col(&row, "delivered_at")?;
        if paid_at.is_some() {
            t.paid += 1;
        }
        let fulfilled = matches!(status.as_str(), "delivered" | "fulfilling" | "queued");
        if fulfilled {
            t.fulfilled += 1;
            if person.label == Label::Bad {
                t.bad_fulfilled_paid += 1;
            }
        }
        if status == "in_review" {
            t.held += 1;
        }
        let interesting = (person.label == Label::Good) != fulfilled;
        if interesting {
            let reasons: Option<String> = coinfront::db::col(&row, "reasons")?;
            let key = format!("{status}: {}", codes(reasons.as_deref()));
            *t.why.entry(key).or_default() += 1;
        }
        if person.label == Label::Good && !fulfilled && status != "in_review" {
            t.refused += 1;
        }
        if let (Some(p), Some(dl)) = (paid_at, delivered_at) {
            t.waits.push(dl - p);
        }
    }
    if std::env::var("BENCH_WHY").is_ok_and(|v| v == "1") {
        for e in coinfront::risk::surge::recent(&state.db, 0, 100).await? {
            let what: Vec<String> = e
                .tightened
                .iter()
                .map(|t| {
                    format!(
                        "{} ({} cards, {} %)",
                        t.describe(),
                        t.failed_cards,
                        t.failed_percent
                    )
                })
                .collect();
            println!(
                "surge at +{} min for {} min: {}; tightened {}",
                (e.started_at - start) / MIN,
                (e.until_at - e.started_at) / MIN,
                e.detail,
                what.join(", ")
            );
        }
    }
    server.abort();
    Ok(tallies)
}

/// "card_testing+velocity" from a stored reasons list.
fn codes(reasons: Option<&str>) -> String {
    serde_json::from_str::<Vec<coinfront::risk::Reason>>(reasons.unwrap_or("[]"))
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.code)
        .collect::<Vec<_>>()
        .join("+")
}

fn pct(n: u32, of: u32) -> String {
    if of == 0 {
        "—".into()
    } else {
        format!("{:.1} %", f64::from(n) * 100.0 / f64::from(of))
    }
}

fn wait(mut w: Vec<i64>, p: f64) -> String {
    if w.is_empty() {
        return "—".into();
    }
    w.sort_unstable();
    let rank = ((p / 100.0) * w.len() as f64).ceil() as usize;
    let v = w[rank.clamp(1, w.len()) - 1];
    if v < 1000 {
        "0 s".into()
    } else {
        format!("{} s", v / 1000)
    }
}

fn print(engine: &str, set: &str, t: &BTreeMap<&'static str, Tally>) {
    println!("\n{engine}, set {set}:");
    println!(
        "{:<48} {:>6} {:>6} | {:>14} {:>16} | {:>9} {:>18} {:>12}",
        "population",
        "orders",
        "paid",
        "bad: never ful.",
        "bad paid: never",
        "good held",
        "good refused/unpaid",
        "wait p50/p99"
    );
    let mut total: BTreeMap<&str, Tally> = BTreeMap::new();
    for label in [Label::Good, Label::Bad] {
        for (pop, x) in t.iter().filter(|(_, x)| x.label == Some(label)) {
            let (good, bad) = (label == Label::Good, label == Label::Bad);
            println!(
                "{:<48} {:>6} {:>6} | {:>14} {:>16} | {:>9} {:>18} {:>12}",
                format!("{} {pop}", if good { "+" } else { "-" }),
                x.orders,
                x.paid,
                if bad {
                    pct(x.orders - x.fulfilled, x.orders)
                } else {
                    String::new()
                },
                if bad {
                    pct(x.paid - x.bad_fulfilled_paid, x.paid)
                } else {
                    String::new()
                },
                if good {
                    pct(x.held, x.orders)
                } else {
                    String::new()
                },
                if good {
                    pct(x.refused, x.orders)
                } else {
                    String::new()
                },
                if good {
                    format!(
                        "{}/{}",
                        wait(x.waits.clone(), 50.0),
                        wait(x.waits.clone(), 99.0)
                    )
                } else {
                    String::new()
                },
            );
            let all = total.entry(if good { "good" } else { "bad" }).or_default();
            all.orders += x.orders;
            all.paid += x.paid;
            all.fulfilled += x.fulfilled;
            all.held += x.held;
            all.refused += x.refused;
            all.bad_fulfilled_paid += x.bad_fulfilled_paid;
            all.waits.extend(&x.waits);
        }
    }
    if std::env::var("BENCH_WHY").is_ok_and(|v| v == "1") {
        println!("\nwhy (good orders not fulfilled, bad orders fulfilled, by final status and reason codes):");
        for (pop, x) in t {
            for (why, n) in &x.why {
                println!("  {pop}: {n} × {why}");
            }
        }
    }
    let g = total.get("good").cloned().unwrap_or_default();
    let b = total.get("bad").cloned().unwrap_or_default();
    println!(
        "{:<48} {:>6} {:>6} | {:>14} {:>16} | {:>9} {:>18} {:>12}",
        "= all good",
        g.orders,
        g.paid,
        "",
        "",
        pct(g.held, g.orders),
        pct(g.refused, g.orders),
        format!(
            "{}/{}",
            wait(g.waits.clone(), 50.0),
            wait(g.waits.clone(), 99.0)
        ),
    );
    println!(
        "{:<48} {:>6} {:>6} | {:>14} {:>16} |",
        "= all bad",
        b.orders,
        b.paid,
        pct(b.orders - b.fulfilled, b.orders),
        pct(b.paid - b.bad_fulfilled_paid, b.paid),
    );
    let goals = [
        (
            "bad orders never fulfilled ≥ 95 %",
            b.orders > 0 && (b.orders - b.fulfilled) * 100 >= 95 * b.orders,
        ),
        (
            "bad paid orders never fulfilled ≥ 95 %",
            b.paid == 0 || (b.paid - b.bad_fulfilled_paid) * 100 >= 95 * b.paid,
        ),
        ("good orders held ≤ 2 %", g.held * 100 <= 2 * g.orders),
        ("good orders refused, blocked or unpaid = 0", g.refused == 0),
    ];
    for (what, met) in goals {
        println!("  {} {what}", if met { "met:   " } else { "MISSED:" });
    }
}

fn main() -> ExitCode {
    let set = std::env::var("BENCH_SET").unwrap_or_else(|_| "tuning".into());
    let shape = match set.as_str() {
        "tuning" => tuning(),
        "holdout" => holdout(),
        other => {
            eprintln!("BENCH_SET={other:?}: use tuning or holdout");
            return ExitCode::from(2);
        }
    };
    let seed = common::env_usize("BENCH_SEED", 42) as u64;
    let world = build(&shape, seed);
    let bad = world
        .people
        .iter()
        .filter(|p| p.label == Label::Bad)
        .count();
    println!(
        "screening evaluation: set {set}, seed {seed}, {} people ({bad} attackers), {} planned orders over {} simulated hours; {}",
        world.people.len(),
        world.orders.len(),
        shape.hours,
        common::machine_load()
    );
    let mut engines = vec![("SQLite", None)];
    if let Some(url) = common::postgres_admin_url() {
        engines.push(("PostgreSQL", Some(url)));
    }
    for (engine, admin) in engines {
        let run = || -> anyhow::Result<()> {
            let mut scratch = common::Scratch::new("cf-eval-", admin.clone())?;
            let url = scratch.database("eval")?;
            let started = std::time::Instant::now();
            let tallies = common::runtime(2).block_on(common::or_interrupted(replay(
                &world,
                url,
                scratch.path(),
            )))?;
            print(engine, &set, &tallies);
            println!("  (replayed in {:.1} s)", started.elapsed().as_secs_f64());
            scratch.close()
        };
        if let Err(e) = run() {
            eprintln!("{engine}: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

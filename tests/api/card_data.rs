//! No card number or CVC is ever stored or logged: drive real payments through the real binary
//! with debug logging, then search every table, every log line, every file the shop wrote.

use crate::helpers::{fresh_database, Browser, Checkout, Started};
use crate::process::ServerProcess;
use coinfront::payments::sandbox::cards::luhn_valid;
use sqlx::Row;
use std::path::Path;

const CARDS: [&str; 5] = [
    "4000000000000002",
    "4242424242424242",
    "5555555555554444",
    "4242424242424241",
    "378282246310005",
];
// Leading zeros: no count, duration or amount the shop writes starts with one, so a match is
// a real leak, not a coincidence.
const CVCS: [&str; 4] = ["0831", "0952", "0773", "0604"];

/// Every run of 13 to 19 digits that passes the Luhn check and stands alone (a digit run inside
/// a hex hash or id is part of that value, not a stored card number).
fn luhn_runs(text: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut run = String::new();
    for (i, &b) in text.iter().chain(std::iter::once(&b' ')).enumerate() {
        if b.is_ascii_digit() {
            run.push(b as char);
            continue;
        }
        let start = i - run.len();
        let before = start.checked_sub(1).map(|j| text[j]);
        let alone =
            !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !b.is_ascii_alphanumeric();
        if alone && (13..=19).contains(&run.len()) && luhn_valid(&run) {
            found.push(run.clone());
        }
        run.clear();
    }
    found
}

/// A CVC standing alone (not part of a longer word or number).
fn contains_alone(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        let part_of_something = |c: char| c.is_ascii_alphanumeric() || c == '-';
        !before.is_some_and(part_of_something) && !after.is_some_and(part_of_something)
    })
}

fn assert_clean(what: &str, text: &str) {
    for card in CARDS {
        assert!(
            !text.contains(card),
            "{what} contains the card number {card}"
        );
    }
    for cvc in CVCS {
        assert!(!contains_alone(text, cvc), "{what} contains the CVC {cvc}");
    }
    let runs = luhn_runs(text.as_bytes());
    assert!(
        runs.is_empty(),
        "{what} contains Luhn-valid numbers {runs:?}"
    );
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn card_numbers_and_cvcs_are_never_stored_or_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db_guard) = fresh_database(dir.path()).await;
    let mut server = ServerProcess::start(
        dir.path(),
        &url,
        "server.log",
        &[
            ("COINFRONT_LOG", "debug"),
            // One buyer trying several cards from one IP would look like card testing.
            ("COINFRONT_RISK__CARD_TESTING__DISTINCT_CARDS_1H", "10"),
        ],
    );
    let buyer = Browser::new(server.address.clone());

    let a = buyer.start_order(&Checkout::default()).await;
    assert_eq!(
        buyer
            .pay_card(&a, "4000 0000 0000 0002", "0831")
            .await
            .status(),
        402
    );
    let paid_a = buyer.pay_card(&a, "4242424242424242", "0952").await;
    assert!(paid_a.status().is_redirection());

    let b = buyer
        .start_order(&Checkout {
            username: "second_fan",
            email: "b@example.com",
            ..Default::default()
        })
        .await;
    assert!(buyer
        .pay_card(&b, "5555-5555-5555-4444", "0773")
        .await
        .status()
        .is_redirection());

    let c = buyer
        .start_order(&Checkout {
            username: "third_fan",
            email: "c@example.com",
            ..Default::default()
        })
        .await;
    assert_eq!(
        buyer
            .pay_card(&c, "4242424242424241", "0604")
            .await
            .status(),
        422,
        "bad Luhn"
    );
    let expired = buyer
        .pay(
            &c,
            &[
                ("method", "card"),
                ("card_number", "378282246310005"),
                ("expiry", "01/20"),
                ("cvc", "0604"),
            ],
        )
        .await;
    assert_eq!(expired.status(), 422);
    assert!(buyer
        .pay_card(&c, "378282246310005", "0604")
        .await
        .status()
        .is_redirection());
    let _: &Started = &c;

    let db = coinfront::db::Db::connect(&url, 2).await.unwrap();
    crate::helpers::eventually("three payments settled and screened", || async {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) FROM orders WHERE status NOT IN ('awaiting_payment', 'paid')",
        )
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
        n == 3
    })
    .await;
    // Everything those payments set off (deliveries, emails) has run: the server's own clock
    // is the system's.
    crate::helpers::eventually("the job queue idle", || async {
        let now = chrono::Utc::now().timestamp_millis();
        coinfront::jobs::is_idle(&db, now).await.unwrap()
    })
    .await;
    server.kill_hard();

    // Every row of every table, as text.
    let tables: Vec<String> = match db.backend() {
        coinfront::db::Backend::Sqlite => {
            sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        coinfront::db::Backend::Postgres => sqlx::query(
            "SELECT CAST(tablename AS TEXT) AS name FROM pg_tables WHERE schemaname = 'public'",
        ),
    }
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("name"))
    .collect();
    assert!(tables.iter().any(|t| t == "payments"));
    let mut rows_seen = 0;
    // sqlx's own bookkeeping table uses types the Any driver cannot read; it holds no shop data.
    for table in tables.iter().filter(|t| !t.starts_with("_sqlx")) {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(db.pool())
            .await
            .unwrap();
        for row in rows {
            rows_seen += 1;
            let mut text = String::new();
            for i in 0..row.len() {
                if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                    text.push_str(&s);
                } else if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
                    // Epoch-millisecond times have 13 digits (until 2286), so integer columns
                    // are searched for 14 to 19 digit card numbers. The shared rate limits keep
                    // their arrival times in epoch nanoseconds (19 digits, Luhn-valid one time
                    // in ten): there, a value that reads as a time within a day of now is one.
                    let digits = n.to_string();
                    let a_time_in_ns = table == "rate_limit_state"
                        && (n / 1_000_000 - chrono::Utc::now().timestamp_millis()).abs()
                            < 24 * 3_600_000;
                    assert!(
                        a_time_in_ns || !(digits.len() >= 14 && luhn_valid(&digits)),
                        "an integer in {table} looks like a card number: {digits}"
                    );
                }
                text.push('|');
            }
            assert_clean(&format!("a row of {table}"), &text);
        }
    }
    assert!(rows_seen > 20, "the scan saw the shop's rows");
    assert!(
        sqlx::query("SELECT COUNT(*) FROM payments WHERE card_last4 = '4444'")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get::<i64, _>(0)
            == 1,
        "last4 is kept, and that is all"
    );

    // The logs (at debug level), and every file the shop wrote: database files, outbox, secrets.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.lines().count() > 20, "the server logged its requests");
    assert_clean("the server log", &log);
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_clean(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
}

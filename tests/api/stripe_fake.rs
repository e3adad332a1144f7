//! A small fake of Stripe's API for the Stripe tests, served on 127.0.0.1. Its answers are
//! Stripe's own published example objects (`tests/fixtures/stripe/fixtures.json`) with the
//! test's ids and amounts put in. It checks every request the shop sends: the secret key, the
//! form encoding, Stripe's documented parameter names for each endpoint, and an
//! `Idempotency-Key` on every POST, which it honours as Stripe does (the same key and
//! parameters replay the first answer; the same key with other parameters is refused).
//!
//! File uploads (`POST /v1/files`, multipart/form-data) are answered on a second port, as
//! Stripe serves them from its own host (files.stripe.com); the fixtures have no File object,
//! so the answer is built from the File object in Stripe's API reference.
//!
//! localstripe (a separate process; `LOCALSTRIPE_URL`) implements payment intents, payment
//! methods, charges and refunds but not Checkout Sessions, disputes or idempotency. When it is
//! there, those calls are passed through to it (behind this fake's idempotency), so refunds
//! and card lookups run against its stateful implementation; without it, the fixtures answer.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const SECRET_KEY: &str = "sk_test_coinfront0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_coinfront0123456789abcdef";

pub fn fixtures() -> Value {
    let text = include_str!("../fixtures/stripe/fixtures.json");
    serde_json::from_str::<Value>(text).unwrap()["resources"].clone()
}

pub fn fixture(name: &str) -> Value {
    fixtures()[name].clone()
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub params: Vec<(String, String)>,
    pub status: u16,
}

/// The parameters a key was first used with, and the answer then given.
type FirstAnswer = (Vec<(String, String)>, u16, Value);

#[derive(Default)]
pub struct FakeState {
    pub requests: Vec<Recorded>,
    /// Everything a request did that Stripe's API reference does not allow.
    pub violations: Vec<String>,
    idempotent: HashMap<String, FirstAnswer>,
    pub sessions: HashMap<String, Value>,
    /// Answers to give instead of the real one, in order, for a path prefix.
    failures: VecDeque<(String, u16)>,
    /// Process the next call to a path, then answer 500 as if the connection dropped.
    lose_answer: VecDeque<String>,
    /// Fixture mode: a payment intent's card and a charge's payment intent.
    pub cards: HashMap<String, Value>,
    pub charges: HashMap<String, String>,
    pub disputes: HashMap<String, Value>,
    /// Uploaded files by id.
    pub files: HashMap<String, Uploaded>,
    /// The port the Files API is served on (the other one serves the rest of the API).
    files_port: u16,
    counter: u64,
}

#[derive(Debug, Clone)]
pub struct Uploaded {
    pub purpose: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    /// Where the Files API is (`payments.stripe.files_api_base`).
    pub files_url: String,
    pub state: Arc<Mutex<FakeState>>,
    pub localstripe: Option<String>,
}

impl FakeStripe {
    /// Starts the fake; in front of localstripe when `LOCALSTRIPE_URL` is set.
    pub async fn start() -> FakeStripe {
        let localstripe = std::env::var("LOCALSTRIPE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| u.trim_end_matches('/').to_owned());
        Self::start_with(localstripe).await
    }

    pub async fn start_with(localstripe: Option<String>) -> FakeStripe {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let fake = FakeStripe {
            url: String::new(),
            files_url: String::new(),
            state: state.clone(),
            localstripe,
        };
        let data = web::Data::new(fake.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let files_port = files.local_addr().unwrap().port();
        state.lock().unwrap().files_port = files_port;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                // Stripe takes dispute evidence files up to 5 MB.
                .app_data(web::PayloadConfig::new(6 << 20))
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .listen(files)
        .unwrap()
        .run();
        tokio::spawn(server);
        FakeStripe {
            url: format!("http://127.0.0.1:{port}"),
            files_url: format!("http://127.0.0.1:{files_port}"),
            ..fake
        }
    }

    pub fn fail_next(&self, path: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .failures
            .push_back((path.to_owned(), status));
    }

    pub fn lose_next_answer(&self, path: &str) {
        self.state
            .lock()
            .unwrap()
            .lose_answer
            .push_back(path.to_owned());
    }

    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    pub fn assert_no_violations(&self) {
        let v = self.state.lock().unwrap().violations.clone();
        assert!(v.is_empty(), "requests Stripe would refuse: {v:#?}");
    }

    pub fn session(&self, id: &str) -> Value {
        self.state.lock().unwrap().sessions[id].clone()
    }

    pub fn update_session(&self, id: &str, change: impl FnOnce(&mut Value)) {
        let mut s = self.state.lock().unwrap();
        change(s.sessions.get_mut(id).unwrap());
    }

    /// Fixture mode: the card a payment intent was paid with.
    pub fn set_card(&self, payment_intent: &str, last4: &str, country: &str, fingerprint: &str) {
        let mut pm = fixture("payment_method");
        pm["id"] = json!(format!("pm_{fingerprint}"));
        pm["card"]["last4"] = json!(last4);
        pm["card"]["country"] = json!(country);
        pm["card"]["fingerprint"] = json!(fingerprint);
        self.state
            .lock()
            .unwrap()
            .cards
            .insert(payment_intent.to_owned(), pm);
    }

    pub fn set_charge(&self, charge: &str, payment_intent: &str) {
        self.state
            .lock()
            .unwrap()
            .charges
            .insert(charge.to_owned(), payment_intent.to_owned());
    }
}

fn stripe_error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `metadata[key]` with a key Stripe allows (≤ 40 characters, no brackets).
fn metadata_key(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|k| !k.is_empty() && k.len() <= 40 && !k.contains(['[', ']']))
}

fn check_session_params(params: &[(String, String)], v: &mut Vec<String>) {
    const NAMES: [&str; 11] = [
        "mode",
        "line_items[0][price_data][currency]",
        "line_items[0][price_data][unit_amount]",
        "line_items[0][price_data][product_data][name]",
        "line_items[0][quantity]",
        "client_reference_id",
        "customer_email",
        "expires_at",
        "success_url",
        "cancel_url",
        "payment_method_types[]",
    ];
    for (k, val) in params {
        let known = NAMES.contains(&k.as_str())
            || metadata_key(k, "metadata[")
            || metadata_key(k, "payment_intent_data[metadata][");
        if !known {
            v.push(format!("checkout session: unknown parameter {k}"));
        }
        if val.len() > 5000 {
            v.push(format!("checkout session: {k} over 5000 characters"));
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for required in &NAMES[..5] {
        if get(required).is_none() {
            v.push(format!("checkout session: {required} missing"));
        }
    }
    if get("mode") != Some("payment") {
        v.push("checkout session: mode is not payment".into());
    }
    let currency = get("line_items[0][price_data][currency]").unwrap_or_default();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        v.push(format!(
            "checkout session: currency {currency:?} is not a lowercase ISO code"
        ));
    }
    for int in [
        "line_items[0][price_data][unit_amount]",
        "line_items[0][quantity]",
        "expires_at",
    ] {
        if get(int).is_some_and(|x| x.parse::<i64>().map_or(true, |n| n <= 0)) {
            v.push(format!("checkout session: {int} is not a positive integer"));
        }
    }
    for url in ["success_url", "cancel_url"] {
        if get(url).is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
            v.push(format!("checkout session: {url} is not a URL"));
        }
    }
    if client_ref_bad(get("client_reference_id")) {
        v.push("checkout session: client_reference_id over 200 characters".into());
    }
    if let Some(exp) = get("expires_at").and_then(|x| x.parse::<i64>().ok()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // Stripe's window: 30 minutes to 24 hours from now.
        if exp < now + 30 * 60 || exp > now + 24 * 3600 {
            v.push(format!(
                "checkout session: expires_at {exp} outside 30 min to 24 h from {now}"
            ));
        }
    }
}

fn client_ref_bad(v: Option<&str>) -> bool {
    v.is_some_and(|s| s.len() > 200)
}

fn check_refund_params(params: &[(String, String)], v: &mut Vec<String>) {
    for (k, val) in params {
        let known = matches!(
            k.as_str(),
            "payment_intent" | "charge" | "amount" | "reason"
        ) || metadata_key(k, "metadata[");
        if !known {
            v.push(format!("refund: unknown parameter {k}"));
        }
        if k == "amount" && val.parse::<i64>().map_or(true, |n| n <= 0) {
            v.push(format!("refund: amount {val:?} is not a positive integer"));
        }
    }
    if !params
        .iter()
        .any(|(k, _)| k == "payment_intent" || k == "charge")
    {
        v.push("refund: neither payment_intent nor charge".into());
    }
}

fn check_dispute_params(params: &[(String, String)], v: &mut Vec<String>) {
    // Stripe's text evidence fields; the file fields take a `file_…` id.
    const TEXT: [&str; 17] = [
        "access_activity_log",
        "billing_address",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "uncategorized_text",
    ];
    const FILES: [&str; 8] = [
        "cancellation_policy",
        "customer_communication",
        "customer_signature",
        "duplicate_charge_documentation",
        "receipt",
        "refund_policy",
        "service_documentation",
        "uncategorized_file",
    ];
    let mut total = 0;
    for (k, val) in params {
        if k == "submit" {
            if !matches!(val.as_str(), "true" | "false") {
                v.push(format!("dispute: submit {val:?} is not a boolean"));
            }
            continue;
        }
        let Some(field) = k
            .strip_prefix("evidence[")
            .and_then(|r| r.strip_suffix(']'))
        else {
            if !metadata_key(k, "metadata[") {
                v.push(format!("dispute: unknown parameter {k}"));
            }
            continue;
        };
        if TEXT.contains(&field) {
            total += val.chars().count();
        } else if FILES.contains(&field) {
            if !val.starts_with("file_") {
                v.push(format!(
                    "dispute: evidence[{field}] takes a file id, got text"
                ));
            }
        } else {
            v.push(format!("dispute: unknown evidence field {field}"));
        }
    }
    if total > 150_000 {
        v.push("dispute: text evidence over 150,000 characters".into());
    }
}

/// A `POST /v1/files` body as Stripe documents it: `multipart/form-data` (RFC 7578) with a
/// `purpose` and one `file` part (file name and content type given) of a type and size Stripe
/// takes for that purpose, and no other fields. Returns the fields as parameters (the file
/// as its name, type and digest, for the idempotency check) and the file.
fn parse_upload(
    content_type: &str,
    body: &[u8],
) -> Result<(Vec<(String, String)>, Uploaded), String> {
    use sha2::Digest;
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .ok_or_else(|| format!("content-type {content_type:?} is not multipart/form-data"))?;
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut at = find(body, delimiter.as_bytes(), 0).ok_or("no boundary in the body")?;
    let mut purpose = None;
    let mut file = None;
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            break;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err("a boundary not followed by CRLF".into());
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part without headers")?;
        let head = std::str::from_utf8(&body[at..head_end]).map_err(|_| "headers not UTF-8")?;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), head_end)
            .ok_or("a part without a closing boundary")?;
        let content = &body[head_end + 4..next];
        let mut name = None;
        let mut filename = None;
        let mut part_type = None;
        for h in head.split("\r\n") {
            let (k, v) = h.split_once(": ").ok_or_else(|| format!("header {h:?}"))?;
            match k.to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    let mut items = v.split("; ");
                    if items.next() != Some("form-data") {
                        return Err(format!("content-disposition {v:?}"));
                    }
                    for item in items {
                        let (k, v) = item.split_once('=').ok_or_else(|| format!("{item:?}"))?;
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .ok_or_else(|| format!("unquoted {k}"))?;
                        match k {
                            "name" => name = Some(v.to_owned()),
                            "filename" => filename = Some(v.to_owned()),
                            _ => return Err(format!("content-disposition parameter {k}")),
                        }
                    }
                }
                "content-type" => part_type = Some(v.to_owned()),
                _ => return Err(format!("part header {k}")),
            }
        }
        match name.as_deref() {
            Some("purpose") => {
                purpose =
                    Some(String::from_utf8(content.to_vec()).map_err(|_| "purpose not UTF-8")?)
            }
            Some("file") => {
                let filename = filename.ok_or("the file part has no filename")?;
                let content_type = part_type.ok_or("the file part has no content-type")?;
                file = Some((filename, content_type, content.to_vec()));
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
        at = next + 2;
    }
    const PURPOSES: [&str; 15] = [
        "account_requirement",
        "additional_verification",
        "business_icon",
        "business_logo",
        "customer_signature",
        "dispute_evidence",
        "identity_document",
        "issuing_regulatory_reporting",
        "pci_document",
        "platform_terms_of_service",
        "tax_document_user_upload",
        "terminal_android_apk",
        "terminal_reader_splashscreen",
        "finance_report_run",
        "sigma_scheduled_query",
    ];
    let purpose = purpose.ok_or("purpose missing")?;
    if !PURPOSES.contains(&purpose.as_str()) {
        return Err(format!("purpose {purpose:?} is not one of Stripe's"));
    }
    let (filename, content_type, bytes) = file.ok_or("file missing")?;
    if purpose == "dispute_evidence" {
        // Stripe's table: PDF, JPEG or PNG, at most 5 MB.
        let magic_ok = match content_type.as_str() {
            "application/pdf" => bytes.starts_with(b"%PDF-") && bytes.ends_with(b"%%EOF\n"),
            "image/jpeg" => bytes.starts_with(&[0xff, 0xd8]),
            "image/png" => bytes.starts_with(b"\x89PNG"),
            _ => {
                return Err(format!(
                    "{content_type} is not a type dispute evidence takes"
                ))
            }
        };
        if !magic_ok {
            return Err(format!("the file is not a {content_type}"));
        }
        if bytes.len() > 5 * 1024 * 1024 {
            return Err("the file is over 5 MB".into());
        }
    }
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let params = vec![
        ("purpose".to_owned(), purpose.clone()),
        (
            "file".to_owned(),
            format!("{filename} ({content_type}, sha256 {digest})"),
        ),
    ];
    Ok((
        params,
        Uploaded {
            purpose,
            filename,
            content_type,
            bytes,
        },
    ))
}

async fn handle(fake: web::Data<FakeStripe>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let raw = if method == "GET" {
        req.query_string().as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let on_files_host =
        req.app_config().local_addr().port() == fake.state.lock().unwrap().files_port;
    if on_files_host != (path == "/v1/files") {
        fake.state.lock().unwrap().violations.push(format!(
            "{method} {path}: sent to the {} host",
            if on_files_host {
                "Files API"
            } else {
                "main API"
            }
        ));
    }
    let mut upload = None;
    let params: Vec<(String, String)> = if method == "POST" && path == "/v1/files" {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match parse_upload(content_type, &raw) {
            Ok((params, file)) => {
                upload = Some(file);
                params
            }
            Err(e) => {
                fake.state
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("POST /v1/files: {e}"));
                Vec::new()
            }
        }
    } else {
        match serde_urlencoded::from_bytes(&raw) {
            Ok(p) => p,
            Err(e) => {
                fake.state
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("{method} {path}: not form-encoded: {e}"));
                Vec::new()
            }
        }
    };
    let (status, answer) =
        answer(&fake, &req, &method, &path, key.as_deref(), &params, upload).await;
    fake.state.lock().unwrap().requests.push(Recorded {
        method,
        path,
        idempotency_key: key,
        params,
        status,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(answer.to_string())
}

async fn answer(
    fake: &FakeStripe,
    req: &HttpRequest,
    method: &str,
    path: &str,
    key: Option<&str>,
    params: &[(String, String)],
    upload: Option<Uploaded>,
) -> (u16, Value) {
    let auth_ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"));
    if !auth_ok {
        fake.state.lock().unwrap().violations.push(format!(
            "{method} {path}: without the secret key as bearer token"
        ));
        return stripe_error(
            401,
            "invalid_request_error",
            "api_key_invalid",
            "Invalid API Key provided",
        );
    }
    {
        let mut s = fake.state.lock().unwrap();
        if let Some(i) = s
            .failures
            .iter()
            .position(|(p, _)| path.starts_with(p.as_str()))
        {
            let (_, status) = s.failures.remove(i).unwrap();
            return stripe_error(
                status,
                "api_error",
                "",
                "Something went wrong on Stripe's end.",
            );
        }
    }
    if method == "POST" {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut s = fake.state.lock().unwrap();
        let expected = if path == "/v1/files" {
            "multipart/form-data; boundary="
        } else {
            "application/x-www-form-urlencoded"
        };
        if !content_type.starts_with(expected) {
            s.violations
                .push(format!("POST {path}: content-type {content_type:?}"));
        }
        let Some(key) = key else {
            s.violations
                .push(format!("POST {path}: no Idempotency-Key"));
            return stripe_error(400, "invalid_request_error", "", "no idempotency key");
        };
        if key.len() > 255 {
            s.violations
                .push(format!("POST {path}: Idempotency-Key over 255 characters"));
        }
        let scoped = format!("{path} {key}");
        if let Some((first, status, body)) = s.idempotent.get(&scoped) {
            return if first.as_slice() == params {
                (*status, body.clone())
            } else {
                stripe_error(
                    400,
                    "idempotency_error",
                    "",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            };
        }
    }
    let (status, body) = execute(fake, method, path, params, upload).await;
    if method == "POST" {
        let mut s = fake.state.lock().unwrap();
        if let Some(key) = key {
            s.idempotent.insert(
                format!("{path} {key}"),
                (params.to_vec(), status, body.clone()),
            );
        }
        if let Some(i) = s
            .lose_answer
            .iter()
            .position(|p| path.starts_with(p.as_str()))
        {
            s.lose_answer.remove(i);
            // Done, and remembered under its key, but the answer never reaches the shop.
            return stripe_error(500, "api_error", "", "connection reset");
        }
    }
    (status, body)
}

async fn forward(
    base: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let req = if method == "GET" {
        client.get(&url).query(params)
    } else {
        client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(params).unwrap())
    };
    let resp = req
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .expect("localstripe answers");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn execute(
    fake: &FakeStripe,
    method: &str,
    path: &str,
    params: &[(String, String)],
    upload: Option<Uploaded>,
) -> (u16, Value) {
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "checkout", "sessions"]) => {
            let mut s = fake.state.lock().unwrap();
            check_session_params(params, &mut s.violations);
            s.counter += 1;
            let id = format!("cs_test_fake{:06}", s.counter);
            let mut session = fixture("checkout.session");
            session["id"] = json!(id);
            session["url"] = json!(format!(
                "https://checkout.stripe.com/c/pay/{id}#fidkdWxOYHwnPyd1blpxYHZxWjA0"
            ));
            session["status"] = json!("open");
            session["payment_status"] = json!("unpaid");
            session["payment_intent"] = Value::Null;
            session["amount_total"] = json!(get("line_items[0][price_data][unit_amount]")
                .parse::<i64>()
                .unwrap_or(0));
            session["amount_subtotal"] = session["amount_total"].clone();
            session["currency"] = json!(get("line_items[0][price_data][currency]"));
            session["client_reference_id"] = json!(get("client_reference_id"));
            session["customer_email"] = json!(get("customer_email"));
            session["expires_at"] = json!(get("expires_at").parse::<i64>().unwrap_or(0));
            session["success_url"] = json!(get("success_url"));
            session["cancel_url"] = json!(get("cancel_url"));
            session["payment_method_types"] = json!(params
                .iter()
                .filter(|(k, _)| k == "payment_method_types[]")
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>());
            let mut metadata = serde_json::Map::new();
            for (k, v) in params {
                if let Some(m) = k
                    .strip_prefix("metadata[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    metadata.insert(m.to_owned(), json!(v));
                }
            }
            session["metadata"] = Value::Object(metadata);
            s.sessions.insert(id, session.clone());
            (200, session)
        }
        ("GET", ["v1", "checkout", "sessions", id]) => {
            match fake.state.lock().unwrap().sessions.get(*id) {
                Some(s) => (200, s.clone()),
                None => stripe_error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such checkout.session",
                ),
            }
        }
        ("POST", ["v1", "refunds"]) => {
            check_refund_params(params, &mut fake.state.lock().unwrap().violations);
            // Payments made in localstripe are refunded there; a test's fixture payment here.
            let fixture_payment = fake
                .state
                .lock()
                .unwrap()
                .cards
                .contains_key(&get("payment_intent"));
            if let (Some(ls), false) = (&fake.localstripe, fixture_payment) {
                return forward(ls, method, path, params).await;
            }
            let mut s = fake.state.lock().unwrap();
            s.counter += 1;
            let mut refund = fixture("refund");
            refund["id"] = json!(format!("re_fake{:06}", s.counter));
            refund["amount"] = json!(get("amount").parse::<i64>().unwrap_or(0));
            refund["payment_intent"] = json!(get("payment_intent"));
            let mut metadata = serde_json::Map::new();
            for (k, v) in params {
                if let Some(m) = k
                    .strip_prefix("metadata[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    metadata.insert(m.to_owned(), json!(v));
                }
            }
            refund["metadata"] = Value::Object(metadata);
            (200, refund)
        }
        ("GET", ["v1", "payment_intents", id])
        | ("GET", ["v1", "payment_methods", id])
        | ("GET", ["v1", "charges", id])
            if !is_id(id) =>
        {
            stripe_error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such object",
            )
        }
        ("GET", ["v1", "payment_intents", id]) => {
            if let Some(ls) = &fake.localstripe {
                if id.starts_with("pi_") && !fake.state.lock().unwrap().cards.contains_key(*id) {
                    return forward(ls, method, path, params).await;
                }
            }
            let s = fake.state.lock().unwrap();
            let mut pi = fixture("payment_intent");
            pi["id"] = json!(id);
            pi["status"] = json!("succeeded");
            pi["last_payment_error"] = Value::Null;
            let pm = s
                .cards
                .get(*id)
                .cloned()
                .unwrap_or_else(|| fixture("payment_method"));
            let expanded = params
                .iter()
                .any(|(k, v)| k == "expand[]" && v == "payment_method");
            pi["payment_method"] = if expanded { pm } else { pm["id"].clone() };
            (200, pi)
        }
        ("GET", ["v1", "payment_methods", id]) => {
            if let Some(ls) = &fake.localstripe {
                return forward(ls, method, path, params).await;
            }
            let mut pm = fixture("payment_method");
            pm["id"] = json!(id);
            (200, pm)
        }
        ("GET", ["v1", "charges", id]) => {
            let known = fake.state.lock().unwrap().charges.get(*id).cloned();
            if let Some(pi) = known {
                let mut ch = fixture("charge");
                ch["id"] = json!(id);
                ch["payment_intent"] = json!(pi);
                return (200, ch);
            }
            match &fake.localstripe {
                Some(ls) => forward(ls, method, path, params).await,
                None => stripe_error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such charge",
                ),
            }
        }
        ("POST", ["v1", "files"]) => {
            let Some(file) = upload else {
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "",
                    "Missing required param: file.",
                );
            };
            let mut s = fake.state.lock().unwrap();
            s.counter += 1;
            let id = format!("file_fake{:06}", s.counter);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            // Stripe's File object as its API reference shows it (the fixtures have none).
            let object = json!({
                "id": id,
                "object": "file",
                "created": now,
                // Dispute evidence is kept 9 months.
                "expires_at": now + 270 * 86_400,
                "filename": file.filename,
                "links": {"object": "list", "data": [], "has_more": false,
                          "url": format!("/v1/file_links?file={id}")},
                "purpose": file.purpose,
                "size": file.bytes.len(),
                "title": null,
                "type": "pdf",
                "url": format!("https://files.stripe.com/v1/files/{id}/contents"),
            });
            s.files.insert(id, file);
            (200, object)
        }
        ("POST", ["v1", "disputes", id]) => {
            let mut s = fake.state.lock().unwrap();
            check_dispute_params(params, &mut s.violations);
            for (k, v) in params {
                if k.starts_with("evidence[") && v.starts_with("file_") {
                    match s.files.get(v) {
                        Some(f) if f.purpose == "dispute_evidence" => {}
                        Some(f) => {
                            let e = format!("dispute: {k} is a file for {}", f.purpose);
                            s.violations.push(e);
                        }
                        None => {
                            return stripe_error(
                                400,
                                "invalid_request_error",
                                "resource_missing",
                                &format!("No such file upload: '{v}'"),
                            )
                        }
                    }
                }
            }
            let mut d = s
                .disputes
                .get(*id)
                .cloned()
                .unwrap_or_else(|| fixture("dispute"));
            d["id"] = json!(id);
            for (k, v) in params {
                if let Some(field) = k
                    .strip_prefix("evidence[")
                    .and_then(|r| r.strip_suffix(']'))
                {
                    d["evidence"][field] = json!(v);
                }
            }
            if get("submit") == "true" {
                d["status"] = json!("under_review");
                d["evidence_details"]["has_evidence"] = json!(true);
                d["evidence_details"]["submission_count"] = json!(1);
            }
            s.disputes.insert(id.to_string(), d.clone());
            (200, d)
        }
        _ => {
            fake.state.lock().unwrap().violations.push(format!(
                "{method} {path}: an endpoint the shop should not call"
            ));
            stripe_error(404, "invalid_request_error", "", "Unrecognized request URL")
        }
    }
}

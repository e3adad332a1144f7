//! What the browser tests stand on: the release server as a separate process on 127.0.0.1
//! with a fresh data folder, chromedriver, a headless Chromium with a fresh profile at a given
//! viewport, and the checks every page must pass.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Chromium's flags: headless, and nothing that phones home (the CI machine's network refuses
/// every connection but the registries', and Chromium's background requests would hang there).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

pub const STAFF_PASSWORD: &str = "correct horse battery staple 42";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Where build output goes: `CARGO_TARGET_DIR`, or `target/` in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing at {} (.ci/run installs it)",
        path.display()
    );
}

/// A child process in a process group of its own, ended together with everything it started
/// (chromedriver's Chromium and Chromium's helpers) when the test ends, however it ends: a
/// panicking test drops it while unwinding. Killing chromedriver alone left its Chromium
/// running.
struct Process(Child);

impl Process {
    fn spawn(cmd: &mut Command) -> std::io::Result<Process> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).spawn().map(Process)
    }

    /// Signals the group this process leads (its id is the group's). Only called while the
    /// leader is not yet reaped, so the id cannot have been given to anyone else.
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", self.0.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Politely first (Chromium removes its temporary files), then for sure if it has
            // not exited within 300 ms.
            self.signal_group("TERM");
            let deadline = std::time::Instant::now() + Duration::from_millis(300);
            while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            self.signal_group("KILL");
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The coinfront binary to test: `COINFRONT_BIN` (the release build in CI), else the one cargo
/// built for this test run.
fn server_binary() -> PathBuf {
    std::env::var_os("COINFRONT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_coinfront")))
}

/// The shop, running as its own process.
pub struct Server {
    pub base: String,
    /// Removed when the test ends (after the process, which is killed first).
    _process: Process,
    _data_dir: tempfile::TempDir,
}

impl Server {
    fn env(cmd: &mut Command, data_dir: &Path, port: u16) {
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("COINFRONT_DATA_DIR", data_dir)
            .env("COINFRONT_BIND", format!("127.0.0.1:{port}"))
            .env("COINFRONT_LOG", "warn")
            .env("COINFRONT_SUPPLIER__SANDBOX_DELAY_MS", "0")
            // A throwaway email domain alone holds an order for review (and blocks nothing).
            .env("COINFRONT_RISK__DISPOSABLE_EMAIL__POINTS", "70");
        // Two widths of journeys sign in and check out more often than a buyer would.
        for limit in [
            "CHECKOUT",
            "PAYMENT_ATTEMPT",
            "ACCOUNT_LOOKUP",
            "ORDER_LOOKUP",
            "REFUND_REQUEST",
            "STAFF_LOGIN",
            "SUPPORT_MESSAGE",
        ] {
            cmd.env(format!("COINFRONT_RATE_LIMITS__{limit}__PER_MINUTE"), "600")
                .env(format!("COINFRONT_RATE_LIMITS__{limit}__BURST"), "600");
        }
    }

    /// Starts the server with the given staff accounts (made with `coinfront staff add`, as an
    /// operator would) and waits until it answers `/readyz`.
    pub async fn start(staff: &[(&str, &str)]) -> Server {
        let bin = server_binary();
        require(&bin, "the coinfront binary");
        let data_dir = tempfile::tempdir().expect("a temporary data folder");
        let port = free_port();
        for (email, role) in staff {
            let mut cmd = Command::new(&bin);
            Self::env(&mut cmd, data_dir.path(), port);
            let mut child = cmd
                .args(["staff", "add", "--email", email, "--role", role])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run coinfront staff add");
            writeln!(child.stdin.take().expect("stdin"), "{STAFF_PASSWORD}").expect("password");
            let out = child.wait_with_output().expect("coinfront staff add");
            assert!(
                out.status.success(),
                "coinfront staff add {email}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cmd = Command::new(&bin);
        Self::env(&mut cmd, data_dir.path(), port);
        let process = Process::spawn(
            cmd.arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .expect("start coinfront");
        let base = format!("http://127.0.0.1:{port}");
        wait_until_answers(&format!("{base}/readyz"), "the coinfront server").await;
        Server {
            base,
            _process: process,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn wait_until_answers(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {url} in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One headless Chromium (fresh profile) at one viewport, through its own chromedriver.
pub struct Browser {
    pub client: Client,
    pub width: u32,
    /// Fields drop in order: Chromium ends before its profile folder is removed.
    _driver: Process,
    _profile: tempfile::TempDir,
    axe: String,
    step: Mutex<u32>,
    report: &'static Mutex<Vec<String>>,
}

/// A viewport the journeys run at.
#[derive(Clone, Copy)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    pub phone: bool,
}

pub const PHONE: Viewport = Viewport {
    width: 375,
    height: 812,
    phone: true,
};
pub const DESKTOP: Viewport = Viewport {
    width: 1280,
    height: 800,
    phone: false,
};

fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn chromedriver_binary() -> PathBuf {
    std::env::var_os("CHROMEDRIVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// axe-core's `axe.min.js` from npm: `AXE_CORE_JS`, else where `.ci/run` installs it.
fn axe_path() -> PathBuf {
    std::env::var_os("AXE_CORE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("browser-tools/node_modules/axe-core/axe.min.js"))
}

pub fn screenshot_dir() -> PathBuf {
    target_dir().join("screenshots")
}

impl Browser {
    pub async fn open(viewport: Viewport, report: &'static Mutex<Vec<String>>) -> Browser {
        let (chromium, driver, axe) = (chromium_binary(), chromedriver_binary(), axe_path());
        require(&chromium, "Chromium");
        require(&driver, "chromedriver");
        require(&axe, "axe-core's axe.min.js");
        let axe = std::fs::read_to_string(&axe).expect("read axe.min.js");
        let port = free_port();
        let driver = Process::spawn(
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("start chromedriver");
        wait_until_answers(&format!("http://127.0.0.1:{port}/status"), "chromedriver").await;
        let profile = tempfile::tempdir().expect("a fresh Chromium profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!(
            "--window-size={},{}",
            viewport.width, viewport.height
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": args,
                // The viewport exactly, as a phone or a desktop renders it.
                "mobileEmulation": { "deviceMetrics": {
                    "width": viewport.width, "height": viewport.height, "pixelRatio": 1.0,
                    "mobile": viewport.phone, "touch": viewport.phone
                }},
            }),
        );
        // reqwest and fantoccini both bring rustls; choose its provider once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        std::fs::create_dir_all(screenshot_dir()).expect("screenshot folder");
        Browser {
            client,
            width: viewport.width,
            _profile: profile,
            _driver: driver,
            axe,
            step: Mutex::new(0),
            report,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("{css} not found on {}: {e}", self.path().await),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// The button or link with this text, clicked.
    pub async fn click_text(&self, text: &str) {
        let xpath = format!(
            "//*[self::button or self::a][not(@aria-hidden='true')][normalize-space(.)={}]",
            xpath_literal(text)
        );
        match self.client.find(Locator::XPath(&xpath)).await {
            Ok(e) => e.click().await.expect("click"),
            Err(e) => panic!("no button or link {text:?} on {}: {e}", self.path().await),
        }
    }

    /// Clicks the button or link with this text and waits until the next page has loaded
    /// (WebDriver's click returns once the click is dispatched, not when the page changed).
    pub async fn submit_text(&self, text: &str) {
        self.js("window.__cf_old_page = true; return null").await;
        self.click_text(text).await;
        self.wait_for_new_page(text).await;
    }

    /// Clicks the element and waits until the next page has loaded.
    pub async fn submit(&self, css: &str) {
        self.js("window.__cf_old_page = true; return null").await;
        self.click(css).await;
        self.wait_for_new_page(css).await;
    }

    async fn wait_for_new_page(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .client
                .execute(
                    "return window.__cf_old_page === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .map(|v| v == json!(true))
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} on {} did not lead to a new page",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.expect("attribute")
    }

    pub async fn text(&self) -> String {
        self.js("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn title(&self) -> String {
        self.client.title().await.expect("title")
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
    }

    /// Reloads until the page's text contains `needle` (with a deadline).
    pub async fn reload_until(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not appear on {} within {secs} s:\n{}",
                self.path().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.client.refresh().await.expect("reload");
        }
    }

    /// Every check a page must pass, plus a screenshot. `allowed` names axe rules a page may
    /// break on purpose (only the order page's self-refresh, which offers a way to stop it).
    pub async fn check_page(&self, name: &str, allowed: &[&str]) {
        let step = {
            let mut s = self.step.lock().expect("step counter");
            *s += 1;
            *s
        };
        let file = screenshot_dir().join(format!("{}-{step:02}-{name}.png", self.width));
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(&file, png).expect("write screenshot");
        let path = self.path().await;

        let widths = self
            .js("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        let (scroll, inner) = (widths[0].as_u64(), widths[1].as_u64());
        // A phone widens its layout viewport to fit content that is too wide, so a wider
        // viewport than the device's is sideways scrolling too.
        if inner != Some(u64::from(self.width)) || scroll > inner {
            let wide = self
                .js(&format!(
                    "return Array.from(document.querySelectorAll('body *'))
                      .filter(e => e.getBoundingClientRect().right > {} + 0.5)
                      .slice(0, 8).map(e => e.outerHTML.slice(0, 160))",
                    self.width
                ))
                .await;
            panic!(
                "{name} ({path}) at {} px scrolls sideways: the page is {scroll:?} px wide \
                 (viewport {inner:?}); too wide: {wide:#}",
                self.width
            );
        }
        assert!(
            scroll <= inner,
            "{name} ({path}) at {} px scrolls sideways: content is {scroll:?} px wide",
            self.width
        );

        let h1 = self
            .js("return document.querySelectorAll('h1').length")
            .await;
        assert_eq!(h1, json!(1), "{name} ({path}): exactly one h1");

        let unlabelled = self
            .js(
                r#"return Array.from(document.querySelectorAll('input, select, textarea'))
                .filter(e => e.type !== 'hidden' && e.type !== 'submit' && e.type !== 'button')
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                    && !e.getAttribute('aria-labelledby'))
                .map(e => e.outerHTML.slice(0, 120))"#,
            )
            .await;
        assert_eq!(
            unlabelled,
            json!([]),
            "{name} ({path}): every input has a label"
        );

        let violations = self.axe().await;
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for v in violations.as_array().into_iter().flatten() {
            *counts
                .entry(v["impact"].as_str().unwrap_or("none").to_owned())
                .or_default() += 1;
        }
        let blocking: Vec<&Value> = violations
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .filter(|v| !allowed.contains(&v["id"].as_str().unwrap_or_default()))
            .collect();
        let summary = if counts.is_empty() {
            "no violations".to_owned()
        } else {
            let ids: Vec<String> = violations
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    format!(
                        "{} ({})",
                        v["id"].as_str().unwrap_or("?"),
                        v["impact"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            ids.join(", ")
        };
        self.report.lock().expect("report").push(format!(
            "{:>4} px  {:<28} {:<42} axe: {summary}",
            self.width,
            name,
            path.chars().take(42).collect::<String>()
        ));
        assert!(
            blocking.is_empty(),
            "{name} ({path}) at {} px: axe-core found serious or critical violations:\n{}",
            self.width,
            serde_json::to_string_pretty(&blocking).unwrap_or_default()
        );
    }

    /// axe-core's violations on the current page (its own copy, injected by the test).
    async fn axe(&self) -> Value {
        let loaded = self.js("return typeof window.axe !== 'undefined'").await;
        if loaded != json!(true) {
            self.client
                .execute(&self.axe, vec![])
                .await
                .expect("inject axe-core");
        }
        self.client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ['violations'] })
                  .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + (n.failureSummary || '')) }))))
                  .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));"#,
                vec![],
            )
            .await
            .expect("run axe-core")
    }
}

fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

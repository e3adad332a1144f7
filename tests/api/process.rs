//! The shop as a separate process, the way an operator runs it: for tests that read its logs
//! or kill it.

use crate::helpers::WEBHOOK_KEY;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The two-factor seed key every test server shares (several instances must).
pub const TOTP_KEY: &str = "process-test-totp-key-0123456789abcdef012345";

pub struct ServerProcess {
    child: Child,
    pub address: String,
    pub log: PathBuf,
    /// The instance's name, the prefix of its job workers' `locked_by` (`{instance}-{n}`).
    pub instance: String,
}

impl ServerProcess {
    /// Starts `coinfront serve` on a free port and waits until it serves.
    pub fn start(
        data_dir: &Path,
        database_url: &str,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::start_on(data_dir, database_url, log_name, env, 0)
    }

    /// Starts on a given port (0: any free port). A restarted shop keeps its address, as a
    /// real one does: the payment provider has its webhook URL.
    // The child moves into `ServerProcess`, whose `Drop` kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn start_on(
        data_dir: &Path,
        database_url: &str,
        log_name: &str,
        env: &[(&str, &str)],
        port: u16,
    ) -> ServerProcess {
        let log = data_dir.join(log_name);
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coinfront"));
        cmd.current_dir(data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("COINFRONT_BIND", format!("127.0.0.1:{port}"))
            .env("COINFRONT_DATA_DIR", data_dir.join("data"))
            .env("DATABASE_URL", database_url)
            .env(
                "COINFRONT_SECRETS__COOKIE_KEY",
                "process-test-cookie-key-0123456789abcdef",
            )
            .env("COINFRONT_SECRETS__WEBHOOK_SIGNING_KEY", WEBHOOK_KEY)
            .env("COINFRONT_SECRETS__TOTP_KEY", TOTP_KEY)
            .env(
                "COINFRONT_PAYMENTS__SANDBOX_BANK_TRANSFER_SETTLE_SECONDS",
                "0",
            )
            .env("COINFRONT_JOBS__POLL_INTERVAL_MS", "20")
            .env("COINFRONT_JOBS__BACKOFF_BASE_MS", "50")
            .env("COINFRONT_JOBS__BACKOFF_MAX_MS", "500");
        for action in [
            "checkout",
            "payment_attempt",
            "account_lookup",
            "order_lookup",
            "refund_request",
            "staff_login",
        ] {
            cmd.env(
                format!(
                    "COINFRONT_RATE_LIMITS__{}__PER_MINUTE",
                    action.to_uppercase()
                ),
                "100000",
            );
            cmd.env(
                format!("COINFRONT_RATE_LIMITS__{}__BURST", action.to_uppercase()),
                "100000",
            );
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start coinfront");
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("coinfront is serving")) {
                let addr = line
                    .split("address=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .expect("address in the log line");
                let instance = text
                    .lines()
                    .find(|l| l.contains("job workers started"))
                    .and_then(|l| l.split("instance=").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .map(|i| i.trim_matches('"').to_owned())
                    .unwrap_or_default();
                return ServerProcess {
                    child,
                    address: format!("http://{addr}"),
                    log,
                    instance,
                };
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("coinfront did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flushing, as in a power cut or an OOM kill.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

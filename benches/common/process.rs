//! The shop's release binary as a process of its own, so that what it uses (memory, CPU) is
//! its own and not the load generator's.

use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on now (the shop binds it a moment later).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peak resident memory of process `pid` so far, in MiB (Linux: `VmHWM`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) process `pid` has used so far, all its threads.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// `coinfront --config FILE serve`, its output (the access log included) in a file.
pub struct AppProcess {
    child: Child,
    pub base: String,
    log: std::path::PathBuf,
    stopped: bool,
}

impl AppProcess {
    /// Starts the binary with `config` alone: no `COINFRONT_*` or `DATABASE_URL` from this
    /// environment, and a working folder without a `coinfront.toml`.
    pub fn start(
        bin: &Path,
        config: &Path,
        port: u16,
        dir: &Path,
        log: &Path,
    ) -> anyhow::Result<AppProcess> {
        let out = std::fs::File::create(log)?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("COINFRONT_") || k == "DATABASE_URL" {
                cmd.env_remove(&key);
            }
        }
        let child = cmd
            .arg("--config")
            .arg(config)
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(AppProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200 (the migrations have run).
    pub async fn ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return Ok(started.elapsed());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the shop exited ({status}) before it was ready:\n{}",
                    self.log_tail(20)
                );
            }
            if started.elapsed() > within {
                bail!(
                    "the shop was not ready within {} s:\n{}",
                    within.as_secs(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last `n` lines of its output.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGTERM (the shop finishes in-flight requests and stops its workers), then waits up to
    /// `grace` before killing it. True when it exited by itself.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if self.stopped {
            return true;
        }
        self.stopped = true;
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

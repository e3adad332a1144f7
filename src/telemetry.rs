//! Structured logs with `tracing`: human-readable by default, JSON for log collectors.
//!
//! Lines go to standard output through a writer thread (`tracing_appender::non_blocking`), so
//! a request never waits on a slow terminal or pipe to log its access line. The writer is not
//! lossy: when its queue is full, logging waits rather than dropping lines. `flush` writes
//! what is queued before the process exits.
//!
//! A malformed request is the client's problem, not the shop's: actix's HTTP/1 dispatcher
//! reports each one as an ERROR ("stream error: …"), so scanners and fuzzers would bury real
//! errors. Those events are counted (`coinfront_malformed_requests_total` in `/metrics`) and
//! logged again at DEBUG instead.

use crate::config::LogFormat;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub const DEFAULT_FILTER: &str = "info,sqlx=warn,actix_server=warn";

static MALFORMED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The log writer thread's guard: dropping it writes out the queue and ends the thread.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Malformed HTTP requests this process refused since it started.
pub fn malformed_requests() -> u64 {
    MALFORMED_REQUESTS.load(Ordering::Relaxed)
}

/// Whether an event is actix reporting a connection that sent malformed HTTP.
fn is_malformed_request(event: &Event<'_>) -> bool {
    let meta = event.metadata();
    if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::h1") {
        return false;
    }
    let mut message = Message(String::new());
    event.record(&mut message);
    message.0.starts_with("stream error")
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Turns actix's ERROR for a malformed request into a counted DEBUG line.
pub struct MalformedRequests;

impl<S: Subscriber> Layer<S> for MalformedRequests {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        if !is_malformed_request(event) {
            return true;
        }
        MALFORMED_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let mut message = Message(String::new());
        event.record(&mut message);
        tracing::debug!(target: "coinfront::http", detail = %message.0, "malformed request refused");
        false
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("COINFRONT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("coinfront-log")
        .finish(std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(MalformedRequests);
    // try_init: tests may start several apps in one process; only the first one's writer is
    // kept (a later one's is dropped, ending its unused thread).
    let installed = match format {
        LogFormat::Json => registry.with(fmt.json()).try_init(),
        LogFormat::Pretty => registry.with(fmt).try_init(),
    };
    if installed.is_ok() {
        if let Ok(mut slot) = WRITER.lock() {
            *slot = Some(guard);
        }
    }
}

/// Writes out the queued log lines; call before the process exits.
pub fn flush() {
    if let Ok(mut slot) = WRITER.lock() {
        slot.take();
    }
}

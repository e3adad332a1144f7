//! This process's own metrics, kept in memory with `prometheus-client` and served on
//! `/metrics` (`store::metrics`): HTTP requests by route pattern and status with their latency,
//! job runs by kind and outcome with their duration, lost job leases. Every series carries the
//! `instance` label (`metrics.instance`), and the numbers are this process's alone, so a sum
//! over instances is the shop's total.
//!
//! The shop-wide numbers read from the database (orders, the job queue, emails waiting,
//! screening, disputes) are the same whichever instance is asked; they are built at each scrape
//! of `/metrics/shop`, which is scraped once (through the load balancer), never per instance,
//! so they are never multiplied by the number of instances.

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::time::Duration;

/// Every metric name starts with this.
pub const PREFIX: &str = "coinfront";

/// HTTP latency buckets, in seconds: 1 ms to 10 s.
const HTTP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Job run buckets, in seconds: 5 ms to 5 minutes (a supplier or SMTP call may be slow).
const JOB_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    /// The route's pattern (`/orders/{token}`), never the path: a path would put tokens in
    /// the metrics and let any client add series.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: &'static str,
    /// `done`, `retry` or `dead`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

/// The method as a label: the standard ones by name, anything else as `other` (a client
/// chooses the method, and must not be able to add series).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// This process's metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    instance: String,
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    job_runs: Family<JobLabels, Counter>,
    job_duration: HistogramFamily<KindLabels>,
    job_leases_lost: Counter,
}

impl Metrics {
    /// Metrics labelled `instance = {instance}`.
    pub fn new(instance: &str) -> Metrics {
        let mut registry = Registry::with_prefix_and_labels(
            PREFIX,
            [(Cow::Borrowed("instance"), Cow::Owned(instance.to_owned()))].into_iter(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests this instance answered, by method, route pattern and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response, by method and route pattern",
            prometheus_client::registry::Unit::Seconds,
            http_duration.clone(),
        );
        let job_runs = Family::<JobLabels, Counter>::default();
        registry.register(
            "job_runs",
            "Job runs on this instance, by kind and outcome (done, retry, dead)",
            job_runs.clone(),
        );
        let job_duration: HistogramFamily<KindLabels> = Family::new_with_constructor(job_histogram);
        registry.register_with_unit(
            "job_run_duration",
            "Time a job run took on this instance, by kind",
            prometheus_client::registry::Unit::Seconds,
            job_duration.clone(),
        );
        let job_leases_lost = Counter::default();
        registry.register(
            "job_leases_lost",
            "Job runs this instance stopped because another worker took the job (its lease \
             had run out)",
            job_leases_lost.clone(),
        );
        Metrics {
            job_leases_lost,
            instance: instance.to_owned(),
            registry,
            http_requests,
            http_duration,
            job_runs,
            job_duration,
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// One answered request. `route` is the matched pattern, or `None` for no route (404).
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16, took: Duration) {
        let method = method_label(method);
        let route = route.unwrap_or("unmatched").to_owned();
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// One job run and how it ended.
    pub fn job_run(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.job_runs
            .get_or_create(&JobLabels { kind, outcome })
            .inc();
        self.job_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// A job run this worker stopped because another worker took the job (its lease had run
    /// out); the other worker's run is the one that counts.
    pub fn job_lease_lost(&self) {
        self.job_leases_lost.inc();
    }

    /// How many runs this instance stopped because their lease was lost.
    pub fn job_leases_lost(&self) -> u64 {
        self.job_leases_lost.get()
    }

    /// A registry for numbers read at scrape time, with this instance's prefix and label.
    pub fn scrape_registry(&self) -> Registry {
        Registry::with_prefix_and_labels(
            PREFIX,
            [(Cow::Borrowed("instance"), Cow::Owned(self.instance.clone()))].into_iter(),
        )
    }

    /// The OpenMetrics text of these metrics and of `at_scrape` (built by the caller for this
    /// scrape).
    pub fn encode(&self, at_scrape: &Registry) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, at_scrape))
            .and_then(|()| encode_eof(&mut out));
        out
    }
}

/// A registry of shop-wide numbers: the prefix, no `instance` label.
pub fn shop_registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// The OpenMetrics text of a shop-wide registry.
pub fn encode_shop(registry: &Registry) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The default `instance` label: this host's name and the port the shop listens on.
pub fn default_instance(port: u16) -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_jobs_are_counted_with_the_instance_label() {
        let m = Metrics::new("shop-1:8080");
        m.http_request(
            "GET",
            Some("/orders/{token}"),
            200,
            Duration::from_millis(3),
        );
        m.http_request("BREW", None, 404, Duration::from_millis(1));
        m.job_run("send_email", "done", Duration::from_millis(40));
        let text = m.encode(&m.scrape_registry());
        assert!(text.contains(
            "coinfront_http_requests_total{instance=\"shop-1:8080\",method=\"GET\",route=\"/orders/{token}\",status=\"200\"} 1"
        ), "{text}");
        assert!(
            text.contains("method=\"other\",route=\"unmatched\",status=\"404\""),
            "{text}"
        );
        // 3 ms: not in the 2.5 ms bucket, in the 5 ms one.
        for (le, n) in [("0.0025", 0), ("0.005", 1)] {
            assert!(text.contains(&format!(
                "coinfront_http_request_duration_seconds_bucket{{instance=\"shop-1:8080\",le=\"{le}\",method=\"GET\",route=\"/orders/{{token}}\"}} {n}"
            )), "{text}");
        }
        assert!(text.contains("coinfront_job_runs_total{instance=\"shop-1:8080\",kind=\"send_email\",outcome=\"done\"} 1"), "{text}");
        assert!(
            text.contains("coinfront_job_leases_lost_total{instance=\"shop-1:8080\"} 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}

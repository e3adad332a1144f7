//! Building the application: database, state, HTTP server and background workers. Tests and
//! the binary start the shop the same way: `Application::build(settings, clock)`, then
//! `run_until_stopped()`.

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::db::Db;
use crate::fulfillment::sandbox::SandboxSupplier;
use crate::live_settings::LiveSettings;
use crate::payments::sandbox::SandboxProvider;
use crate::payments::stripe::StripeProvider;
use crate::payments::PaymentProvider;
use crate::secrets::Secrets;
use crate::services::Services;
use crate::web::client_ip::TrustedProxies;
use crate::web::csrf::CsrfKey;
use crate::web::middleware::HstsPolicy;
use crate::web::rate_limit::RateLimits;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The HTTP state, named here too because tests and benches reach it through `Application`.
pub use crate::web::state::AppState;

pub struct Application {
    /// A SQLite database's shared lock (`db::lock`), held while the shop runs: a restore
    /// cannot replace the file under it.
    _db_lock: Option<crate::db::lock::DatabaseLock>,
    port: u16,
    server: Server,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Application> {
        settings.validate()?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data_dir {}", settings.data_dir.display()))?;
        let secrets = Secrets::load_or_generate(&settings)?;
        let mailer = crate::mail::Mailer::from_settings(&settings)?;
        let db_lock = crate::db::sqlite_path(&settings.database_url())
            .map(|path| crate::db::lock::DatabaseLock::shared(std::path::Path::new(path)))
            .transpose()?;
        let db = Db::connect(&settings.database_url(), settings.db_max_connections)
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("running database migrations")?;
        if (settings.db_max_connections as usize) < settings.jobs.workers * 3 / 2 {
            tracing::warn!(
                db_max_connections = settings.db_max_connections,
                job_workers = settings.jobs.workers,
                "the connection pool is hardly larger than the job workers, who hold one each while they work: under load, web requests will wait behind the queue"
            );
        }
        let live = LiveSettings::load(&db, &settings)
            .await
            .context("loading the live settings")?;

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let base_url = base_url(&settings, addr);
        tracing::info!(
            backend = ?db.backend(),
            risk = ?live.current().risk,
            "effective risk rules and thresholds"
        );

        let jobs_ready = Arc::new(Notify::new());
        let providers = Providers::new(&settings, &db, &clock, &secrets, &base_url, &jobs_ready)?;
        let supplier = Arc::new(SandboxSupplier::new(
            db.clone(),
            clock.clone(),
            settings.supplier.sandbox_delay_ms,
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("coinfront/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let limits = RateLimits::new(&settings.rate_limits, &db, clock.clone());
        tracing::info!(store = ?limits.store(), "rate limits");
        let services = Arc::new(Services {
            live,
            db,
            clock,
            base_url,
            secrets,
            provider: providers.provider,
            sandbox: providers.sandbox,
            stripe: providers.stripe,
            supplier,
            mailer,
            http,
            jobs_ready,
            surge: Default::default(),
            metrics: crate::metrics::Metrics::new(
                &settings
                    .metrics
                    .instance
                    .clone()
                    .unwrap_or_else(|| crate::metrics::default_instance(addr.port())),
            ),
            settings,
        });
        let state = Arc::new(AppState {
            services: services.clone(),
            limits,
        });
        crate::console::on_start(&state)
            .await
            .context("preparing the console")?;
        let server = build_server(listener, state.clone())?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let background = spawn_background(state.clone(), shutdown_rx);
        tracing::info!(address = %addr, url = %state.base_url, "coinfront is serving");
        Ok(Application {
            _db_lock: db_lock,
            port: addr.port(),
            server,
            state,
            shutdown,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops (SIGTERM or Ctrl-C in the binary: in-flight requests
    /// finish first), then stops the background workers and waits for them.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for task in self.background {
            let _ = task.await;
        }
        self.state.db.close().await;
        tracing::info!("coinfront stopped");
        Ok(result?)
    }
}

/// The shop's own address for links and webhooks: `public_base_url`, else the bound address.
fn base_url(settings: &Settings, addr: std::net::SocketAddr) -> String {
    let scheme = if settings.http.tls() { "https" } else { "http" };
    settings
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"))
        .trim_end_matches('/')
        .to_owned()
}

/// The payment provider in use, and the concrete one behind it for its own routes. The
/// sandbox is the provider unless Stripe is configured (then its pages are off).
struct Providers {
    provider: Arc<dyn PaymentProvider>,
    sandbox: Option<Arc<SandboxProvider>>,
    stripe: Option<Arc<StripeProvider>>,
}

impl Providers {
    fn new(
        settings: &Settings,
        db: &Db,
        clock: &SharedClock,
        secrets: &Secrets,
        base_url: &str,
        jobs_ready: &Arc<Notify>,
    ) -> anyhow::Result<Providers> {
        if settings.payments.provider == "stripe" {
            let stripe = Arc::new(StripeProvider::new(
                &settings.payments.stripe,
                settings.payments.webhook_tolerance_seconds,
                base_url.to_owned(),
            )?);
            tracing::info!(
                live = stripe.live_mode(),
                api = %settings.payments.stripe.api_base,
                "payments go through Stripe"
            );
            return Ok(Providers {
                provider: stripe.clone(),
                sandbox: None,
                stripe: Some(stripe),
            });
        }
        let sandbox = Arc::new(SandboxProvider::new(
            db.clone(),
            clock.clone(),
            secrets.webhook_signing_key.clone(),
            base_url.to_owned(),
            &settings.payments,
            jobs_ready.clone(),
        ));
        Ok(Providers {
            provider: sandbox.clone(),
            sandbox: Some(sandbox),
            stripe: None,
        })
    }
}

fn build_server(listener: TcpListener, state: Arc<AppState>) -> anyhow::Result<Server> {
    let data = web::Data::from(state.clone());
    // The services on their own too, for the plumbing below the HTTP state (the metrics).
    let services = web::Data::from(state.services.clone());
    let csrf_key = web::Data::new(CsrfKey(
        state.secrets.cookie_key.clone(),
        state.cookie_policy(),
    ));
    let hsts = web::Data::new(HstsPolicy(state.settings.http.effective_hsts()));
    let csp = web::Data::new(
        crate::web::middleware::ContentSecurityPolicy::with_form_action(
            state.provider.checkout_origin(),
        ),
    );
    let proxies = web::Data::new(TrustedProxies {
        proxies: state.settings.http.trusted_proxies.clone(),
        header: state.settings.http.client_ip_header.clone(),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(services.clone())
            .app_data(csrf_key.clone())
            .app_data(hsts.clone())
            .app_data(csp.clone())
            .app_data(proxies.clone())
            .wrap(from_fn(crate::web::middleware::head_as_get))
            .wrap(from_fn(crate::web::csrf::csrf_cookie))
            .wrap(from_fn(crate::web::middleware::security_headers))
            .wrap(from_fn(crate::web::middleware::request_id))
            .configure(crate::console::routes)
            .configure(crate::store::routes)
            .default_service(web::to(crate::store::not_found))
    })
    .shutdown_timeout(10);
    server = match tls_config(&state.settings.http)? {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    if let Some(workers) = state.settings.http.workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.run())
}

/// Built-in HTTPS from the configured PEM files.
pub fn tls_config(
    http: &crate::config::HttpSettings,
) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&http.tls_cert, &http.tls_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("http.tls_cert: reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "http.tls_cert: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "http.tls_key: reading a PEM private key from {}",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("http.tls_cert / http.tls_key do not match")?;
    Ok(Some(config))
}

fn spawn_background(
    state: Arc<AppState>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = crate::workers::spawn(state.services.clone(), shutdown.clone());
    tasks.push(tokio::spawn(forget_idle_limits(state, shutdown)));
    tasks
}

/// Every minute, drops the rate limits' state of clients gone quiet (memory, or the shared
/// table, stays bounded).
async fn forget_idle_limits(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = state.limits.forget_idle().await {
            tracing::warn!(error = %e, "could not prune the shared rate limits");
        }
    }
}

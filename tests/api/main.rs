//! Black-box tests over real HTTP: the app on a random port with a fresh database per test
//! (a temporary SQLite file, or a new PostgreSQL database when TEST_POSTGRES_URL is set).

mod helpers;

mod admin;
mod admin_rules;
mod backtest;
mod backup;
mod buyer_checks;
mod card_data;
mod catalog;
mod checkout;
mod console;
mod crash;
mod digests;
mod edge_security;
mod fulfillment;
mod health;
mod https;
mod instances;
mod leases;
mod mail;
mod metrics;
mod pages;
mod payment_methods;
mod payments;
mod process;
mod rate_limits;
mod refunds;
mod retention;
mod risk;
mod screening;
mod staff_security;
mod startup_config;
mod stripe;
mod stripe_fake;
mod support;

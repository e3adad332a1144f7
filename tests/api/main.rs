//! Black-box tests over real HTTP: the app on a random port with a fresh database per test
//! (a temporary SQLite file, or a new PostgreSQL database when TEST_POSTGRES_URL is set).

mod helpers;

mod catalog;
mod checkout;
mod health;
mod mail;
mod startup_config;

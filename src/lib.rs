//! coinfront: a self-hosted storefront for topping up TikTok coins by username, with fraud
//! screening before anything is delivered. The README's Layout table is the map of modules.

pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod domain;
pub mod fulfillment;
pub mod jobs;
pub mod live_settings;
pub mod mail;
pub mod metrics;
pub mod orders;
pub mod payments;
pub mod retention;
pub mod risk;
pub mod secrets;
pub mod services;
pub mod staff;
pub mod staff_digest;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod workers;

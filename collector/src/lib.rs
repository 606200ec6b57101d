//! fleetdeck-collector: polls and subscribes to Fleetdeck agents, keeps gap-free history in
//! SQLite, alerts to webhooks and serves the desktop.
//!
//! [`config`] is `collector.toml`; [`store`] the database (schema in `migrations/`); [`poll`] and
//! [`subscribe`] talk to agents through [`agent_client`], reading every answer with the caps of
//! [`bounded`]; [`alerting`] detects and delivers alerts;
//! [`uptime`] is the uptime arithmetic; [`api`] serves it all; [`demo`] runs a simulated fleet;
//! [`discover`] finds agents on the tailnet; [`run`] is the binary's edge.

#![forbid(unsafe_code)]

/// jemalloc, not glibc's malloc: with many threads (the runtime, blocking database calls) glibc's
/// per-thread arenas keep freed memory fragmented and a long-running collector's RSS creeps up;
/// jemalloc returns pages unused for 10 s (its background thread, turned on in
/// [`telemetry::tune_allocator`]) and says what it holds (`GET /metrics`). docs/benchmarks.md
/// has the soak that chose it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod agent_client;
pub mod alerting;
pub mod api;
pub mod bounded;
pub mod care;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod discover;
pub mod exposition;
pub mod join;
pub mod poll;
pub mod reload;
pub mod run;
pub mod silence_cli;
pub mod store;
pub mod subscribe;
pub mod telemetry;
pub mod uptime;

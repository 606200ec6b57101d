//! fleetdeck-collector (being written).

#![forbid(unsafe_code)]

pub mod alerting;
pub mod discover;
pub mod uptime;

//! What the agent and the collector share at their edge: [`listen`], the bind policy (loopback and
//! Tailscale only unless told otherwise), [`secret`], tokens read from files of mode 0600, and
//! [`serve`], tracing, binding, serving a router and stopping on a signal; [`http`], the API pieces
//! both answer alike; [`toml_text`], strings for config tables they print.

#![forbid(unsafe_code)]

pub mod caps;
pub mod http;
pub mod listen;
pub mod secret;
pub mod serve;
pub mod toml_text;

/// Addresses, certificate pins and TLS files, shared with the desktop.
pub use fleetdeck_transport as transport;

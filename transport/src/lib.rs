//! How Fleetdeck's programs reach each other safely, shared by the daemons and the desktop:
//! [`addr`], which addresses are private to the operator (loopback, the tailnet); [`pin`], a
//! certificate pinned by its SHA-256 fingerprint and the rustls client config that trusts exactly
//! it; [`server`], a rustls server config from the PEM files `tls_cert` and `tls_key` name.

#![forbid(unsafe_code)]

pub mod addr;
pub mod pin;
pub mod server;

/// The one crypto provider every Fleetdeck TLS config uses (ring: it builds for static musl).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

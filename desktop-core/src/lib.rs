//! The Fleetdeck desktop's logic in plain Rust, without Tauri, so it is tested natively: the Tauri
//! commands, tray and notifications in `src-tauri` are thin adapters over it.
//!
//! [`client`] talks to a collector (typed calls, SSE streams, errors a person can act on);
//! [`keys`] keeps API keys in the OS keyring and [`settings`] the rest on disk; [`follow`] and
//! [`watch`] keep a collector's fleet and events current; [`notice`] and [`tray`] decide what the
//! operator is told.

pub mod client;
pub mod follow;
pub mod keys;
pub mod notice;
pub mod settings;
pub mod tray;
pub mod watch;

pub use client::{ApiKey, CollectorClient};
pub use follow::{follow_events, StreamUpdate};
pub use keys::{KeyStore, KeyringStore, MemoryKeyStore};
pub use notice::{notice_for, Notice, Notifier};
pub use settings::{SavedCollector, Settings};
pub use tray::{tray_state, CollectorView};
pub use watch::{WatchKind, WatchUpdate, Watcher};

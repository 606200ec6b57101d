//! Fleetdeck's desktop views (Yew, wasm32), a pure view over typed Tauri commands.
//!
//! `api` is the one module that talks to the backend; `state` (with `logbuf` and `env_edit`) is
//! the UI state as a reducer, pure and tested natively; `root` is the window, `views/` one file per
//! screen, `components/` the shared pieces, `format` how figures read.

pub mod api;
pub mod components;
pub mod env_edit;
pub mod format;
pub mod logbuf;
pub mod palette;
pub mod root;
pub mod search;
pub mod state;
pub mod views;

/// Mounts the UI on the page's body.
pub fn run() {
    yew::Renderer::<root::Root>::new().render();
}

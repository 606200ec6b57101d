//! The webview's entry point: mounts the Yew app (built by trunk for wasm32).

fn main() {
    fleetdeck_ui::run();
}

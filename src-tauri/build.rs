fn main() {
    // tauri.conf.json sits at the repo root, beside the thin root package the Tauri CLI needs.
    tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
        .expect("tauri-build failed: check ../tauri.conf.json");
}

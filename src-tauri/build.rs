/// Every command of `commands::handler()`. With an app manifest, Tauri refuses any app command
/// the window's capability does not allow (`allow-<command>` in capabilities/default.json), so a
/// new command must be added here and there, on purpose.
const COMMANDS: &[&str] = &[
    "list_collectors",
    "add_collector",
    "remove_collector",
    "fleet",
    "host",
    "metrics",
    "app_metrics",
    "uptime",
    "events",
    "logs_page",
    "logs_follow",
    "logs_search",
    "logs_stop",
    "env_get",
    "env_save",
    "env_backups",
    "env_backup",
    "env_restore",
    "action",
    "alerts",
    "alert_ack",
    "silences",
    "silence_add",
    "silence_remove",
    "settings",
    "set_dnd",
    "update_settings",
    "keys_list",
    "key_create",
    "key_delete",
    "audit",
    "tray_state",
    "first_paint",
];

fn main() {
    // tauri.conf.json sits at the repo root, beside the thin root package the Tauri CLI needs.
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .config_path("../tauri.conf.json")
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed: check ../tauri.conf.json and capabilities/");
}

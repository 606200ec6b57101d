//! The desktop's settings file (`settings.json`): the collectors (name and URL; their keys are in
//! the OS keyring), do-not-disturb, the theme and the last view. Written atomically with mode
//! 0600.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use fleetdeck_proto::desktop::{CommandError, SavedView, Theme};
use serde::{Deserialize, Serialize};

/// The file's name in the config directory.
pub const FILE_NAME: &str = "settings.json";
/// The longest collector name.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub collectors: Vec<SavedCollector>,
    /// Do not disturb: no notifications while on.
    pub dnd: bool,
    pub theme: Theme,
    /// The view the window showed last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_view: Option<SavedView>,
}

/// A collector as saved: never its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedCollector {
    pub name: String,
    pub url: String,
    /// The same collector's other addresses (its standbys on a shared PostgreSQL database),
    /// tried in order when `url` cannot be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_urls: Vec<String>,
    /// The collector's certificate pin (`sha256:...`), when it serves HTTPS with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

/// A URL field as typed: one collector's addresses, separated by commas (a leader and its
/// standbys); the first is the one used first. Only commas separate: a field with spaces in
/// it stays whole, so its error names what was typed.
pub fn split_urls(field: &str) -> (String, Vec<String>) {
    let mut all = field
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let first = all.next().unwrap_or_default();
    (first, all.collect())
}

fn settings_error(message: String) -> CommandError {
    CommandError::new("settings", message)
}

impl Settings {
    /// Reads the settings at `path`; defaults (no collectors) when the file does not exist.
    pub fn load(path: &Path) -> Result<Self, CommandError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(settings_error(format!(
                    "Cannot read the settings file {}: {e}. Check its permissions.",
                    path.display()
                )))
            }
        };
        serde_json::from_str(&text).map_err(|e| {
            settings_error(format!(
                "The settings file {} is not valid ({e}). Fix it, or move it away to start with \
                 no collectors (their keys stay in the OS keyring).",
                path.display()
            ))
        })
    }

    /// Writes the settings to `path` atomically (a temporary file in the same directory, then a
    /// rename), mode 0600; creates the directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), CommandError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            settings_error(format!(
                "Cannot save the settings to {}: {what}: {e}. Check that the directory is \
                 writable and the disk not full.",
                path.display()
            ))
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        create_private_dir(dir).map_err(|e| fail("cannot create its directory", &e))?;
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| fail("cannot serialize them", &e))?;
        text.push('\n');
        // NamedTempFile is created with mode 0600, which the rename keeps.
        let mut file = tempfile::Builder::new()
            .prefix(".settings-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| fail("cannot create a temporary file", &e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| fail("cannot write", &e))?;
        set_private(file.path()).map_err(|e| fail("cannot set its mode", &e))?;
        file.persist(path)
            .map_err(|e| fail("cannot replace the file", &e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn set_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Where the settings file is: `$FLEETDECK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/fleetdeck`, else
/// `~/.config/fleetdeck` (on Windows and macOS, the OS's per-user configuration directory:
/// `%APPDATA%\fleetdeck`, `~/Library/Application Support/fleetdeck`); the file is
/// `settings.json`.
pub fn default_path() -> PathBuf {
    #[cfg(all(unix, not(target_os = "macos")))]
    let dir = config_dir(
        std::env::var_os("FLEETDECK_CONFIG_DIR"),
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let dir = std::env::var_os("FLEETDECK_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("fleetdeck")))
        .unwrap_or_else(|| PathBuf::from("fleetdeck"));
    dir.join(FILE_NAME)
}

/// The config directory from those three variables (empty ones count as unset; XDG requires
/// `XDG_CONFIG_HOME` to be absolute, else it is ignored).
pub fn config_dir(
    fleetdeck: Option<OsString>,
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(fleetdeck) {
        return dir;
    }
    if let Some(dir) = set(xdg_config_home).filter(|d| d.is_absolute()) {
        return dir.join("fleetdeck");
    }
    set(home)
        .unwrap_or_default()
        .join(".config")
        .join("fleetdeck")
}

/// Checks a new collector's name: 1 to 64 characters, letters, digits, spaces, `-`, `_` and `.`,
/// no space at either end, and not the name of one of `existing` (ignoring case).
pub fn validate_name(name: &str, existing: &[SavedCollector]) -> Result<(), CommandError> {
    let invalid = |why: String| CommandError::new("invalid_input", why);
    let chars = name.chars().count();
    if chars == 0 {
        return Err(invalid(
            "The collector needs a name, e.g. \"home\" or \"prod eu\".".into(),
        ));
    }
    if chars > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "The collector's name is {chars} characters long: use at most {MAX_NAME_CHARS}."
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.')))
    {
        return Err(invalid(format!(
            "The collector's name \"{name}\" contains {bad:?}: use letters, digits, spaces, -, _ and . only."
        )));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(invalid(format!(
            "The collector's name \"{name}\" starts or ends with a space: remove it."
        )));
    }
    if let Some(same) = existing
        .iter()
        .find(|c| c.name.to_lowercase() == name.to_lowercase())
    {
        return Err(invalid(format!(
            "There is already a collector named \"{}\" ({}): choose another name, or remove that one first.",
            same.name, same.url
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(name: &str) -> SavedCollector {
        SavedCollector {
            name: name.into(),
            url: format!("http://{name}.example:7080"),
            standby_urls: Vec::new(),
            tls_fingerprint: None,
        }
    }

    fn sample() -> Settings {
        Settings {
            collectors: vec![
                saved("home"),
                SavedCollector {
                    name: "prod eu".into(),
                    url: "https://10.0.0.5:7080".into(),
                    standby_urls: vec!["https://10.0.0.6:7080".into()],
                    tls_fingerprint: Some(format!("sha256:{}", "ab".repeat(32))),
                },
            ],
            dnd: true,
            theme: Theme::Light,
            last_view: Some(SavedView::App {
                collector: "home".into(),
                host: "web-1".into(),
                app: "api".into(),
            }),
        }
    }

    #[test]
    fn a_url_field_splits_into_the_first_address_and_its_standbys() {
        assert_eq!(
            split_urls(" https://a:7080, https://b:7080  ,https://c:7080 ,"),
            (
                "https://a:7080".to_owned(),
                vec!["https://b:7080".to_owned(), "https://c:7080".to_owned()]
            )
        );
        assert_eq!(
            split_urls("http://one:7080"),
            ("http://one:7080".to_owned(), vec![])
        );
        assert_eq!(split_urls(" , "), (String::new(), vec![]));
        assert_eq!(
            split_urls("not a url"),
            ("not a url".to_owned(), vec![]),
            "spaces do not separate: the error names the whole field"
        );
    }

    #[test]
    fn a_standby_list_round_trips_and_an_old_file_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("settings.json");
        sample().save(&path).expect("save");
        assert_eq!(Settings::load(&path).expect("load"), sample());
        std::fs::write(
            &path,
            r#"{"collectors":[{"name":"old","url":"http://old:7080"}],"dnd":false}"#,
        )
        .expect("write");
        let old = Settings::load(&path).expect("an older file still loads");
        assert!(old.collectors[0].standby_urls.is_empty());
        assert_eq!((old.theme, old.last_view), (Theme::System, None));
    }

    #[test]
    fn a_missing_file_is_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loaded = Settings::load(&dir.path().join("nope.json")).expect("load");
        assert_eq!(loaded, Settings::default());
        assert!(loaded.collectors.is_empty() && !loaded.dnd);
    }

    #[test]
    fn save_then_load_round_trips_creating_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/settings.json");
        sample().save(&path).expect("save");
        assert_eq!(Settings::load(&path).expect("load"), sample());
        // Saving again replaces the file, and leaves no temporary file behind.
        let mut next = sample();
        next.dnd = false;
        next.collectors.pop();
        next.save(&path).expect("save again");
        assert_eq!(Settings::load(&path).expect("load"), next);
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("settings.json")]);
    }

    #[test]
    fn the_file_holds_no_key_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("settings.json");
        sample().save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("key"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("conf/settings.json");
        sample().save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
        let dir_mode = std::fs::metadata(path.parent().expect("parent"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o077, 0, "dir mode {:o}", dir_mode & 0o777);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in [
            "{\"collectors\": [",
            "42",
            "{\"collectors\": [], \"theme\": 1}",
            "",
        ] {
            let path = dir.path().join("settings.json");
            std::fs::write(&path, text).expect("write");
            let e = Settings::load(&path).expect_err(text);
            assert_eq!(e.code, "settings", "{text}");
            assert!(
                e.message.contains(&path.display().to_string()),
                "{}",
                e.message
            );
            assert!(e.message.contains("move it away"), "{}", e.message);
        }
        // The unknown key is named.
        std::fs::write(dir.path().join("s.json"), "{\"colour\": 1}").expect("write");
        let e = Settings::load(&dir.path().join("s.json")).expect_err("unknown key");
        assert!(e.message.contains("colour"), "{}", e.message);
    }

    #[test]
    fn a_file_without_every_field_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("settings.json");
        std::fs::write(&path, "{\"dnd\": true}").expect("write");
        let loaded = Settings::load(&path).expect("load");
        assert!(loaded.dnd && loaded.collectors.is_empty());
    }

    #[test]
    fn config_dir_precedence() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            config_dir(os("/etc/fd"), os("/x"), os("/home/a")),
            PathBuf::from("/etc/fd")
        );
        assert_eq!(
            config_dir(None, os("/x"), os("/home/a")),
            PathBuf::from("/x/fleetdeck")
        );
        assert_eq!(
            config_dir(os(""), os(""), os("/home/a")),
            PathBuf::from("/home/a/.config/fleetdeck")
        );
        assert_eq!(
            config_dir(None, os("relative"), os("/home/a")),
            PathBuf::from("/home/a/.config/fleetdeck")
        );
        assert!(default_path().ends_with("settings.json"));
    }

    #[test]
    fn names() {
        let existing = [saved("home"), saved("prod eu")];
        for ok in [
            "lab",
            "prod-us_2.b",
            "Ünïcode",
            "a",
            &"x".repeat(64),
            "staging eu",
        ] {
            assert_eq!(validate_name(ok, &existing), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a/b",
            "tab\there",
            "semi;colon",
            " lead",
            "trail ",
            "home",
            "HOME",
            "Prod EU",
        ] {
            let e = validate_name(bad, &existing).expect_err(bad);
            assert_eq!(e.code, "invalid_input", "{bad:?}");
            assert!(!e.message.is_empty());
        }
        let e = validate_name("Home", &existing).expect_err("taken");
        assert!(e.message.contains("already"), "{}", e.message);
    }
}

//! `fleetdeck-agent suggest`: `[[apps]]` tables for what runs on the host, to check and paste
//! into agent.toml, and the unit drop-in that lets the agent write their `.env` files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::scan::Survey;
use super::{found_container, found_unit, unique_name, COMPOSE_PROJECT, COMPOSE_SERVICE};
use crate::config::{AppConfig, AppSource, Config};
use fleetdeck_daemon::toml_text::basic_string as quoted;

/// Where the drop-in goes on a host installed by install.sh.
pub const DROP_IN: &str = "/etc/systemd/system/fleetdeck-agent.service.d/env-files.conf";

/// The stanzas for what `survey` found that `config` (the agent.toml there is, if any) does not
/// list yet, then what could not be asked, then the drop-in for every `.env` directory.
pub fn render(survey: &Survey, config: Option<&Config>, hostname: &str) -> String {
    let listed: &[AppConfig] = config.map_or(&[], |c| &c.apps);
    let mut out = format!(
        "# fleetdeck-agent suggest on {hostname}: the apps that run here, as [[apps]] tables for\n\
         # agent.toml. Check each and keep those to watch; actions stay off until you set\n\
         # allow_actions = true. Then reload the agent: systemctl reload fleetdeck-agent\n"
    );
    let mut names: BTreeSet<String> = listed.iter().map(|a| a.name.to_string()).collect();
    let mut env_dirs: BTreeSet<String> = listed
        .iter()
        .filter_map(|a| a.env_file.as_deref()?.parent().map(path_text))
        .collect();
    let mut add = |mut app: AppConfig, about: String, out: &mut String| {
        if listed.iter().any(|l| l.source == app.source) {
            return;
        }
        app.name = unique_name(&app.name, |n| names.contains(n));
        names.insert(app.name.to_string());
        if let Some(dir) = app.env_file.as_deref().and_then(Path::parent) {
            env_dirs.insert(path_text(dir));
        }
        out.push('\n');
        out.push_str(&stanza(&app, &about));
    };
    let mut found = String::new();
    match &survey.units {
        Ok(units) => {
            for unit in units {
                let mut about = format!("unit {}", unit.name);
                let facts: Vec<&str> = [
                    unit.origin.fragment_path.as_deref(),
                    unit.origin.unit_file_state.as_deref(),
                    unit.origin.active_state.as_deref(),
                ]
                .into_iter()
                .flatten()
                .filter(|f| !f.is_empty())
                .collect();
                if !facts.is_empty() {
                    let _ = write!(about, " ({})", facts.join(", "));
                }
                add(found_unit(unit), about, &mut found);
            }
        }
        Err(e) => {
            let _ = write!(found, "\n# systemd could not be asked: {}\n", one_line(e));
        }
    }
    match &survey.containers {
        Ok(containers) => {
            for c in containers {
                let mut about = format!("container {}", c.name);
                if let (Some(project), Some(service)) =
                    (c.labels.get(COMPOSE_PROJECT), c.labels.get(COMPOSE_SERVICE))
                {
                    let _ = write!(about, " (compose project {project}, service {service})");
                }
                add(found_container(c), about, &mut found);
            }
        }
        Err(e) => {
            let _ = write!(found, "\n# Docker could not be asked: {}\n", one_line(e));
        }
    }
    if found.is_empty() {
        out.push_str(if config.is_some() {
            "\n# Nothing runs here that agent.toml does not list already.\n"
        } else {
            "\n# Nothing to suggest: no service outside the distribution's own and no container runs here.\n"
        });
    }
    out.push_str(&found);
    out.push_str(&drop_in_comment(&env_dirs));
    out
}

/// One `[[apps]]` table, after a comment saying what it watches.
fn stanza(app: &AppConfig, about: &str) -> String {
    let mut s = format!(
        "# {}\n[[apps]]\nname = {}\n",
        one_line(about),
        quoted(app.name.as_str())
    );
    let _ = match &app.source {
        AppSource::SystemdUnit(u) => writeln!(s, "systemd_unit = {}", quoted(u)),
        AppSource::DockerContainer(c) => writeln!(s, "docker_container = {}", quoted(c)),
    };
    if let Some(env) = &app.env_file {
        let _ = writeln!(s, "env_file = {}", quoted(&path_text(env)));
    }
    s.push_str("allow_actions = false\n");
    s
}

/// The drop-in as comment lines: the unit's `ProtectSystem=strict` lets the agent write no
/// `.env` outside the directories it names.
fn drop_in_comment(dirs: &BTreeSet<String>) -> String {
    if dirs.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\n# The agent's unit may write .env files only in the directories it names. Save these\n\
         # lines (without '# ') as {DROP_IN}, then run\n\
         # systemctl daemon-reload && systemctl restart fleetdeck-agent (install.sh does this):\n"
    );
    s.push_str(
        &drop_in(dirs)
            .lines()
            .map(|l| format!("# {l}\n"))
            .collect::<String>(),
    );
    s
}

/// The drop-in's text for `dirs`; a `-` lets the unit start while a directory is missing.
pub fn drop_in(dirs: &BTreeSet<String>) -> String {
    let mut s = String::from(
        "# Written by fleetdeck-agent: the directories of the .env files in agent.toml.\n[Service]\n",
    );
    for dir in dirs {
        let _ = writeln!(s, "ReadWritePaths={}", systemd_word(&format!("-{dir}")));
    }
    s
}

/// The directories of every `env_file` in `config`.
pub fn env_dirs(config: &Config) -> BTreeSet<String> {
    config
        .apps
        .iter()
        .filter_map(|a| a.env_file.as_deref()?.parent().map(path_text))
        .collect()
}

/// One word of a unit file's list setting: in double quotes (with `\` and `"` escaped) when it
/// holds a space or a quote, as systemd splits such lists.
fn systemd_word(word: &str) -> String {
    if word
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word.to_owned()
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Newlines out of anything shown in a comment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Listed;
    use crate::systemd::{FoundUnit, UnitOrigin};

    fn survey() -> Survey {
        let mut labels = std::collections::HashMap::new();
        labels.insert(COMPOSE_PROJECT.to_owned(), "shop".to_owned());
        labels.insert(COMPOSE_SERVICE.to_owned(), "web".to_owned());
        Survey {
            containers: Ok(vec![
                Listed {
                    name: "shop-web-1".into(),
                    running: true,
                    labels,
                },
                Listed {
                    name: "api".into(),
                    running: true,
                    labels: Default::default(),
                },
            ]),
            units: Ok(vec![FoundUnit {
                name: "api.service".into(),
                origin: UnitOrigin {
                    fragment_path: Some("/etc/systemd/system/api.service".into()),
                    unit_file_state: Some("enabled".into()),
                    active_state: Some("active".into()),
                    load_state: Some("loaded".into()),
                },
                env_files: vec!["/etc/api dir/env".into()],
            }]),
        }
    }

    #[test]
    fn stanzas_parse_as_a_config_with_unique_names() {
        let text = render(&survey(), None, "vm-1");
        let config = Config::parse(&format!("token_file = \"/t\"\n{text}"), None)
            .unwrap_or_else(|e| panic!("suggest's output must be a valid config: {e:?}\n{text}"));
        let names: Vec<_> = config.apps.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(names, ["api", "shop-web-1", "api-2"]);
        assert!(config.apps.iter().all(|a| !a.allow_actions));
        assert!(text.contains("# container shop-web-1 (compose project shop, service web)"));
        assert!(
            text.contains("# ReadWritePaths=\"-/etc/api dir\""),
            "{text}"
        );
    }

    #[test]
    fn listed_apps_are_not_suggested_again() {
        let listed = Config::parse(
            "token_file = \"/t\"\n[[apps]]\nname = \"api\"\nsystemd_unit = \"api.service\"\n",
            None,
        )
        .expect("valid");
        let text = render(&survey(), Some(&listed), "vm-1");
        assert!(!text.contains("systemd_unit = \"api.service\""), "{text}");
        // The container named api gets a name the listed app does not have.
        assert!(
            text.contains("name = \"api-2\"\ndocker_container = \"api\""),
            "{text}"
        );
    }

    #[test]
    fn quoted_strings_read_back_as_they_were() {
        for s in [
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\tand\nnewline",
            "ünïcode",
        ] {
            let text = format!("v = {}", quoted(s));
            let back: toml::Table = toml::from_str(&text).expect("valid TOML");
            assert_eq!(back["v"].as_str(), Some(s), "{text}");
        }
    }

    #[test]
    fn nothing_found_is_said_as_it_is() {
        let empty = Survey {
            containers: Ok(Vec::new()),
            units: Ok(Vec::new()),
        };
        let text = render(&empty, None, "vm-1");
        assert!(text.contains("# Nothing to suggest: no service"), "{text}");
        assert!(!text.contains("agent.toml does not list"), "{text}");
        let listed = Config::parse("token_file = \"/t\"\n", None).expect("valid");
        let text = render(&empty, Some(&listed), "vm-1");
        assert!(text.contains("agent.toml does not list already"), "{text}");
    }

    #[test]
    fn a_source_that_cannot_be_asked_is_said() {
        let s = Survey {
            containers: Err("cannot reach the Docker API\nat x".into()),
            units: Ok(Vec::new()),
        };
        let text = render(&s, None, "vm-1");
        assert!(text.contains("# Docker could not be asked: cannot reach the Docker API at x"));
    }
}

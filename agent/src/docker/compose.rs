//! Applying an edited `.env` to a container: compose applies a project's `.env` only when it
//! creates the container, so the container is recreated in its project (`docker compose up -d
//! --no-deps SERVICE`) with the compose CLI found on the host. A container made without compose
//! keeps the environment it was created with: that is said, not papered over by a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::COMPOSE_LABELS;

/// How long a recreate may take (pulling an image included) before the agent stops it.
pub const RECREATE_TIMEOUT: Duration = Duration::from_secs(180);

/// Where a compose service's container comes from, read from the labels compose puts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    /// Absolute paths of the compose files (the label holds them comma-separated, relative to
    /// the working directory or absolute).
    pub config_files: Vec<PathBuf>,
    pub service: String,
}

/// Why an `.env` cannot be applied to a container.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("container {0:?} was not created by compose: it keeps the environment it was created with, and a restart does not re-read an env file. Recreate it the way it was made (e.g. docker rm -f {0} && docker run --env-file ... again), or run it from a compose project")]
    NotCompose(String),
    #[error("container {container:?} carries the compose label {label} = {value:?}, which is not {what}; recreate it with compose in its project directory")]
    BadLabel {
        container: String,
        label: &'static str,
        value: String,
        what: &'static str,
    },
    #[error("neither docker-compose nor `docker compose` runs on this host ({0}); install compose, or recreate the container by hand: {1}")]
    NoCli(String, String),
    #[error("{command} exited with {status}; the container may be as it was. Run the same command on the host to see why")]
    Failed { command: String, status: String },
    #[error("{command} did not finish within {timeout:?} and was stopped; the container may be half recreated: run the same command on the host")]
    Timeout { command: String, timeout: Duration },
}

/// The project of a container with compose's labels; `Ok(None)` without them.
pub fn project_of(
    container: &str,
    labels: &HashMap<String, String>,
) -> Result<Option<Project>, ComposeError> {
    let [project, working_dir, config_files, service] = COMPOSE_LABELS;
    let (Some(name), Some(service_name)) = (labels.get(project), labels.get(service)) else {
        return Ok(None);
    };
    let bad = |label: &'static str, value: &str, what: &'static str| ComposeError::BadLabel {
        container: container.to_owned(),
        label,
        value: value.to_owned(),
        what,
    };
    let dir = labels
        .get(working_dir)
        .ok_or_else(|| bad(working_dir, "", "an absolute directory"))?;
    let dir_path = PathBuf::from(dir);
    if !dir_path.is_absolute() {
        return Err(bad(working_dir, dir, "an absolute directory"));
    }
    let files = labels
        .get(config_files)
        .map(|f| {
            f.split(',')
                .filter(|p| !p.is_empty())
                .map(|p| dir_path.join(p))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // A name or service that could be read as an option is not passed on.
    for (label, value) in [(project, name), (service, service_name)] {
        if value.is_empty() || value.starts_with('-') {
            return Err(bad(label, value, "a compose name"));
        }
    }
    Ok(Some(Project {
        name: name.clone(),
        working_dir: dir_path,
        config_files: files,
        service: service_name.clone(),
    }))
}

/// The arguments after the CLI (`docker-compose` or `docker compose`) that recreate the service.
pub fn recreate_args(project: &Project) -> Vec<String> {
    let mut args = vec![
        "--project-name".to_owned(),
        project.name.clone(),
        "--project-directory".to_owned(),
        project.working_dir.display().to_string(),
    ];
    for f in &project.config_files {
        args.push("--file".to_owned());
        args.push(f.display().to_string());
    }
    args.extend(["up", "-d", "--no-deps"].map(str::to_owned));
    args.push(project.service.clone());
    args
}

/// Recreates the service's container with the host's compose CLI against the engine at
/// `docker_host`; answers the command it ran. Compose's own output is not kept: it can quote
/// the environment.
pub async fn recreate(project: &Project, docker_host: &str) -> Result<String, ComposeError> {
    let args = recreate_args(project);
    let shown = |cli: &str| format!("{cli} {}", args.join(" "));
    let mut tried = Vec::new();
    for (program, pre) in [("docker-compose", &[][..]), ("docker", &["compose"][..])] {
        let cli = std::iter::once(program)
            .chain(pre.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(pre)
            .args(&args)
            .current_dir(&project.working_dir)
            .env("DOCKER_HOST", docker_host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tried.push(format!("{cli}: {e}"));
                continue;
            }
        };
        let status = match tokio::time::timeout(RECREATE_TIMEOUT, child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ComposeError::Failed {
                    command: shown(&cli),
                    status: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ComposeError::Timeout {
                    command: shown(&cli),
                    timeout: RECREATE_TIMEOUT,
                })
            }
        };
        // `docker` without the compose plugin says so with a failure: try no further CLI.
        if status.success() {
            return Ok(shown(&cli));
        }
        if program == "docker" && !compose_plugin_present(&project.working_dir).await {
            tried.push("docker compose: the compose plugin is not installed".to_owned());
            break;
        }
        return Err(ComposeError::Failed {
            command: shown(&cli),
            status: status.to_string(),
        });
    }
    Err(ComposeError::NoCli(
        tried.join("; "),
        shown("docker-compose"),
    ))
}

async fn compose_plugin_present(dir: &Path) -> bool {
    tokio::process::Command::new("docker")
        .args(["compose", "version"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_compose_container_names_its_project() {
        let l = labels(&[
            ("com.docker.compose.project", "shop"),
            ("com.docker.compose.project.working_dir", "/srv/shop"),
            (
                "com.docker.compose.project.config_files",
                "docker-compose.yml,/etc/shop/extra.yml",
            ),
            ("com.docker.compose.service", "web"),
        ]);
        let p = project_of("shop_web_1", &l)
            .expect("valid")
            .expect("compose");
        assert_eq!(
            p.config_files,
            [
                PathBuf::from("/srv/shop/docker-compose.yml"),
                PathBuf::from("/etc/shop/extra.yml")
            ]
        );
        assert_eq!(
            recreate_args(&p).join(" "),
            "--project-name shop --project-directory /srv/shop --file /srv/shop/docker-compose.yml --file /etc/shop/extra.yml up -d --no-deps web"
        );
        assert!(project_of("plain", &labels(&[])).expect("valid").is_none());
        let e = project_of(
            "x",
            &labels(&[
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.project.working_dir", "srv"),
                ("com.docker.compose.service", "web"),
            ]),
        )
        .expect_err("relative");
        assert!(e.to_string().contains("absolute directory"), "{e}");
        let e = project_of(
            "x",
            &labels(&[
                ("com.docker.compose.project", "--rm"),
                ("com.docker.compose.project.working_dir", "/srv"),
                ("com.docker.compose.service", "web"),
            ]),
        )
        .expect_err("option-like");
        assert!(e.to_string().contains("a compose name"), "{e}");
    }
}

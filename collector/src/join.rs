//! Joining a host at the command line (issue 16 item 3): `agents add NAME URL` takes the agent's
//! token on stdin, keeps it in a 0600 file in the collector's state directory, writes the
//! agent's `[[agents]]` table to `agents.d/NAME.toml` beside collector.toml, checks that the
//! agent answers with that token, and has the running collector reload; `agents rm NAME` undoes
//! it; `agents token NAME` swaps an agent's token (the collector's half of a rotation);
//! `agents list` says where each agent comes from.
//!
//! Every change is checked the way the collector will read it (the whole config is loaded with
//! it) before it is kept: a refused add leaves no file behind.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::Method;

use crate::agent_client::AgentClient;
use crate::config::{AgentConfig, Config, AGENTS_DIR};
use crate::store::db::params;
use crate::store::{Conn, Target};
use fleetdeck_daemon::toml_text::basic_string;

/// How long a check of the agent may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the running collector to take up a change.
const RELOAD_WAIT: Duration = Duration::from_secs(15);
/// The most of stdin read as a token.
const MAX_TOKEN: u64 = 4096;

/// Reads a token from `input` (at most 4 KiB; surrounding whitespace dropped).
pub fn read_token_from(input: impl Read) -> anyhow::Result<String> {
    let mut text = String::new();
    input
        .take(MAX_TOKEN + 1)
        .read_to_string(&mut text)
        .context("cannot read the token from stdin (it must be text)")?;
    if text.len() as u64 > MAX_TOKEN {
        bail!("stdin holds more than {MAX_TOKEN} bytes: pipe in only the agent's token file");
    }
    let token = text.trim().to_owned();
    if token.is_empty() {
        bail!(
            "no token on stdin: pipe in the agent's token, e.g. \
             ssh vm-3 sudo cat /etc/fleetdeck/agent.token | fleetdeck-collector --config ... agents add vm-3 URL"
        );
    }
    Ok(token)
}

/// Where `agents add` keeps things for `config_path`: `agents.d/` beside it and `agents/` in the
/// state directory (the database's).
struct Places {
    agents_d: PathBuf,
    tokens: PathBuf,
}

impl Places {
    fn of(config_path: &Path, config: &Config) -> Self {
        let dir = config_path.parent().unwrap_or(Path::new("."));
        let state = config.state_dir();
        Self {
            agents_d: dir.join(AGENTS_DIR),
            tokens: state.join("agents"),
        }
    }

    fn stanza_file(&self, name: &str) -> PathBuf {
        self.agents_d.join(format!("{name}.toml"))
    }

    fn token_file(&self, name: &str) -> PathBuf {
        self.tokens.join(format!("{name}.token"))
    }
}

/// Files written so far, removed unless [`Written::keep`] is called.
struct Written(Vec<PathBuf>);

impl Written {
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Creates `dir` (0700) if needed, owned like `like` (collector.toml for `agents.d/`, the state
/// directory for the tokens): the collector's user, when root runs this for it.
fn ensure_dir(dir: &Path, like: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    own_like(dir, like)
}

/// Gives `path` the owner and group of `like`: files root writes for the collector must stay
/// readable by the collector's own user.
fn own_like(path: &Path, like: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(like).with_context(|| format!("cannot stat {}", like.display()))?;
    let mine = std::fs::metadata(path)?;
    if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).with_context(|| {
            format!(
                "cannot give {} the owner of {} (run as root, or as the collector's user)",
                path.display(),
                like.display()
            )
        })?;
    }
    Ok(())
}

/// Writes `text` to `path` (mode 0600, owned like its directory, which [`ensure_dir`] made the
/// collector's) through a temporary file and a rename: a reader sees the old file or the new one.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.new",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    own_like(&temp, dir)?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Asks the agent for `/v1/info` with its token; what it says of itself, or why not.
async fn check_agent(agent: &AgentConfig) -> anyhow::Result<fleetdeck_proto::Info> {
    let http = crate::run::agent_http(&crate::run::http_client()?, agent)?;
    let client = AgentClient::new(http, &agent.url, agent.token.clone(), CHECK_TIMEOUT);
    let resp = client
        .request(Method::GET, "/v1/info")
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "the agent at {} does not answer ({}); is it running, and is the URL right?",
                agent.url,
                crate::agent_client::describe(&e)
            )
        })?;
    match resp.status().as_u16() {
        200 => resp
            .json()
            .await
            .with_context(|| format!("{} answered, but not as a Fleetdeck agent", agent.url)),
        401 => bail!(
            "the agent at {} refuses this token (401): pipe in the token its agent.toml names \
             (token_file, e.g. /etc/fleetdeck/agent.token on that VM)",
            agent.url
        ),
        other => bail!(
            "{}/v1/info answered {other}: is a Fleetdeck agent listening there?",
            agent.url
        ),
    }
}

/// `agents add`: see the module docs.
pub async fn add(
    config_path: &Path,
    name: &str,
    url: &str,
    tls_fingerprint: Option<&str>,
    token: &str,
) -> anyhow::Result<String> {
    let config = Config::load(config_path).context(
        "collector.toml does not load as it is: fix it first (fleetdeck-collector check-config)",
    )?;
    if config.agent(name).is_some() {
        bail!("an agent named {name:?} is in the config already: pick another name, or `agents rm {name}` first");
    }
    let places = Places::of(config_path, &config);
    if !crate::config::valid_name(name) {
        bail!("{name:?} is not a host name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
    ensure_dir(&places.agents_d, config_path)?;
    ensure_dir(&places.tokens, &config.state_dir())?;
    let (stanza_file, token_file) = (places.stanza_file(name), places.token_file(name));
    if stanza_file.exists() {
        bail!(
            "{} exists but does not name agent {name:?}: remove or fix it first",
            stanza_file.display()
        );
    }
    let mut written = Written(Vec::new());
    write_private(&token_file, &format!("{token}\n"))?;
    written.0.push(token_file.clone());
    let mut stanza = format!(
        "# Added by `fleetdeck-collector agents add`; `agents rm {name}` removes it.\n{}",
        crate::discover::stanza_with(name, url, &token_file.to_string_lossy())
    );
    if let Some(fp) = tls_fingerprint {
        stanza.push_str(&format!("tls_fingerprint = {}\n", basic_string(fp)));
    }
    write_private(&stanza_file, &stanza)?;
    written.0.push(stanza_file.clone());
    // Read back as the collector will read it: URL, name, token and pin checked by its rules.
    let with = Config::load(config_path)?;
    let agent = with
        .agent(name)
        .context("the new agent is not in the config read back (a bug: please report it)")?;
    let info = check_agent(agent).await?;
    written.keep();
    let mut out = format!(
        "added {name}: {} answers as {} (agent {}, wire version {}); its table is in {}, its token in {}",
        agent.url,
        info.hostname,
        info.agent_version,
        info.wire_version,
        stanza_file.display(),
        token_file.display()
    );
    if info.wire_version < fleetdeck_proto::WIRE_VERSION
        || info.agent_version != env!("CARGO_PKG_VERSION")
    {
        out.push_str(&format!(
            "\nnote: the agent is version {}, this collector {}: upgrade the agent",
            info.agent_version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    out.push('\n');
    out.push_str(&reload_running(&config, |active| active.contains(&name.to_owned())).await?);
    if crate::care::running_pid(&config.lock_base())?.is_some() {
        // Done when the fleet shows the host as it is: after its first poll.
        out.push_str(&match first_poll(&config.database, name).await? {
            Some(status) => format!(", and polled it: {name} is {status}"),
            None => format!(
                "; its first poll has not ended within {RELOAD_WAIT:?}: the fleet shows {name} once it has"
            ),
        });
    }
    Ok(out)
}

/// Waits (at most `RELOAD_WAIT`) until the running collector has polled `name` once; its status.
async fn first_poll(database: &Target, name: &str) -> anyhow::Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        let status: Option<String> = read_beside(database, {
            let name = name.to_owned();
            move |conn| {
                conn.query_opt(
                    "SELECT status FROM hosts WHERE name = ?1 AND active = 1",
                    params![name],
                    |r| r.get(0),
                )
            }
        })
        .await
        .ok()
        .flatten();
        if let Some(status) = status.filter(|s| s != "unknown") {
            return Ok(Some(status));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `agents rm`: removes an agent `agents add` added (its table and its token file).
pub async fn rm(config_path: &Path, name: &str) -> anyhow::Result<String> {
    let config = Config::load(config_path).context(
        "collector.toml does not load as it is: fix it first (fleetdeck-collector check-config)",
    )?;
    let places = Places::of(config_path, &config);
    let stanza_file = places.stanza_file(name);
    let Some(agent) = config.agent(name) else {
        let names: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
        bail!(
            "no agent named {name:?}; the config has: {}",
            names.join(", ")
        );
    };
    if agent.from.as_deref() != Some(stanza_file.as_path()) {
        bail!(
            "agent {name:?} is not in {}: it is in {}; delete its [[agents]] table there, then \
             systemctl reload fleetdeck-collector",
            stanza_file.display(),
            agent.from.as_deref().unwrap_or(config_path).display()
        );
    }
    std::fs::remove_file(&stanza_file)
        .with_context(|| format!("cannot remove {}", stanza_file.display()))?;
    // The token goes too when it is the file `agents add` wrote.
    if agent.token_file == places.token_file(name) {
        let _ = std::fs::remove_file(&agent.token_file);
    }
    let mut out = format!("removed {name} ({} and its token)\n", stanza_file.display());
    out.push_str(&reload_running(&config, |active| !active.contains(&name.to_owned())).await?);
    Ok(out)
}

/// `agents token NAME`: the agent's token becomes `token` (the collector's half of a rotation:
/// the agent accepts both meanwhile), checked against the agent before it is kept.
pub async fn set_token(config_path: &Path, name: &str, token: &str) -> anyhow::Result<String> {
    let config = Config::load(config_path).context(
        "collector.toml does not load as it is: fix it first (fleetdeck-collector check-config)",
    )?;
    let mut agent = config
        .agent(name)
        .with_context(|| format!("no agent named {name:?} in the config"))?
        .clone();
    agent.token = fleetdeck_daemon::secret::Token::new(token);
    let info = check_agent(&agent).await?;
    let file = agent.token_file.clone();
    write_private(&file, &format!("{token}\n"))?;
    let mut out = format!(
        "the agent {name} ({}) accepts the new token; it is in {}\n",
        info.hostname,
        file.display()
    );
    out.push_str(&reload_running(&config, |active| active.contains(&name.to_owned())).await?);
    Ok(out)
}

/// `discover --add --tokens DIR`: joins every peer that answered as an agent the way `agents add`
/// does, with the token in `DIR/NAME.token` (NAME as `discover` prints it). Says what became of
/// each: added, already joined (same URL), no token yet (and how to fetch it), or refused (why).
/// The flag is whether every peer that answered is joined now.
pub async fn add_discovered(
    config_path: &Path,
    found: &[crate::discover::Found],
    tokens: &Path,
) -> anyhow::Result<(String, bool)> {
    let named = crate::discover::named(found);
    if named.is_empty() {
        return Ok((
            "no Fleetdeck agent answered on this tailnet: nothing to add".to_owned(),
            true,
        ));
    }
    let (mut out, mut all) = (String::new(), true);
    for (name, f) in named {
        let config = Config::load(config_path).context(
            "collector.toml does not load as it is: fix it first (fleetdeck-collector check-config)",
        )?;
        let same_url =
            |a: &&AgentConfig| a.url.trim_end_matches('/') == f.url.trim_end_matches('/');
        let line = if let Some(a) = config.agents.iter().find(same_url) {
            format!("{name}: already joined as {} ({})", a.name, a.url)
        } else if config.agent(&name).is_some() {
            all = false;
            format!(
                "{name}: not added: another agent has this name; add {} under a name of your own                  (agents add NAME {} < its token)",
                f.url, f.url
            )
        } else {
            let file = tokens.join(format!("{name}.token"));
            match std::fs::File::open(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    all = false;
                    format!(
                        "{name}: not added: no token in {}; fetch it with: ssh {} sudo cat \
                         /etc/fleetdeck/agent.token > {}",
                        file.display(),
                        f.peer.dns_name,
                        file.display()
                    )
                }
                Err(e) => {
                    all = false;
                    format!("{name}: not added: cannot read {} ({e})", file.display())
                }
                Ok(token_file) => {
                    let added = match read_token_from(token_file) {
                        Ok(token) => add(config_path, &name, &f.url, None, &token).await,
                        Err(e) => {
                            Err(e.context(format!("{} holds no usable token", file.display())))
                        }
                    };
                    match added {
                        Ok(said) => said.lines().next().unwrap_or_default().to_owned(),
                        Err(e) => {
                            all = false;
                            format!("{name}: not added: {e:#}")
                        }
                    }
                }
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok((out, all))
}

/// `agents list`: each agent, its URL, and the file it comes from.
pub fn list(config_path: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let mut out = format!("{:<24} {:<40} FROM\n", "NAME", "URL");
    for a in &config.agents {
        let from = a.from.as_deref().unwrap_or(config_path);
        out.push_str(&format!(
            "{:<24} {:<40} {}\n",
            a.name,
            a.url,
            from.display()
        ));
    }
    Ok(out)
}

/// Has the collector running on `config`'s database reload (SIGHUP), and waits until the active
/// hosts satisfy `done`; says what happened. A collector that is not running takes the change
/// up when it starts.
async fn reload_running(
    config: &Config,
    done: impl Fn(&[String]) -> bool,
) -> anyhow::Result<String> {
    let Some(pid) = crate::care::running_pid(&config.lock_base())? else {
        return Ok("the collector is not running: it takes this up when it starts".to_owned());
    };
    let target =
        rustix::process::Pid::from_raw(pid as i32).context("the lock file names no process")?;
    rustix::process::kill_process(target, rustix::process::Signal::HUP).with_context(|| {
        format!(
            "cannot signal the running collector (PID {pid}): run this as root or as its user, or \
             run systemctl reload fleetdeck-collector"
        )
    })?;
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        let active = active_hosts(&config.database).await?;
        if done(&active) {
            return Ok(format!("the running collector (PID {pid}) took it up"));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the running collector (PID {pid}) did not take the change up within {RELOAD_WAIT:?}: \
                 its log says why (journalctl -u fleetdeck-collector)"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads the running collector's database beside it, on a blocking thread: an SQLite file
/// read-only (waiting out its writes), or a session of its own on PostgreSQL.
async fn read_beside<T: Send + 'static>(
    database: &Target,
    read: impl FnOnce(&Conn) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    let database = database.clone();
    tokio::task::spawn_blocking(move || {
        let conn = match &database {
            Target::Sqlite(path) => {
                let conn = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .with_context(|| format!("cannot open {}", path.display()))?;
                conn.busy_timeout(Duration::from_secs(2))?;
                Conn::Sqlite(conn)
            }
            Target::Postgres(_) => database.connect()?,
        };
        Ok(read(&conn)?)
    })
    .await?
}

/// The names of the hosts the collector polls now (read-only).
async fn active_hosts(database: &Target) -> anyhow::Result<Vec<String>> {
    read_beside(database, |conn| {
        conn.query_map("SELECT name FROM hosts WHERE active = 1", params![], |r| {
            r.get(0)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_stdin_are_bounded_and_trimmed() {
        assert_eq!(
            read_token_from(&b"  abc-123\n"[..]).expect("token"),
            "abc-123"
        );
        let e = read_token_from(&b"\n"[..]).expect_err("empty");
        assert!(e.to_string().contains("no token on stdin"), "{e}");
        let huge = vec![b'a'; 5000];
        let e = read_token_from(&huge[..]).expect_err("huge");
        assert!(e.to_string().contains("more than 4096 bytes"), "{e}");
    }
}

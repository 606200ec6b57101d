//! The command line: normally nothing; `--add-collector` stores a collector (its key read from
//! standard input, never from an argument that `ps` would show) before the window opens, which is
//! how `scripts/run.sh` points a fresh desktop at the demo fleet; `--check-collectors` says
//! whether each saved collector's key is still in the keyring and accepted.

use std::io::BufRead;

use clap::Parser;
use fleetdeck_proto::desktop::NewCollector;

/// Fleetdeck: your fleet of Linux VMs in a window, the tray and notifications.
#[derive(Debug, Parser)]
#[command(name = "fleetdeck", version)]
pub struct Args {
    /// Add (or replace) a collector by this name before opening; needs --url and --key-stdin.
    #[arg(long, value_name = "NAME", requires_all = ["url", "key_stdin"])]
    add_collector: Option<String>,
    /// The collector's URL, e.g. http://100.64.0.5:7080.
    #[arg(long, requires = "add_collector")]
    url: Option<String>,
    /// With --add-collector: trust exactly the collector certificate of this SHA-256
    /// (`sha256:...`, printed by the collector at start); needs an https:// URL.
    #[arg(long, value_name = "sha256:HEX", requires = "add_collector")]
    tls_fingerprint: Option<String>,
    /// Read the collector's API key from the first line of standard input.
    #[arg(long, requires = "add_collector")]
    key_stdin: bool,
    /// With --add-collector: store the collector and exit without opening the window.
    #[arg(long, requires = "add_collector")]
    pub add_only: bool,
    /// Check each saved collector (its key read from the OS keyring, then its fleet read with
    /// it), print what each answered, and exit without opening the window: 0 when every one
    /// answered, 1 otherwise.
    #[arg(long, conflicts_with = "add_collector")]
    pub check_collectors: bool,
}

impl Args {
    pub fn parse_args() -> Self {
        Self::parse()
    }

    /// The collector to add, if asked: `Err` says what is wrong with the key on stdin.
    pub fn add_collector(&self) -> Option<Result<NewCollector, String>> {
        let name = self.add_collector.clone()?;
        let url = self.url.clone().unwrap_or_default();
        let mut key = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut key) {
            return Some(Err(format!(
                "cannot read the API key from standard input: {e}"
            )));
        }
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Some(Err(
                "--key-stdin: standard input held no API key; pipe it in, e.g. `echo \"$KEY\" | fleetdeck --add-collector demo --url URL --key-stdin`".into(),
            ));
        }
        Some(Ok(NewCollector {
            name,
            url,
            key,
            tls_fingerprint: self.tls_fingerprint.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_collector_needs_url_and_key() {
        assert!(Args::try_parse_from(["fleetdeck", "--add-collector", "demo"]).is_err());
        let ok = Args::try_parse_from([
            "fleetdeck",
            "--add-collector",
            "demo",
            "--url",
            "http://127.0.0.1:7080",
            "--key-stdin",
        ])
        .expect("complete arguments parse");
        assert_eq!(ok.add_collector.as_deref(), Some("demo"));
        let pinned = Args::try_parse_from([
            "fleetdeck",
            "--add-collector",
            "demo",
            "--url",
            "https://10.0.0.5:7080",
            "--tls-fingerprint",
            "sha256:00",
            "--key-stdin",
        ])
        .expect("a fingerprint parses");
        assert_eq!(pinned.tls_fingerprint.as_deref(), Some("sha256:00"));
        assert!(Args::try_parse_from(["fleetdeck", "--tls-fingerprint", "sha256:00"]).is_err());
        assert!(
            Args::try_parse_from(["fleetdeck", "--check-collectors"])
                .expect("a check parses")
                .check_collectors
        );
        assert!(Args::try_parse_from([
            "fleetdeck",
            "--check-collectors",
            "--add-collector",
            "demo",
            "--url",
            "http://127.0.0.1:7080",
            "--key-stdin",
        ])
        .is_err());
        assert!(Args::try_parse_from(["fleetdeck"])
            .expect("no arguments")
            .add_collector
            .is_none());
    }
}

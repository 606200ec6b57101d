//! What the collector's benchmarks that run a real agent share.

use std::path::PathBuf;
use std::process::Command;

/// The release agent beside this bench binary (`FLEETDECK_AGENT_BIN` overrides it), built first
/// when it is not there.
pub fn agent_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLEETDECK_AGENT_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("fleetdeck-agent");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--release", "-p", "fleetdeck-agent"])
            .status()
            .expect("cargo build");
        assert!(ok.success(), "cannot build the agent");
    }
    bin
}

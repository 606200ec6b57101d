//! API keys in a real OS keyring: gnome-keyring's Secret Service on a private D-Bus session bus
//! (no activation, so nothing else answers for it), started and stopped by this test.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_desktop_core::keys::{KeyStore, KeyringStore};
use fleetdeck_desktop_core::ApiKey;

/// A child process killed and reaped when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, what: &str) -> Process {
    Process(cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start {what} ({e}): this test needs dbus-daemon and gnome-keyring-daemon installed")
    }))
}

/// A session bus that only knows the names its clients own.
fn bus(dir: &Path) -> (Process, String) {
    let socket = dir.join("bus");
    let config = dir.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("bus config");
    let daemon = spawn(
        Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "dbus-daemon",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "dbus-daemon made no socket within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (daemon, format!("unix:path={}", socket.display()))
}

#[test]
fn keys_live_in_the_secret_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (home, runtime) = (dir.path().join("home"), dir.path().join("run"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let (_bus, address) = bus(dir.path());
    // The keyring crate connects to the session bus named here; this test binary has no other
    // test, so nothing else reads the environment meanwhile.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address);

    let store = KeyringStore::new("dev.fleetdeck.desktop.test");
    let key = ApiKey::new("fdk_0123456789abcdef".into());

    // No Secret Service on the bus yet: an error that says what is needed, without the key.
    let e = store.set("home", &key).expect_err("no secret service");
    assert_eq!(e.code, "keyring", "{e:?}");
    assert!(e.message.contains("Secret Service"), "{}", e.message);
    assert!(e.message.contains("\"home\""), "{}", e.message);
    assert!(!e.message.contains(key.expose()));

    let mut keyring = spawn(
        Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "gnome-keyring-daemon",
    );
    // --unlock reads the login keyring's password from stdin, up to its end.
    let mut stdin = keyring.0.stdin.take().expect("stdin");
    stdin.write_all(b"test-password").expect("password");
    drop(stdin);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.get("home") {
            Ok(found) => {
                assert_eq!(found, None, "a fresh keyring holds no key");
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the Secret Service did not answer within 20 s: {e:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    store.set("home", &key).expect("store the key");
    assert_eq!(store.get("home").expect("read"), Some(key.clone()));
    // A key per collector, and per service.
    assert_eq!(store.get("work").expect("read"), None);
    let other = KeyringStore::new("dev.fleetdeck.other");
    assert_eq!(other.get("home").expect("read"), None);
    // Replacing a key keeps one entry with the new value.
    let newer = ApiKey::new("fdk_fedcba9876543210".into());
    store.set("home", &newer).expect("replace the key");
    assert_eq!(store.get("home").expect("read"), Some(newer));
    // A second handle (as after a restart of the app) reads what was stored.
    let again = KeyringStore::new("dev.fleetdeck.desktop.test");
    assert!(again.get("home").expect("read").is_some());

    store.delete("home").expect("delete");
    assert_eq!(store.get("home").expect("read"), None);
    store
        .delete("home")
        .expect("deleting a missing key is fine");
}

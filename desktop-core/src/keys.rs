//! Where API keys live: the OS keyring (Secret Service on Linux, the Keychain on macOS, Credential
//! Manager on Windows), one entry per collector under the desktop's service name; never the
//! settings file. A build with no persistent store for its OS refuses to store a key rather than
//! keeping it in memory and forgetting it at exit.

use std::collections::HashMap;
use std::sync::Mutex;

use fleetdeck_proto::desktop::CommandError;

use crate::client::ApiKey;

/// Keeps one API key per collector name.
pub trait KeyStore: Send + Sync {
    /// The collector's key, `None` if none is stored.
    fn get(&self, collector: &str) -> Result<Option<ApiKey>, CommandError>;
    fn set(&self, collector: &str, key: &ApiKey) -> Result<(), CommandError>;
    /// Forgets the collector's key; forgetting one that is not stored is not an error.
    fn delete(&self, collector: &str) -> Result<(), CommandError>;
}

/// The OS keyring: entry (service, collector name). Its calls block (D-Bus): call them from a
/// blocking thread in async code.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
}

impl KeyringStore {
    /// Keys under `service` (the desktop uses `dev.fleetdeck.desktop`).
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
        }
    }

    fn entry(&self, collector: &str, doing: &str) -> Result<keyring::Entry, CommandError> {
        keyring::Entry::new(&self.service, collector)
            .map_err(|e| keyring_error(collector, doing, &e))
    }
}

/// The OS's key store, as its users know it, and what makes it work.
#[cfg(target_os = "windows")]
const STORE_HINT: &str = "Windows Credential Manager: make sure you are signed in to a normal \
                          (not temporary) Windows profile";
#[cfg(target_os = "macos")]
const STORE_HINT: &str = "the macOS Keychain: make sure the login keychain is unlocked";
#[cfg(not(any(target_os = "windows", target_os = "macos")))]
const STORE_HINT: &str = "the Secret Service: make sure one (e.g. gnome-keyring or KeePassXC) is \
                          running and unlocked";

/// The keyring's error (which never carries the secret) with what to do about it.
fn keyring_error(collector: &str, doing: &str, e: &keyring::Error) -> CommandError {
    CommandError::new(
        "keyring",
        format!(
            "Cannot {doing} the API key of \"{collector}\" in the OS keyring: {e}. Fleetdeck keeps \
             keys in {STORE_HINT}, then try again."
        ),
    )
}

/// Refuses a key store that would not keep a key until it is deleted: the keyring crate falls
/// back to an in-memory mock (`EntryOnly`) where this build has no native store, and the kernel
/// keyring (`UntilReboot`) forgets at reboot. Storing there would lose the key silently.
pub fn require_persistent(
    persistence: keyring::credential::CredentialPersistence,
) -> Result<(), CommandError> {
    use keyring::credential::CredentialPersistence as P;
    match persistence {
        P::UntilDelete => Ok(()),
        other => Err(CommandError::new(
            "keyring",
            format!(
                "This build of Fleetdeck has no OS keyring that keeps keys (its store would keep \
                 them {}), so it will not store an API key it would forget. Use a build for your \
                 OS with its native store ({STORE_HINT}).",
                match other {
                    P::EntryOnly | P::ProcessOnly => "only until Fleetdeck exits",
                    P::UntilReboot => "only until the machine restarts",
                    _ => "for an unknown time",
                }
            ),
        )),
    }
}

impl KeyStore for KeyringStore {
    fn get(&self, collector: &str) -> Result<Option<ApiKey>, CommandError> {
        match self.entry(collector, "read")?.get_password() {
            Ok(key) => Ok(Some(ApiKey::new(key))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error(collector, "read", &e)),
        }
    }

    fn set(&self, collector: &str, key: &ApiKey) -> Result<(), CommandError> {
        require_persistent(keyring::default::default_credential_builder().persistence())?;
        self.entry(collector, "store")?
            .set_password(key.expose())
            .map_err(|e| keyring_error(collector, "store", &e))
    }

    fn delete(&self, collector: &str) -> Result<(), CommandError> {
        match self.entry(collector, "delete")?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keyring_error(collector, "delete", &e)),
        }
    }
}

/// Keys in memory, for tests and for running without a keyring.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<String, ApiKey>>,
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, ApiKey>> {
        // The map stays consistent whatever panicked while holding the lock.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KeyStore for MemoryKeyStore {
    fn get(&self, collector: &str) -> Result<Option<ApiKey>, CommandError> {
        Ok(self.keys().get(collector).cloned())
    }

    fn set(&self, collector: &str, key: &ApiKey) -> Result<(), CommandError> {
        self.keys().insert(collector.to_owned(), key.clone());
        Ok(())
    }

    fn delete(&self, collector: &str) -> Result<(), CommandError> {
        self.keys().remove(collector);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_keeps_sets_and_forgets() {
        let store = MemoryKeyStore::new();
        assert_eq!(store.get("home"), Ok(None));
        store
            .set("home", &ApiKey::new("fdk_one".into()))
            .expect("set");
        store
            .set("home", &ApiKey::new("fdk_two".into()))
            .expect("replace");
        let key = store.get("home").expect("get").expect("stored");
        assert_eq!(key.expose(), "fdk_two");
        store.delete("home").expect("delete");
        store.delete("home").expect("deleting twice is fine");
        assert_eq!(store.get("home"), Ok(None));
    }

    #[test]
    fn only_a_store_that_keeps_keys_until_deleted_is_used() {
        use keyring::credential::CredentialPersistence as P;
        assert_eq!(require_persistent(P::UntilDelete), Ok(()));
        for (p, says) in [
            (P::EntryOnly, "until Fleetdeck exits"),
            (P::ProcessOnly, "until Fleetdeck exits"),
            (P::UntilReboot, "until the machine restarts"),
        ] {
            let e = require_persistent(p).expect_err("refused");
            assert_eq!(e.code, "keyring");
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn this_builds_keyring_keeps_keys() {
        // The build's own store: a native one on every OS Fleetdeck ships for, never the mock.
        assert_eq!(
            require_persistent(keyring::default::default_credential_builder().persistence()),
            Ok(())
        );
    }
}

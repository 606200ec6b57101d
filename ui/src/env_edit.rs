//! The `.env` editor's model: the file as read, the pending edits, what is revealed, and the diff
//! and [`EnvSave`] they make. Pure Rust, tested natively; values are never logged.

use std::collections::{BTreeMap, BTreeSet};

use fleetdeck_proto::desktop::EnvSave;
use fleetdeck_proto::EnvFile;

/// What masked values show.
pub const MASK: &str = "••••••";

/// One line of the review: a key and how it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        key: String,
        new: String,
    },
    Changed {
        key: String,
        old: String,
        new: String,
    },
    Removed {
        key: String,
        old: String,
    },
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Self::Added { key, .. } | Self::Changed { key, .. } | Self::Removed { key, .. } => key,
        }
    }
}

/// A row of the table: the key, the value as read (`None` for an added key) and as it would be
/// saved (`None` for a deleted key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub original: Option<String>,
    pub current: Option<String>,
}

impl Row {
    pub fn is_changed(&self) -> bool {
        self.original != self.current
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEditor {
    pub file: EnvFile,
    /// New values of existing keys, and the values of added keys.
    set: BTreeMap<String, String>,
    /// Added keys in the order they were added (shown after the file's keys).
    added: Vec<String>,
    unset: BTreeSet<String>,
    revealed: BTreeSet<String>,
    pub reveal_all: bool,
    editing: BTreeSet<String>,
}

/// Whether `key` is a name every dotenv parser and shell accepts.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl EnvEditor {
    pub fn new(file: EnvFile) -> Self {
        Self {
            file,
            set: BTreeMap::new(),
            added: Vec::new(),
            unset: BTreeSet::new(),
            revealed: BTreeSet::new(),
            reveal_all: false,
            editing: BTreeSet::new(),
        }
    }

    fn original(&self, key: &str) -> Option<&str> {
        self.file
            .entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    pub fn rows(&self) -> Vec<Row> {
        let existing = self.file.entries.iter().map(|e| Row {
            key: e.key.clone(),
            original: Some(e.value.clone()),
            current: if self.unset.contains(&e.key) {
                None
            } else {
                Some(self.set.get(&e.key).unwrap_or(&e.value).clone())
            },
        });
        let added = self.added.iter().map(|k| Row {
            key: k.clone(),
            original: None,
            current: self.set.get(k).cloned(),
        });
        existing.chain(added).collect()
    }

    /// The current (pending) value of a key, if it has one.
    pub fn value(&self, key: &str) -> Option<String> {
        if self.unset.contains(key) {
            return None;
        }
        self.set
            .get(key)
            .map(String::as_str)
            .or_else(|| self.original(key))
            .map(str::to_owned)
    }

    pub fn is_revealed(&self, key: &str) -> bool {
        self.reveal_all || self.revealed.contains(key)
    }

    pub fn toggle_reveal(&mut self, key: &str) {
        if self.reveal_all {
            // Hiding one key while all are shown: show every other key one by one.
            self.reveal_all = false;
            self.revealed = self.rows().into_iter().map(|r| r.key).collect();
            self.revealed.remove(key);
        } else if !self.revealed.remove(key) {
            self.revealed.insert(key.to_owned());
        }
    }

    pub fn toggle_reveal_all(&mut self) {
        self.reveal_all = !self.reveal_all;
        if !self.reveal_all {
            self.revealed.clear();
        }
    }

    pub fn is_editing(&self, key: &str) -> bool {
        self.editing.contains(key)
    }

    /// Opens or closes a value's input. Editing shows the value (the operator is typing it).
    pub fn toggle_edit(&mut self, key: &str) {
        if !self.editing.remove(key) {
            self.editing.insert(key.to_owned());
        }
    }

    /// A new pending value; back to the original value means no change.
    pub fn set_value(&mut self, key: &str, value: String) {
        if self.original(key) == Some(value.as_str()) {
            self.set.remove(key);
        } else {
            self.set.insert(key.to_owned(), value);
        }
    }

    /// Adds a key, or gives a deleted or existing one a new value. The error says what is wrong.
    pub fn add(&mut self, key: &str, value: String) -> Result<(), String> {
        let key = key.trim();
        if !valid_key(key) {
            return Err(format!(
                "{key:?} is not a valid key: use letters, digits and _ (not starting with a digit)"
            ));
        }
        if self.original(key).is_some() {
            self.unset.remove(key);
        } else if !self.added.iter().any(|k| k == key) {
            self.added.push(key.to_owned());
        }
        self.set_value(key, value);
        Ok(())
    }

    /// Deletes a key (an added key simply disappears); deleting again undoes it.
    pub fn toggle_delete(&mut self, key: &str) {
        if self.original(key).is_none() {
            self.added.retain(|k| k != key);
            self.set.remove(key);
            self.editing.remove(key);
        } else if !self.unset.remove(key) {
            self.unset.insert(key.to_owned());
            self.editing.remove(key);
        }
    }

    pub fn is_deleted(&self, key: &str) -> bool {
        self.unset.contains(key)
    }

    pub fn changes(&self) -> Vec<Change> {
        self.rows()
            .into_iter()
            .filter_map(|r| match (r.original, r.current) {
                (None, Some(new)) => Some(Change::Added { key: r.key, new }),
                (Some(old), None) => Some(Change::Removed { key: r.key, old }),
                (Some(old), Some(new)) if old != new => Some(Change::Changed {
                    key: r.key,
                    old,
                    new,
                }),
                _ => None,
            })
            .collect()
    }

    pub fn has_changes(&self) -> bool {
        !self.changes().is_empty()
    }

    /// The save request: only what changed, checked against the etag read.
    pub fn to_save(&self, restart: bool) -> EnvSave {
        let mut save = EnvSave {
            etag: self.file.etag.clone(),
            restart,
            ..EnvSave::default()
        };
        for change in self.changes() {
            match change {
                Change::Added { key, new } | Change::Changed { key, new, .. } => {
                    save.set.insert(key, new);
                }
                Change::Removed { key, .. } => save.unset.push(key),
            }
        }
        save
    }

    /// Shows `value` masked unless the key is revealed.
    pub fn shown(&self, key: &str, value: &str) -> String {
        if self.is_revealed(key) {
            value.to_owned()
        } else {
            MASK.to_owned()
        }
    }
}

/// What restoring `backup` over `current` changes, key by key, in the backup's order then the
/// keys it drops; every value is shown as [`MASK`] (a restore is reviewed by key, not by value).
pub fn restore_changes(current: &EnvFile, backup: &EnvFile) -> Vec<Change> {
    let now: BTreeMap<&str, &str> = current
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let then: BTreeSet<&str> = backup.entries.iter().map(|e| e.key.as_str()).collect();
    let mask = || MASK.to_owned();
    let mut out: Vec<Change> = backup
        .entries
        .iter()
        .filter_map(|e| match now.get(e.key.as_str()) {
            None => Some(Change::Added {
                key: e.key.clone(),
                new: mask(),
            }),
            Some(v) if *v != e.value => Some(Change::Changed {
                key: e.key.clone(),
                old: mask(),
                new: mask(),
            }),
            Some(_) => None,
        })
        .collect();
    out.extend(
        current
            .entries
            .iter()
            .filter(|e| !then.contains(e.key.as_str()))
            .map(|e| Change::Removed {
                key: e.key.clone(),
                old: mask(),
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use fleetdeck_proto::EnvEntry;

    use super::*;

    fn file() -> EnvFile {
        EnvFile {
            etag: "abc".into(),
            path: "/srv/app/.env".into(),
            entries: vec![
                EnvEntry {
                    key: "GREETING".into(),
                    value: "hello".into(),
                    line: 1,
                },
                EnvEntry {
                    key: "PORT".into(),
                    value: "8080".into(),
                    line: 2,
                },
            ],
            raw: "GREETING=hello\nPORT=8080\n".into(),
        }
    }

    #[test]
    fn values_are_masked_until_revealed() {
        let mut ed = EnvEditor::new(file());
        assert_eq!(ed.shown("GREETING", "hello"), MASK);
        ed.toggle_reveal("GREETING");
        assert_eq!(ed.shown("GREETING", "hello"), "hello");
        assert_eq!(ed.shown("PORT", "8080"), MASK);
        ed.toggle_reveal_all();
        assert!(ed.is_revealed("PORT"));
        ed.toggle_reveal("PORT");
        assert!(!ed.is_revealed("PORT"));
        assert!(ed.is_revealed("GREETING"));
        ed.toggle_reveal_all();
        ed.toggle_reveal_all();
        assert!(!ed.is_revealed("GREETING"));
    }

    #[test]
    fn editing_makes_a_change_and_back_makes_none() {
        let mut ed = EnvEditor::new(file());
        ed.toggle_edit("GREETING");
        assert!(ed.is_editing("GREETING"));
        ed.set_value("GREETING", "bonjour".into());
        assert_eq!(
            ed.changes(),
            [Change::Changed {
                key: "GREETING".into(),
                old: "hello".into(),
                new: "bonjour".into()
            }]
        );
        ed.set_value("GREETING", "hello".into());
        assert!(!ed.has_changes());
    }

    #[test]
    fn add_delete_and_save_request() {
        let mut ed = EnvEditor::new(file());
        ed.add("NEW_KEY", "v".into()).expect("a valid key");
        ed.toggle_delete("PORT");
        ed.set_value("GREETING", "".into());
        assert!(ed.is_deleted("PORT"));
        let save = ed.to_save(true);
        assert_eq!(save.etag, "abc");
        assert!(save.restart);
        assert_eq!(
            save.set,
            BTreeMap::from([
                ("GREETING".to_owned(), String::new()),
                ("NEW_KEY".to_owned(), "v".to_owned())
            ])
        );
        assert_eq!(save.unset, ["PORT"]);
        let keys: Vec<_> = ed.rows().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["GREETING", "PORT", "NEW_KEY"]);
        ed.toggle_delete("PORT");
        ed.toggle_delete("NEW_KEY");
        assert_eq!(ed.to_save(false).unset, Vec::<String>::new());
        assert_eq!(ed.rows().len(), 2);
    }

    #[test]
    fn adding_an_existing_key_sets_it_and_undeletes() {
        let mut ed = EnvEditor::new(file());
        ed.toggle_delete("PORT");
        ed.add("PORT", "9090".into()).expect("a valid key");
        assert_eq!(ed.value("PORT").as_deref(), Some("9090"));
        assert_eq!(ed.rows().len(), 2);
        assert_eq!(ed.changes().len(), 1);
    }

    #[test]
    fn keys_are_checked() {
        let mut ed = EnvEditor::new(file());
        for bad in ["", "1ABC", "A B", "A=B", "é", "my.key"] {
            assert!(ed.add(bad, "x".into()).is_err(), "{bad:?}");
        }
        for good in ["A", "_X", "a1", "DATABASE_URL"] {
            assert!(valid_key(good), "{good:?}");
        }
    }

    #[test]
    fn a_restore_is_reviewed_key_by_key_with_every_value_masked() {
        let file = |pairs: &[(&str, &str)]| EnvFile {
            etag: "e".into(),
            path: "/srv/web.env".into(),
            entries: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| fleetdeck_proto::EnvEntry {
                    key: (*k).into(),
                    value: (*v).into(),
                    line: i as u32 + 1,
                })
                .collect(),
            raw: String::new(),
        };
        let current = file(&[("PORT", "8080"), ("GREETING", "bonjour"), ("NEW", "x")]);
        let backup = file(&[("PORT", "8080"), ("GREETING", "hello"), ("OLD", "y")]);
        let changes = restore_changes(&current, &backup);
        assert_eq!(
            changes,
            [
                Change::Changed {
                    key: "GREETING".into(),
                    old: MASK.into(),
                    new: MASK.into()
                },
                Change::Added {
                    key: "OLD".into(),
                    new: MASK.into()
                },
                Change::Removed {
                    key: "NEW".into(),
                    old: MASK.into()
                },
            ]
        );
        let shown = format!("{changes:?}");
        for secret in ["bonjour", "hello", "8080", "\"x\"", "\"y\""] {
            assert!(!shown.contains(secret), "{secret} shown");
        }
        assert!(restore_changes(&current, &current).is_empty());
    }
}

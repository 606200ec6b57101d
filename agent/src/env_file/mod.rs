//! An app's `.env` file: read it, and edit it atomically. Only the path from the agent's config
//! is ever opened (never one from a request). A write is: read and hash the current bytes (etag
//! check), build the new text (only edited values change; new keys are appended), check it reads
//! back as intended, write it to a temp file in the same directory with the original's mode and
//! owner, fsync, hard-link the old file as backup `.NAME.fleetdeck-backup.1` (older ones rotate,
//! [`BACKUPS`] kept), rename over the original, fsync the directory. A crash at any point leaves
//! the old file or the new one, whole. A symlinked env file is followed: its target is replaced
//! and the link stays. Values never reach a log.

pub mod parse;
pub mod quote;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fleetdeck_proto::{EnvEntry, EnvFile, EnvUpdate};
use sha2::{Digest, Sha256};

use parse::{parse, parse_lenient, valid_key, Assignment};
use quote::quote;

/// Backups kept beside the file.
pub const BACKUPS: usize = 3;
const TEMP_PREFIX: &str = ".fleetdeck-tmp-";

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {path}: {error}; the file is unchanged")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The filesystem (or the owner's quota) has no room for the new file: nothing was replaced,
    /// and the same edit succeeds once space is freed.
    #[error("cannot write {path}: the filesystem holding it is full ({error}); the file is unchanged. Free space on that filesystem (or raise the quota), then send the same edit again")]
    DiskFull {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the file changed since it was read (etag {current} is current, not {given}); read it again and redo the edit")]
    Stale { current: String, given: String },
    #[error("{0}")]
    Invalid(String),
}

/// An env file larger than this is refused rather than read.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Reads `path` if it is a regular file of at most [`MAX_SIZE`]: opened without blocking (a FIFO
/// put in its place cannot hang the agent) and checked through the same handle that is read.
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > MAX_SIZE {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_SIZE} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn etag(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file as a client sees it.
pub fn read(path: &Path) -> Result<EnvFile, EnvError> {
    let bytes = read_regular(path).map_err(|error| EnvError::Read {
        path: path.to_owned(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(EnvFile {
        etag: etag(&bytes),
        path: path.display().to_string(),
        entries: entries(&parse_lenient(&text)),
        raw: text,
    })
}

/// Each key once, at its last assignment (the one the parsers keep), in file order.
fn entries(assignments: &[Assignment]) -> Vec<EnvEntry> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, a) in assignments.iter().enumerate() {
        last.insert(&a.key, i);
    }
    let mut out: Vec<(usize, EnvEntry)> = last
        .into_values()
        .map(|i| {
            let a = &assignments[i];
            (
                i,
                EnvEntry {
                    key: a.key.clone(),
                    value: a.value.clone(),
                    line: a.line,
                },
            )
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, e)| e).collect()
}

fn values(assignments: &[Assignment]) -> BTreeMap<String, String> {
    assignments
        .iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect()
}

/// The new text of `text` after `update`, checked to read back as intended.
pub fn apply(text: &str, update: &EnvUpdate) -> Result<String, EnvError> {
    if let Some(raw) = &update.raw {
        if !update.set.is_empty() || !update.unset.is_empty() {
            return Err(EnvError::Invalid(
                "send either raw, or set/unset, not both".into(),
            ));
        }
        parse(raw).map_err(|e| EnvError::Invalid(format!("the new text does not parse: {e}")))?;
        return Ok(raw.clone());
    }
    for key in update.set.keys().chain(&update.unset) {
        if !valid_key(key) {
            return Err(EnvError::Invalid(format!(
                "invalid key {key:?}: use letters, digits, '_' and '.', not starting with a digit"
            )));
        }
    }
    if let Some(k) = update.unset.iter().find(|k| update.set.contains_key(*k)) {
        return Err(EnvError::Invalid(format!("{k:?} is both set and unset")));
    }
    // A key listed twice is unset once: its statements must be removed once each (found by
    // fuzzing: removing a range twice panicked).
    let unset: std::collections::BTreeSet<&String> = update.unset.iter().collect();
    let current = parse(text).map_err(|e| {
        EnvError::Invalid(format!("the file does not parse ({e}), so an edit could not be checked; fix it with a raw write"))
    })?;
    // Edits as (range, replacement), applied from the end so earlier offsets stay valid.
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut appended = Vec::new();
    for (key, value) in &update.set {
        let quoted = quote(value).ok_or_else(|| {
            EnvError::Invalid(format!(
                "the value of {key} needs quotes and ends with a backslash, which Node's dotenv would misread \
                 together with the lines after it; remove the trailing backslash, or write the file raw"
            ))
        })?;
        match current.iter().rev().find(|a| &a.key == key) {
            // A comment may follow a quoted value without a blank (`A="x"# note`); after an
            // unquoted one it would become part of the value, so a blank goes between them
            // (found by fuzzing: such an edit was refused as not reading back).
            Some(a)
                if text[a.value_span.end..].starts_with('#')
                    && !quoted.starts_with(['\'', '"']) =>
            {
                edits.push((a.value_span.clone(), format!("{quoted} ")))
            }
            Some(a) => edits.push((a.value_span.clone(), quoted)),
            None => appended.push(format!("{key}={quoted}")),
        }
    }
    for key in &unset {
        edits.extend(
            current
                .iter()
                .filter(|a| &a.key == *key)
                .map(|a| (a.statement.clone(), String::new())),
        );
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut new = text.to_owned();
    for (range, replacement) in edits {
        new.replace_range(range, &replacement);
    }
    if !appended.is_empty() {
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        if !new.is_empty() && !new.ends_with('\n') {
            new.push_str(eol);
        }
        for line in appended {
            new.push_str(&line);
            new.push_str(eol);
        }
    }
    // The new file must read back: every untouched key as before, set keys as set, unset gone.
    let mut want = values(&current);
    for key in &unset {
        want.remove(*key);
    }
    want.extend(update.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    let got = parse(&new).map(|a| values(&a)).map_err(|e| {
        EnvError::Invalid(format!(
            "the edited file would not parse ({e}); nothing was written"
        ))
    })?;
    if got != want {
        let wrong: Vec<&String> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(*k) != got.get(*k))
            .collect();
        return Err(EnvError::Invalid(format!(
            "the edited file would not read back ({wrong:?} would change); nothing was written"
        )));
    }
    Ok(new)
}

/// Replaces the file at `path` (following a symlink) with `update` applied, if its etag is still
/// `if_match`. Returns the new etag.
pub fn write(path: &Path, if_match: &str, update: &EnvUpdate) -> Result<String, EnvError> {
    // A symlinked env file: replace what it points to, keep the link.
    let target = std::fs::canonicalize(path).map_err(|error| EnvError::Read {
        path: path.to_owned(),
        error,
    })?;
    let bytes = read_regular(&target).map_err(|error| EnvError::Read {
        path: target.clone(),
        error,
    })?;
    let current = etag(&bytes);
    if current != if_match {
        return Err(EnvError::Stale {
            current,
            given: if_match.to_owned(),
        });
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| EnvError::Invalid("the file is not UTF-8 text; fix it on the host".into()))?;
    let new = apply(text, update)?;
    replace(&target, new.as_bytes()).map_err(|error| {
        if is_disk_full(&error) {
            EnvError::DiskFull {
                path: target.clone(),
                error,
            }
        } else {
            EnvError::Write {
                path: target.clone(),
                error,
            }
        }
    })?;
    Ok(etag(new.as_bytes()))
}

/// ENOSPC or EDQUOT: no room for the new file, which freeing space fixes.
fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The atomic replacement of `target` by `content` (see the module docs).
fn replace(target: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("the file has no directory"))?;
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::other("the file has no name"))?
        .to_string_lossy();
    let meta = std::fs::metadata(target)?;
    remove_stale_temps(dir, &name);

    // Unique per write, so no write can ever open another's temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!("{TEMP_PREFIX}{}.{n}-{name}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(&temp)?;
    let written = (|| {
        // Same owner as the original (a no-op when the agent already owns it).
        if std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())).is_err()
            && meta.uid() != rustix::process::geteuid().as_raw()
        {
            return Err(std::io::Error::other(format!(
                "cannot give the new file the owner uid {} of the old one",
                meta.uid()
            )));
        }
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        file.write_all(content)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    drop(file);
    if let Err(e) = rotate_backups(dir, &name, target) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&temp, target) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

fn backup_path(dir: &Path, name: &str, n: usize) -> PathBuf {
    dir.join(format!(".{name}.fleetdeck-backup.{n}"))
}

/// `.NAME.fleetdeck-backup.1` becomes `.2` and so on; the current file is hard-linked as `.1`
/// (no copy, and the original is never absent).
fn rotate_backups(dir: &Path, name: &str, target: &Path) -> std::io::Result<()> {
    for n in (1..BACKUPS).rev() {
        let from = backup_path(dir, name, n);
        if from.exists() {
            std::fs::rename(&from, backup_path(dir, name, n + 1))?;
        }
    }
    let first = backup_path(dir, name, 1);
    let _ = std::fs::remove_file(&first);
    std::fs::hard_link(target, &first)
}

/// Temp files a killed agent left behind (writes are serialized per file, so none is live).
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file_name = e.file_name();
        let f = file_name.to_string_lossy();
        if f.starts_with(TEMP_PREFIX) && f.ends_with(&format!("-{name}")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(set: &[(&str, &str)], unset: &[&str]) -> EnvUpdate {
        EnvUpdate {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unset: unset.iter().map(|k| k.to_string()).collect(),
            raw: None,
        }
    }

    #[test]
    fn edits_touch_only_their_values() {
        let text = "# app config\nexport DB_URL=postgres://x # primary\n\nPORT=80\nNAME='old'\r\nTAIL=keep";
        let new = apply(
            text,
            &update(
                &[("PORT", "8080"), ("NAME", "it's new"), ("ADDED", "a b")],
                &[],
            ),
        )
        .expect("applies");
        assert_eq!(
            new,
            "# app config\nexport DB_URL=postgres://x # primary\n\nPORT=8080\nNAME=it's new\r\nTAIL=keep\r\nADDED=a b\r\n"
        );
        let new = apply(text, &update(&[], &["DB_URL", "TAIL"])).expect("applies");
        assert_eq!(new, "# app config\n\nPORT=80\nNAME='old'\r\n");
    }

    #[test]
    fn the_last_assignment_is_edited_and_unset_removes_all() {
        let text = "A=1\nA=2\nB=3\n";
        assert_eq!(
            apply(text, &update(&[("A", "9")], &[])).expect("ok"),
            "A=1\nA=9\nB=3\n"
        );
        assert_eq!(apply(text, &update(&[], &["A"])).expect("ok"), "B=3\n");
    }

    // Found by fuzzing (fuzz/, env_roundtrip): a key unset twice removed its line twice and
    // panicked on a range past the end of the text.
    #[test]
    fn a_key_unset_twice_is_unset_once() {
        let text = "m=\nA=1\nm=2\n";
        assert_eq!(
            apply(text, &update(&[], &["m", "m", "A", "m"])).expect("ok"),
            ""
        );
    }

    // Found by fuzzing (fuzz/, env_parse): `A="x"# c` is a valid line whose comment has no blank
    // before it; written unquoted, the new value swallowed the comment and the edit was refused.
    #[test]
    fn an_unquoted_value_before_a_comment_keeps_the_comment() {
        let text = "A=\"old\"# c\nB='x'#d\r\nC=\"y\" # e\n";
        let new = apply(
            text,
            &update(&[("A", "new"), ("B", "it's"), ("C", "z")], &[]),
        )
        .expect("applies");
        assert_eq!(new, "A=new # c\nB=it's #d\r\nC=z # e\n");
        let new = apply(text, &update(&[("A", "two words#")], &[])).expect("applies");
        assert_eq!(new, "A='two words#'# c\nB='x'#d\r\nC=\"y\" # e\n");
    }

    #[test]
    fn refusals() {
        for (text, upd, needle) in [
            (
                "A=1\n",
                update(&[("1BAD", "x")], &[]),
                "invalid key \"1BAD\"",
            ),
            ("A=1\n", update(&[("A", "x")], &["A"]), "both set and unset"),
            (
                "A=\"open\nB=2\n",
                update(&[("B", "x")], &[]),
                "does not parse",
            ),
            (
                "A=1\n",
                EnvUpdate {
                    raw: Some("X='open".into()),
                    ..EnvUpdate::default()
                },
                "does not parse",
            ),
            (
                "A=1\n",
                EnvUpdate {
                    raw: Some("X=1".into()),
                    ..update(&[("A", "2")], &[])
                },
                "either raw",
            ),
        ] {
            let e = apply(text, &upd).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo.env");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success());
        // Opened without blocking and refused: a FIFO in place of the file cannot hang the agent.
        let e = read(&fifo).expect_err("a FIFO").to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big.env");
        std::fs::write(&big, vec![b'x'; MAX_SIZE as usize + 1]).expect("write");
        let e = read(&big).expect_err("too big").to_string();
        assert!(e.contains("larger than"), "{e}");
        assert!(read(Path::new("/dev/zero")).is_err());
    }

    #[test]
    fn a_failed_backup_rotation_leaves_the_file_and_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = dir.path().join("x.env");
        std::fs::write(&env, "A=1\n").expect("write");
        // Backup 2 cannot rotate onto backup 3, a non-empty directory.
        std::fs::write(backup_path(dir.path(), "x.env", 2), "A=0\n").expect("backup 2");
        let three = backup_path(dir.path(), "x.env", 3);
        std::fs::create_dir(&three).expect("dir");
        std::fs::write(three.join("keep"), "").expect("file in dir");
        let e = write(&env, &etag(b"A=1\n"), &update(&[("A", "2")], &[])).expect_err("refused");
        assert!(matches!(e, EnvError::Write { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&env).expect("read"), "A=1\n");
        let temps: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }

    #[test]
    fn atomic_write_keeps_mode_backs_up_and_follows_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.env");
        std::fs::write(&real, "A=1\n").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");

        let first = read(&link).expect("read");
        assert_eq!(
            first.entries,
            vec![EnvEntry {
                key: "A".into(),
                value: "1".into(),
                line: 1
            }]
        );
        let tag = write(&link, &first.etag, &update(&[("A", "2")], &[])).expect("write");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink(),
            "the link stays"
        );
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "A=2\n");
        assert_eq!(
            std::fs::metadata(&real).expect("meta").mode() & 0o777,
            0o640
        );
        assert_eq!(tag, etag(b"A=2\n"));

        let stale = write(&link, &first.etag, &update(&[("A", "3")], &[])).expect_err("stale");
        assert!(matches!(stale, EnvError::Stale { .. }));
        assert_eq!(
            std::fs::read_to_string(&real).expect("read"),
            "A=2\n",
            "untouched"
        );

        let mut tag = tag;
        for v in 3..=6 {
            tag = write(&link, &tag, &update(&[("A", &v.to_string())], &[])).expect("write");
        }
        let backup =
            |n: usize| std::fs::read_to_string(backup_path(dir.path(), "real.env", n)).ok();
        assert_eq!(
            (backup(1), backup(2), backup(3), backup(4)),
            (
                Some("A=5\n".into()),
                Some("A=4\n".into()),
                Some("A=3\n".into()),
                None
            )
        );
        assert_eq!(
            std::fs::metadata(backup_path(dir.path(), "real.env", 1))
                .expect("meta")
                .mode()
                & 0o777,
            0o640
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
    }
}

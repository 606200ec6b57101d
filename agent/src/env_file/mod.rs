//! An app's `.env` file: read it, and edit it atomically. Only the path from the agent's config
//! is ever opened (never one from a request), and only as [`open`] allows: no symlink on the way
//! unless the app's config allows links into one directory, and no directory on the way that
//! anyone but root and the file's owner can change. A write is: read and hash the current bytes
//! (etag check), build the new text (only edited values change; new keys are appended), check it
//! reads back as intended, write it to a temp file created (`O_EXCL | O_NOFOLLOW`) in the same
//! directory, given the original's owner, group and mode, fsync, hard-link the old file as
//! backup `.NAME.fleetdeck-backup.1` (older ones rotate, [`BACKUPS`] kept), rename over the
//! original, fsync the directory; every one of these steps goes through the directory's
//! descriptor from the checked walk, never through a path. A crash at any point leaves the old
//! file or the new one, whole. An allowed symlink stays: its target is replaced. Values never
//! reach a log.

pub mod open;
pub mod parse;
pub mod quote;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Stat};

use fleetdeck_proto::{EnvBackup, EnvEntry, EnvFile, EnvUpdate};
use sha2::{Digest, Sha256};

pub use open::{Links, Rule};
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
    /// The directory is read-only to the agent: on a host installed with the shipped unit
    /// (`ProtectSystem=strict`), one its drop-in does not list.
    #[error("cannot write {path}: its directory is read-only to the agent ({error}); the file is unchanged. Under the shipped unit the agent writes only the directories its drop-in lists: run install.sh again (it writes fleetdeck-agent.service.d/env-files.conf from agent.toml), or save the output of `fleetdeck-agent env-drop-in --config /etc/fleetdeck/agent.toml` there, then systemctl daemon-reload && systemctl restart fleetdeck-agent")]
    ReadOnly {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the file changed since it was read (etag {current} is current, not {given}); read it again and redo the edit")]
    Stale { current: String, given: String },
    #[error("{0}")]
    Invalid(String),
    /// Where the file lies breaks a rule of [`open`]: nothing was read or written.
    #[error("{message}")]
    Unsafe { rule: Rule, message: String },
}

/// An env file larger than this is refused rather than read.
pub const MAX_SIZE: u64 = 1024 * 1024;

/// Opens `path` under the rules of [`open`]; `path` names the file in a read error.
fn open_checked(path: &Path, links: &Links) -> Result<open::Opened, EnvError> {
    open::open(path, links).map_err(|e| match e {
        open::OpenError::Unsafe(rule, message) => EnvError::Unsafe { rule, message },
        open::OpenError::Io(error) => EnvError::Read {
            path: path.to_owned(),
            error,
        },
    })
}

/// The opened file's bytes if it is at most [`MAX_SIZE`], read through the handle that was
/// checked.
fn read_bounded(opened: &mut open::Opened) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let len = opened.stat.st_size.max(0) as u64;
    if len > MAX_SIZE {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_SIZE} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    Read::by_ref(&mut opened.file)
        .take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_SIZE} bytes"
        )));
    }
    Ok(bytes)
}

pub fn etag(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The file at `path` (reached as `links` allows) as a client sees it.
pub fn read(path: &Path, links: &Links) -> Result<EnvFile, EnvError> {
    let mut opened = open_checked(path, links)?;
    let bytes = read_bounded(&mut opened).map_err(|error| EnvError::Read {
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

/// The backups of the file at `path` (reached as `links` allows), newest first: each one that is
/// there, a regular file, read through the directory the checked walk opened (never a path).
pub fn backups(path: &Path, links: &Links) -> Result<Vec<EnvBackup>, EnvError> {
    let opened = open_checked(path, links)?;
    let mut out = Vec::new();
    for n in 1..=BACKUPS {
        if let Some((bytes, modified_unix_ms)) =
            read_backup(&opened, n).map_err(|error| EnvError::Read {
                path: path.to_owned(),
                error,
            })?
        {
            out.push(EnvBackup {
                n: n as u32,
                modified_unix_ms,
                size_bytes: bytes.len() as u64,
                etag: etag(&bytes),
            });
        }
    }
    Ok(out)
}

/// Backup `n` of the file at `path` as a client sees a file; `None` when there is none.
pub fn backup(path: &Path, links: &Links, n: usize) -> Result<Option<EnvFile>, EnvError> {
    let opened = open_checked(path, links)?;
    let backup_path = opened.real.with_file_name(backup_name(&opened.name, n));
    let read = read_backup(&opened, n).map_err(|error| EnvError::Read {
        path: backup_path.clone(),
        error,
    })?;
    Ok(read.map(|(bytes, _)| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        EnvFile {
            etag: etag(&bytes),
            path: backup_path.display().to_string(),
            entries: entries(&parse_lenient(&text)),
            raw: text,
        }
    }))
}

/// Backup `n`'s bytes and modification time (Unix ms), opened in the checked directory without
/// following a link; `None` when it is absent or not a regular file.
fn read_backup(opened: &open::Opened, n: usize) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    use std::io::Read;
    let fd = match rfs::openat(
        &opened.dir,
        backup_name(&opened.name, n),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let stat = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(stat.st_mode) != rfs::FileType::RegularFile {
        return Ok(None);
    }
    if stat.st_size.max(0) as u64 > MAX_SIZE {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_SIZE} bytes"
        )));
    }
    let file = File::from(fd);
    let modified = file
        .metadata()?
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1).read_to_end(&mut bytes)?;
    Ok(Some((bytes, modified)))
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

/// Replaces the file at `path` (reached as `links` allows; an allowed link stays and its target
/// is replaced) with `update` applied, if its etag is still `if_match`. Returns the new etag.
pub fn write(
    path: &Path,
    links: &Links,
    if_match: &str,
    update: &EnvUpdate,
) -> Result<String, EnvError> {
    let mut opened = open_checked(path, links)?;
    let target = opened.real.clone();
    let bytes = read_bounded(&mut opened).map_err(|error| EnvError::Read {
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
    replace(&opened, new.as_bytes()).map_err(|error| {
        if is_disk_full(&error) {
            EnvError::DiskFull {
                path: target.clone(),
                error,
            }
        } else if error.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
            EnvError::ReadOnly {
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

/// The atomic replacement of the opened file by `content` (see the module docs), all of it
/// relative to the directory's descriptor.
fn replace(opened: &open::Opened, content: &[u8]) -> std::io::Result<()> {
    let dir = &opened.dir;
    let name = opened.name.as_os_str();
    remove_stale_temps(dir, name);

    // Unique per write, so no write can ever open another's temp file; O_EXCL | O_NOFOLLOW, so
    // a name someone put there (a link above all) fails the write instead of redirecting it.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut temp = format!("{TEMP_PREFIX}{}.{n}-", std::process::id()).into_bytes();
    temp.extend_from_slice(name.as_bytes());
    let temp = OsStr::from_bytes(&temp);
    let fd = rfs::openat(
        dir,
        temp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = File::from(fd);
    let written = (|| {
        // Owner and group first: a chown clears set-id bits, which the mode then restores.
        keep_owner(&file, &opened.stat)?;
        rfs::fchmod(&file, Mode::from_raw_mode(opened.stat.st_mode & 0o7777))?;
        file.write_all(content)?;
        file.sync_all()
    })();
    let remove_temp = || {
        let _ = rfs::unlinkat(dir, temp, AtFlags::empty());
    };
    if let Err(e) = written {
        remove_temp();
        return Err(e);
    }
    drop(file);
    if let Err(e) = rotate_backups(dir, name) {
        remove_temp();
        return Err(e);
    }
    if let Err(e) = rfs::renameat(dir, temp, dir, name) {
        remove_temp();
        return Err(e.into());
    }
    Ok(rfs::fsync(dir)?)
}

/// Gives the temp file the uid and gid of the file it replaces. If `fchown` fails (an agent
/// without CAP_CHOWN, or a syscall filter refusing it), the write goes on only when the temp
/// file already has both.
fn keep_owner(file: &File, want: &Stat) -> std::io::Result<()> {
    let (uid, gid) = (want.st_uid, want.st_gid);
    if let Err(e) = rfs::fchown(
        file,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    ) {
        let got = rfs::fstat(file)?;
        if (got.st_uid, got.st_gid) != (uid, gid) {
            return Err(std::io::Error::other(format!(
                "cannot give the new file the owner {uid}:{gid} of the old one ({e}); the agent \
                 needs CAP_CHOWN and the chown system calls (the shipped unit allows both)"
            )));
        }
    }
    Ok(())
}

fn backup_name(name: &OsStr, n: usize) -> std::ffi::OsString {
    let mut b = std::ffi::OsString::from(".");
    b.push(name);
    b.push(format!(".fleetdeck-backup.{n}"));
    b
}

/// `.NAME.fleetdeck-backup.1` becomes `.2` and so on; the current file is hard-linked as `.1`
/// (no copy, and the original is never absent). Renames and links never follow a symlink.
fn rotate_backups(dir: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    for n in (1..BACKUPS).rev() {
        match rfs::renameat(dir, backup_name(name, n), dir, backup_name(name, n + 1)) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let first = backup_name(name, 1);
    let _ = rfs::unlinkat(dir, &first, AtFlags::empty());
    Ok(rfs::linkat(dir, name, dir, &first, AtFlags::empty())?)
}

/// Temp files a killed agent left behind (writes are serialized per file, so none is live).
fn remove_stale_temps(dir: &OwnedFd, name: &OsStr) {
    let Ok(entries) = rfs::Dir::read_from(dir) else {
        return;
    };
    let mut suffix = b"-".to_vec();
    suffix.extend_from_slice(name.as_bytes());
    for e in entries.flatten() {
        let f = e.file_name().to_bytes();
        if f.starts_with(TEMP_PREFIX.as_bytes()) && f.ends_with(&suffix) {
            let _ = rfs::unlinkat(dir, e.file_name(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn backup_path(dir: &Path, name: &str, n: usize) -> PathBuf {
        dir.join(backup_name(OsStr::new(name), n))
    }

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
        let e = read(&fifo, &Links::Refused)
            .expect_err("a FIFO")
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big.env");
        std::fs::write(&big, vec![b'x'; MAX_SIZE as usize + 1]).expect("write");
        let e = read(&big, &Links::Refused)
            .expect_err("too big")
            .to_string();
        assert!(e.contains("larger than"), "{e}");
        assert!(read(Path::new("/dev/zero"), &Links::Refused).is_err());
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
        let e = write(
            &env,
            &Links::Refused,
            &etag(b"A=1\n"),
            &update(&[("A", "2")], &[]),
        )
        .expect_err("refused");
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
    fn atomic_write_keeps_mode_backs_up_and_follows_allowed_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.env");
        std::fs::write(&real, "A=1\n").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = read(&link, &Links::Refused).expect_err("a link is not followed unless allowed");
        assert!(
            matches!(
                e,
                EnvError::Unsafe {
                    rule: Rule::Symlink,
                    ..
                }
            ),
            "{e}"
        );
        let links = Links::Within(dir.path().to_owned());

        let first = read(&link, &links).expect("read");
        assert_eq!(
            first.entries,
            vec![EnvEntry {
                key: "A".into(),
                value: "1".into(),
                line: 1
            }]
        );
        let tag = write(&link, &links, &first.etag, &update(&[("A", "2")], &[])).expect("write");
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

        let stale =
            write(&link, &links, &first.etag, &update(&[("A", "3")], &[])).expect_err("stale");
        assert!(matches!(stale, EnvError::Stale { .. }));
        assert_eq!(
            std::fs::read_to_string(&real).expect("read"),
            "A=2\n",
            "untouched"
        );

        let mut tag = tag;
        for v in 3..=6 {
            tag =
                write(&link, &links, &tag, &update(&[("A", &v.to_string())], &[])).expect("write");
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

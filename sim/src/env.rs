//! The demo `.env` files: created at start with plausible content, read with a simple
//! `KEY=VALUE` parser, and edited in place (the edited lines only) with an atomic rename.
//!
//! Values are secrets in real life: nothing here logs one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use fleetdeck_proto::{EnvEntry, EnvFile, EnvUpdate, EnvWritten};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::noise::hash3;

/// Why reading or writing an env file failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvError {
    #[error("the app has no .env file")]
    NoFile,
    #[error("the file changed since it was read (etag {current} is current); read it again and redo the edit")]
    Stale { current: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
}

fn io_error(path: &Path, error: std::io::Error) -> EnvError {
    if error.kind() == std::io::ErrorKind::NotFound {
        EnvError::NoFile
    } else {
        EnvError::Read {
            path: path.display().to_string(),
            error,
        }
    }
}

/// SHA-256 of the bytes, lowercase hex.
pub(crate) fn etag(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key as the common dotenv parsers take it: `[A-Za-z_][A-Za-z0-9_.]*`.
pub(crate) fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// One `KEY=VALUE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based.
    pub(crate) line: u32,
}

/// The assignment on one line: `Ok(None)` for a blank or comment line, `Err` for anything else
/// that is not `[export ]KEY=VALUE` with a valid key and matching quotes.
fn parse_line(text: &str) -> Result<Option<(String, String)>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t.strip_prefix("export ").map_or(t, str::trim_start);
    let Some((key, value)) = t.split_once('=') else {
        return Err("expected KEY=VALUE".to_owned());
    };
    let key = key.trim();
    if !valid_key(key) {
        return Err(format!("invalid key {key:?}"));
    }
    Ok(Some((key.to_owned(), parse_value(value.trim())?)))
}

fn parse_value(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let tail = chars.as_str().trim();
                    if tail.is_empty() || tail.starts_with('#') {
                        return Ok(out);
                    }
                    return Err("text after the closing quote".to_owned());
                }
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("no closing double quote".to_owned());
    }
    if let Some(rest) = v.strip_prefix('\'') {
        let Some((inner, tail)) = rest.split_once('\'') else {
            return Err("no closing single quote".to_owned());
        };
        let tail = tail.trim();
        if tail.is_empty() || tail.starts_with('#') {
            return Ok(inner.to_owned());
        }
        return Err("text after the closing quote".to_owned());
    }
    // Unquoted: a ` #` starts a comment.
    let v = v.split_once(" #").map_or(v, |(value, _)| value);
    Ok(v.trim().to_owned())
}

/// Every assignment, in order; lines that do not parse are refused, naming the line.
pub(crate) fn parse(text: &str) -> Result<Vec<Assignment>, String> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if let Some((key, value)) = parse_line(l).map_err(|e| format!("line {line}: {e}"))? {
            out.push(Assignment { key, value, line });
        }
    }
    Ok(out)
}

/// Every assignment that parses; other lines are skipped.
pub(crate) fn parse_lenient(text: &str) -> Vec<Assignment> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (key, value) = parse_line(l).ok()??;
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            Some(Assignment { key, value, line })
        })
        .collect()
}

/// Each key once, at its last assignment, in file order.
pub(crate) fn entries(text: &str) -> Vec<EnvEntry> {
    let all = parse_lenient(text);
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, a) in all.iter().enumerate() {
        last.insert(&a.key, i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter()
        .map(|i| EnvEntry {
            key: all[i].key.clone(),
            value: all[i].value.clone(),
            line: all[i].line,
        })
        .collect()
}

/// The text to put after `KEY=`: bare when it is safe, else double-quoted with `\\`, `\"`, `\n`
/// and `\r` escaped.
pub(crate) fn quote(value: &str) -> String {
    let bare = !value.contains([' ', '\t', '#', '"', '\'', '\\', '\n', '\r', '$', '`'])
        && value.trim() == value;
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The new text after `update`: `set` replaces the value of a key's last assignment (or appends
/// one), `unset` removes every assignment of a key, other lines stay as they are; or `raw`
/// replaces the whole text if it parses.
pub(crate) fn apply(text: &str, update: &EnvUpdate) -> Result<String, EnvError> {
    if let Some(raw) = &update.raw {
        if !update.set.is_empty() || !update.unset.is_empty() {
            return Err(EnvError::Invalid(
                "send either raw, or set and unset, not both".to_owned(),
            ));
        }
        parse(raw).map_err(EnvError::Invalid)?;
        return Ok(raw.clone());
    }
    for key in update.set.keys().chain(&update.unset) {
        if !valid_key(key) {
            return Err(EnvError::Invalid(format!(
                "invalid key {key:?}: a key is a letter or _ followed by letters, digits, _ or ."
            )));
        }
    }
    if let Some(both) = update.unset.iter().find(|k| update.set.contains_key(*k)) {
        return Err(EnvError::Invalid(format!(
            "{both:?} is both set and unset; send it in one of them"
        )));
    }
    let key_of = |l: &str| parse_line(l).ok().flatten().map(|(k, _)| k);
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| key_of(l).is_none_or(|k| !update.unset.contains(&k)))
        .map(str::to_owned)
        .collect();
    for (key, value) in &update.set {
        let assignment = format!("{key}={}", quote(value));
        match lines
            .iter()
            .rposition(|l| key_of(l).as_deref() == Some(key.as_str()))
        {
            Some(i) => lines[i] = assignment,
            None => lines.push(assignment),
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// The file as a client sees it.
pub(crate) fn read(path: &Path) -> Result<EnvFile, EnvError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    Ok(EnvFile {
        etag: etag(&bytes),
        path: path.display().to_string(),
        entries: entries(&raw),
        raw,
    })
}

/// Applies `update` if the file's etag is still `if_match`: writes a temporary file beside it
/// (mode 0600) and renames it over the file, so a reader sees the old or the new text, whole.
pub(crate) fn write(
    path: &Path,
    if_match: &str,
    update: &EnvUpdate,
) -> Result<EnvWritten, EnvError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    let current = etag(&bytes);
    if current != if_match {
        return Err(EnvError::Stale { current });
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| EnvError::Invalid("the file is not UTF-8; edit it by hand".to_owned()))?;
    let new = apply(&text, update)?;
    replace(path, new.as_bytes()).map_err(|error| EnvError::Write {
        path: path.display().to_string(),
        error,
    })?;
    Ok(EnvWritten {
        etag: etag(new.as_bytes()),
        path: path.display().to_string(),
    })
}

fn replace(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{:016x}", rand::rng().random::<u64>()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        // The temporary file is ours and useless now; failing to remove it changes nothing.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Plausible `.env` content for an app, its secrets drawn from the seed.
pub(crate) fn demo_content(host: &str, app: &str, port: u16, seed: u64) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let secret = |rng: &mut rand::rngs::StdRng, len: usize| -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let db_password = secret(&mut rng, 20);
    let api_key = secret(&mut rng, 32);
    let session = secret(&mut rng, 40);
    format!(
        "# {app} on {host} (Fleetdeck demo; not real credentials)\n\
         PORT={port}\n\
         DATABASE_URL=postgres://{app}:{db_password}@db.internal:5432/{app}\n\
         REDIS_URL=redis://redis.internal:6379/0\n\
         API_KEY=sk_live_{api_key}\n\
         SESSION_SECRET={session}\n\
         LOG_LEVEL=info\n\
         \n\
         # Features under test\n\
         FEATURE_FLAGS=\"search,beta-ui\"\n\
         SMTP_FROM=\"Acme Shop <noreply@acme.example>\"\n"
    )
}

/// Creates `dir/<app>.env` with demo content (mode 0600) unless it exists: edits made in an
/// earlier run are kept.
pub(crate) fn create_demo(dir: &Path, host: &str, apps: &[&str], seed: u64) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for (i, app) in apps.iter().enumerate() {
        let path = dir.join(format!("{app}.env"));
        let port = 8_000 + u16::try_from(i).unwrap_or(0) * 10;
        let content = demo_content(host, app, port, hash3(seed, 50, i as u64));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => file.write_all(content.as_bytes())?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(set: &[(&str, &str)], unset: &[&str]) -> EnvUpdate {
        EnvUpdate {
            set: set
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            unset: unset.iter().map(|k| (*k).to_owned()).collect(),
            raw: None,
        }
    }

    fn values(text: &str) -> Vec<(String, String)> {
        entries(text)
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn keys() {
        for good in ["A", "_x", "a.b_C9", "PORT"] {
            assert!(valid_key(good), "{good}");
        }
        for bad in ["", "9A", "A-B", "A B", "é", ".a"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn lines_parse() {
        for (line, want) in [
            ("A=1", Some(("A", "1"))),
            ("  A = 1  ", Some(("A", "1"))),
            ("export A=1", Some(("A", "1"))),
            ("A=\"x y\"", Some(("A", "x y"))),
            ("A='x \"y\"'", Some(("A", "x \"y\""))),
            ("A=\"a\\\"b\\\\c\\nd\"", Some(("A", "a\"b\\c\nd"))),
            ("A=1 # comment", Some(("A", "1"))),
            ("A=", Some(("A", ""))),
            ("# comment", None),
            ("", None),
        ] {
            let got = parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let got = got.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            assert_eq!(got, want, "{line}");
        }
        for bad in ["A", "9A=1", "A=\"open", "A='open", "A=\"x\" y"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoted_values_read_back() {
        for v in [
            "plain",
            "",
            "with space",
            "a#b",
            "q\"uote",
            "it's",
            "back\\slash",
            "multi\nline",
            " edge ",
        ] {
            let text = format!("K={}\n", quote(v));
            assert_eq!(values(&text), [("K".to_owned(), v.to_owned())], "{text:?}");
        }
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a b"), "\"a b\"");
    }

    #[test]
    fn edits_touch_only_their_lines() {
        let text = "# top\nA=1\nB=2 # two\n\nA=3\nC=x\n";
        let out = apply(text, &update(&[("A", "new value"), ("D", "4")], &["C"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "# top\nA=1\nB=2 # two\n\nA=\"new value\"\nD=4\n");
        let e = entries(&out);
        assert_eq!(
            e.iter()
                .map(|e| (e.key.as_str(), e.line))
                .collect::<Vec<_>>(),
            [("B", 3), ("A", 5), ("D", 6)]
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            apply("A=1\n", &update(&[("9bad", "x")], &[])),
            Err(EnvError::Invalid(_))
        ));
        assert!(matches!(
            apply("A=1\n", &update(&[("A", "x")], &["A"])),
            Err(EnvError::Invalid(_))
        ));
        let raw = |r: &str| EnvUpdate {
            raw: Some(r.to_owned()),
            ..EnvUpdate::default()
        };
        assert!(
            matches!(apply("", &raw("A=1\nnot an assignment\n")), Err(EnvError::Invalid(m)) if m.contains("line 2"))
        );
        assert_eq!(apply("A=1\n", &raw("B=2\n")).ok().as_deref(), Some("B=2\n"));
    }

    #[test]
    fn write_checks_the_etag_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        create_demo(dir.path(), "h-01", &["web"], 1).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("web.env");
        let file = read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(file.entries.iter().any(|e| e.key == "DATABASE_URL"));
        assert!(matches!(
            write(&path, "0000", &update(&[("A", "1")], &[])),
            Err(EnvError::Stale { .. })
        ));
        let written = write(&path, &file.etag, &update(&[("LOG_LEVEL", "debug")], &[]))
            .unwrap_or_else(|e| panic!("{e}"));
        let again = read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written.etag, again.etag);
        assert!(again.raw.contains("\nLOG_LEVEL=debug\n"));
        let mode = fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert!(matches!(
            read(&dir.path().join("none.env")),
            Err(EnvError::NoFile)
        ));
    }
}

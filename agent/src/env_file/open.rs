//! Opening an app's `.env` so that nobody but root and the file's owner can redirect it.
//!
//! The agent runs as root; whoever can change a directory on the way to the file could put a
//! symlink (or a hard link, where `fs.protected_hardlinks` is off) to a root-only file in its
//! place and read or overwrite that file through the API. So the path is walked from `/` one
//! component at a time with `O_NOFOLLOW` (a symlink anywhere on it is refused), the walk keeps
//! the descriptor of the file's directory for everything the write does there, and every
//! directory on the way must be changeable only by root and the file's owner (OpenSSH's
//! `StrictModes` rule, with the one exception that a sticky directory such as `/tmp` is fine when
//! the entry below it belongs to root or the file's owner: there nobody else can rename it).
//! The file's own mode is not checked: write access to the file lets someone change its text,
//! never which file the agent opens, and a write replaces it by rename anyway.
//!
//! A per-app opt-in (`env_follow_symlink_within`) allows links whose fully resolved target lies
//! inside one directory; the resolved path is then walked by the same rules.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};

/// Which symlinks an app's env file may be reached through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Links {
    /// None: every component of the configured path is opened without following a link.
    #[default]
    Refused,
    /// A link is followed when the fully resolved path lies inside this directory (itself
    /// resolved when the file is opened).
    Within(PathBuf),
}

/// A rule the location of an env file breaks. Its code is the API error's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A symlink on the path, not allowed by the app's config.
    Symlink,
    /// A symlink allowed by `env_follow_symlink_within` whose target resolves outside it.
    LinkOutside,
    /// A directory on the path that someone other than root and the file's owner can change.
    Writable,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Self::Symlink => "env_file_symlink",
            Self::LinkOutside => "env_file_link_outside",
            Self::Writable => "env_file_dir_writable",
        }
    }
}

/// Why the file was not opened.
#[derive(Debug)]
pub enum OpenError {
    /// Its location breaks a rule; the message names the rule and the fix.
    Unsafe(Rule, String),
    Io(std::io::Error),
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<rustix::io::Errno> for OpenError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

/// The env file, opened for reading, with the directory that holds it.
#[derive(Debug)]
pub struct Opened {
    /// The directory holding the file, opened for reading: the write creates its temp file,
    /// backups and rename through it, never through a path.
    pub dir: OwnedFd,
    /// The file's name in `dir`.
    pub name: OsString,
    pub file: File,
    pub stat: Stat,
    /// The path that was opened: the configured one, or a link's resolved target.
    pub real: PathBuf,
}

/// Opens `path` for reading under the rules of the module docs.
pub fn open(path: &Path, links: &Links) -> Result<Opened, OpenError> {
    let real = resolve(path, links)?;
    let mut names: Vec<&OsStr> = Vec::new();
    for c in real.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(n),
            _ => {
                return Err(OpenError::Io(std::io::Error::other(
                    "the path must be absolute, without '.' or '..'",
                )))
            }
        }
    }
    let Some((name, parents)) = names.split_last() else {
        return Err(OpenError::Io(std::io::Error::other(
            "the path names no file",
        )));
    };
    let walk = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut at = PathBuf::from("/");
    let mut cur = rfs::open("/", walk, Mode::empty())?;
    let mut dirs = vec![Node::of(&at, &rfs::fstat(&cur)?)];
    for part in parents {
        at.push(part);
        let next = rfs::openat(&cur, *part, walk, Mode::empty())
            .map_err(|e| refuse_link(&cur, part, &at, path, e))?;
        dirs.push(Node::of(&at, &rfs::fstat(&next)?));
        cur = next;
    }
    let dir = rfs::openat(
        &cur,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Without blocking, so a FIFO put in its place cannot hang the agent.
    let fd = rfs::openat(
        &dir,
        *name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refuse_link(&dir, name, &real, path, e))?;
    let stat = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(OpenError::Io(std::io::Error::other(
            "it is not a regular file",
        )));
    }
    if let Some(message) = exposed(&dirs, stat.st_uid) {
        return Err(OpenError::Unsafe(Rule::Writable, message));
    }
    Ok(Opened {
        dir,
        name: name.to_os_string(),
        file: File::from(fd),
        stat,
        real,
    })
}

/// The path to walk: the configured one, or with the opt-in, where its links lead if that stays
/// inside the named directory.
fn resolve(path: &Path, links: &Links) -> Result<PathBuf, OpenError> {
    let Links::Within(within) = links else {
        return Ok(path.to_owned());
    };
    let real = std::fs::canonicalize(path)?;
    if real == path {
        return Ok(real);
    }
    let within_real = std::fs::canonicalize(within)?;
    if real.starts_with(&within_real) && real != within_real {
        Ok(real)
    } else {
        Err(OpenError::Unsafe(
            Rule::LinkOutside,
            format!(
                "refused: {} is reached through a symbolic link that resolves outside {} \
                 (env_follow_symlink_within of this app), so it is neither read nor written \
                 (rule: a followed link must stay inside the directory the config names); point \
                 the link at a file inside {}, or change env_follow_symlink_within in agent.toml",
                path.display(),
                within.display(),
                within.display()
            ),
        ))
    }
}

/// The error for a failed `openat(.., O_NOFOLLOW)` of `part` in `dir`: a rule's refusal if it is
/// a symlink, the I/O error otherwise.
fn refuse_link(
    dir: &OwnedFd,
    part: &OsStr,
    at: &Path,
    configured: &Path,
    error: rustix::io::Errno,
) -> OpenError {
    let is_link = matches!(error, rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
        && rfs::statat(dir, part, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
    if !is_link {
        return OpenError::Io(error.into());
    }
    let which = if at == configured {
        format!("{} is a symbolic link", at.display())
    } else {
        format!(
            "{} leads through a symbolic link at {}",
            configured.display(),
            at.display()
        )
    };
    OpenError::Unsafe(
        Rule::Symlink,
        format!(
            "refused: {which}, so it is neither read nor written (rule: the agent opens an env \
             file without following symbolic links, so a link swapped in cannot expose or \
             overwrite another file); set env_file to the real path, or allow links into one \
             directory with env_follow_symlink_within = \"DIR\" in this app's [[apps]] entry"
        ),
    )
}

/// A directory on the way to the file, as `fstat` saw it through the descriptor that was walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Node {
    fn of(path: &Path, stat: &Stat) -> Self {
        Self {
            path: path.to_owned(),
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode & 0o7777,
        }
    }
}

/// The first directory of `dirs` (from `/` down to the file's own) that someone other than root
/// and the file's owner `file_uid` could change, as the refusal's message. A directory's owner
/// can change it; so can its group or everyone when it is group- or world-writable, except in a
/// sticky directory, where they cannot rename or remove an entry they do not own.
pub fn exposed(dirs: &[Node], file_uid: u32) -> Option<String> {
    let trusted = |uid: u32| uid == 0 || uid == file_uid;
    for (i, d) in dirs.iter().enumerate() {
        let rule = "rule: only root and the file's owner may change the directories leading to \
                    an env file, since whoever can change one could swap the file for a link to \
                    another";
        if !trusted(d.uid) {
            return Some(format!(
                "refused: directory {} is owned by uid {}, who is neither root nor the owner of \
                 the env file (uid {file_uid}) ({rule}); run chown root {} (or make the file's \
                 owner own it)",
                d.path.display(),
                d.uid,
                d.path.display()
            ));
        }
        let next = dirs.get(i + 1);
        let next_uid = next.map_or(file_uid, |n| n.uid);
        let sticky = d.mode & 0o1000 != 0;
        if d.mode & 0o022 != 0 && !(sticky && trusted(next_uid)) {
            let who = match (d.mode & 0o020 != 0, d.mode & 0o002 != 0) {
                (true, true) => format!("group {} and others", d.gid),
                (true, false) => format!("group {}", d.gid),
                _ => "others".to_owned(),
            };
            // In a sticky directory only the owner of an entry can swap it: name that entry.
            let fix = match next.filter(|_| sticky) {
                Some(n) => format!(
                    "{} in it belongs to uid {next_uid}, neither root nor the file's owner \
                     (uid {file_uid}); run chown root {} (or make the file's owner own it)",
                    n.path.display(),
                    n.path.display()
                ),
                None => format!("run chmod go-w {}", d.path.display()),
            };
            return Some(format!(
                "refused: directory {} (mode {:04o}) is writable by {who} ({rule}); {fix}",
                d.path.display(),
                d.mode,
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, uid: u32, gid: u32, mode: u32) -> Node {
        Node {
            path: path.into(),
            uid,
            gid,
            mode,
        }
    }

    #[test]
    fn who_may_change_the_directories() {
        let root = node("/", 0, 0, 0o755);
        // (directories below `/`, the file's owner, refused mentioning)
        let cases: &[(&[Node], u32, Option<&str>)] = &[
            (&[node("/srv", 0, 0, 0o755)], 0, None),
            (
                &[
                    node("/srv", 0, 0, 0o755),
                    node("/srv/app", 1000, 1000, 0o700),
                ],
                1000,
                None,
            ),
            (
                &[
                    node("/srv", 0, 0, 0o755),
                    node("/srv/app", 1000, 1000, 0o755),
                ],
                0,
                Some("/srv/app is owned by uid 1000"),
            ),
            (
                &[
                    node("/srv", 0, 0, 0o755),
                    node("/srv/app", 1001, 1001, 0o755),
                ],
                1000,
                Some("uid 1001"),
            ),
            (
                &[node("/srv", 0, 0, 0o775)],
                0,
                Some("/srv (mode 0775) is writable by group 0"),
            ),
            (&[node("/srv", 0, 50, 0o757)], 0, Some("writable by others")),
            (
                &[
                    node("/srv", 0, 0, 0o755),
                    node("/srv/app", 1000, 1000, 0o2775),
                ],
                1000,
                Some("writable by group 1000 (rule: only root"),
            ),
            (
                &[node("/srv", 0, 0, 0o777), node("/srv/app", 0, 0, 0o755)],
                0,
                Some("group 0 and others"),
            ),
            // A sticky /tmp: fine when the entry below belongs to root or the file's owner.
            (
                &[node("/tmp", 0, 0, 0o1777), node("/tmp/d", 0, 0, 0o700)],
                1000,
                None,
            ),
            (
                &[
                    node("/tmp", 0, 0, 0o1777),
                    node("/tmp/d", 1000, 1000, 0o700),
                ],
                1000,
                None,
            ),
            (&[node("/tmp", 0, 0, 0o1777)], 1000, None),
            (
                &[
                    node("/tmp", 0, 0, 0o1777),
                    node("/tmp/d", 1002, 1002, 0o755),
                ],
                1000,
                Some("/tmp/d in it belongs to uid 1002"),
            ),
            // A sticky directory owned by someone else is theirs to change.
            (
                &[node("/tmp", 1002, 0, 0o1777)],
                1000,
                Some("/tmp is owned by uid 1002"),
            ),
        ];
        for (below, file_uid, want) in cases {
            let mut dirs = vec![root.clone()];
            dirs.extend(below.iter().cloned());
            let got = exposed(&dirs, *file_uid);
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(g.contains(w), "{below:?}: {g} lacks {w}"),
                _ => panic!("{below:?} file uid {file_uid}: want {want:?}, got {got:?}"),
            }
        }
        // `/` itself is checked too.
        assert!(exposed(&[node("/", 0, 0, 0o777)], 0).is_some());
    }
}

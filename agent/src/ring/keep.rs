//! The ring across a restart: saved to the state directory when the agent stops, taken back when
//! it starts, so an upgrade or a restart loses none of the samples a collector had not fetched
//! yet (the new instance serves them again, with their seqs; a collector ignores those it has).
//!
//! The file is a header line and then one wire [`Sample`] per line, as JSON: the format a newer
//! agent reads from an older one, whatever the ring's in-memory encoding becomes. It is taken
//! (read, then removed) once: a later crash, which saves nothing, cannot bring old samples back.
//! What cannot be read is reported and left out, never a reason not to start.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use fleetdeck_proto::Sample;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::Ring;

/// The file's name in the state directory.
pub const FILE: &str = "samples.jsonl";
const TEMP: &str = ".samples.jsonl.tmp";
const FORMAT: &str = "fleetdeck-agent samples";
const VERSION: u32 = 1;
/// A line longer than this is not a sample this agent wrote (a sample is well under 64 KiB).
const MAX_LINE: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    saved_unix_ms: u64,
}

/// What [`take`] did: how many samples it took back, and what it left out and why.
#[derive(Debug, Default, PartialEq)]
pub struct Taken {
    pub restored: usize,
    pub dropped: Option<String>,
}

/// Writes `samples` to `dir`/[`FILE`], atomically (a temp file opened `O_EXCL | O_NOFOLLOW`,
/// synced, renamed over): a stop cut short leaves the old file or none, never half of one.
pub fn save(
    dir: &Path,
    samples: impl IntoIterator<Item = Sample>,
    now_unix_ms: u64,
) -> std::io::Result<()> {
    let dir = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let _ = rfs::unlinkat(&dir, TEMP, AtFlags::empty());
    let fd = rfs::openat(
        &dir,
        TEMP,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let written = (|| {
        let mut out = BufWriter::new(File::from(fd));
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            saved_unix_ms: now_unix_ms,
        };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        for s in samples {
            serde_json::to_writer(&mut out, &s)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = written {
        let _ = rfs::unlinkat(&dir, TEMP, AtFlags::empty());
        return Err(e);
    }
    rfs::renameat(&dir, TEMP, &dir, FILE)?;
    Ok(rfs::fsync(&dir)?)
}

/// Reads and removes `dir`/[`FILE`] into `ring` (empty: the agent is starting), one sample at a
/// time: the newest run of samples whose seqs follow one another, as many as the ring holds. No
/// file is no samples; a file that is a link, not this format, or malformed from some line on
/// gives what came before and says what was left out.
pub fn take(dir: &Path, ring: &mut Ring) -> std::io::Result<Taken> {
    let dir = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = match rfs::openat(
        &dir,
        FILE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Taken::default()),
        Err(rustix::io::Errno::LOOP) => {
            rfs::unlinkat(&dir, FILE, AtFlags::empty())?;
            return Ok(Taken {
                restored: 0,
                dropped: Some(format!("{FILE} was a symbolic link: removed, not followed")),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    let taken = if file.metadata()?.is_file() {
        read(BufReader::new(file), ring)
    } else {
        Taken {
            restored: 0,
            dropped: Some(format!("{FILE} is not a regular file")),
        }
    };
    rfs::unlinkat(&dir, FILE, AtFlags::empty())?;
    Ok(taken)
}

fn read(mut input: impl BufRead, ring: &mut Ring) -> Taken {
    let mut taken = Taken::default();
    let mut line = Vec::new();
    let next_line = |input: &mut dyn BufRead, line: &mut Vec<u8>| -> Result<bool, String> {
        line.clear();
        let n = input
            .take(MAX_LINE + 1)
            .read_until(b'\n', line)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if n as u64 > MAX_LINE {
            return Err("a line is longer than 1 MiB".to_owned());
        }
        Ok(n > 0)
    };
    match next_line(&mut input, &mut line) {
        Ok(true) => match serde_json::from_slice::<Header>(&line) {
            Ok(h) if h.format == FORMAT && h.version == VERSION => {}
            _ => {
                taken.dropped = Some(format!(
                    "it does not start with a {FORMAT:?} version {VERSION} header"
                ));
                return taken;
            }
        },
        Ok(false) => return taken,
        Err(e) => {
            taken.dropped = Some(e);
            return taken;
        }
    }
    let mut number = 1;
    loop {
        number += 1;
        match next_line(&mut input, &mut line) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                taken.dropped = Some(format!("line {number}: {e}; the rest left out"));
                break;
            }
        }
        let sample: Sample = match serde_json::from_slice(&line) {
            Ok(s) => s,
            Err(e) => {
                taken.dropped = Some(format!(
                    "line {number} is not a sample ({e}); the rest left out"
                ));
                break;
            }
        };
        // Only a run of seqs one after another keeps its seqs: a break starts it again.
        if !ring.take_back(&sample) {
            taken.dropped = Some(format!(
                "line {number} breaks the run of seqs; the samples before it left out"
            ));
            ring.clear();
            ring.take_back(&sample);
        }
    }
    taken.restored = ring.len();
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Sample {
        let mut s = crate::ring::codec::tests_support::typical();
        s.seq = seq;
        s.taken_unix_ms = 1_795_000_000_000 + seq * 10_000;
        s
    }

    fn dir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("fleetdeck-keep-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn seqs(ring: &Ring) -> Vec<u64> {
        ring.samples().map(|s| s.seq).collect()
    }

    #[test]
    fn saved_samples_come_back_once_and_private() {
        let d = dir();
        let saved: Vec<Sample> = (5..=9).map(sample).collect();
        save(&d, saved.clone(), 1).expect("save");
        let mode = std::fs::metadata(d.join(FILE)).expect("file").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let mut ring = Ring::new(100);
        let taken = take(&d, &mut ring).expect("take");
        assert_eq!(
            taken,
            Taken {
                restored: 5,
                dropped: None
            }
        );
        let again: Vec<Sample> = ring.samples().collect();
        // As the ring holds them (figures at the codec's precision), seqs and times kept.
        assert_eq!(seqs(&ring), [5, 6, 7, 8, 9]);
        assert_eq!(again[0].taken_unix_ms, saved[0].taken_unix_ms);
        assert!(!d.join(FILE).exists(), "taken once");
        assert_eq!(take(&d, &mut Ring::new(100)).expect("again").restored, 0);
        // At most what the ring holds, the newest.
        save(&d, saved, 1).expect("save");
        let mut small = Ring::new(2);
        assert_eq!(take(&d, &mut small).expect("take").restored, 2);
        assert_eq!(seqs(&small), [8, 9]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_torn_or_foreign_file_gives_what_came_before_and_says_why() {
        let d = dir();
        save(&d, (1..=3).map(sample), 1).expect("save");
        let mut text = std::fs::read_to_string(d.join(FILE)).expect("read");
        text.push_str("{\"seq\": 4, \"taken_unix");
        std::fs::write(d.join(FILE), &text).expect("tear");
        let taken = take(&d, &mut Ring::new(100)).expect("take");
        assert_eq!(taken.restored, 3);
        assert!(taken.dropped.expect("said").contains("line 5"));

        std::fs::write(d.join(FILE), "GREETING=hello\n").expect("foreign");
        let taken = take(&d, &mut Ring::new(100)).expect("take");
        assert_eq!(taken.restored, 0);
        assert!(taken.dropped.expect("said").contains("header"));

        // A link is neither followed nor kept.
        std::fs::write(d.join("elsewhere"), text).expect("target");
        std::os::unix::fs::symlink(d.join("elsewhere"), d.join(FILE)).expect("link");
        let taken = take(&d, &mut Ring::new(100)).expect("take");
        assert_eq!(taken.restored, 0);
        assert!(taken.dropped.expect("said").contains("symbolic link"));
        assert!(d.join("elsewhere").exists() && !d.join(FILE).exists());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_break_in_the_seqs_keeps_the_newest_run() {
        let mut text = serde_json::to_string(&Header {
            format: FORMAT.into(),
            version: VERSION,
            saved_unix_ms: 0,
        })
        .expect("header");
        for seq in [1, 2, 3, 10, 11] {
            text.push('\n');
            text.push_str(&serde_json::to_string(&sample(seq)).expect("sample"));
        }
        let mut ring = Ring::new(100);
        let taken = read(text.as_bytes(), &mut ring);
        assert_eq!(seqs(&ring), [10, 11]);
        assert_eq!(taken.restored, 2);
        assert!(taken.dropped.is_some());
    }
}

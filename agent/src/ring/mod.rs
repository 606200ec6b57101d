//! The ring buffer of samples: the last `sample_retention` of host figures and app statuses, each
//! with an increasing `seq`, so a collector that was away backfills what it missed.
//!
//! Memory bound: each sample is held as a compact byte string (see [`codec`]): about 60 bytes plus
//! 8 per filesystem, 8 per interface and 10 per app, plus 16 bytes of slice header and the
//! allocator's rounding. A VM with 3 apps, 2 filesystems and 3 interfaces takes about 160 bytes
//! a sample: 24 h at 10 s (8,640 samples) is about 1.4 MB. [`Ring::memory_bytes`] reports it.

pub mod codec;
pub mod keep;

use std::collections::VecDeque;

use fleetdeck_proto::{Sample, SamplesPage};

use codec::Names;

/// At most this many samples in one `/v1/samples` answer.
pub const PAGE_LIMIT: usize = 1_000;

#[derive(Debug)]
pub struct Ring {
    capacity: usize,
    /// The seq of `entries[0]`.
    first_seq: u64,
    entries: VecDeque<Box<[u8]>>,
    names: Names,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            first_seq: 1,
            entries: VecDeque::with_capacity(capacity),
            names: Names::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stores `sample` under the next seq (its own `seq` is ignored) and returns that seq,
    /// dropping the oldest sample when full.
    pub fn push(&mut self, sample: &Sample) -> u64 {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.first_seq += 1;
        }
        self.entries
            .push_back(codec::encode(sample, &mut self.names));
        self.first_seq + self.entries.len() as u64 - 1
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest_seq(&self) -> Option<u64> {
        (!self.entries.is_empty()).then(|| self.first_seq + self.entries.len() as u64 - 1)
    }

    pub fn oldest_seq(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.first_seq)
    }

    /// The samples with seq > `after`, oldest first, at most `limit` (capped at [`PAGE_LIMIT`]).
    pub fn samples_after(&self, after: u64, limit: usize, instance_id: &str) -> SamplesPage {
        let limit = limit.clamp(1, PAGE_LIMIT);
        let start = after.saturating_add(1).max(self.first_seq);
        let skip = (start - self.first_seq) as usize;
        let samples: Vec<Sample> = self
            .entries
            .iter()
            .enumerate()
            .skip(skip)
            .take(limit)
            .map(|(i, bytes)| codec::decode(self.first_seq + i as u64, bytes, &self.names))
            .collect();
        let more = skip.saturating_add(samples.len()) < self.entries.len();
        SamplesPage {
            instance_id: instance_id.to_owned(),
            oldest_seq: self.oldest_seq(),
            latest_seq: self.latest_seq(),
            samples,
            more,
        }
    }

    /// Every sample held, oldest first, each with its seq, decoded one at a time: what
    /// [`keep::save`] writes when the agent stops.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, bytes)| codec::decode(self.first_seq + i as u64, bytes, &self.names))
    }

    /// Takes back one sample a previous run of the agent saved (see [`keep::take`]), keeping its
    /// seq, so a collector that reads it again recognises it: into an empty ring, or right after
    /// the latest (the oldest dropped when full). Anything else changes nothing and is false.
    pub fn take_back(&mut self, sample: &Sample) -> bool {
        match self.latest_seq() {
            _ if sample.seq == 0 => return false,
            None => self.first_seq = sample.seq,
            Some(latest) if sample.seq == latest + 1 => {}
            Some(_) => return false,
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.first_seq += 1;
        }
        self.entries
            .push_back(codec::encode(sample, &mut self.names));
        true
    }

    /// Empties the ring (the next push is seq 1 again).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.first_seq = 1;
        self.names = Names::default();
    }

    /// Heap held by the samples and the name table (allocator rounding to 16 bytes included).
    pub fn memory_bytes(&self) -> usize {
        let samples: usize = self.entries.iter().map(|e| e.len().div_ceil(16) * 16).sum();
        samples
            + self.entries.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.names.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Sample {
        Sample {
            seq: 0,
            taken_unix_ms: n,
            cpu_percent: None,
            memory_used_bytes: 0,
            memory_total_bytes: 0,
            swap_used_bytes: 0,
            swap_total_bytes: 0,
            cores: 0,
            load1: 0.0,
            load5: 0.0,
            load15: 0.0,
            filesystems: vec![],
            network: vec![],
            apps: vec![],
            disks: vec![],
        }
    }

    fn seqs(page: &SamplesPage) -> Vec<u64> {
        page.samples.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn seqs_increase_and_pages_follow_after() {
        let mut ring = Ring::new(10);
        assert_eq!(ring.latest_seq(), None);
        assert!(ring.samples_after(0, 100, "i").samples.is_empty());
        for n in 1..=5 {
            assert_eq!(ring.push(&sample(n * 100)), n);
        }
        let page = ring.samples_after(0, 100, "i");
        assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
        assert_eq!(
            page.samples[2].taken_unix_ms, 300,
            "each seq keeps its own sample"
        );
        assert!(!page.more);
        assert_eq!(seqs(&ring.samples_after(3, 100, "i")), [4, 5]);
        assert!(ring.samples_after(5, 100, "i").samples.is_empty());
        assert!(ring.samples_after(99, 100, "i").samples.is_empty());
        let page = ring.samples_after(1, 2, "i");
        assert_eq!(seqs(&page), [2, 3]);
        assert!(page.more);
    }

    #[test]
    fn full_ring_drops_the_oldest_and_says_so() {
        let mut ring = Ring::new(3);
        for n in 1..=7 {
            ring.push(&sample(n));
        }
        let page = ring.samples_after(0, 100, "i");
        assert_eq!(seqs(&page), [5, 6, 7]);
        assert_eq!((page.oldest_seq, page.latest_seq), (Some(5), Some(7)));
        assert_eq!(page.samples[0].taken_unix_ms, 5);
    }

    #[test]
    fn taken_back_samples_keep_their_seqs_and_the_next_follows() {
        let mut old = Ring::new(10);
        for n in 1..=7 {
            old.push(&sample(n));
        }
        let mut ring = Ring::new(4);
        for s in old.samples() {
            assert!(ring.take_back(&s));
        }
        assert_eq!(
            seqs(&ring.samples_after(0, 100, "i")),
            [4, 5, 6, 7],
            "the newest that fit"
        );
        assert_eq!(ring.push(&sample(8)), 8);
        assert_eq!(ring.samples_after(7, 100, "i").samples[0].taken_unix_ms, 8);
        // Only right after the latest.
        let saved: Vec<Sample> = old.samples().collect();
        assert!(!ring.take_back(&saved[2]));
        ring.clear();
        assert!(ring.take_back(&saved[2]) && !ring.take_back(&saved[4]));
    }

    #[test]
    fn a_day_at_ten_seconds_stays_within_the_documented_bound() {
        let mut ring = Ring::new(8_640);
        let mut s = codec::tests_support::typical();
        for n in 0..20_000u64 {
            s.taken_unix_ms = 1_795_000_000_000 + n * 10_000;
            s.apps[1].restarts = Some(n);
            ring.push(&s);
        }
        let bytes = ring.memory_bytes();
        // 3 apps, 2 filesystems, 2 interfaces: documented as about 160 bytes a sample.
        assert!(bytes <= 8_640 * 176, "{bytes} bytes for a full day");
        assert_eq!(
            ring.samples_after(0, 1, "i").oldest_seq,
            Some(20_000 - 8_640 + 1)
        );
    }
}

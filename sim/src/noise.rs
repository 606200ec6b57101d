//! Cheap deterministic pseudo-randomness: a SplitMix64 hash of a few integers, and value noise
//! that moves smoothly over time. Everything a virtual host reports comes from these, so a
//! sample or a log line is computed on demand, the same each time it is asked for.

/// SplitMix64's finalizer: a fast, well-mixed 64-bit hash of one integer.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A hash of two integers (order matters).
pub(crate) fn hash(a: u64, b: u64) -> u64 {
    mix(a ^ mix(b).rotate_left(23))
}

/// A hash of three integers.
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    hash(hash(a, b), c)
}

/// A hash turned into a number in `[0, 1)`.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Value noise in `[0, 1]`: random values at every multiple of `period_ms`, joined by a smooth
/// step, so a figure drifts instead of jumping from one request to the next.
pub(crate) fn smooth(seed: u64, t_ms: u64, period_ms: u64) -> f64 {
    let period = period_ms.max(1);
    let knot = t_ms / period;
    let frac = (t_ms % period) as f64 / period as f64;
    let a = unit(hash(seed, knot));
    let b = unit(hash(seed, knot + 1));
    let s = frac * frac * (3.0 - 2.0 * frac);
    a + (b - a) * s
}

/// `len` lowercase hex digits drawn from `seed` (an id that looks like a real one).
pub(crate) fn hex(seed: u64, len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.push_str(&format!("{:016x}", hash(seed, i)));
        i += 1;
    }
    out.truncate(len);
    out
}

/// A UUID-shaped id (`8-4-4-4-12` hex digits) drawn from `seed`.
pub(crate) fn uuid(seed: u64) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_stays_in_range_and_moves_little_per_second() {
        let mut prev = smooth(7, 0, 60_000);
        for t in (1_000..3_600_000).step_by(1_000) {
            let v = smooth(7, t, 60_000);
            assert!((0.0..=1.0).contains(&v), "{v}");
            assert!((v - prev).abs() < 0.05, "jump at {t}: {prev} -> {v}");
            prev = v;
        }
    }

    #[test]
    fn ids_have_their_shape() {
        assert_eq!(hex(1, 64).len(), 64);
        assert_eq!(hex(1, 12), hex(1, 12));
        assert_ne!(hex(1, 12), hex(2, 12));
        let u = uuid(3);
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }
}

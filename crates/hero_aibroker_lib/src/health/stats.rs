//! Live measurements per backend that the latency, best and throughput orderings read:
//! exponentially weighted moving averages of time to first byte, success and output speed.
//! Lock-free (one atomic each); concurrent updates may overwrite each other, which only
//! costs a sample. Carried over across reloads like circuits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Weight of a new sample.
const ALPHA: f64 = 0.2;

/// See the module docs.
#[derive(Debug)]
pub struct BackendStats {
    /// EWMA of time to first byte, µs; 0 = never measured.
    ttfb_us: AtomicU64,
    /// EWMA of success (1.0 = every attempt succeeded), as f64 bits.
    success: AtomicU64,
    /// EWMA of output tokens per second after the first byte, as f64 bits; 0 = unknown.
    tps: AtomicU64,
}

impl Default for BackendStats {
    fn default() -> Self {
        BackendStats {
            ttfb_us: AtomicU64::new(0),
            success: AtomicU64::new(1.0f64.to_bits()),
            tps: AtomicU64::new(0),
        }
    }
}

fn ewma(cell: &AtomicU64, sample: f64) {
    let old = f64::from_bits(cell.load(Ordering::Relaxed));
    let new = if old == 0.0 {
        sample
    } else {
        old + ALPHA * (sample - old)
    };
    cell.store(new.to_bits(), Ordering::Relaxed);
}

impl BackendStats {
    /// A successful attempt answered after `ttfb`.
    pub fn success(&self, ttfb: Duration) {
        let us = u64::try_from(ttfb.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.ttfb_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us
        } else {
            // Integer EWMA with the same weight as `ALPHA` (1/5).
            old - old / 5 + us / 5
        };
        self.ttfb_us.store(new.max(1), Ordering::Relaxed);
        let s = f64::from_bits(self.success.load(Ordering::Relaxed));
        self.success
            .store((s + ALPHA * (1.0 - s)).to_bits(), Ordering::Relaxed);
    }

    /// A failed attempt (not a rate limit or a refused key: those are about one key).
    pub fn failure(&self) {
        let s = f64::from_bits(self.success.load(Ordering::Relaxed));
        self.success
            .store((s - ALPHA * s).to_bits(), Ordering::Relaxed);
    }

    /// A finished reply: `tokens` output tokens over `after_first_byte`.
    pub fn throughput(&self, tokens: u64, after_first_byte: Duration) {
        let secs = after_first_byte.as_secs_f64();
        if tokens > 0 && secs > 0.0 {
            ewma(&self.tps, tokens as f64 / secs);
        }
    }

    /// EWMA time to first byte in µs; 0 = never measured (sorts first, so it gets measured).
    pub fn ttfb_us(&self) -> u64 {
        self.ttfb_us.load(Ordering::Relaxed)
    }

    /// EWMA success rate in [0, 1].
    pub fn success_rate(&self) -> f64 {
        f64::from_bits(self.success.load(Ordering::Relaxed))
    }

    /// EWMA output tokens per second; 0 = unknown.
    pub fn tokens_per_second(&self) -> f64 {
        f64::from_bits(self.tps.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_move_towards_samples() {
        let s = BackendStats::default();
        assert_eq!(s.ttfb_us(), 0);
        assert!((s.success_rate() - 1.0).abs() < 1e-9);
        s.success(Duration::from_millis(100));
        assert_eq!(s.ttfb_us(), 100_000, "the first sample is taken as is");
        s.success(Duration::from_millis(200));
        assert_eq!(s.ttfb_us(), 120_000);
        s.failure();
        s.failure();
        assert!(s.success_rate() < 0.7, "{}", s.success_rate());
        s.throughput(100, Duration::from_secs(2));
        assert!((s.tokens_per_second() - 50.0).abs() < 1e-9);
        s.throughput(0, Duration::from_secs(1));
        assert!(
            (s.tokens_per_second() - 50.0).abs() < 1e-9,
            "no tokens, no sample"
        );
    }
}

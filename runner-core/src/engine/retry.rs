//! Retries in one place: only transient failures, bounded by attempts and wall time, with
//! jittered exponential backoff.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts per job, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Largest delay between attempts.
    pub max_delay: Duration,
    /// Total wall time a job may spend across its attempts before giving up.
    pub max_wall: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(120),
            max_wall: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `next` (2, 3, …), with ±50 % jitter from `jitter` ∈ [0, 1), or
    /// `None` when no further attempt is allowed after `elapsed`.
    pub fn delay_before(&self, next: u32, elapsed: Duration, jitter: f64) -> Option<Duration> {
        if next > self.max_attempts {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (next.saturating_sub(2)).min(20));
        let capped = exp.min(self.max_delay);
        let delay = capped.mul_f64(0.5 + jitter.clamp(0.0, 1.0));
        (elapsed + delay < self.max_wall).then_some(delay)
    }
}

/// Wait `delay` before a retry, or until `cancel` fires; `false` when cancelled. Every retry
/// loop of the engine (prepare and jobs) waits through this, so Ctrl-C, SIGTERM and SIGHUP end a
/// backoff at once.
pub async fn wait(delay: Duration, cancel: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backoff_ends_at_once_on_cancel() {
        let cancel = tokio_util::sync::CancellationToken::new();
        assert!(wait(Duration::from_millis(1), &cancel).await);
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel();
        });
        let t = std::time::Instant::now();
        assert!(!wait(Duration::from_secs(60), &cancel).await);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bounded_by_attempts_and_wall_time() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
            max_wall: Duration::from_secs(100),
        };
        let z = Duration::ZERO;
        assert_eq!(p.delay_before(2, z, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(p.delay_before(3, z, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(
            p.delay_before(4, z, 0.5),
            Some(Duration::from_secs(3)),
            "capped"
        );
        assert_eq!(p.delay_before(5, z, 0.5), None, "attempts exhausted");
        assert_eq!(
            p.delay_before(2, Duration::from_secs(99), 0.5),
            None,
            "wall time"
        );
        let lo = p.delay_before(2, z, 0.0).unwrap();
        assert!(lo > Duration::ZERO);
        let hi = p.delay_before(2, z, 0.999).unwrap();
        assert!(lo < hi && lo >= Duration::from_millis(500) && hi < Duration::from_millis(1500));
    }
}

//! The retry policy of LLM requests, owned in one place. It decides which failures are retried
//! and how long to wait: exponential backoff with full jitter, or the server's `Retry-After`.
//! The shared pause after a 429 is in [`crate::cooldown`].

use std::time::{Duration, SystemTime};

/// Default number of attempts of one request, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Default first backoff; it doubles with each attempt.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
/// Default longest backoff.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Default longest wait that a `Retry-After` header may ask for.
pub const DEFAULT_RETRY_AFTER_CEILING: Duration = Duration::from_secs(300);

/// Failure of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server replied with this HTTP status.
    Status(u16),
    /// No complete response arrived within the request timeout.
    Timeout,
    /// The connection failed, was reset or closed early.
    Connection,
    /// The server replied 200 with a body that contains no usable text.
    EmptyBody,
    /// The body is not the JSON an OpenAI-compatible server sends.
    Malformed,
}

/// Whether to try a failed attempt again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Retry,
    Fail,
}

/// Returns whether `failure` is worth another attempt: 429, 408, 5xx, timeouts, connection
/// failures and unusable 200 bodies are; other 4xx are not, because sending the same request
/// again gets the same response.
pub fn classify(failure: &Failure) -> Decision {
    match failure {
        Failure::Status(408 | 429) => Decision::Retry,
        Failure::Status(status) if (500..600).contains(status) => Decision::Retry,
        Failure::Status(_) => Decision::Fail,
        Failure::Timeout | Failure::Connection | Failure::EmptyBody | Failure::Malformed => {
            Decision::Retry
        }
    }
}

/// Reads the wait a response requests: `retry-after-ms` (milliseconds), or `Retry-After` as
/// seconds or as an HTTP date relative to `now`. Returns `None` when neither is usable.
pub fn retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Backoff settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub retry_after_ceiling: Duration,
    /// How long a stream of 429s may last before its attempts count against `max_attempts`.
    pub rate_limit_patience: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            retry_after_ceiling: DEFAULT_RETRY_AFTER_CEILING,
            rate_limit_patience: crate::cooldown::DEFAULT_RATE_LIMIT_PATIENCE,
        }
    }
}

impl RetryPolicy {
    /// Returns the wait before attempt `attempt + 1` (`attempt` counts from 1), or `None`
    /// when no attempt is left. `jitter` is uniform in `[0, 1)`; the server's `Retry-After`
    /// wins over the backoff, capped at the ceiling.
    pub fn delay(&self, attempt: u32, jitter: f64, server: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(wait) = server {
            return Some(wait.min(self.retry_after_ceiling));
        }
        // Full jitter: a uniform wait between 0 and the exponential bound, so that many
        // requests that failed together do not retry together.
        let exponent = attempt.saturating_sub(1).min(30);
        let bound = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        Some(bound.mul_f64(jitter.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_retries_transient_failures_only() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                classify(&Failure::Status(status)),
                Decision::Retry,
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert_eq!(
                classify(&Failure::Status(status)),
                Decision::Fail,
                "{status}"
            );
        }
        assert_eq!(classify(&Failure::Timeout), Decision::Retry);
        assert_eq!(classify(&Failure::Connection), Decision::Retry);
        assert_eq!(classify(&Failure::EmptyBody), Decision::Retry);
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_milliseconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(None, Some("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(None, Some("1.5"), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(Some("250"), Some("9"), now),
            Some(Duration::from_millis(250))
        );

        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            retry_after(None, Some(&later), now),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(retry_after(None, Some(&past), now), Some(Duration::ZERO));

        assert_eq!(retry_after(None, Some("soon"), now), None);
        assert_eq!(retry_after(None, Some("-3"), now), None);
        assert_eq!(retry_after(None, None, now), None);
    }

    #[test]
    fn delay_backs_off_with_jitter_and_caps() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.999_999, None).unwrap().as_millis(), 499);
        assert_eq!(policy.delay(3, 0.5, None), Some(Duration::from_secs(1)));
        assert_eq!(policy.delay(5, 0.0, None), Some(Duration::ZERO));
        assert_eq!(policy.delay(5, 1.0, None), Some(Duration::from_secs(8)));
        assert_eq!(policy.delay(DEFAULT_MAX_ATTEMPTS, 0.5, None), None);

        let capped = RetryPolicy {
            max_attempts: 40,
            ..RetryPolicy::default()
        };
        assert_eq!(capped.delay(30, 1.0, None), Some(DEFAULT_MAX_DELAY));
        assert_eq!(
            capped.delay(2, 0.5, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            capped.delay(2, 0.5, Some(Duration::from_secs(9999))),
            Some(DEFAULT_RETRY_AFTER_CEILING)
        );
    }
}

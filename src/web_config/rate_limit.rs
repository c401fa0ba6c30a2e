//! `rate_limit`, as the exporter-toolkit defines it: one token bucket for the whole
//! server (Go's `rate.NewLimiter(rate.Every(interval), burst)`), asked before anything
//! else on every request; an empty bucket answers `429 Too Many Requests`. An interval
//! of 0 (or no `rate_limit`) means no limit; a burst of 0 with an interval refuses
//! every request, as in the toolkit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Warnings;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    interval: Option<RawInterval>,
    burst: Option<i64>,
}

/// Go's YAML reads a `time.Duration` from a string (`"1s"`) or an integer (nanoseconds).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawInterval {
    Nanos(i64),
    Text(String),
}

/// A validated `rate_limit` that limits: a positive interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// One request is allowed per interval, on average.
    pub interval: Duration,
    /// Requests allowed at once after a quiet spell (the bucket's size).
    pub burst: u32,
}

impl RawRateLimit {
    pub(super) fn build(&self, warnings: &mut Warnings) -> Result<Option<RateLimit>, String> {
        let interval = match &self.interval {
            None | Some(RawInterval::Nanos(0)) => Duration::ZERO,
            // Go would take 5 as five nanoseconds, which is never what was meant.
            Some(RawInterval::Nanos(n)) => {
                return Err(format!(
                    "rate_limit.interval: {n} has no unit; write it as a duration such as \"{n}s\""
                ));
            }
            Some(RawInterval::Text(s)) => {
                go_duration(s).map_err(|e| format!("rate_limit.interval: {e}"))?
            }
        };
        let burst = self.burst.unwrap_or(0);
        let burst = u32::try_from(burst).map_err(|_| {
            format!("rate_limit.burst: {burst} is not a number of requests (0 or more)")
        })?;
        if interval.is_zero() {
            return Ok(None);
        }
        if burst == 0 {
            warnings.push(format!(
                "rate_limit: burst 0 with interval {} refuses every request (429), as in the toolkit; set burst to 1 or more",
                humantime::format_duration(interval)
            ));
        }
        Ok(Some(RateLimit { interval, burst }))
    }
}

/// Go's `time.ParseDuration`, for durations of zero or more: `300ms`, `1.5h`, `1h30m`.
fn go_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}; use a number and a unit (ns, us, ms, s, m, h), such as \"1s\""
        )
    };
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') && rest != "-0" {
        return Err(format!("{s:?} is negative"));
    }
    rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * nanos;
        rest = next;
    }
    // Go's limit: about 292 years.
    if total > i64::MAX as f64 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// The server's one bucket. Built again, full, when a reloaded config changes the
/// settings (the toolkit keeps the settings it started with).
#[derive(Debug, Default)]
pub struct RateLimiter {
    state: Mutex<Option<(RateLimit, Bucket)>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// Whether one more request may go through under `limit` at `now`.
    pub fn allow(&self, limit: Option<RateLimit>, now: Instant) -> bool {
        let Some(limit) = limit else {
            return true;
        };
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (settings, bucket) = state.get_or_insert_with(|| (limit, Bucket::full(limit, now)));
        if *settings != limit {
            *settings = limit;
            *bucket = Bucket::full(limit, now);
        }
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = bucket.at.max(now);
        bucket.tokens =
            (bucket.tokens + elapsed / limit.interval.as_secs_f64()).min(f64::from(limit.burst));
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(limit.burst),
            at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("+1s", Duration::from_secs(1)),
            ("300ms", Duration::from_millis(300)),
            ("1.5h", Duration::from_secs(5400)),
            ("1h30m", Duration::from_secs(5400)),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("10ns", Duration::from_nanos(10)),
            (".5s", Duration::from_millis(500)),
        ] {
            assert_eq!(go_duration(text), Ok(want), "{text}");
        }
        for text in ["", "1", "s", "1x", "1.2.3s", "-1s", "1s2", "."] {
            assert!(go_duration(text).is_err(), "{text}");
        }
        assert_eq!(go_duration("-1s").unwrap_err(), "\"-1s\" is negative");
    }

    fn build(
        yaml_interval: Option<RawInterval>,
        burst: Option<i64>,
    ) -> Result<Option<RateLimit>, String> {
        RawRateLimit {
            interval: yaml_interval,
            burst,
        }
        .build(&mut Vec::new())
    }

    #[test]
    fn settings() {
        assert_eq!(build(None, None), Ok(None));
        assert_eq!(build(Some(RawInterval::Nanos(0)), Some(0)), Ok(None));
        assert_eq!(
            build(Some(RawInterval::Text("0s".into())), Some(5)),
            Ok(None)
        );
        assert_eq!(
            build(Some(RawInterval::Text("1s".into())), Some(3)),
            Ok(Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 3
            }))
        );
        assert_eq!(
            build(Some(RawInterval::Nanos(5)), None).unwrap_err(),
            "rate_limit.interval: 5 has no unit; write it as a duration such as \"5s\""
        );
        assert_eq!(
            build(Some(RawInterval::Text("1s".into())), Some(-1)).unwrap_err(),
            "rate_limit.burst: -1 is not a number of requests (0 or more)"
        );
        let mut w = Vec::new();
        RawRateLimit {
            interval: Some(RawInterval::Text("1s".into())),
            burst: Some(0),
        }
        .build(&mut w)
        .unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn bucket_starts_full_refills_one_per_interval_and_caps_at_burst() {
        let l = RateLimiter::default();
        let limit = Some(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(l.allow(None, t0), "no limit");
        assert!(l.allow(limit, t0));
        assert!(l.allow(limit, t0));
        assert!(!l.allow(limit, t0), "burst spent");
        assert!(!l.allow(limit, t0 + Duration::from_millis(900)));
        assert!(l.allow(limit, t0 + Duration::from_millis(1000)));
        // A long quiet spell refills to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        assert!(l.allow(limit, later));
        assert!(l.allow(limit, later));
        assert!(!l.allow(limit, later));
        // Burst 0: nothing ever goes through (the toolkit's own test relies on it).
        let zero = Some(RateLimit {
            interval: Duration::from_secs(1),
            burst: 0,
        });
        for s in 0..5 {
            assert!(!l.allow(zero, later + Duration::from_secs(s * 10)));
        }
    }
}

//! Times as reseal keeps them: milliseconds since the Unix epoch (UTC), and their RFC 3339
//! text; and the one backoff every retry waits. Shared by every module; knows nothing else.

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Formats milliseconds since the epoch as an RFC 3339 UTC time, to the second.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Parses an RFC 3339 time into milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A backoff for the `attempt`-th retry (1-based): exponential from 100 ms up to 10 s, with
/// jitter over its upper half, so that requests throttled together do not retry together.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = (100u64 << attempt.saturating_sub(1).min(7)).min(10_000);
    std::time::Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(super::backoff(1) <= Duration::from_millis(100));
        assert!(super::backoff(4) >= Duration::from_millis(400));
        assert!(super::backoff(30) <= Duration::from_secs(10));
    }
}

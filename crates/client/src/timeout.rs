//! How long one exchange with the daemon may take, from disklib's `timeoutMS`.

use std::time::Duration;

/// The per-exchange network timeout when disklib gives none (`timeoutMS` 0 or no params).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest timeout honoured: a larger `timeoutMS` is clamped to it, so that no call can
/// wait for hours on a peer that is gone.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The timeout a session uses for a `timeoutMS` from disklib (`None`: no params given).
pub fn effective_timeout(timeout_ms: Option<u64>) -> Duration {
    match timeout_ms {
        None | Some(0) => DEFAULT_TIMEOUT,
        Some(ms) => Duration::from_millis(ms).min(MAX_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_defaults_and_clamps() {
        assert_eq!(effective_timeout(None), DEFAULT_TIMEOUT);
        assert_eq!(effective_timeout(Some(0)), DEFAULT_TIMEOUT);
        assert_eq!(effective_timeout(Some(1500)), Duration::from_millis(1500));
        assert_eq!(effective_timeout(Some(u64::MAX)), MAX_TIMEOUT);
    }
}

//! The scrape request: what the bytes a scraper sent ask for, decided before any metric is
//! rendered. The one decoder of the metrics endpoint, kept free of the daemon's state so that
//! it can be fuzzed on its own (`fuzz/fuzz_targets/metrics_request.rs`).

/// What a request asks for, or why it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// No blank line yet, and still under the size limit: more may come.
    Incomplete,
    /// No blank line within the size limit: `431`.
    TooLarge,
    /// Not `METHOD TARGET HTTP/1.x`: `400`.
    Malformed,
    /// A method other than `GET`: `405`.
    NotGet,
    /// A path other than `/metrics` (a query string is ignored): `404`.
    NotMetrics,
    /// `GET /metrics`: the metrics.
    Metrics,
}

/// Decides what `request` (the bytes received so far) asks for; `max` is the largest request
/// accepted.
pub fn parse(request: &[u8], max: usize) -> Request {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n");
    if end.is_none() {
        return if request.len() >= max {
            Request::TooLarge
        } else {
            Request::Incomplete
        };
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or("").trim_end();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    if method != "GET" {
        return Request::NotGet;
    }
    if target.split('?').next() != Some("/metrics") {
        return Request::NotMetrics;
    }
    Request::Metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_apart() {
        let p = |s: &str| parse(s.as_bytes(), 64);
        assert_eq!(
            p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(p("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Request::Metrics);
        assert_eq!(p("GET /metrics HTTP/1.1\r\n"), Request::Incomplete);
        assert_eq!(p(&"x".repeat(64)), Request::TooLarge);
        assert_eq!(p("GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(p("GET /metrics HTTP/2\r\n\r\n"), Request::Malformed);
        assert_eq!(p("POST /metrics HTTP/1.1\r\n\r\n"), Request::NotGet);
        assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), Request::NotMetrics);
    }
}

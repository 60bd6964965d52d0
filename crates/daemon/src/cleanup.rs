//! What the daemon tidies on each export at start, before serving: reservations a crash
//! interrupted are given back, and temporaries a crash left are removed. Everything done, and
//! everything that could not be, is logged.

use openvaai_engine::Export;

/// Problems logged one line each; the rest are counted in one line.
const LOGGED: usize = 20;

/// What [`at_start`] tidied.
pub struct Tidied {
    /// Stale temporaries removed.
    pub temporaries: u64,
    /// Interrupted reservations given back.
    pub reservations: u64,
}

/// Recovers interrupted reservations and removes stale temporaries on `export` (`name`).
pub fn at_start(export: &Export, name: &str) -> Tidied {
    let recovered = export.recover_reserves();
    for line in &recovered.given_back {
        tracing::warn!(export = %name, "interrupted reservation undone: {line}");
    }
    for line in &recovered.problems {
        tracing::warn!(export = %name, "interrupted reservation not undone: {line}");
    }
    let report = export.cleanup_stale();
    if report.removed > 0 {
        let shown = report
            .removed_paths
            .iter()
            .take(LOGGED)
            .cloned()
            .collect::<Vec<_>>();
        tracing::info!(
            export = %name, removed = report.removed,
            "removed stale temporaries: {}{}",
            shown.join(", "),
            if report.removed > shown.len() { ", ..." } else { "" }
        );
    }
    for p in report.problems.iter().take(LOGGED) {
        tracing::warn!(export = %name, "cleaning stale temporaries: {p}");
    }
    if report.problem_count > LOGGED.min(report.problems.len()) {
        tracing::warn!(
            export = %name, problems = report.problem_count,
            "cleaning stale temporaries: {} more problems not listed",
            report.problem_count - LOGGED.min(report.problems.len())
        );
    }
    Tidied {
        temporaries: report.removed as u64,
        reservations: recovered.given_back.len() as u64,
    }
}

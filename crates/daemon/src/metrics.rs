//! The daemon's metrics, in the OpenMetrics text format (`prometheus-client`), served on
//! `GET /metrics` by [`http`] when `[metrics] listen` is set. Every metric is counted
//! whether or not the endpoint is on; gauges (running jobs, open connections, the process)
//! are read when a scrape renders them. The names and labels are listed in
//! docs/operations.md, "Metrics".

pub mod http;
mod process;
mod request;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::jobs::Primitive;

/// A job's export (the one it writes in) and primitive.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub export: String,
    pub primitive: &'static str,
}

/// [`JobLabels`] and how the job ended (its VixError name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub export: String,
    pub primitive: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabels {
    pub export: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The reasons of `openvaai_connections_refused_total`.
pub const REFUSALS: [&str; 5] = [
    "address_not_allowed",
    "queue_full",
    "no_slot_in_time",
    "evicted",
    "too_many",
];
/// The reasons of `openvaai_authentication_failures_total`.
pub const AUTH_FAILURES: [&str; 7] = [
    "tls_handshake",
    "unknown_export",
    "address_not_allowed",
    "auth_without_hello",
    "export_mismatch",
    "wrong_proof",
    "timeout",
];

type HistogramFamily = Family<JobLabels, Histogram, fn() -> Histogram>;

/// The job counters, kept by [`crate::activity::Activity`].
#[derive(Clone)]
pub struct JobMetrics {
    pub started: Family<JobLabels, Counter>,
    pub finished: Family<ResultLabels, Counter>,
    pub refused: Family<ResultLabels, Counter>,
    pub bytes: Family<JobLabels, Counter>,
    pub duration: HistogramFamily,
    pub lease_expiries: Family<JobLabels, Counter>,
}

impl Default for JobMetrics {
    fn default() -> JobMetrics {
        fn duration_buckets() -> Histogram {
            // 10 ms to about 45 min, each bucket 4 times the one before.
            Histogram::new(exponential_buckets(0.01, 4.0, 12))
        }
        JobMetrics {
            started: Family::default(),
            finished: Family::default(),
            refused: Family::default(),
            bytes: Family::default(),
            duration: Family::new_with_constructor(duration_buckets),
            lease_expiries: Family::default(),
        }
    }
}

/// Connections and authentication, counted by the acceptor, the connections and the
/// HELLO and AUTH handlers.
#[derive(Clone, Default)]
pub struct NetMetrics {
    accepted: Counter,
    refused: Family<ReasonLabels, Counter>,
    auth_failures: Family<ReasonLabels, Counter>,
    authentications: Family<ExportLabels, Counter>,
}

impl NetMetrics {
    /// A connection was accepted (before any check).
    pub fn accepted(&self) {
        self.accepted.inc();
    }

    /// A connection was closed before it was served, for one of [`REFUSALS`].
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// An authentication failed, for one of [`AUTH_FAILURES`].
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn authenticated(&self, export: &str) {
        self.authentications
            .get_or_create(&ExportLabels {
                export: export.to_owned(),
            })
            .inc();
    }
}

/// What the start tidied on each export.
#[derive(Clone, Default)]
pub struct StartMetrics {
    pub temporaries_cleaned: Family<ExportLabels, Counter>,
    pub reservations_recovered: Family<ExportLabels, Counter>,
}

/// Every metric of the daemon, registered.
pub struct Metrics {
    registry: Registry,
    pub net: NetMetrics,
    pub start: StartMetrics,
    jobs_running: Gauge,
    jobs_queued: Gauge,
    connections_open: Family<StateLabels, Gauge>,
    process: process::Process,
}

impl Metrics {
    /// The registry of every metric, with `jobs` (the activity's counters) among them. The
    /// series of every export, primitive and reason start at zero, so that rates and
    /// increases are right from the first scrape.
    pub fn new(jobs: &JobMetrics, exports: &[String]) -> Metrics {
        for export in exports {
            for p in Primitive::ALL {
                let l = JobLabels {
                    export: export.clone(),
                    primitive: p.label(),
                };
                let _ = jobs.started.get_or_create(&l);
                let _ = jobs.bytes.get_or_create(&l);
                let _ = jobs.duration.get_or_create(&l);
                let _ = jobs.lease_expiries.get_or_create(&l);
                let _ = jobs.refused.get_or_create(&ResultLabels {
                    export: export.clone(),
                    primitive: p.label(),
                    result: "VIX_E_OBJECT_IS_BUSY",
                });
            }
        }
        let net = NetMetrics::default();
        for reason in REFUSALS {
            let _ = net.refused.get_or_create(&ReasonLabels { reason });
        }
        for reason in AUTH_FAILURES {
            let _ = net.auth_failures.get_or_create(&ReasonLabels { reason });
        }
        let start = StartMetrics::default();
        let jobs_running = Gauge::default();
        let jobs_queued = Gauge::default();
        let connections_open = Family::<StateLabels, Gauge>::default();
        let mut registry = Registry::default();
        let process = process::Process::register(&mut registry);
        let r = registry.sub_registry_with_prefix("openvaai");
        r.register(
            "build",
            "The daemon's version",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        r.register(
            "jobs_started",
            "Jobs started (running or queued) by START, by export and primitive",
            jobs.started.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs ended, by export, primitive and result (the VixError a client sees)",
            jobs.finished.clone(),
        );
        r.register(
            "jobs_refused",
            "Jobs refused at START (VIX_E_OBJECT_IS_BUSY: max_jobs running and the queue full)",
            jobs.refused.clone(),
        );
        r.register_with_unit(
            "job",
            "Bytes done by jobs: copied by full clones, cloned by lazy ones, reserved by reserves",
            Unit::Bytes,
            jobs.bytes.clone(),
        );
        r.register_with_unit(
            "job_duration",
            "Time from START to the end of a job, its queueing included",
            Unit::Seconds,
            jobs.duration.clone(),
        );
        r.register(
            "lease_expiries",
            "Jobs cancelled because their client stopped polling for a lease period",
            jobs.lease_expiries.clone(),
        );
        r.register("jobs_running", "Jobs running now", jobs_running.clone());
        r.register(
            "jobs_queued",
            "Jobs waiting in the queue for one of the max_jobs slots",
            jobs_queued.clone(),
        );
        r.register(
            "connections_accepted",
            "Connections accepted on the RPC listeners",
            net.accepted.clone(),
        );
        r.register(
            "connections_open",
            "RPC connections open, unauthenticated (TLS and the handshake) or authenticated",
            connections_open.clone(),
        );
        r.register(
            "connections_refused",
            "RPC connections closed before being served, by reason",
            net.refused.clone(),
        );
        r.register(
            "authentication_failures",
            "Failed TLS handshakes and authentications, by reason",
            net.auth_failures.clone(),
        );
        r.register(
            "authentications",
            "Successful authentications, by export",
            net.authentications.clone(),
        );
        r.register(
            "temporaries_cleaned",
            "Stale temporaries removed from an export at start",
            start.temporaries_cleaned.clone(),
        );
        r.register(
            "reservations_recovered",
            "Interrupted reservations given back at start",
            start.reservations_recovered.clone(),
        );
        Metrics {
            registry,
            net,
            start,
            jobs_running,
            jobs_queued,
            connections_open,
            process,
        }
    }

    /// The OpenMetrics text of every metric, with the gauges at `jobs` (running, queued)
    /// and `connections` (unauthenticated, authenticated) and the process read now.
    pub fn render(&self, jobs: (u64, u64), connections: (usize, usize)) -> String {
        let (running, queued) = jobs;
        self.jobs_running.set(running as i64);
        self.jobs_queued.set(queued as i64);
        let (unauthenticated, authenticated) = connections;
        for (state, n) in [
            ("unauthenticated", unauthenticated),
            ("authenticated", authenticated),
        ] {
            self.connections_open
                .get_or_create(&StateLabels { state })
                .set(n as i64);
        }
        self.process.refresh();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

//! The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, ...), read from `/proc/self` at each scrape.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

pub struct Process {
    cpu: Counter<f64, AtomicU64>,
    resident: Gauge,
    virtual_: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
}

impl Process {
    /// Registers the metrics in `r` (without a prefix: these names are the standard ones).
    pub fn register(r: &mut Registry) -> Process {
        let p = Process {
            cpu: Counter::default(),
            resident: Gauge::default(),
            virtual_: Gauge::default(),
            open_fds: Gauge::default(),
            max_fds: Gauge::default(),
            threads: Gauge::default(),
        };
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        r.register_with_unit(
            "process_cpu",
            "User and system CPU time used",
            Unit::Seconds,
            p.cpu.clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory size",
            Unit::Bytes,
            p.resident.clone(),
        );
        r.register_with_unit(
            "process_virtual_memory",
            "Virtual memory size",
            Unit::Bytes,
            p.virtual_.clone(),
        );
        r.register(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.clone(),
        );
        r.register(
            "process_max_fds",
            "The limit of open file descriptors (RLIMIT_NOFILE)",
            p.max_fds.clone(),
        );
        r.register("process_threads", "Threads", p.threads.clone());
        r.register_with_unit(
            "process_start_time",
            "Start time of the daemon since the Unix epoch",
            Unit::Seconds,
            start,
        );
        p
    }

    /// Reads `/proc/self` into the metrics; what cannot be read keeps its last value.
    pub fn refresh(&self) {
        if let Some(s) = Stat::read() {
            let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
            let cpu = (s.utime + s.stime) as f64 / ticks;
            let delta = cpu - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            self.resident
                .set((s.rss_pages * rustix::param::page_size() as u64) as i64);
            self.virtual_.set(s.vsize as i64);
            self.threads.set(s.threads as i64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // Less the descriptor that reads the directory.
            self.open_fds.set(dir.count().saturating_sub(1) as i64);
        }
        if let Some(l) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            self.max_fds.set(l as i64);
        }
    }
}

/// The fields of `/proc/self/stat` used here (proc(5)).
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        Stat::parse(&text)
    }

    /// `pid (comm) state ppid ...`: the fields after the command's closing parenthesis
    /// (the command itself may hold spaces and parentheses), field 3 first.
    fn parse(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(") ")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: n(14)?,
            stime: n(15)?,
            threads: n(20)?,
            vsize: n(23)?,
            rss_pages: n(24)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let line = "42 (open) vaaid)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 9 0 \
                    1234 5000000 300 18446744073709551615";
        let s = Stat::parse(line).unwrap();
        assert_eq!((s.utime, s.stime, s.threads), (7, 3, 9));
        assert_eq!((s.vsize, s.rss_pages), (5_000_000, 300));
        assert!(Stat::parse("garbage").is_none());
        assert!(Stat::read().is_some_and(|s| s.threads >= 1 && s.rss_pages > 0));
    }
}

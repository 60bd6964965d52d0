//! The result: one markdown table, each figure beside its peer, the ratio and the target.

/// How a row compares with its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target: a reference figure.
    Info,
    /// An operation failed (the reason).
    Failed(String),
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// A stable short name (the smoke test looks for every one).
    pub id: &'static str,
    pub measure: String,
    pub ours: String,
    pub peer: String,
    pub peer_figure: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(id: &'static str, measure: impl Into<String>) -> Row {
        Row {
            id,
            measure: measure.into(),
            ours: String::new(),
            peer: String::new(),
            peer_figure: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
        }
    }

    pub fn ours(mut self, v: impl Into<String>) -> Row {
        self.ours = v.into();
        self
    }

    pub fn peer(mut self, who: impl Into<String>, figure: impl Into<String>) -> Row {
        self.peer = who.into();
        self.peer_figure = figure.into();
        self
    }

    pub fn ratio(mut self, v: impl Into<String>) -> Row {
        self.ratio = v.into();
        self
    }

    /// A target and whether it is met.
    pub fn target(mut self, text: impl Into<String>, met: bool) -> Row {
        self.target = text.into();
        if !matches!(self.verdict, Verdict::Failed(_)) {
            self.verdict = if met { Verdict::Met } else { Verdict::Missed };
        }
        self
    }

    pub fn failed(mut self, why: impl Into<String>) -> Row {
        self.verdict = Verdict::Failed(why.into());
        self
    }
}

/// The rows so far.
#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

/// Every row id a complete run has, in order (the smoke test checks them).
pub const ROW_IDS: &[&str] = &[
    "rtt",
    "full-cp",
    "full-host",
    "limit",
    "cpu-per-gib",
    "checkpoints",
    "full-nfs-10g",
    "full-nfs-1g",
    "thin-cp",
    "thin-data",
    "lazy",
    "lazy-frag",
    "reserve-fallocate",
    "reserve-dd",
    "statx-frag",
    "load-throughput",
    "load-p50",
    "load-p99",
    "load-failed",
    "daemon-rss-idle",
    "daemon-rss-load",
    "plugin-rss",
    "pool-16",
    "pool-16-threads",
    "pool-16-spread",
    "pool-16-rss",
    "pool-16-cpu",
    "storm-1000",
    "storm-1000-p99",
    "storm-1000-max",
    "storm-1000-failed",
    "statx-1m",
    "statx-1m-rss",
    "backends-lazy",
    "backends-full",
    "backends-thin",
    "backends-reserve",
    "backends-statx",
];

fn cell(s: &str) -> String {
    if s.is_empty() {
        "—".to_owned()
    } else {
        s.replace('|', "\\|")
    }
}

impl Table {
    pub fn push(&mut self, row: Row) {
        println!(
            "  {:<18} {} | {} {} | {}",
            row.id,
            row.ours,
            row.peer,
            row.peer_figure,
            verdict_text(&row.verdict)
        );
        self.rows.push(row);
    }

    /// Rows whose operation failed.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Failed(_)))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| id | measure | openvaai | peer | peer's figure | ratio | target | result |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
                r.id,
                cell(&r.measure),
                cell(&r.ours),
                cell(&r.peer),
                cell(&r.peer_figure),
                cell(&r.ratio),
                cell(&r.target),
                cell(&verdict_text(&r.verdict)),
            ));
        }
        out
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Met => "met".to_owned(),
        Verdict::Missed => "**missed**".to_owned(),
        Verdict::Info => String::new(),
        Verdict::Failed(why) => format!("**FAILED**: {why}"),
    }
}

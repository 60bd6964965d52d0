//! Progress bars fed by the plugin's progress callback, and Ctrl-C as the user's abort.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the plugin reports: every this many bytes.
pub const UPDATE_BYTES: u64 = 4 << 20;

/// A progress display for one operation; Ctrl-C makes its callback answer "abort".
pub struct Meter {
    bar: ProgressBar,
    interrupted: Arc<AtomicBool>,
    pub reported: u64,
    pub callbacks: u64,
}

impl Meter {
    /// A bar on stderr when it is a terminal and `show` is set; hidden otherwise.
    pub fn new(total: u64, label: &str, show: bool) -> Meter {
        let interrupted = Arc::new(AtomicBool::new(false));
        // First Ctrl-C: abort through the callback; a second one ends the program.
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            interrupted.clone(),
        );
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        Meter {
            bar,
            interrupted,
            reported: 0,
            callbacks: 0,
        }
    }

    /// Whether the user pressed Ctrl-C.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The callback for the plugin's progress record.
    pub fn callback(&mut self) -> impl FnMut(u64) -> bool + '_ {
        move |delta| {
            self.reported += delta;
            self.callbacks += 1;
            self.bar.inc(delta);
            !self.interrupted.load(Ordering::SeqCst)
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

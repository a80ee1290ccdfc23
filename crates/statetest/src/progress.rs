//! Progress on stderr: an indicatif bar on a terminal, a plain line every few seconds otherwise.

use crate::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::{
    io::IsTerminal,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};
use throttle::Throttle;

/// How often the plain-lines mode prints.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Progress of a run over fixture files, shared by the worker threads; every method is cheap
/// and lock-free on the hot path. Files fill the bar; the count of cases (or tests) done and
/// failed rides along in its message.
///
/// ```
/// use shm_statetest::{Progress, Tracker};
/// let tracker = Tracker::new(Progress::Off, 2, "blocktest", "tests");
/// tracker.case_done(false);
/// tracker.file_done();
/// tracker.finish();
/// ```
pub struct Tracker {
    label: &'static str,
    unit: &'static str,
    bar: Option<ProgressBar>,
    lines: Option<Throttle>,
    total_files: usize,
    files_done: AtomicUsize,
    cases_done: AtomicUsize,
    failed: AtomicUsize,
    started: Instant,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("label", &self.label)
            .field("files", &self.files_done.load(Ordering::Relaxed))
            .field("of", &self.total_files)
            .field("done", &self.cases_done.load(Ordering::Relaxed))
            .field("failed", &self.failed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A tracker over `total_files` files, naming itself `label` in plain lines and counting
    /// `unit` (`cases`, `tests`).
    pub fn new(
        mode: Progress,
        total_files: usize,
        label: &'static str,
        unit: &'static str,
    ) -> Self {
        let mode = match mode {
            Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
            Progress::Auto => Progress::Lines,
            other => other,
        };
        let bar = (mode == Progress::Bar).then(|| {
            // Files are the unit of work and their number is known up front, so they fill the
            // bar; the count of cases done rides along in the message.
            let bar = ProgressBar::with_draw_target(
                Some(total_files as u64),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} files, {msg}",
            )
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Self {
            label,
            unit,
            bar,
            lines: (mode == Progress::Lines).then(|| Throttle::new(LINE_INTERVAL)),
            total_files,
            files_done: AtomicUsize::new(0),
            cases_done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    /// One case finished.
    pub fn case_done(&self, failed: bool) {
        self.cases_done.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A whole file failed (unreadable or unparseable).
    pub fn file_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// One file finished.
    pub fn file_done(&self) {
        let files_done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} {} done, {} failed",
                self.cases_done.load(Ordering::Relaxed),
                self.unit,
                self.failed.load(Ordering::Relaxed)
            ));
            bar.inc(1);
        }
        // The last file's line is printed by `finish`.
        if let Some(throttle) = &self.lines {
            if files_done < self.total_files && throttle.ready() {
                print_line(&self.line(files_done));
            }
        }
    }

    /// Clears the bar, or prints the last line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.lines.is_some() {
            print_line(&self.line(self.files_done.load(Ordering::Relaxed)));
        }
    }

    fn line(&self, files_done: usize) -> String {
        format!(
            "{}: {files_done}/{} files, {} {} done, {} failed, {:.1}s",
            self.label,
            self.total_files,
            self.cases_done.load(Ordering::Relaxed),
            self.unit,
            self.failed.load(Ordering::Relaxed),
            self.started.elapsed().as_secs_f64()
        )
    }
}

/// Progress is best effort: a line that cannot be written (stderr on a full disk) is dropped.
fn print_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

mod throttle {
    use std::{
        sync::atomic::{AtomicU64, Ordering},
        time::{Duration, Instant},
    };

    /// Lets one caller through per interval, without a lock.
    pub(crate) struct Throttle {
        start: Instant,
        interval_ms: u64,
        next_ms: AtomicU64,
    }

    impl Throttle {
        pub(crate) fn new(interval: Duration) -> Self {
            let interval_ms = interval.as_millis().try_into().unwrap_or(u64::MAX);
            Self {
                start: Instant::now(),
                interval_ms,
                next_ms: AtomicU64::new(interval_ms),
            }
        }

        /// Whether the interval has passed since the last `true`; at most one caller wins.
        pub(crate) fn ready(&self) -> bool {
            let now_ms = self
                .start
                .elapsed()
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX);
            let next = self.next_ms.load(Ordering::Relaxed);
            now_ms >= next
                && self
                    .next_ms
                    .compare_exchange(
                        next,
                        now_ms.saturating_add(self.interval_ms),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
        }
    }
}

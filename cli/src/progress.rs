//! Progress for long commands: on a terminal a bar of jobs done out of the total with the ETA
//! and the current step; otherwise plain timestamped lines that carry the same counts. Always on
//! stderr: stdout is for results. Log lines go through [`LogWriter`], which lifts the bar
//! while a line is written so that neither breaks the other.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use runner_core::backend::ProgressSink;
use runner_core::record::{JobKey, JobStatus};
use runner_core::text::escape;

/// The bar being drawn, if any (log lines lift it while they are written).
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// The CLI's progress sink.
#[derive(Debug)]
pub struct CliProgress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    failed: AtomicU64,
}

impl CliProgress {
    /// A bar of `total` jobs when stderr is a terminal, else plain lines.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = if crate::say::color() {
                "{spinner:.green} [{elapsed_precise}] {pos}/{len} jobs, ETA {eta} {prefix:>10.cyan} {msg}"
            } else {
                "{spinner} [{elapsed_precise}] {pos}/{len} jobs, ETA {eta} {prefix:>10} {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if let (Some(b), Ok(mut slot)) = (&bar, BAR.lock()) {
            *slot = Some(b.clone());
        }
        CliProgress {
            bar,
            total,
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// Stop drawing.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Ok(mut slot) = BAR.lock() {
            *slot = None;
        }
    }
}

impl ProgressSink for CliProgress {
    fn event(&self, phase: &str, message: &str) {
        // Messages quote identities, paths and log lines: one line each, escaped.
        let (phase, message) = (escape(phase), escape(message));
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(phase.to_string());
                bar.set_message(message.to_string());
            }
            // Never panics: the terminal may be gone (SIGHUP) while the run cleans up.
            None => errln!(
                "{} [{}/{} jobs] {phase:>10} {message}",
                chrono::Utc::now().format("%H:%M:%S"),
                self.done.load(Ordering::Relaxed),
                self.total
            ),
        }
    }

    fn job_finished(&self, job: &JobKey, status: JobStatus) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if matches!(status, JobStatus::Failed | JobStatus::FailedTransient) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => errln!(
                "{} [{done}/{} jobs] {:>10} {job}: {}",
                chrono::Utc::now().format("%H:%M:%S"),
                self.total,
                "job",
                status.as_str()
            ),
        }
    }
}

/// Where log lines go: stderr, with the progress bar lifted while a line is written.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(b) => b
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|_| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

//! Progress for long commands: a spinner on a terminal, plain timestamped lines otherwise.
//! Always on stderr: stdout is for results.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use runner_core::backend::ProgressSink;
use runner_core::text::escape;

/// The CLI's progress sink.
#[derive(Debug)]
pub struct CliProgress {
    bar: Option<ProgressBar>,
}

impl CliProgress {
    /// A spinner when stderr is a terminal, else plain lines.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix:>10} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        CliProgress { bar }
    }

    /// Stop drawing.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
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
                "{} {phase:>10} {message}",
                chrono::Utc::now().format("%H:%M:%S")
            ),
        }
    }
}

//! Where a sandbox process's output lines go: the attempt's files, or a small capture buffer.

use std::fs::File;
use std::io::{BufWriter, Write};

use runner_core::stepkit::Output;

/// The most a captured process keeps of each stream.
const CAPTURE_CAP: usize = 1 << 20;

/// Where a process's output goes.
pub(crate) enum Sink {
    /// The attempt's files.
    Files(Output),
    /// Kept in memory (small queries: GPU names, the engine version).
    Capture,
}

/// An open [`Sink`].
pub(crate) enum Writer {
    Merged(BufWriter<File>),
    Split(BufWriter<File>, BufWriter<File>),
    Capture(String, String),
}

impl Writer {
    /// Open `sink`'s files (or its buffers).
    pub(crate) fn open(sink: &Sink) -> std::io::Result<Writer> {
        Ok(match sink {
            Sink::Files(out @ Output::Merged(p)) => {
                Writer::Merged(BufWriter::new(out.open_options().open(p)?))
            }
            Sink::Files(out @ Output::Split { stdout, stderr }) => Writer::Split(
                BufWriter::new(out.open_options().open(stdout)?),
                BufWriter::new(out.open_options().open(stderr)?),
            ),
            Sink::Capture => Writer::Capture(String::new(), String::new()),
        })
    }

    /// One output line of `stream` (`stdout`/`stderr`).
    pub(crate) fn line(&mut self, stream: &str, line: &str) {
        let err = stream == "stderr";
        let r = match self {
            Writer::Merged(f) => writeln!(f, "{line}"),
            Writer::Split(o, e) => writeln!(if err { e } else { o }, "{line}"),
            Writer::Capture(o, e) => {
                let s = if err { e } else { o };
                if s.len() < CAPTURE_CAP {
                    s.push_str(line);
                    s.push('\n');
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::warn!("cannot write a process's output: {e}");
        }
    }

    /// Write out what is buffered.
    pub(crate) fn flush(&mut self) {
        let _ = match self {
            Writer::Merged(f) => f.flush(),
            Writer::Split(o, e) => o.flush().and(e.flush()),
            Writer::Capture(..) => Ok(()),
        };
    }

    /// What a [`Sink::Capture`] kept: stdout, stderr.
    pub(crate) fn captured(&self) -> Option<(String, String)> {
        match self {
            Writer::Capture(o, e) => Some((o.clone(), e.clone())),
            _ => None,
        }
    }
}

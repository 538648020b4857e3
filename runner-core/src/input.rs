//! Reading untrusted files (datasets, result files, logs, agent patches) with bounds.
//!
//! A path named by a user, a dataset row or a result directory may be a FIFO that never
//! delivers a byte, a device that never ends (`/dev/zero`), a socket, a directory, or simply a
//! file far larger than any real input. Every reader here:
//!
//! 1. refuses anything but a regular file from its metadata (symlinks followed), before any
//!    open that could block;
//! 2. opens it with `O_NONBLOCK` (so a file swapped for a FIFO in between cannot block the
//!    open) and `O_NOCTTY`, and re-checks the opened file's own metadata;
//! 3. reads at most the cap plus one byte, so an over-cap file (or one growing while read) is
//!    detected without reading it whole.
//!
//! Over the cap, [`read_capped`] and [`read_text`] refuse with [`InputError::TooLarge`], which
//! names the file, its size, the cap and the setting that raises it; [`read_tail`] (for logs,
//! where the end matters most) keeps the last `cap` bytes instead.

use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A byte cap and the setting that configures it (named in errors, so the fix is obvious).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// The most bytes accepted.
    pub bytes: u64,
    /// The dotted setting that raises it, e.g. `limits.max_dataset_bytes`.
    pub setting: &'static str,
}

impl Cap {
    /// A cap of `bytes`, configured by `setting`.
    pub const fn new(bytes: u64, setting: &'static str) -> Cap {
        Cap { bytes, setting }
    }

    /// The environment variable that sets [`Cap::setting`]
    /// (`limits.max_dataset_bytes` → `PERF_RUNNER__LIMITS__MAX_DATASET_BYTES`).
    pub fn env_var(&self) -> String {
        format!(
            "PERF_RUNNER__{}",
            self.setting.replace('.', "__").to_ascii_uppercase()
        )
    }
}

/// Why an untrusted file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be inspected, opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error(
        "{} is {what}, not a regular file; give a regular file",
        path.display()
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is (`a FIFO`, `a character device` …).
        what: &'static str,
    },
    /// The file is larger than the cap.
    #[error(
        "{} is {} ({size} bytes), over the {} ({} bytes) limit; raise {} in the [limits] \
         section of perf-runner.toml (or set {}) if the file is genuine",
        path.display(),
        human(*size),
        human(cap.bytes),
        cap.bytes,
        cap.setting,
        cap.env_var()
    )]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// Its size in bytes (at least `cap + 1` when it grew while being read).
        size: u64,
        /// The cap it exceeds.
        cap: Cap,
    },
    /// The file is not UTF-8 text.
    #[error("{} is not UTF-8 text: {source}", path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
        /// Where decoding failed.
        #[source]
        source: std::string::FromUtf8Error,
    },
}

impl InputError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Io { path, .. }
            | InputError::NotRegular { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::NotUtf8 { path, .. } => path,
        }
    }
}

impl From<InputError> for std::io::Error {
    /// For callers whose error type carries an `io::Error`: the kind follows the cause and the
    /// message is kept whole.
    fn from(e: InputError) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match &e {
            InputError::Io { source, .. } => source.kind(),
            InputError::NotRegular { .. } => ErrorKind::InvalidInput,
            InputError::TooLarge { .. } => ErrorKind::FileTooLarge,
            InputError::NotUtf8 { .. } => ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}

/// A size for people: `12.0 MiB`, `512 B`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// What a non-regular file is, in words.
fn describe(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Open `path` for reading only if it is a regular file, without ever blocking; returns the
/// file and its size.
fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_regular = |meta: &Metadata| InputError::NotRegular {
        path: path.to_path_buf(),
        what: describe(meta),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    // The path may have been swapped between the check and the open: judge what was opened.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok((file, meta.len()))
}

/// Read at most `cap.bytes` bytes of a regular file; a larger file is refused with
/// [`InputError::TooLarge`], anything but a regular file with [`InputError::NotRegular`].
pub fn read_capped(path: &Path, cap: Cap) -> Result<Vec<u8>, InputError> {
    let (file, len) = open_regular(path)?;
    let too_large = |size: u64| InputError::TooLarge {
        path: path.to_path_buf(),
        size,
        cap,
    };
    if len > cap.bytes {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.take(cap.bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    // The file grew past the cap while it was read.
    if bytes.len() as u64 > cap.bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_capped`], decoded as UTF-8 (a leading byte-order mark is kept; callers strip it).
pub fn read_text(path: &Path, cap: Cap) -> Result<String, InputError> {
    let bytes = read_capped(path, cap)?;
    String::from_utf8(bytes).map_err(|source| InputError::NotUtf8 {
        path: path.to_path_buf(),
        source,
    })
}

/// The end of a text file of any size, for logs: the whole file when it fits in `cap.bytes`,
/// else its last `cap.bytes` bytes starting at a line boundary. Returns the text (invalid
/// UTF-8 replaced) and whether the head was dropped.
pub fn read_tail(path: &Path, cap: Cap) -> Result<(String, bool), InputError> {
    let (mut file, len) = open_regular(path)?;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let cut = len > cap.bytes;
    if cut {
        file.seek(SeekFrom::Start(len - cap.bytes)).map_err(io)?;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(cap.bytes)).unwrap_or(0));
    file.take(cap.bytes).read_to_end(&mut bytes).map_err(io)?;
    if cut {
        // Drop the partial first line (it may also split a UTF-8 sequence).
        let start = memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1);
        bytes.drain(..start);
        tracing::warn!(
            path = %path.display(),
            size = len,
            cap = cap.bytes,
            setting = cap.setting,
            "file over the limit: only its end is read"
        );
    }
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok((text, cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const CAP: Cap = Cap::new(16, "limits.max_result_bytes");

    fn fifo(dir: &Path) -> PathBuf {
        let p = dir.join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        p
    }

    #[test]
    fn regular_files_within_the_cap_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789abcdef").unwrap(); // exactly the cap
        assert_eq!(read_capped(&p, CAP).unwrap(), b"0123456789abcdef");
        assert_eq!(read_text(&p, CAP).unwrap(), "0123456789abcdef");
        std::fs::write(&p, b"").unwrap();
        assert!(read_capped(&p, CAP).unwrap().is_empty());
    }

    #[test]
    fn over_the_cap_is_refused_with_size_cap_and_setting() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, [b'x'; 17]).unwrap();
        let e = read_capped(&p, CAP).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { size: 17, .. }), "{e:?}");
        let msg = e.to_string();
        for part in [
            "big.json",
            "17 bytes",
            "16 bytes",
            "limits.max_result_bytes",
            "PERF_RUNNER__LIMITS__MAX_RESULT_BYTES",
        ] {
            assert!(msg.contains(part), "{part} missing from: {msg}");
        }
        let io: std::io::Error = e.into();
        assert_eq!(io.kind(), std::io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn devices_fifos_sockets_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo(dir.path());
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let link = dir.path().join("zero-link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for (p, what) in [
            (PathBuf::from("/dev/zero"), "character device"),
            (link, "character device"),
            (fifo, "FIFO"),
            (sock, "socket"),
            (dir.path().to_path_buf(), "directory"),
        ] {
            let t = Instant::now();
            let e = read_capped(&p, Cap::new(1 << 30, "limits.max_dataset_bytes")).unwrap_err();
            assert!(t.elapsed() < Duration::from_secs(1));
            assert!(matches!(e, InputError::NotRegular { .. }), "{e:?}");
            assert!(e.to_string().contains(what), "{e}");
            assert!(read_tail(&p, CAP).is_err());
        }
    }

    #[test]
    fn missing_files_and_bad_utf8_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = read_capped(&missing, CAP).unwrap_err();
        assert!(matches!(e, InputError::Io { .. }) && e.path() == missing);
        let p = dir.path().join("bin");
        std::fs::write(&p, [0xff, 0xfe, b'a']).unwrap();
        assert!(matches!(
            read_text(&p, CAP).unwrap_err(),
            InputError::NotUtf8 { .. }
        ));
    }

    #[test]
    fn tails_keep_whole_lines_of_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "first line\nsecond\nthird\n").unwrap();
        assert_eq!(
            read_tail(&p, Cap::new(100, "x")).unwrap(),
            ("first line\nsecond\nthird\n".to_string(), false)
        );
        // The last 16 bytes are "ne\nsecond\nthird\n": the partial first line goes.
        assert_eq!(
            read_tail(&p, CAP).unwrap(),
            ("second\nthird\n".to_string(), true)
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(human(256 << 20), "256.0 MiB");
    }
}

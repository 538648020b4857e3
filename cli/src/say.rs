//! Printing that never panics. A run outlives its terminal when an SSH session drops: writes to
//! the hung-up terminal then fail (EIO), and `println!` would panic in the middle of cleaning
//! up. The run path prints through these macros, which drop what cannot be written.

/// `println!` to stdout, ignoring write errors.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` to stderr, ignoring write errors.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

static COLOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether stderr gets colour (`--color`, `NO_COLOR`, a terminal); set once at start.
pub fn set_color(on: bool) {
    COLOR.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether stderr gets colour.
pub fn color() -> bool {
    COLOR.load(std::sync::atomic::Ordering::Relaxed)
}

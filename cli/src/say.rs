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

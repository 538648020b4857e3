//! `perf-runner completions SHELL` and `perf-runner man`: shell completion scripts and a man
//! page generated from the command line's own definition (so they never drift from it).

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;
use runner_core::exit;

/// Print the completion script for `shell` to stdout.
pub fn completions<C: CommandFactory>(shell: Shell) -> anyhow::Result<i32> {
    let mut cmd = C::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "perf-runner", &mut out);
    let _ = std::io::stdout().write_all(&out);
    Ok(exit::SUCCESS)
}

/// Print the man page (roff) to stdout.
pub fn man<C: CommandFactory>() -> anyhow::Result<i32> {
    let cmd = C::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    let _ = std::io::stdout().write_all(&out);
    Ok(exit::SUCCESS)
}

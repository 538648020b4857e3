//! What a `FROM scratch` test image needs of the host: a program and the shared libraries it
//! loads, found by `ldd`.

use std::path::PathBuf;
use std::process::Command;

/// `programs` (host path, path in the image) followed by every shared library they load, each
/// image path once. Panics when `ldd` cannot run: a test that builds an image needs it.
pub fn with_libraries(programs: &[(PathBuf, String)]) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for (program, dest) in programs {
        out.push((program.clone(), dest.clone()));
        let ldd = Command::new("ldd").arg(program).output().expect("ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line
                .split("=>")
                .last()
                .and_then(|r| r.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(p) = path {
                let dest = p.trim_start_matches('/').to_string();
                if !out.iter().any(|(_, d)| *d == dest) {
                    out.push((PathBuf::from(p), dest));
                }
            }
        }
    }
    out
}

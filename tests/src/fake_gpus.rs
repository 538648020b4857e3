//! A fake `nvidia-smi` for tests of GPU leases on machines without GPUs: a shell script that
//! answers `--query-gpu=…` with the rows of a CSV file beside it, as the real one prints them
//! (`index, uuid, name, memory.total [MiB], memory.used [MiB]`).

use std::path::{Path, PathBuf};

/// The SKU of the fake H100s.
pub const H100: &str = "NVIDIA H100 80GB HBM3";

/// The UUIDs of [`two_h100s`].
pub const H100_UUIDS: [&str; 2] = [
    "GPU-aaaaaaaa-0000-0000-0000-000000000000",
    "GPU-bbbbbbbb-1111-1111-1111-111111111111",
];

/// The CSV rows of a host with two idle H100s.
pub fn two_h100s() -> String {
    format!(
        "0, {}, {H100}, 81559, 3\n1, {}, {H100}, 81559, 3\n",
        H100_UUIDS[0], H100_UUIDS[1]
    )
}

/// Write `dir/gpus.csv` (`rows`) and an executable `dir/nvidia-smi` that prints it for GPU
/// queries; returns the script's path. Rewriting `dir/gpus.csv` later changes what it reports.
pub fn fake_nvidia_smi(dir: &Path, rows: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let csv = dir.join("gpus.csv");
    std::fs::write(&csv, rows)?;
    let smi = dir.join("nvidia-smi");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  --query-gpu=driver_version) echo 550.54.15 ;;\n  \
         --query-gpu=*) cat '{}' ;;\n  *) echo 'fake nvidia-smi report' ;;\nesac\n",
        csv.display()
    );
    std::fs::write(&smi, script)?;
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755))?;
    Ok(smi)
}

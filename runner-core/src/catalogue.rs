//! The catalogue of benchmark datasets that perf commands name without a path: ShareGPT (the
//! default of `benchmarks/benchmark_serving.py`), sonnet and BurstGPT.
//!
//! A command that relies on its client's default dataset, or names one of these with
//! `--dataset-name` and no `--dataset-path`, would make the client look for a file it does not
//! have — or, as the harness this project replaces did, run each variant on whatever data was
//! at hand. With `[datasets] mirror = "DIR"`, the file is taken from that local folder, copied
//! once into the run's data dir (checked against a pinned sha256 where one is configured), and
//! given to the client as `--dataset-path`: every variant reads the same file, and each attempt
//! records its sha256. Without the mirror (or without the file in it) triage says
//! `dataset_missing` with the fix; nothing is ever substituted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{BenchmarkSpec, EntryPoint, Flag, Mode, Side};
use crate::task::Task;

/// One catalogued dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The `--dataset-name` that selects it.
    pub name: &'static str,
    /// The file the client reads.
    pub file: &'static str,
    /// Where the file is published.
    pub source: &'static str,
}

/// The catalogue. No sha256 is built in (none was verified here): pin one per file with the
/// setting `datasets.sha256`; the sha256 of the file actually used is recorded with every
/// attempt either way.
pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "sharegpt",
        file: "ShareGPT_V3_unfiltered_cleaned_split.json",
        source: "https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered/resolve/main/ShareGPT_V3_unfiltered_cleaned_split.json",
    },
    Entry {
        name: "sonnet",
        file: "sonnet.txt",
        source: "https://github.com/vllm-project/vllm/blob/main/benchmarks/sonnet.txt",
    },
    Entry {
        name: "burstgpt",
        file: "BurstGPT_without_fails_2.csv",
        source: "https://github.com/HPMLL/BurstGPT/releases/download/v1.1/BurstGPT_without_fails_2.csv",
    },
];

/// The `[datasets]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetSettings {
    /// A local folder holding catalogued files under their file names (nothing is downloaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<PathBuf>,
    /// Pinned sha256 (hex) by file name; a provided file that differs is refused.
    pub sha256: BTreeMap<String, String>,
}

/// What the catalogue can do for a command that names no dataset file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provision {
    /// The mirror has the file: it will be provided.
    Mirror {
        /// The entry.
        entry: &'static Entry,
        /// The file in the mirror.
        path: PathBuf,
    },
    /// The command needs a catalogued file that the mirror cannot provide.
    Missing {
        /// The entry.
        entry: &'static Entry,
        /// Why not, and the fix.
        why: String,
    },
}

/// The catalogued dataset a command relies on without naming its file: the serving script's
/// default (ShareGPT) or a catalogued `--dataset-name`, when no `--dataset-path` (or old-style
/// `--dataset`) is given.
pub fn needed(spec: &BenchmarkSpec) -> Option<&'static Entry> {
    if spec.has_flag("--dataset-path") || spec.has_flag("--dataset") {
        return None;
    }
    let name = match spec.value_of("--dataset-name") {
        Some(n) => n,
        None if spec.mode == Mode::Serving && matches!(spec.entry, EntryPoint::Script { .. }) => {
            "sharegpt"
        }
        None => return None,
    };
    ENTRIES.iter().find(|e| e.name == name)
}

/// Whether and how `settings` provide the dataset `spec` relies on (`None`: it needs none
/// from the catalogue).
pub fn provision(spec: &BenchmarkSpec, settings: &DatasetSettings) -> Option<Provision> {
    Some(from_mirror(needed(spec)?, settings))
}

/// Whether the mirror holds `entry`'s file (a regular file that resolves inside it).
fn from_mirror(entry: &'static Entry, settings: &DatasetSettings) -> Provision {
    let Some(mirror) = &settings.mirror else {
        return Provision::Missing {
            entry,
            why: "no dataset mirror is configured".into(),
        };
    };
    let path = mirror.join(entry.file);
    if std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        && crate::command::policy::resolves_inside(&path, mirror)
    {
        Provision::Mirror { entry, path }
    } else {
        Provision::Missing {
            entry,
            why: format!(
                "the dataset mirror {} has no regular file {} inside it",
                mirror.display(),
                entry.file
            ),
        }
    }
}

/// The fix for a missing catalogued file.
pub fn fix(entry: &Entry) -> String {
    format!(
        "put {} (from {}) in a local folder and set it as the dataset mirror ([datasets] \
         mirror = \"DIR\" in perf-runner.toml); it is copied once and given to every variant, \
         or add --dataset-path to the command",
        entry.file, entry.source
    )
}

/// Give the task's command the catalogued file as `--dataset-path FILE` when the mirror can
/// provide it; returns the entry then. The plan turns the flag into a dataset file that every
/// variant reads from the run's data dir.
pub fn inject(task: &mut Task, settings: &DatasetSettings) -> Option<&'static Entry> {
    let spec = task.spec.as_mut()?;
    let Some(Provision::Mirror { entry, .. }) = provision(spec, settings) else {
        return None;
    };
    spec.flags.push(Flag {
        name: "--dataset-path".into(),
        value: Some(entry.file.into()),
        side: Side::Client,
        known: true,
    });
    Some(entry)
}

/// The catalogue entry of a file name.
pub fn by_file(file: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.file == file)
}

/// Copy a catalogued file from the mirror into `data_dir` once (a copy already there is kept)
/// and check it against the pinned sha256, if any. Returns the file's sha256.
pub fn provide(
    entry: &'static Entry,
    settings: &DatasetSettings,
    data_dir: &Path,
) -> Result<String, String> {
    let target = data_dir.join(entry.file);
    if !target.is_file() {
        let path = match from_mirror(entry, settings) {
            Provision::Mirror { path, .. } => path,
            Provision::Missing { why, .. } => {
                return Err(format!("dataset {}: {why}; {}", entry.file, fix(entry)));
            }
        };
        let tmp = data_dir.join(format!(".{}.{}.tmp", entry.file, std::process::id()));
        std::fs::create_dir_all(data_dir)
            .and_then(|_| std::fs::copy(&path, &tmp))
            .and_then(|_| std::fs::rename(&tmp, &target))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!(
                    "cannot copy {} to {}: {e}",
                    path.display(),
                    target.display()
                )
            })?;
    }
    let sha = crate::digest::sha256_file(&target)
        .map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    if let Some(pin) = settings.sha256.get(entry.file) {
        if !pin.eq_ignore_ascii_case(&sha) {
            let _ = std::fs::remove_file(&target);
            return Err(format!(
                "dataset {} has sha256 {sha}, not the pinned {pin} (datasets.sha256); the copy \
                 was removed: put the right file in the mirror",
                entry.file
            ));
        }
    }
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_perf_command;

    fn spec(cmd: &str) -> BenchmarkSpec {
        parse_perf_command(cmd).unwrap()
    }

    #[test]
    fn what_a_command_relies_on() {
        let default = spec("python benchmarks/benchmark_serving.py --model m/a");
        assert_eq!(needed(&default).unwrap().name, "sharegpt");
        let sonnet = spec("vllm bench serve --model m/a --dataset-name sonnet");
        assert_eq!(needed(&sonnet).unwrap().file, "sonnet.txt");
        for none in [
            "vllm bench serve --model m/a",
            "vllm bench serve --model m/a --dataset-name random",
            "python benchmarks/benchmark_serving.py --model m/a --dataset-path x.json",
            "python benchmarks/benchmark_latency.py --model m/a",
        ] {
            assert!(needed(&spec(none)).is_none(), "{none}");
        }
    }

    #[test]
    fn provides_once_and_checks_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = dir.path().join("mirror");
        std::fs::create_dir_all(&mirror).unwrap();
        let sharegpt = &ENTRIES[0];
        let mut settings = DatasetSettings {
            mirror: Some(mirror.clone()),
            ..DatasetSettings::default()
        };
        let data = dir.path().join("data");
        let e = provide(sharegpt, &settings, &data).unwrap_err();
        assert!(e.contains("no regular file") && e.contains("mirror"), "{e}");
        std::fs::write(mirror.join(sharegpt.file), b"[]").unwrap();
        let sha = provide(sharegpt, &settings, &data).unwrap();
        assert_eq!(
            sha,
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
        // A wrong pin refuses the file and removes the copy.
        settings
            .sha256
            .insert(sharegpt.file.into(), "00".repeat(32));
        let e = provide(sharegpt, &settings, &data).unwrap_err();
        assert!(e.contains("pinned"), "{e}");
        assert!(!data.join(sharegpt.file).exists());
        settings.sha256.insert(sharegpt.file.into(), sha.clone());
        assert_eq!(provide(sharegpt, &settings, &data).unwrap(), sha);
    }

    #[test]
    fn injects_only_what_the_mirror_has() {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatasetSettings {
            mirror: Some(dir.path().to_path_buf()),
            ..DatasetSettings::default()
        };
        let cmd = "python benchmarks/benchmark_serving.py --model m/a";
        let mut task = crate::dataset::Dataset::from_str(
            &serde_json::json!({"commit_hash": "abcdef1", "perf_command": cmd}).to_string(),
            "t",
            Path::new("."),
        )
        .tasks
        .remove(0);
        assert!(inject(&mut task, &settings).is_none());
        std::fs::write(dir.path().join(ENTRIES[0].file), b"[]").unwrap();
        assert_eq!(inject(&mut task, &settings), Some(&ENTRIES[0]));
        let spec = task.spec.as_ref().unwrap();
        assert_eq!(spec.value_of("--dataset-path"), Some(ENTRIES[0].file));
        // Once given, the command relies on nothing more.
        assert!(inject(&mut task, &settings).is_none());
    }
}

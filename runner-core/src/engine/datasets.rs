//! Dataset files: provided once per run in one directory, hashed, the same file for every
//! variant — and taken only from the configured dataset roots.

use std::path::{Path, PathBuf};

use crate::command::policy::resolves_inside;
use crate::plan::DatasetFile;
use crate::record::DatasetHash;

/// Make every dataset file of a step available as `data_dir/<name>` and hash it.
///
/// A file is taken from `data_dir` when already there, else copied from the path the command
/// named: relative paths resolve against `roots` in order, absolute ones must lie in one. The
/// source must be a regular file that resolves (symlinks followed) inside its root. A missing
/// or refused file is an error naming it, where it was looked for and the fix — never a
/// substitute, and never a file from outside the roots.
pub fn provide(
    files: &[DatasetFile],
    data_dir: &Path,
    roots: &[PathBuf],
) -> Result<Vec<DatasetHash>, String> {
    let mut out = Vec::new();
    for f in files {
        if f.name.is_empty() || f.name.contains('/') || f.name == "." || f.name == ".." {
            return Err(format!(
                "dataset file for {}: '{}' is not a plain file name",
                f.flag,
                f.name.escape_default()
            ));
        }
        let target = data_dir.join(&f.name);
        if !target.is_file() {
            let source = find_in_roots(f, roots)?;
            std::fs::create_dir_all(data_dir)
                .and_then(|_| std::fs::copy(&source, &target).map(|_| ()))
                .map_err(|e| {
                    format!(
                        "cannot copy {} to {}: {e}",
                        source.display(),
                        target.display()
                    )
                })?;
        }
        out.push(DatasetHash {
            name: f.name.clone(),
            sha256: crate::digest::sha256_file(&target)
                .map_err(|e| format!("cannot read {}: {e}", target.display()))?,
        });
    }
    Ok(out)
}

/// The source of `f` inside one of `roots`.
fn find_in_roots(f: &DatasetFile, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let original = Path::new(&f.original);
    let fix = "put the file in a folder listed in the setting inputs.dataset_roots (the same file \
               is used for every variant)";
    if roots.is_empty() {
        return Err(format!(
            "dataset file for {} ({}): no dataset roots are configured, so no file is taken \
             from this host; {fix}",
            f.flag, f.original
        ));
    }
    let candidates: Vec<(PathBuf, &PathBuf)> = if original.is_absolute() {
        roots
            .iter()
            .filter(|r| original.starts_with(r))
            .map(|r| (original.to_path_buf(), r))
            .collect()
    } else {
        roots.iter().map(|r| (r.join(original), r)).collect()
    };
    let looked: Vec<String> = candidates
        .iter()
        .map(|(c, _)| c.display().to_string())
        .collect();
    for (candidate, root) in &candidates {
        let Ok(meta) = std::fs::metadata(candidate) else {
            continue;
        };
        if !meta.is_file() || !resolves_inside(candidate, root) {
            return Err(format!(
                "dataset file for {}: {} is not a regular file inside the dataset root {} \
                 (a link out of it, a device or a folder); {fix}",
                f.flag,
                candidate.display(),
                root.display()
            ));
        }
        return Ok(candidate.clone());
    }
    Err(format!(
        "dataset file for {} not found: '{}' is not in the dataset roots ({}){}; {fix}",
        f.flag,
        f.original,
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if looked.is_empty() {
            String::new()
        } else {
            format!("; looked for {}", looked.join(", "))
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(original: &str) -> DatasetFile {
        DatasetFile {
            flag: "--dataset-path".into(),
            original: original.into(),
            name: Path::new(original)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    #[test]
    fn provides_from_a_root_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("sharegpt.json"), b"[]").unwrap();
        let data = dir.path().join("data");
        let roots = vec![root.clone()];
        let h = provide(&[file("sharegpt.json")], &data, &roots).unwrap();
        assert_eq!(
            h[0].sha256,
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
        assert!(data.join("sharegpt.json").is_file());
        // An absolute path inside the root is fine too.
        let data2 = dir.path().join("data2");
        let abs = root.join("sharegpt.json").display().to_string();
        provide(&[file(&abs)], &data2, &roots).unwrap();
    }

    #[test]
    fn refuses_files_outside_the_roots_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("secret");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("key"), b"secret").unwrap();
        let data = dir.path().join("data");
        let roots = vec![root.clone()];
        // An absolute path outside every root.
        let abs = outside.join("key").display().to_string();
        let e = provide(&[file(&abs)], &data, &roots).unwrap_err();
        assert!(e.contains("inputs.dataset_roots"), "{e}");
        // A symlink inside the root that points out of it.
        std::os::unix::fs::symlink(outside.join("key"), root.join("link.json")).unwrap();
        let e = provide(&[file("link.json")], &data, &roots).unwrap_err();
        assert!(e.contains("link out of it"), "{e}");
        // No roots at all: nothing is taken from the host.
        let e = provide(&[file("x.json")], &data, &[]).unwrap_err();
        assert!(e.contains("no dataset roots"), "{e}");
        assert!(!data.join("key").exists() && !data.join("link.json").exists());
    }

    #[test]
    fn refuses_devices_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let roots = vec![PathBuf::from("/dev")];
        let e = provide(&[file("/dev/zero")], &data, &roots).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = provide(&[file("nope.json")], &data, &roots).unwrap_err();
        assert!(
            e.contains("not found") && e.contains("/dev/nope.json"),
            "{e}"
        );
    }
}

//! Dataset files: provided once per run in one directory, hashed, the same file for every
//! variant.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::plan::DatasetFile;
use crate::record::DatasetHash;

/// Make every dataset file of a step available as `data_dir/<name>` and hash it.
///
/// A file is taken from `data_dir` when already there, else copied from the path the command
/// named (absolute, or relative to `search_dir`). A missing file is an error naming it and
/// where it was looked for — never a substitute.
pub fn provide(
    files: &[DatasetFile],
    data_dir: &Path,
    search_dir: &Path,
) -> Result<Vec<DatasetHash>, String> {
    let mut out = Vec::new();
    for f in files {
        let target = data_dir.join(&f.name);
        if !target.is_file() {
            let original = PathBuf::from(&f.original);
            let source = if original.is_absolute() {
                original
            } else {
                search_dir.join(original)
            };
            if !source.is_file() {
                return Err(format!(
                    "dataset file for {} not found: looked for {} and {}; put the file there \
                     (the same file is used for every variant)",
                    f.flag,
                    target.display(),
                    source.display()
                ));
            }
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
        let bytes =
            std::fs::read(&target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
        out.push(DatasetHash {
            name: f.name.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provides_hashes_and_refuses_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("sharegpt.json"), b"[]").unwrap();
        let data = dir.path().join("data");
        let f = DatasetFile {
            flag: "--dataset-path".into(),
            original: "sharegpt.json".into(),
            name: "sharegpt.json".into(),
        };
        let h = provide(std::slice::from_ref(&f), &data, &src).unwrap();
        assert_eq!(h[0].sha256.len(), 64);
        assert!(data.join("sharegpt.json").is_file());
        let missing = DatasetFile {
            original: "/nonexistent/x.json".into(),
            name: "x.json".into(),
            ..f
        };
        let e = provide(&[missing], &data, &src).unwrap_err();
        assert!(
            e.contains("--dataset-path") && e.contains("/nonexistent/x.json"),
            "{e}"
        );
    }
}

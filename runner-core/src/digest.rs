//! sha256 digests (hex), the one way every crate hashes what it records: dataset files, agent
//! patches, wheels, build identities.

use std::path::Path;

use sha2::{Digest, Sha256};

/// sha256 (lower-case hex) of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 (lower-case hex) of a file's contents, streamed (no whole-file buffer).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_files_hash_alike() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"[]").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(b"[]"));
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }
}

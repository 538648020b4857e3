//! Parquet files as JSON rows, through the `parquet` crate's record API (no arrow): every row
//! becomes one JSON object with the file's column names, so a Parquet dataset is read by the
//! same row rules as JSON and JSONL.

use serde_json::Value;

/// Rows of a Parquet file in memory. The outer error means the file cannot be read at all; a
/// row error ends the rows there (the rows before it are kept).
pub fn read(bytes: Vec<u8>) -> Result<Vec<Result<Value, String>>, String> {
    // The decoder reads untrusted bytes: a panic on a malformed file is an error, not a crash.
    std::panic::catch_unwind(move || read_inner(bytes))
        .unwrap_or_else(|_| Err("the Parquet file is malformed (its decoder gave up)".into()))
}

fn read_inner(bytes: Vec<u8>) -> Result<Vec<Result<Value, String>>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| format!("cannot read the Parquet rows: {e}"))?;
    let mut out = Vec::new();
    for row in rows {
        match row {
            Ok(row) => out.push(Ok(row.to_json_value())),
            Err(e) => {
                out.push(Err(format!("this row cannot be decoded: {e}")));
                break;
            }
        }
    }
    Ok(out)
}

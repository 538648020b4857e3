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

/// A column's Parquet type, from its values: booleans, integers, numbers, else text (other
/// values written as their JSON). Every column is optional (`null` is a missing value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Double,
    Text,
}

fn kind_of<'a>(values: impl Iterator<Item = &'a Value>) -> Kind {
    let mut kind: Option<Kind> = None;
    for v in values {
        let k = match v {
            Value::Null => continue,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() => Kind::Int,
            Value::Number(_) => Kind::Double,
            _ => Kind::Text,
        };
        kind = Some(match (kind, k) {
            (None, k) => k,
            (Some(a), b) if a == b => a,
            (Some(Kind::Int | Kind::Double), Kind::Int | Kind::Double) => Kind::Double,
            _ => Kind::Text,
        });
    }
    kind.unwrap_or(Kind::Text)
}

/// A table (`columns`, `rows` of JSON cells, rows as long as the header) as one Parquet file
/// (one row group, Snappy): column types from [`Kind`]s, names as they are.
pub fn write(columns: &[String], rows: &[Vec<Value>]) -> Result<Vec<u8>, String> {
    write_inner(columns, rows).map_err(|e| format!("cannot write the Parquet file: {e}"))
}

fn write_inner(columns: &[String], rows: &[Vec<Value>]) -> parquet::errors::Result<Vec<u8>> {
    use std::sync::Arc;

    use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    let kinds: Vec<Kind> = (0..columns.len())
        .map(|i| kind_of(rows.iter().filter_map(|r| r.get(i))))
        .collect();
    let mut fields = Vec::new();
    for (name, kind) in columns.iter().zip(&kinds) {
        let (physical, logical) = match kind {
            Kind::Bool => (Physical::BOOLEAN, None),
            Kind::Int => (Physical::INT64, None),
            Kind::Double => (Physical::DOUBLE, None),
            Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        };
        fields.push(Arc::new(
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()?,
        ));
    }
    let schema = Arc::new(
        Type::group_type_builder("perf_runner")
            .with_fields(fields)
            .build()?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("perf-runner {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, props)?;
    let mut group = writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = group.next_column()? {
        let cells: Vec<&Value> = rows
            .iter()
            .map(|r| r.get(i).unwrap_or(&Value::Null))
            .collect();
        let defs: Vec<i16> = cells.iter().map(|v| i16::from(!v.is_null())).collect();
        let present = cells.iter().filter(|v| !v.is_null());
        match kinds[i] {
            Kind::Bool => {
                let vals: Vec<bool> = present.map(|v| v.as_bool().unwrap_or(false)).collect();
                col.typed::<BoolType>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
            Kind::Int => {
                let vals: Vec<i64> = present.map(|v| v.as_i64().unwrap_or(0)).collect();
                col.typed::<Int64Type>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
            Kind::Double => {
                let vals: Vec<f64> = present.map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
                col.typed::<DoubleType>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
            Kind::Text => {
                let vals: Vec<ByteArray> = present
                    .map(|v| match v {
                        Value::String(s) => ByteArray::from(s.as_str()),
                        other => ByteArray::from(other.to_string().as_str()),
                    })
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&defs), None)?;
            }
        }
        col.close()?;
        i += 1;
    }
    group.close()?;
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_written_table_reads_back_row_for_row() {
        let columns: Vec<String> = ["commit", "aa", "repeat", "value", "unit", "mixed"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let rows = vec![
            vec![
                json!("e358"),
                json!(false),
                json!(0),
                json!(1.5),
                json!("ms"),
                json!(1),
            ],
            vec![
                json!("e358"),
                json!(true),
                json!(1),
                json!(2),
                Value::Null,
                json!(2.5),
            ],
            vec![
                json!("f508"),
                Value::Null,
                json!(2),
                Value::Null,
                json!("tps"),
                json!("x"),
            ],
        ];
        let bytes = write(&columns, &rows).unwrap();
        let back: Vec<Value> = read(bytes)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back.len(), 3);
        assert_eq!(
            back[0],
            json!({"commit": "e358", "aa": false, "repeat": 0, "value": 1.5, "unit": "ms", "mixed": "1"})
        );
        // An integer among numbers is a number; a missing value is null; mixed is text.
        assert_eq!(back[1]["value"], json!(2.0));
        assert_eq!(back[1]["unit"], Value::Null);
        assert_eq!(back[2]["aa"], Value::Null);
        assert_eq!(back[2]["mixed"], json!("x"));
        assert_eq!(back[1]["mixed"], json!("2.5"));
    }

    #[test]
    fn an_empty_table_is_a_valid_file() {
        let bytes = write(&["a".to_string()], &[]).unwrap();
        assert!(read(bytes).unwrap().is_empty());
    }
}

//! Columnar output: the bench's rows and its examples' feature rows as Parquet files, for
//! DataFusion, DuckDB, Spark or pandas.
//!
//! - `results.parquet`: one row per [`Cell`] with the CSV's columns (confusion matrices stay in
//!   `results.json`);
//! - `features/<dataset>/<observation>/<attack>/<defense>-seed<N>.parquet` (with `hush eval
//!   --features-parquet`): one row per feature row of every example under that defense: `example`,
//!   `label`, `group`, `row` (its index within the example), then one `Float32` column per
//!   feature, named as the attack names them. DuckDB reads them all with
//!   `SELECT * FROM read_parquet('features/**/*.parquet', union_by_name = true, filename = true)`.
//!
//! Files are written uncompressed (readers need no codec) and atomically.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float32Array, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::EvalError;
use crate::matrix::{Cell, CellFeatures, write_atomic};

fn parquet_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> EvalError + '_ {
    move |e| EvalError::Report(format!("{}: {e}", path.display()))
}

fn arrow_err(path: &Path) -> impl Fn(arrow_schema::ArrowError) -> EvalError + '_ {
    move |e| EvalError::Report(format!("{}: {e}", path.display()))
}

/// One batch as a Parquet file's bytes, written to `path` atomically.
fn write_batch(path: &Path, batch: &RecordBatch) -> Result<(), EvalError> {
    let mut bytes = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut bytes, batch.schema(), None).map_err(parquet_err(path))?;
    w.write(batch).map_err(parquet_err(path))?;
    w.close().map_err(parquet_err(path))?;
    write_atomic(path, &bytes)
}

/// The rows as `path` (a Parquet file with the CSV's columns).
pub fn write_results(path: &Path, cells: &[Cell]) -> Result<(), EvalError> {
    let s = |f: fn(&Cell) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(cells.iter().map(f)))
    };
    let x = |f: fn(&Cell) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(cells.iter().map(f)))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("dataset", s(|c| &c.dataset)),
        ("observation", s(|c| &c.observation)),
        ("window_s", x(|c| c.window_s)),
        ("defense", s(|c| &c.defense)),
        ("parameters", s(|c| &c.parameters)),
        ("attack", s(|c| &c.attack)),
        ("attacker", s(|c| &c.attacker)),
        (
            "seed",
            Arc::new(UInt64Array::from_iter_values(cells.iter().map(|c| c.seed))),
        ),
        ("accuracy", x(|c| c.accuracy)),
        ("macro_f1", x(|c| c.macro_f1)),
        ("capture_accuracy", x(|c| c.capture_accuracy)),
        ("chance", x(|c| c.chance)),
        (
            "windows",
            Arc::new(UInt64Array::from_iter_values(
                cells.iter().map(|c| c.windows),
            )),
        ),
        ("bytes_added_pct", x(|c| c.bytes_added_pct)),
        ("added_bps", x(|c| c.added_bps)),
        ("added_bytes_per_day", x(|c| c.added_bytes_per_day)),
        ("latency_p50_s", x(|c| c.latency_p50_s)),
        ("latency_p95_s", x(|c| c.latency_p95_s)),
        ("latency_p99_s", x(|c| c.latency_p99_s)),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(arrow_err(path))?;
    write_batch(path, &batch)
}

/// A name safe in a path: letters, digits, `-`, `_`, `.` and `=` kept, the rest `_`.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Each cell's feature rows under `dir`, one file per (observation, attack, defense, seed).
pub(crate) fn write_features(
    dir: &Path,
    dataset: &str,
    cells: &[Vec<CellFeatures>],
) -> Result<(), EvalError> {
    for f in cells.iter().flatten() {
        let path = dir
            .join(slug(dataset))
            .join(&f.observation)
            .join(slug(&f.attack))
            .join(format!("{}-seed{}.parquet", slug(&f.defense), f.seed));
        let n: usize = f.examples.iter().map(|(_, _, r)| r.len()).sum();
        let mut example = Vec::with_capacity(n);
        let mut row = Vec::with_capacity(n);
        let mut label = Vec::with_capacity(n);
        let mut group = Vec::with_capacity(n);
        let mut cols: Vec<Vec<f32>> = vec![Vec::with_capacity(n); f.feature_names.len()];
        for (e, (l, g, rows)) in f.examples.iter().enumerate() {
            for (k, r) in rows.iter().enumerate() {
                example.push(e as u32);
                row.push(k as u32);
                label.push(l.as_str());
                group.push(g.as_str());
                for (c, v) in cols.iter_mut().zip(r) {
                    c.push(*v);
                }
            }
        }
        let mut fields = vec![
            Field::new("example", DataType::UInt32, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("group", DataType::Utf8, false),
            Field::new("row", DataType::UInt32, false),
        ];
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(example)),
            Arc::new(StringArray::from(label)),
            Arc::new(StringArray::from(group)),
            Arc::new(UInt32Array::from(row)),
        ];
        for (name, c) in f.feature_names.iter().zip(cols) {
            fields.push(Field::new(name, DataType::Float32, false));
            arrays.push(Arc::new(Float32Array::from(c)));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(arrow_err(&path))?;
        write_batch(&path, &batch)?;
    }
    Ok(())
}

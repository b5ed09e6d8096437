//! Per-packet CSV in and out (being written).
use crate::{ErrorKind, ReadOptions, Result, Trace, TraceError};
use std::io::BufRead;
/// Read a CSV trace.
pub fn read_csv(_src: impl BufRead, name: &str, _opts: ReadOptions) -> Result<Trace> {
    Err(TraceError::new(ErrorKind::Invalid(
        "CSV input is not implemented yet".into(),
    ))
    .in_file(name))
}

//! Typed errors that say where in which file something went wrong.

use std::path::PathBuf;

/// An error while reading or writing a trace, with the file and byte offset (or line) it happened at.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {kind}", path_display(.path), location_display(*.offset, *.line))]
pub struct TraceError {
    /// The file, when known (`None` for in-memory input; `-` means standard input).
    pub path: Option<PathBuf>,
    /// Byte offset in the file where the bad record or block starts.
    pub offset: Option<u64>,
    /// 1-based line number, for text formats.
    pub line: Option<u64>,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed at the OS level.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The first bytes match no supported format.
    #[error("not a pcap, pcapng or CSV trace (first bytes {0})")]
    UnknownFormat(String),
    /// The file ends before its header does.
    #[error("file ends inside the {0} header")]
    TruncatedHeader(&'static str),
    /// A header field has a value that makes the file unreadable.
    #[error("bad {what}: {detail}")]
    BadHeader {
        /// Which header or field.
        what: &'static str,
        /// Why it is bad.
        detail: String,
    },
    /// A record or block claims a length larger than hush accepts, which would otherwise become a
    /// huge allocation.
    #[error("record claims {claimed_bytes} bytes, more than the {limit_bytes}-byte limit")]
    RecordTooLarge {
        /// The length the file claims.
        claimed_bytes: u64,
        /// The most hush will buffer.
        limit_bytes: u64,
    },
    /// A record or block is internally inconsistent.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which kind of record.
        what: &'static str,
        /// Why it is malformed.
        detail: String,
    },
    /// A CSV file lacks a column hush needs.
    #[error("missing column {0:?}")]
    MissingColumn(String),
    /// A CSV field could not be parsed.
    #[error("field {field:?}: {detail}")]
    BadField {
        /// Column name.
        field: String,
        /// Why it is bad.
        detail: String,
    },
    /// A file that a manifest or a list names does not exist.
    #[error("{} does not exist", .0.display())]
    MissingPath(PathBuf),
    /// A row that repeats an earlier one (the same capture and device, the same MAC or name).
    #[error("duplicate {what}, first given on line {first_line}")]
    Duplicate {
        /// What repeats, e.g. `path "a.pcap" with device infer`.
        what: String,
        /// The 1-based line of its first occurrence.
        first_line: u64,
    },
    /// A class (label) that some input names but that ends up with no readable trace.
    #[error("class {label:?} is empty: {detail}")]
    EmptyClass {
        /// The label.
        label: String,
        /// Why it has no trace.
        detail: String,
    },
    /// Anything else the input got wrong.
    #[error("{0}")]
    Invalid(String),
}

impl TraceError {
    /// An error with no location yet; use [`TraceError::at`] and [`TraceError::in_file`] to add one.
    pub fn new(kind: ErrorKind) -> Self {
        TraceError {
            path: None,
            offset: None,
            line: None,
            kind,
        }
    }

    /// Set the byte offset.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Set the line number.
    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// Set the file, unless one is already set.
    pub fn in_file(mut self, path: impl Into<PathBuf>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }
}

impl From<std::io::Error> for TraceError {
    fn from(e: std::io::Error) -> Self {
        TraceError::new(ErrorKind::Io(e))
    }
}

fn path_display(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "<input>".to_string(),
    }
}

fn location_display(offset: Option<u64>, line: Option<u64>) -> String {
    match (line, offset) {
        (Some(l), _) => format!(":{l}"),
        (None, Some(o)) => format!(" at byte {o}"),
        (None, None) => String::new(),
    }
}

/// Result alias for hush-trace.
pub type Result<T, E = TraceError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_file_and_offset() {
        let e = TraceError::new(ErrorKind::RecordTooLarge {
            claimed_bytes: 1 << 32,
            limit_bytes: 1 << 26,
        })
        .at(24)
        .in_file("x.pcap");
        assert_eq!(
            e.to_string(),
            "x.pcap at byte 24: record claims 4294967296 bytes, more than the 67108864-byte limit"
        );
    }
}

//! The hush bench: the experiment matrix (defenses × attacks × data sets), its results, the
//! report that compares them, and the demo.
//!
//! - [`matrix`]: every defense × attack × seed over a dataset, with adaptive and non-adaptive
//!   attackers, privacy next to cost, cached by content hash so a killed run resumes; results as
//!   CSV (byte-identical for the same configuration and seed) and JSON, written atomically;
//! - [`activity`]: activity datasets (a capture and its event labels, defended whole, then cut
//!   into event and idle windows), and the two public ones in the events folder;
//! - [`experiment`]: experiment files (TOML): datasets, defenses with parameter sweeps, attacks,
//!   seeds;
//! - [`parquet`]: results and every example's feature rows as Parquet files;
//! - [`report`]: one static HTML file with inline SVG per run: per dataset the privacy–overhead
//!   frontier (Pareto front, chance line), the latency–privacy plot, traffic-rate charts,
//!   confusion matrices, and a table of every cell;
//! - [`home`]: a built-in simulated smart home of five IoT devices whose seeded traffic needs no
//!   capture files (the demo's data).
//!
//! ```
//! use hush_eval::home::{HomeConfig, simulate_home};
//!
//! let ds = simulate_home(&HomeConfig { duration_s: 60.0, sessions_per_device: 2, seed: 7 })?;
//! assert_eq!(ds.labels.len(), 5);
//! assert_eq!(ds.traces.len(), 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod activity;
pub mod experiment;
pub mod home;
pub mod matrix;
pub mod parquet;
pub mod report;

/// Errors of the bench.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A bad matrix: an unknown defense or attack, no seeds, too few folds.
    #[error("{0}")]
    Config(String),
    /// A defense failed on a trace.
    #[error("defense failed on {trace}: {reason}")]
    Defense {
        /// The trace.
        trace: String,
        /// Why.
        reason: String,
    },
    /// An attack failed (data it cannot split or learn from).
    #[error(transparent)]
    Attack(#[from] hush_attack::AttackError),
    /// The report could not be drawn.
    #[error("report: {0}")]
    Report(String),
    /// Reading or writing results.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

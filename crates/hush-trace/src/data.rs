//! Finding the shared real-data folder that tests, benchmarks and examples use.

use std::path::PathBuf;

/// The folder of real third-party captures: `$HUSH_DATA` if set, else `../shared/data` beside the
/// repository root (tried from the current directory and from this crate's source location).
/// `None` when neither exists, so tests can skip with a clear message on a fresh clone.
pub fn shared_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HUSH_DATA") {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    let from_manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let from_cwd = PathBuf::from("../shared/data");
    [from_cwd, from_manifest].into_iter().find(|d| d.is_dir())
}

/// A sub-folder of [`shared_data_dir`], or `None` (with a message on stderr saying why) so a test
/// can `return` early: `let Some(dir) = shared_data("iot-sentinel") else { return };`
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    match shared_data_dir().map(|d| d.join(sub)) {
        Some(d) if d.is_dir() => Some(d),
        _ => {
            eprintln!(
                "skipped: real data folder {sub:?} not found (set HUSH_DATA or place ../shared/data)"
            );
            None
        }
    }
}

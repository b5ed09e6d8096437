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
///
/// With `HUSH_REQUIRE_DATA=1` in the environment (as CI sets it) a missing folder panics
/// instead, so a test that needs real data fails rather than passing without it.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    match shared_data_dir().map(|d| d.join(sub)) {
        Some(d) if d.is_dir() => Some(d),
        _ => {
            skip(&format!(
                "real data folder {sub:?} not found (set HUSH_DATA or place ../shared/data)"
            ));
            None
        }
    }
}

/// Whether `HUSH_REQUIRE_DATA=1`: tests that need real data must fail without it.
pub fn data_required() -> bool {
    std::env::var_os("HUSH_REQUIRE_DATA").is_some_and(|v| v == "1")
}

/// Say why a test is skipping, or panic with that reason when [`data_required`]: for tests
/// that find a data folder but miss a file in it.
#[allow(clippy::panic)] // a test helper: failing the test is its job
pub fn skip(why: &str) {
    if data_required() {
        panic!("HUSH_REQUIRE_DATA=1 but {why}");
    }
    eprintln!("skipped: {why}");
}

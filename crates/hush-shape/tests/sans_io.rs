//! hush-shape reads no clock and no entropy source: the caller passes `now`, seeds and random
//! bytes. CI checks that its dependency tree has no async runtime; this checks its own code.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[test]
fn the_engine_reads_no_clock_and_no_entropy_source() {
    let forbidden = [
        "getrandom",
        "OsRng",
        "SysRng",
        "thread_rng",
        "rand::rng(",
        "rand::random",
        "from_os_rng",
        "SystemTime::now",
        "Instant::now()",
        "generate_keypair()",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{}:{}: `{f}` in hush-shape (the caller must supply it): {line}",
                    path.display(),
                    i + 1
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "found only {checked} source files in {}",
        dir.display()
    );
}

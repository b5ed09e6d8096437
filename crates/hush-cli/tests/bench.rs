//! `hush eval` as a user runs it: results files, a killed run that resumes without losing or
//! corrupting anything, and bad matrices as exit 2.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

fn hush() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hush"))
}

/// Four IoT Sentinel devices as symlinks (nothing copied).
fn four_devices() -> Option<(tempfile::TempDir, PathBuf)> {
    let data = hush_trace::data::shared_data("iot-sentinel")?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("four");
    std::fs::create_dir(&dir).unwrap();
    for d in ["Aria", "HueBridge", "Lightify", "D-LinkCam"] {
        std::os::unix::fs::symlink(data.join(d), dir.join(d)).unwrap();
    }
    Some((tmp, dir))
}

fn args<'a>(data: &'a Path, out: &'a Path) -> Vec<String> {
    [
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--defenses",
        "none,pad-mtu,front,ilp-constant",
        "--attacks",
        "flow-stats,m-agg",
        "-o",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_killed_run_resumes_and_gives_the_same_bytes() {
    let Some((tmp, data)) = four_devices() else {
        return;
    };
    // A clean run, for reference.
    let clean = tmp.path().join("clean");
    let o = hush().args(args(&data, &clean)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read(clean.join("results.csv")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&want).lines().count(),
        1 + 4 * 2 * 2,
        "header + defenses x attacks x attackers"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clean.join("results.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 16);

    // Interrupt a second run once its first cell is saved.
    let out = tmp.path().join("killed");
    let mut child = hush().args(args(&data, &out)).spawn().unwrap();
    let cache = out.join("cache");
    let t0 = std::time::Instant::now();
    loop {
        let saved = std::fs::read_dir(&cache)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.path().extension() == Some("json".as_ref()))
            })
            .unwrap_or(false);
        if saved || t0.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix_kill(child.id());
    let _ = child.wait();
    // What is there is whole: every cache file parses, no temporary file is left looking final.
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        if p.extension() == Some("json".as_ref()) {
            let _: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    // Resume: the finished cells are read, the rest computed, the same bytes come out.
    let o = hush().args(args(&data, &out)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains(" 0 cached"), "nothing resumed: {err}");
    assert_eq!(std::fs::read(out.join("results.csv")).unwrap(), want);
}

/// SIGINT, as a user's Ctrl-C.
fn nix_kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

#[test]
fn bad_matrices_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for extra in [
        &["--defenses", "nope"][..],
        &["--attacks", "nope"][..],
        &["--folds", "1"][..],
    ] {
        let o = hush()
            .args(["eval", "--data", tmp.path().to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn the_demo_needs_no_files_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = hush()
            .args(["demo", "--sessions", "2", "--duration-s", "120", "-o"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let table = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(table.contains("tamaraw"), "{table}");
        std::fs::read(out.join("results.csv")).unwrap()
    };
    let a = run("a");
    assert_eq!(String::from_utf8_lossy(&a).lines().count(), 1 + 10 * 2 * 2);
    assert_eq!(run("b"), a, "same seed, same bytes");
    // The report is written beside the results, and `hush report` rebuilds the same bytes.
    let dir = tmp.path().join("a");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("tamaraw") && html.contains("Pareto"));
    let again = tmp.path().join("again.html");
    let o = hush()
        .arg("report")
        .arg(dir.join("results.json"))
        .arg("-o")
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
    let o = hush()
        .arg("report")
        .arg(dir.join("results.csv"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "a CSV is not a results.json");
    let o = hush().args(["demo", "--sessions", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

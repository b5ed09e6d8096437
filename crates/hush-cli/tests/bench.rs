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
        1 + 4 * 2 * 2 * 2,
        "header + defenses x attacks x observations x attackers"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clean.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 32);
    assert_eq!(json["rates"][0]["defended"].as_array().unwrap().len(), 4);

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
    assert_eq!(
        String::from_utf8_lossy(&a).lines().count(),
        1 + 10 * 2 * 2 * 2
    );
    assert_eq!(run("b"), a, "same seed, same bytes");
    // The report is written beside the results, and `hush report` rebuilds the same bytes.
    let dir = tmp.path().join("a");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // Two scatters, and a rate plot per defense at least.
    assert!(html.matches("<svg").count() >= 2 + 10);
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

/// Activity inference from the events folder: both built-in datasets, windows cut after
/// defending the whole capture.
#[test]
fn the_events_folder_gives_two_activity_datasets() {
    let Some(events) = hush_trace::data::shared_data("events") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let o = hush()
        .args(["eval", "--data"])
        .arg(&events)
        .args([
            "--defenses",
            "none,pad-mtu",
            "--attacks",
            "flow-stats",
            "-o",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("pingpong-tplink: 24 windows"), "{err}");
    let csv = std::fs::read_to_string(tmp.path().join("results.csv")).unwrap();
    for ds in ["pingpong-tplink", "nku-xiaodu-plug"] {
        let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with(ds)).collect();
        assert_eq!(
            rows.len(),
            2 * 2 * 2,
            "{ds}: 2 defenses x 2 observations x 2 attackers\n{csv}"
        );
    }
    // PingPong: 12 idle windows of 24, so a constant guess is right half the time; the
    // undefended plug's ON and OFF are far easier.
    let none = csv
        .lines()
        .find(|l| l.starts_with("pingpong-tplink,session,0,none,"))
        .unwrap();
    let f: Vec<&str> = none.split(',').collect();
    let (acc, chance): (f64, f64) = (f[8].parse().unwrap(), f[11].parse().unwrap());
    assert_eq!(chance, 0.5);
    assert!(acc > chance, "{none}");
}

/// An experiment file: datasets, a sweep written both ways, flags beside it winning.
#[test]
fn an_experiment_file_with_sweeps() {
    let Some((tmp, data)) = four_devices() else {
        return;
    };
    let exp = tmp.path().join("bench.toml");
    std::fs::write(
        &exp,
        format!(
            "attacks = [\"flow-stats\"]\n\
             defenses = [\"none\", \"pad-mtu:size_bytes=600|1448\"]\n\
             out = \"res\"\n\
             [[sweep]]\n\
             defense = \"front\"\n\
             max_records = [50, 200]\n\
             [[dataset]]\n\
             path = {:?}\n\
             name = \"four\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = hush().arg("eval").arg(&exp).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(tmp.path().join("res/results.csv")).unwrap();
    let defenses: Vec<&str> = csv
        .lines()
        .skip(1)
        .step_by(4)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(
        defenses,
        [
            "none",
            "pad-mtu:size_bytes=600",
            "pad-mtu:size_bytes=1448",
            "front:max_records=50",
            "front:max_records=200"
        ]
    );
    assert!(csv.lines().skip(1).all(|l| l.starts_with("four,")));
    // A flag wins over the file.
    let o = hush()
        .arg("eval")
        .arg(&exp)
        .args(["--defenses", "none", "-o"])
        .arg(tmp.path().join("flag"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(tmp.path().join("flag/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2);
    // A mistake in the file: exit 2, one line naming the file and the field.
    std::fs::write(&exp, "attacks = [\"flow-stats\"]\nseed = [1]\n").unwrap();
    let o = hush().arg("eval").arg(&exp).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bench.toml") && err.contains("seed"), "{err}");
}

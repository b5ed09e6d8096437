//! The HTML report as a person sees it: `hush demo` writes report.html, headless Chromium draws
//! it, and the screenshot must show the plots (red and blue markers), text and tables. A blank
//! page and a page without its plots must fail the same check, so the check can fail at all.
//!
//! Without a browser the tests print why they skip and pass, unless HUSH_REQUIRE_BROWSER=1 (CI
//! sets it once it has installed one). HUSH_CHROMIUM names the browser binary.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 2400;
/// A browser that has not drawn the page by now is hung; kill it rather than hang CI.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

fn hush() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hush"))
}

/// The browser to use: HUSH_CHROMIUM, else the first Chromium-like binary on PATH. None means
/// skip (after saying so), or a panic under HUSH_REQUIRE_BROWSER=1.
fn browser() -> Option<PathBuf> {
    if let Some(b) = std::env::var_os("HUSH_CHROMIUM") {
        return Some(PathBuf::from(b));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("HUSH_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
            "HUSH_REQUIRE_BROWSER=1 but no chromium, chromium-browser or google-chrome on PATH \
             (and HUSH_CHROMIUM is unset)"
        );
        // Straight to stderr: the test harness hides eprintln! output of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "skipping: no chromium (install Debian's chromium, or set HUSH_CHROMIUM)"
        );
    }
    found
}

/// A decoded screenshot, one RGB triple per pixel, row by row.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

/// Draws `html` in `browser` at WIDTH x HEIGHT and decodes the screenshot, saved as `png`.
fn screenshot(browser: &Path, html: &Path, png: &Path) -> Image {
    let dir = png.parent().unwrap();
    let log = dir.join(format!(
        "{}.log",
        png.file_name().unwrap().to_str().unwrap()
    ));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            &format!("--window-size={WIDTH},{HEIGHT}"),
        ])
        // Its own profile, so parallel tests and a running desktop browser don't collide.
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} hung for {BROWSER_TIMEOUT:?}; killed", browser.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Chromium chatters on stderr (dbus, GPU) even when all is well: judge the PNG, show the
    // log only when there is no PNG.
    let file = std::fs::File::open(png).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("no screenshot ({e}); browser {status}, its stderr:\n{log}")
    });
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Image {
        width: info.width,
        height: info.height,
        rgb,
    }
}

/// Whether a screenshot shows a drawn report rather than a blank or broken page. Counts, over
/// all pixels: non-white ones (something is drawn), red and blue ones (the plots' markers:
/// plotters' RED filled circles and BLUE rings), dark ones (text and axes) and distinct colours
/// (anti-aliased text and plots give hundreds; a blank or flat page a handful). The thresholds
/// sit well below what a real report gives and well above what a blank page gives.
fn check_drawn(img: &Image) -> Result<(), String> {
    if (img.width, img.height) != (WIDTH, HEIGHT) {
        return Err(format!(
            "screenshot is {}x{}, not {WIDTH}x{HEIGHT}",
            img.width, img.height
        ));
    }
    let count = |f: fn(&[u8; 3]) -> bool| img.rgb.iter().filter(|p| f(p)).count();
    let non_white = count(|&[r, g, b]| r.min(g).min(b) < 240);
    let red = count(|&[r, g, b]| r >= 200 && g <= 60 && b <= 60);
    let blue = count(|&[r, g, b]| b >= 200 && r <= 120 && g <= 120);
    let dark = count(|&[r, g, b]| r.max(g).max(b) < 80);
    let colours = img
        .rgb
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let seen = format!(
        "{non_white} non-white, {red} red, {blue} blue, {dark} dark pixels, {colours} colours"
    );
    let n = img.rgb.len();
    if non_white < n / 50 || red < 100 || blue < 100 || dark < 5000 || colours < 100 {
        return Err(format!(
            "page looks blank or broken: {seen} (want >= {} non-white, 100 red, 100 blue, \
             5000 dark, 100 colours)",
            n / 50
        ));
    }
    eprintln!("screenshot: {seen}");
    Ok(())
}

/// `hush demo` on a small home: results.json and report.html in `out`.
fn demo(out: &Path) {
    let o = hush()
        .args(["demo", "--sessions", "3", "--duration-s", "120", "-o"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_report_draws_its_plots_and_tables_in_a_browser() {
    let Some(browser) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    demo(&out);
    let png = tmp.path().join("report.png");
    let img = screenshot(&browser, &out.join("report.html"), &png);
    if let Err(e) = check_drawn(&img) {
        panic!("{e}; screenshot kept at {}", keep(&png).display());
    }
    eprintln!("report screenshot: {}", keep(&png).display());
}

#[test]
fn a_blank_or_plotless_page_fails_the_check() {
    let Some(browser) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let blank = tmp.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>\n").unwrap();
    let img = screenshot(&browser, &blank, &tmp.path().join("blank.png"));
    let err = check_drawn(&img).expect_err("a blank page passed the check");
    eprintln!("blank page, rejected as it should be: {err}");
    assert!(err.contains("blank or broken"), "{err}");

    // The report's text and tables without its figures: drawn, but no plot markers.
    let out = tmp.path().join("demo");
    demo(&out);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let mut stripped = String::new();
    let mut rest = &html[..];
    while let Some(i) = rest.find("<figure>") {
        stripped.push_str(&rest[..i]);
        let j = rest[i..].find("</figure>").expect("unclosed <figure>");
        rest = &rest[i + j + "</figure>".len()..];
    }
    stripped.push_str(rest);
    assert!(
        stripped.len() < html.len(),
        "the report has no <figure> to strip"
    );
    let plotless = tmp.path().join("plotless.html");
    std::fs::write(&plotless, stripped).unwrap();
    let img = screenshot(&browser, &plotless, &tmp.path().join("plotless.png"));
    let err = check_drawn(&img).expect_err("a report without its plots passed the check");
    eprintln!("plotless report, rejected as it should be: {err}");
    assert!(err.contains(", 0 red,"), "{err}");
}

/// Copies a screenshot to /tmp/hush-report.png, for a person to look at.
fn keep(png: &Path) -> PathBuf {
    let kept = std::env::temp_dir().join("hush-report.png");
    std::fs::copy(png, &kept).unwrap();
    kept
}

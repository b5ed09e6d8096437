//! `hush keygen`, `hush pubkey`, `hush shape`, `hush proxy` and `hush gateway` as a user runs
//! them: key files, schedule costs, a real capture carried on a virtual clock, and a live tunnel
//! on loopback with a plain echo server behind it, stopped by SIGTERM.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hush_trace::data::shared_data;

/// How long a live process may take to come up, answer or exit before the test gives up (a
/// guard against hangs, not a speed requirement).
const DEADLINE: Duration = Duration::from_secs(30);

fn hush(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .output()
        .expect("run hush")
}

/// Run hush to completion, but kill it and fail if it is still running after [`DEADLINE`] (a
/// proxy or gateway that should have refused to start but did not would otherwise hang).
fn hush_bounded(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hush");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("wait for hush"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("hush {args:?} still running after {DEADLINE:?}");
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh, empty folder for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("hush-shape-net-test-{}", std::process::id()))
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Exit code 2 and exactly one line on stderr, containing every one of `needles`.
fn assert_bad_input(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err:?}");
    }
}

fn is_base64_key(k: &str) -> bool {
    k.len() == 44
        && k.ends_with('=')
        && k[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `hush keygen --out path`, returning the printed public key.
fn keygen(path: &Path) -> String {
    let o = hush(&["keygen", "--out", s(path)]);
    assert!(o.status.success(), "keygen: {}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    assert!(is_base64_key(&key), "{key:?}");
    key
}

// ---------------------------------------------------------------------------------------------
// keygen and pubkey

#[test]
fn keygen_writes_a_private_key_and_pubkey_reads_it_back() {
    let dir = temp_dir("keygen");
    let path = dir.join("device.key");
    let o = hush(&["keygen", "--out", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().count(),
        1,
        "stdout is the public key only: {out:?}"
    );
    let public = out.trim_end().to_string();
    assert!(
        is_base64_key(&public),
        "not a 44-char base64 key: {public:?}"
    );
    assert!(stderr(&o).contains(s(&path)), "{}", stderr(&o));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    }
    let text = std::fs::read_to_string(&path).expect("read key");
    assert!(
        !text.lines().any(|l| l.trim() == public),
        "the private key file's key line is the public key: {text}"
    );

    // pubkey gives the same public key.
    let o = hush(&["pubkey", s(&path)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{public}\n"));

    // Two keys differ.
    let other = keygen(&dir.join("other.key"));
    assert_ne!(other, public);

    // Never overwritten: exit 2, one line naming the file, the file unchanged.
    let o = hush(&["keygen", "--out", s(&path)]);
    assert_bad_input(&o, &[s(&path)]);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(&path).expect("read key"), text);
    assert_eq!(stdout(&hush(&["pubkey", s(&path)])).trim_end(), public);
}

#[test]
fn pubkey_of_a_bad_file_is_one_line_naming_it() {
    let dir = temp_dir("pubkey-bad");
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").expect("write");
    let o = hush(&["pubkey", s(&garbage)]);
    assert_bad_input(&o, &["garbage.key"]);
    assert!(stdout(&o).is_empty());

    // Valid base64 of the wrong length is not a key either.
    let short = dir.join("short.key");
    std::fs::write(&short, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n").expect("write");
    assert_bad_input(&hush(&["pubkey", s(&short)]), &["short.key"]);

    let missing = dir.join("missing.key");
    assert_bad_input(&hush(&["pubkey", s(&missing)]), &["missing.key"]);
}

// ---------------------------------------------------------------------------------------------
// hush shape

fn shape_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["shape"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = hush(&all);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn shape_datta_low_costs_3000_bytes_per_second() {
    let v = shape_json(&["--schedule", "datta-low", "--duration-s", "60"]);
    let dirs = v["directions"].as_array().expect("directions");
    assert_eq!(dirs.len(), 1, "{v}");
    let d = &dirs[0];
    assert_eq!(d["direction"], "idle");
    assert!(close(f(d, "duration_s"), 60.0, 1e-9), "{d}");
    // 150 B every 50 ms: 20 records a second, all cover.
    assert_eq!(u(d, "records"), 1200, "{d}");
    assert_eq!(u(d, "cover_records"), u(d, "records"), "cover 100%: {d}");
    assert_eq!(u(d, "wire_bytes"), 1200 * 150, "{d}");
    assert_eq!(u(d, "cover_bytes"), u(d, "wire_bytes"), "{d}");
    assert_eq!(u(d, "real_bytes"), 0);
    assert_eq!(u(d, "messages"), 0);
    assert!(close(f(d, "wire_bps"), 3000.0, 1e-9), "{d}");
    // 52 B of TCP/IPv4 headers per record: (150 + 52) * 20.
    assert!(close(f(d, "wire_ip_bps"), 4040.0, 1e-9), "{d}");
    assert!(close(f(d, "bytes_per_day"), 4040.0 * 86_400.0, 1e-9), "{d}");
    assert_eq!(v["schedule"]["schedule"]["kind"], "constant");

    // The table says the same.
    let o = hush(&["shape", "--schedule", "datta-low", "--duration-s", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.starts_with("idle"))
        .unwrap_or_else(|| panic!("no idle row: {text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.contains(&"3000.0"), "{row}");
    assert!(cells.contains(&"4040.0"), "{row}");
    assert!(cells.contains(&"100.0%"), "{row}");
}

#[test]
fn shape_datta_high_costs_its_mean_size_over_its_mean_gap() {
    let v = shape_json(&["--schedule", "datta-high", "--duration-s", "36000"]);
    let d = &v["directions"][0];
    let duration = f(d, "duration_s");
    assert!(close(duration, 36_000.0, 1e-3), "{d}");
    let expected = 125.0 / 0.3;
    assert!(
        close(f(d, "wire_bps"), expected, 0.02),
        "wire {} B/s, expected {expected:.1} within 2%",
        f(d, "wire_bps")
    );
    let records = u(d, "records") as f64;
    assert!(close(records / duration, 1.0 / 0.3, 0.02), "{d}");
    assert!(
        close(u(d, "wire_bytes") as f64 / records, 125.0, 0.02),
        "{d}"
    );
    assert_eq!(u(d, "cover_records"), u(d, "records"));
    let with_headers = f(d, "wire_bps") + 52.0 * records / duration;
    assert!(close(f(d, "wire_ip_bps"), with_headers, 1e-9), "{d}");

    // The seed picks the draws: same seed, same figures; another seed, other draws.
    let again = shape_json(&["--schedule", "datta-high", "--duration-s", "36000"]);
    assert_eq!(again["directions"], v["directions"]);
    let other = shape_json(&[
        "--schedule",
        "datta-high",
        "--duration-s",
        "36000",
        "--seed",
        "9",
    ]);
    assert_ne!(other["directions"][0]["wire_bytes"], d["wire_bytes"]);
    assert!(close(
        f(&other["directions"][0], "wire_bps"),
        expected,
        0.02
    ));
}

#[test]
fn shape_bad_inputs_are_one_line_and_exit_2() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--schedule", "random", "--gap", "0", "--size", "100"],
            &["gap"],
        ),
        (
            &[
                "--schedule",
                "constant",
                "--gap",
                "uniform:1,2",
                "--size",
                "100",
            ],
            &["--gap"],
        ),
        (&["--gap", "1"], &["--schedule"]),
        (
            &[
                "--schedule",
                "random",
                "--gap",
                "uniform:0.2,0.4",
                "--size",
                "uniform:10,200",
            ],
            &["size", "23"],
        ),
        (&["--trace", "/nonexistent.pcap"], &["/nonexistent.pcap"]),
        (&["--schedule", "random", "--size", "100"], &["--gap"]),
        (
            &["--schedule", "datta-low", "--duration-s", "0"],
            &["--duration-s"],
        ),
    ];
    for (args, needles) in cases {
        let mut all = vec!["shape"];
        all.extend_from_slice(args);
        let o = hush(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        for n in *needles {
            assert!(err.contains(n), "{args:?}: {n:?} not in {err:?}");
        }
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn shape_text_into_a_closed_pipe_exits_quietly() {
    closed_pipe_exits_quietly(&["shape", "--schedule", "datta-high", "--duration-s", "36000"]);
}

#[test]
fn shape_json_into_a_closed_pipe_exits_quietly() {
    closed_pipe_exits_quietly(&[
        "shape",
        "--schedule",
        "datta-high",
        "--duration-s",
        "36000",
        "--json",
    ]);
}

/// `hush ARGS | true`: the reader is gone before hush writes. main.rs documents exit 0 and no
/// message for a closed pipe.
fn closed_pipe_exits_quietly(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hush");
    // Close the only read end at once; hush spends a while on 36000 s of schedule first.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

/// Per direction of a `write_csv` export: (sum of TCP/UDP payload bytes, packets with payload,
/// sum of frame bytes).
fn csv_totals(csv: &str) -> [(u64, u64, u64); 2] {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column in {header:?}"))
    };
    let (dir, payload, frame, proto) = (
        col("direction"),
        col("payload_len"),
        col("frame_len"),
        col("ip_proto"),
    );
    let mut totals = [(0, 0, 0); 2];
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        let i = match cells[dir] {
            "out" => 0,
            "in" => 1,
            other => panic!("direction {other:?} in {line}"),
        };
        let frame_len: u64 = cells[frame].parse().expect("frame_len");
        totals[i].2 += frame_len;
        let p: u64 = cells[payload].parse().expect("payload_len");
        if matches!(cells[proto], "6" | "17") && p > 0 {
            totals[i].0 += p;
            totals[i].1 += 1;
        }
    }
    totals
}

#[test]
fn shape_carries_every_payload_byte_of_a_real_capture() {
    let Some(dir) = shared_data("iot-sentinel/Withings") else {
        return;
    };
    let tmp = temp_dir("shape-trace");
    for name in ["Setup-A-1-STA.pcap", "Setup-C-1-STA.pcap"] {
        let capture = dir.join(name);
        if !capture.is_file() {
            eprintln!("skipped: {} not found", capture.display());
            continue;
        }
        let v = shape_json(&["--schedule", "datta-high", "--trace", s(&capture)]);
        assert_eq!(v["trace"], s(&capture));
        let dirs = v["directions"].as_array().expect("directions");
        assert_eq!(dirs.len(), 2, "{v}");
        assert_eq!(dirs[0]["direction"], "out");
        assert_eq!(dirs[1]["direction"], "in");

        let csv = tmp.join(format!("{name}.csv"));
        let o = hush(&["convert", s(&capture), s(&csv)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let totals = csv_totals(&std::fs::read_to_string(&csv).expect("read csv"));

        let o = hush(&["inspect", s(&capture), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let inspect: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");

        for (d, (t, side)) in dirs.iter().zip(totals.iter().zip(["outbound", "inbound"])) {
            let (payload, messages, frames) = *t;
            assert!(payload > 0, "{name}: no payload {side}");
            assert_eq!(u(d, "real_bytes"), payload, "{name} {side}: {d}");
            assert_eq!(u(d, "messages"), messages, "{name} {side}: {d}");
            assert_eq!(u(d, "original_frame_bytes"), frames, "{name} {side}: {d}");
            assert_eq!(
                u(d, "original_frame_bytes"),
                u(&inspect["device"][side], "bytes"),
                "{name} {side}"
            );
            // What the tunnel sends is the records; data and cover together.
            assert!(u(d, "wire_bytes") >= u(d, "real_bytes"), "{d}");
            assert_eq!(
                u(d, "wire_bytes"),
                u(d, "real_bytes")
                    + u(d, "padding_bytes")
                    + u(d, "framing_bytes")
                    + u(d, "cover_bytes"),
                "{name} {side}: wire = real + padding + framing + cover: {d}"
            );
            assert!(u(d, "cover_records") < u(d, "records"), "{d}");
            assert!(f(d, "delay_max_s") >= f(d, "delay_p99_s"), "{d}");
            assert!(f(d, "delay_p99_s") >= f(d, "delay_p50_s"), "{d}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A live proxy and gateway

/// A running `hush proxy` or `hush gateway`: its stderr lines as they come. Dropping it kills the
/// process, so a failed test leaves nothing running.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    what: String,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hush"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hush");
        let err = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
            what: format!("hush {}", args.first().copied().unwrap_or("")),
        }
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait for a stderr line containing `marker`; panic (with everything it said) if the process
    /// exits first or [`DEADLINE`] passes.
    fn wait_for_line(&mut self, marker: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(marker))
            {
                return l.clone();
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader catch the last lines before reporting.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                panic!(
                    "{} exited ({status}) before saying {marker:?}:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "{} did not say {marker:?} within {DEADLINE:?}:\n{}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address after `marker` in a log line (`SOCKS5 on 127.0.0.1:4242`).
    fn addr_after(&mut self, marker: &str) -> SocketAddr {
        let line = self.wait_for_line(marker);
        let rest = &line[line.find(marker).unwrap() + marker.len()..];
        let word = rest.split_whitespace().next().unwrap_or("");
        word.parse()
            .unwrap_or_else(|_| panic!("no address after {marker:?} in {line:?}"))
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Send SIGTERM; wait for the exit (within [`DEADLINE`]); return the exit code and all of
    /// stderr.
    fn terminate(&mut self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(
                Instant::now() < end,
                "{} still running {DEADLINE:?} after SIGTERM:\n{}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain TCP echo server on loopback, one thread per connection; it echoes until the client
/// half-closes, then closes.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = conn.shutdown(Shutdown::Both);
            });
        }
    });
    addr
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ salt)
        .collect()
}

/// Send `data` on `conn` (from a thread, half-closing after it), read to the end, and return
/// what came back.
fn echo_through(conn: TcpStream, data: &[u8]) -> Vec<u8> {
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut writer = conn.try_clone().expect("clone");
    let owned = data.to_vec();
    let w = std::thread::spawn(move || {
        writer.write_all(&owned).expect("write");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::new();
    let mut conn = conn;
    conn.read_to_end(&mut back)
        .expect("read the echo (timed out or reset)");
    w.join().expect("writer");
    back
}

/// A SOCKS5 CONNECT without authentication; `host` is a domain name or an IPv4 address.
fn socks_connect(socks: SocketAddr, host: &str, port: u16) -> TcpStream {
    let mut c = TcpStream::connect(socks).expect("connect to SOCKS");
    c.set_read_timeout(Some(DEADLINE)).expect("timeout");
    c.write_all(&[5, 1, 0]).expect("greeting");
    let mut choice = [0u8; 2];
    c.read_exact(&mut choice).expect("method choice");
    assert_eq!(choice, [5, 0], "no-auth accepted");
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            req.push(3);
            req.push(u8::try_from(host.len()).expect("short name"));
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    c.write_all(&req).expect("request");
    let mut reply = [0u8; 10];
    c.read_exact(&mut reply).expect("reply");
    assert_eq!(
        reply[..2],
        [5, 0],
        "CONNECT {host}:{port} granted: {reply:?}"
    );
    c
}

/// Keys and a gateway that allows the device key.
struct Setup {
    dir: PathBuf,
    gw_pub: String,
    dev_pub: String,
}

fn keys(test: &str) -> Setup {
    let dir = temp_dir(test);
    let gw_pub = keygen(&dir.join("gw.key"));
    let dev_pub = keygen(&dir.join("dev.key"));
    Setup {
        dir,
        gw_pub,
        dev_pub,
    }
}

fn start_gateway(k: &Setup, extra: &[&str]) -> (Running, SocketAddr) {
    let key = k.dir.join("gw.key");
    let allow = format!("dev={}", k.dev_pub);
    // The echo servers live on loopback, which a gateway refuses as a target unless allowed.
    let mut args = vec![
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--key",
        s(&key),
        "--allow",
        &allow,
        "--allow-target",
        "127.0.0.0/8",
    ];
    args.extend_from_slice(extra);
    let mut gw = Running::start(&args);
    let addr = gw.addr_after("listening on ");
    (gw, addr)
}

#[test]
fn proxy_and_gateway_carry_connections_and_stop_on_sigterm() {
    let k = keys("e2e");
    let echo = echo_server();
    let shape = ["--schedule", "constant", "--gap", "0.002", "--size", "1000"];
    let mut gw_extra = shape.to_vec();
    gw_extra.extend_from_slice(&["--seed", "1"]);
    let (mut gw, gw_addr) = start_gateway(&k, &gw_extra);

    let dev_key = k.dir.join("dev.key");
    let gateway = gw_addr.to_string();
    let forward = format!("127.0.0.1:0={echo}");
    let mut args = vec![
        "proxy",
        "--gateway",
        &gateway,
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&dev_key),
        "--socks",
        "127.0.0.1:0",
        "--forward",
        &forward,
    ];
    args.extend_from_slice(&shape);
    args.extend_from_slice(&["--seed", "2"]);
    let mut proxy = Running::start(&args);
    let socks = proxy.addr_after("SOCKS5 on ");
    let fwd = proxy.addr_after("forwarding ");
    proxy.wait_for_line("tunnel to ");
    gw.wait_for_line("tunnel from ");
    assert!(
        gw.stderr().contains(&k.dev_pub) && gw.stderr().contains(": dev "),
        "the gateway names the device: {}",
        gw.stderr()
    );

    // Through the fixed forward: a plain client, a plain server.
    let a = pattern(50_000, 1);
    let conn = TcpStream::connect(fwd).expect("connect to the forward");
    let back = echo_through(conn, &a);
    assert_eq!(back.len(), a.len(), "forward echo length");
    assert!(back == a, "forward echo differs");

    // Through SOCKS5, by name (resolved at the gateway) and by IPv4 address.
    let b = pattern(20_000, 2);
    let back = echo_through(socks_connect(socks, "localhost", echo.port()), &b);
    assert_eq!(back.len(), b.len(), "SOCKS by name: echo length");
    assert!(back == b, "SOCKS by name: echo differs");
    let c = pattern(20_000, 3);
    let back = echo_through(socks_connect(socks, "127.0.0.1", echo.port()), &c);
    assert_eq!(back.len(), c.len(), "SOCKS by IPv4: echo length");
    assert!(back == c, "SOCKS by IPv4: echo differs");

    assert!(proxy.is_running(), "{}", proxy.stderr());
    assert!(gw.is_running(), "{}", gw.stderr());

    // SIGTERM drains and exits 0 with a summary.
    let (code, err) = proxy.terminate();
    assert_eq!(code, Some(0), "proxy exit after SIGTERM:\n{err}");
    let done = err
        .lines()
        .find(|l| l.contains("done:"))
        .unwrap_or_else(|| panic!("no done: line from the proxy:\n{err}"));
    let total = a.len() + b.len() + c.len();
    assert!(
        done.contains(&format!("done: 3 streams, {total} B up, {total} B down")),
        "{done}"
    );

    let (code, err) = gw.terminate();
    assert_eq!(code, Some(0), "gateway exit after SIGTERM:\n{err}");
    let done = err
        .lines()
        .find(|l| l.contains("done:"))
        .unwrap_or_else(|| panic!("no done: line from the gateway:\n{err}"));
    assert!(done.contains("done: 1 tunnels, 3 streams"), "{done}");
}

#[test]
fn a_device_the_gateway_does_not_allow_is_refused_at_the_handshake() {
    let k = keys("not-allowed");
    let (mut gw, gw_addr) = start_gateway(&k, &["--seed", "1"]);
    let stranger = k.dir.join("stranger.key");
    let stranger_pub = keygen(&stranger);
    let gateway = gw_addr.to_string();
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        &gateway,
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&stranger),
        "--socks",
        "127.0.0.1:0",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "a stranger got in:\n{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("handshake"), "{err}");
    assert!(err.contains(&gateway), "names the gateway: {err}");

    // The gateway says why, and goes on serving.
    let line = gw.wait_for_line("not allowed");
    assert!(line.contains(&stranger_pub), "{line}");
    assert!(gw.is_running(), "{}", gw.stderr());
    let (code, err) = gw.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("done: 0 tunnels, 0 streams"), "{err}");
}

#[test]
fn a_refused_handshake_does_not_repeat_itself() {
    let k = keys("not-allowed-twice");
    let (_gw, gw_addr) = start_gateway(&k, &["--seed", "1"]);
    let stranger = k.dir.join("stranger.key");
    keygen(&stranger);
    let gateway = gw_addr.to_string();
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        &gateway,
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&stranger),
        "--socks",
        "127.0.0.1:0",
    ]);
    let err = stderr(&o);
    // e.g. "hush: 127.0.0.1:1234: handshake: peer closed the connection: peer closed the connection"
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for w in parts.windows(2) {
        assert_ne!(w[0], w[1], "the message repeats itself: {err}");
    }
}

#[test]
fn proxy_and_gateway_refuse_bad_setups_with_one_line() {
    let k = keys("bad-setups");
    let gw_key = k.dir.join("gw.key");
    let dev_key = k.dir.join("dev.key");
    let missing = k.dir.join("missing.key");

    // A key file that is not there: exit 2, named. (No gateway is needed: it fails before.)
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        "127.0.0.1:9",
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&missing),
        "--socks",
        "127.0.0.1:0",
    ]);
    assert_bad_input(&o, &[s(&missing)]);
    let o = hush_bounded(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--key",
        s(&missing),
        "--allow-any-device",
    ]);
    assert_bad_input(&o, &[s(&missing)]);

    // A gateway that allows nobody.
    let o = hush_bounded(&["gateway", "--listen", "127.0.0.1:0", "--key", s(&gw_key)]);
    assert_bad_input(&o, &["allow"]);

    // A bad --allow key, a bad --gateway-key, and a proxy with nothing to listen on.
    let o = hush_bounded(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--key",
        s(&gw_key),
        "--allow",
        "dev=not-a-key",
    ]);
    assert_bad_input(&o, &["--allow"]);
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        "127.0.0.1:9",
        "--gateway-key",
        "not-a-key",
        "--key",
        s(&dev_key),
        "--socks",
        "127.0.0.1:0",
    ]);
    assert_bad_input(&o, &["gateway"]);
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        "127.0.0.1:9",
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&dev_key),
    ]);
    assert_bad_input(&o, &["SOCKS", "forward"]);
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        "127.0.0.1:9",
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&dev_key),
        "--forward",
        "127.0.0.1:0",
    ]);
    assert_bad_input(&o, &["forward"]);
}

#[test]
fn a_wrong_gateway_key_says_so_in_one_line() {
    let k = keys("wrong-gateway-key");
    let (_gw, gw_addr) = start_gateway(&k, &[]);
    // The device's own public key is certainly not the gateway's.
    let gateway = gw_addr.to_string();
    let dev_key = k.dir.join("dev.key");
    let o = hush_bounded(&[
        "proxy",
        "--gateway",
        &gateway,
        "--gateway-key",
        &k.dev_pub,
        "--key",
        s(&dev_key),
        "--socks",
        "127.0.0.1:0",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(&gateway), "names the gateway: {err}");
    assert!(
        err.contains(&format!("its public key is not {}", k.dev_pub)),
        "names the key it tried: {err}"
    );
}

#[test]
fn seeds_are_never_printed_and_an_insecure_one_is_loud() {
    let k = keys("seeds");
    let (mut gw, _) = start_gateway(&k, &[]);
    let (code, err) = gw.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.to_lowercase().contains("seed"), "{err}");
    let (mut gw, _) = start_gateway(&k, &["--insecure-seed", "7"]);
    let line = gw.wait_for_line("insecure seed 7");
    assert!(
        line.contains("WARNING") && line.contains("predictable"),
        "{line}"
    );
}

#[test]
fn a_key_file_others_can_read_is_a_warning() {
    let k = keys("key-mode");
    let key = k.dir.join("dev.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = hush(&["pubkey", s(&key)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim_end(), k.dev_pub);
        let err = stderr(&o);
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    }
}

#[test]
fn a_gateway_refuses_loopback_targets_unless_allowed() {
    let k = keys("targets");
    let echo = echo_server();
    let key = k.dir.join("gw.key");
    let allow = format!("dev={}", k.dev_pub);
    let mut gw = Running::start(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--key",
        s(&key),
        "--allow",
        &allow,
    ]);
    let gw_addr = gw.addr_after("listening on ");
    let dev_key = k.dir.join("dev.key");
    let gateway = gw_addr.to_string();
    let forward = format!("127.0.0.1:0={echo}");
    let mut proxy = Running::start(&[
        "proxy",
        "--gateway",
        &gateway,
        "--gateway-key",
        &k.gw_pub,
        "--key",
        s(&dev_key),
        "--forward",
        &forward,
    ]);
    let fwd = proxy.addr_after("forwarding ");
    let mut conn = TcpStream::connect(fwd).expect("connect to the forward");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = conn.write_all(b"ssrf");
    let mut back = Vec::new();
    let _ = conn.read_to_end(&mut back); // closed or reset: either way no echo
    assert!(back.is_empty(), "a loopback target was reached");
    let line = gw.wait_for_line("denied by the gateway's policy");
    assert!(line.contains("loopback"), "{line}");
    assert!(gw.is_running() && proxy.is_running());
}

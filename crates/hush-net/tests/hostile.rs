//! The live tunnel against hostile networks and misbehaving peers (issue 15): a stalled stream,
//! replayed and silent handshakes, denied targets, a gateway that restarts, a network that
//! drops, delays, reorders, duplicates, truncates and flips bits, and many connections at once.
//!
//! Nothing here asserts on wall-clock time: timeouts only guard against hangs, and ordering is
//! asserted instead (the second stream's echo completes while the first stays stalled).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::daemons::*;
use hush_net::policy::TargetPolicy;
use hush_net::{Limits, generate_keypair};
use hush_shape::{Handshake, Keypair, ScheduleSpec, ShapeConfig, Tai64N};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound against hangs (never a timing claim).
const HANG: Duration = Duration::from_secs(60);

fn fast() -> ShapeConfig {
    ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.0005,
        size_bytes: 8192,
    })
}

struct Setup {
    gw: GatewayHandle,
    relay: FaultRelay,
    px: ProxyHandle,
    dev: Keypair,
}

/// Gateway, fault relay, proxy (through the relay) with forwards to `forwards`.
async fn through_relay(
    fault: NetFault,
    seed: u64,
    shape: ShapeConfig,
    limits: Limits,
    targets: TargetPolicy,
    forwards: &[SocketAddr],
) -> Setup {
    let (gw_key, dev) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let gw = start_gateway(GatewayPlan {
        listen: "127.0.0.1:0".parse().unwrap(),
        key: gw_key,
        device: dev.public(),
        shape: shape.clone(),
        targets,
        limits: limits.clone(),
    })
    .await;
    let relay = FaultRelay::start(gw.addr, fault, seed).await;
    let px = start_proxy(
        relay.addr,
        gw.public,
        common::dup(&dev),
        shape,
        forwards.iter().map(ToString::to_string).collect(),
        limits,
    )
    .await
    .unwrap();
    Setup { gw, relay, px, dev }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_a_stalled_stream_does_not_stall_the_others() {
    stalled_stream(None).await;
}

/// The issue's bar, "the second stream's echo returns in under a second": a wall-clock figure, so
/// `bench/live_timing.sh` checks it rather than the default run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "wall-clock timing: bench/live_timing.sh runs it"]
async fn issue15_a_stalled_streams_neighbour_echoes_within_a_second() {
    stalled_stream(Some(Duration::from_secs(1))).await;
}

async fn stalled_stream(echo_within: Option<Duration>) {
    let (stalled, echo) = (stalled_server().await, echo_server().await);
    let (gw, px) = pair(fast(), &[stalled, echo], Limits::default()).await;

    // Stream 1: push 8 MiB at a server that never reads.
    let pushed = Arc::new(AtomicU64::new(0));
    let mut first = TcpStream::connect(px.forwards[0]).await.unwrap();
    let pusher = {
        let pushed = Arc::clone(&pushed);
        tokio::spawn(async move {
            let chunk = vec![7u8; 64 * 1024];
            for _ in 0..128 {
                first.write_all(&chunk).await?;
                pushed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, std::io::Error>(first)
        })
    };
    // Wait until the push has stopped making progress: the stream's credit is used up and
    // every buffer on its way is full.
    let mut last = u64::MAX;
    let mut still = 0;
    tokio::time::timeout(HANG, async {
        while still < 5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = pushed.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
    })
    .await
    .expect("the first stream never stalled");
    assert!(
        !pusher.is_finished(),
        "8 MiB fit in the buffers: no stall to test"
    );

    // Stream 2 of the same tunnel: a 10 kB echo completes while stream 1 stays stalled.
    let data = pattern(10_000, 2);
    let started = std::time::Instant::now();
    let s = TcpStream::connect(px.forwards[1]).await.unwrap();
    let back = tokio::time::timeout(HANG, round_trip(s, data.clone()))
        .await
        .expect("the second stream is stuck behind the stalled one")
        .unwrap();
    let took = started.elapsed();
    assert!(back == data, "echo differs");
    eprintln!("10 kB echo beside the stalled stream: {took:?}");
    if let Some(limit) = echo_within {
        assert!(took < limit, "the echo took {took:?}");
    }
    assert!(
        !pusher.is_finished(),
        "the first stream is still stalled when the second has finished"
    );
    assert!(
        pushed.load(Ordering::Relaxed) < 8 << 20,
        "flow control held the stalled stream back"
    );
    let lines = gw.log();
    assert!(
        !lines.iter().any(|l| l.contains("reset")),
        "nothing was reset: {lines:?}"
    );
    pusher.abort();
    let report = px.stop().await;
    assert!(report.streams >= 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_a_replayed_first_handshake_message_gets_no_reply_and_no_traffic() {
    let echo = echo_server().await;
    let setup = through_relay(
        NetFault::Clean,
        1,
        fast(),
        Limits::default(),
        loopback_allowed(),
        &[echo],
    )
    .await;
    // The tunnel is up and carries traffic.
    let s = TcpStream::connect(setup.px.forwards[0]).await.unwrap();
    assert_eq!(round_trip(s, b"hi".to_vec()).await.unwrap(), b"hi");

    // An eavesdropper captured the proxy's first handshake message and sends it again.
    let captured = setup.relay.captured.lock().unwrap().clone();
    let len = 2 + usize::from(u16::from_be_bytes([captured[0], captured[1]]));
    let first_message = captured[..len].to_vec();
    for _ in 0..3 {
        let mut replay = TcpStream::connect(setup.gw.addr).await.unwrap();
        replay.write_all(&first_message).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(HANG, replay.read_to_end(&mut got))
            .await
            .expect("the gateway neither answered nor closed");
        assert!(read.is_ok() || got.is_empty(), "{read:?}");
        assert!(got.is_empty(), "a replay drew {} bytes", got.len());
    }
    eventually("the gateway logs the replays", || {
        setup
            .gw
            .log()
            .iter()
            .filter(|l| l.contains("replayed or out-of-date timestamp"))
            .count()
            == 3
    })
    .await;

    // The real tunnel is unaffected.
    let s = TcpStream::connect(setup.px.forwards[0]).await.unwrap();
    assert_eq!(round_trip(s, b"still".to_vec()).await.unwrap(), b"still");
    setup.px.stop().await;
    let report = setup.gw.stop().await;
    assert_eq!(report.tunnels, 1, "replays made no tunnel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_a_handshake_without_a_record_gets_only_the_handshake_answer() {
    let limits = Limits {
        handshake_timeout_s: 1.0,
        ..Limits::default()
    };
    let (gw_key, dev) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let gw = start_gateway(GatewayPlan {
        listen: "127.0.0.1:0".parse().unwrap(),
        key: gw_key,
        device: dev.public(),
        shape: fast(),
        targets: loopback_allowed(),
        limits,
    })
    .await;
    // A genuine, fresh handshake (the device key holder), then silence: the gateway answers the
    // handshake and sends nothing shaped, then gives up.
    let mut hs = Handshake::initiator(
        &dev,
        &gw.public,
        Tai64N::from_unix(4_000_000_000, 0),
        [9; 32],
    )
    .unwrap();
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(&hs.poll_output().unwrap()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(HANG, tcp.read_to_end(&mut got))
        .await
        .expect("the gateway kept the silent peer open")
        .unwrap();
    assert_eq!(got.len(), 2 + 48, "exactly the handshake answer, no record");
    assert_eq!(hs.handle_input(&got).unwrap(), got.len());
    assert!(hs.is_finished(), "the answer is a valid handshake message");
    eventually("the gateway logs the silent peer", || {
        gw.log().iter().any(|l| l.contains("sent no record"))
    })
    .await;
    assert_eq!(gw.stop().await.tunnels, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_denied_targets_are_refused_by_default_and_allowed_ones_work() {
    let (echo, other) = (echo_server().await, echo_server().await);
    // Default policy: loopback is denied, by address and by name.
    let setup = through_relay(
        NetFault::Clean,
        2,
        fast(),
        Limits::default(),
        TargetPolicy::default(),
        &[echo],
    )
    .await;
    for host in ["127.0.0.1", "localhost"] {
        let (mut s, _) = socks_try(setup.px.socks, host, echo.port()).await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "{host}: a denied target ends the local connection");
    }
    let s = TcpStream::connect(setup.px.forwards[0]).await.unwrap();
    assert!(
        round_trip(s, b"x".to_vec())
            .await
            .unwrap_or_default()
            .is_empty()
    );
    eventually("the gateway logs the denials", || {
        setup
            .gw
            .log()
            .iter()
            .filter(|l| l.contains("denied by the gateway's policy") && l.contains("loopback"))
            .count()
            == 3
    })
    .await;
    setup.px.stop().await;
    let report = setup.gw.stop().await;
    assert_eq!((report.denied, report.streams), (3, 0));

    // An allow rule opens exactly its address and port.
    let rule = format!("127.0.0.1/32:{}", echo.port());
    let targets = TargetPolicy {
        public: true,
        allow: vec![rule.parse().unwrap()],
    };
    let setup = through_relay(
        NetFault::Clean,
        3,
        fast(),
        Limits::default(),
        targets,
        &[echo, other],
    )
    .await;
    let s = TcpStream::connect(setup.px.forwards[0]).await.unwrap();
    let data = pattern(50_000, 5);
    assert!(
        round_trip(s, data.clone()).await.unwrap() == data,
        "allowed echo differs"
    );
    let s = TcpStream::connect(setup.px.forwards[1]).await.unwrap();
    assert!(
        round_trip(s, b"y".to_vec())
            .await
            .unwrap_or_default()
            .is_empty()
    );
    setup.px.stop().await;
    let report = setup.gw.stop().await;
    assert_eq!((report.streams, report.denied), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_the_proxy_reconnects_when_the_gateway_restarts() {
    let echo = echo_server().await;
    let limits = Limits {
        reconnect_max_s: 0.5,
        reconnect_wait_s: 30.0,
        ..Limits::default()
    };
    let (gw_key, dev) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let plan = |key: Keypair, listen: SocketAddr| GatewayPlan {
        listen,
        key,
        device: dev.public(),
        shape: fast(),
        targets: loopback_allowed(),
        limits: limits.clone(),
    };
    let gw = start_gateway(plan(common::dup(&gw_key), "127.0.0.1:0".parse().unwrap())).await;
    let gw_addr = gw.addr;
    let px = start_proxy(
        gw_addr,
        gw.public,
        common::dup(&dev),
        fast(),
        vec![echo.to_string()],
        limits.clone(),
    )
    .await
    .unwrap();
    let s = TcpStream::connect(px.forwards[0]).await.unwrap();
    assert_eq!(round_trip(s, b"before".to_vec()).await.unwrap(), b"before");

    gw.stop().await;
    eventually("the proxy notices", || {
        px.log().iter().any(|l| l.contains("lost"))
    })
    .await;
    // A connection made while the gateway is away waits for the tunnel, then goes through.
    let waiting = tokio::spawn({
        let fwd = px.forwards[0];
        async move {
            let s = TcpStream::connect(fwd).await.unwrap();
            round_trip(s, b"during".to_vec()).await
        }
    });
    let gw = start_gateway(plan(gw_key, gw_addr)).await;
    let back = tokio::time::timeout(HANG, waiting).await.unwrap().unwrap();
    assert_eq!(back.unwrap(), b"during");
    let s = TcpStream::connect(px.forwards[0]).await.unwrap();
    assert_eq!(round_trip(s, b"after".to_vec()).await.unwrap(), b"after");
    let log = px.log();
    assert!(log.iter().any(|l| l.contains("up again")), "{log:?}");
    let report = px.stop().await;
    assert_eq!(report.reconnects, 1);
    assert_eq!(
        report.bytes_unconfirmed, 0,
        "nothing was in flight when it went"
    );
    gw.stop().await;
}

/// Echo `n` connections through the proxy; every echo is whole, or cut short, but never wrong.
/// Returns (whole, cut) counts.
async fn echoes_never_wrong(forward: SocketAddr, n: u32, salt: u32) -> (u32, u32) {
    let mut tasks = Vec::new();
    for i in 0..n {
        tasks.push(tokio::spawn(async move {
            let data = pattern(1 + (i as usize * 7919) % 60_000, salt + i);
            let got = match TcpStream::connect(forward).await {
                Ok(s) => round_trip(s, data.clone()).await,
                Err(e) => Err(e),
            };
            (data, got)
        }));
    }
    let (mut whole, mut cut) = (0, 0);
    for t in tasks {
        let (data, got) = t.await.unwrap();
        match got {
            Ok(got) if got == data => whole += 1,
            Ok(got) => {
                assert!(
                    got.len() < data.len() && got[..] == data[..got.len()],
                    "a wrong byte: {} bytes back for {} sent",
                    got.len(),
                    data.len()
                );
                cut += 1;
            }
            Err(_) => cut += 1,
        }
    }
    (whole, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_network_faults_are_clean_errors_never_wrong_bytes() {
    let echo = echo_server().await;
    let limits = Limits {
        reconnect_max_s: 0.5,
        reconnect_wait_s: 5.0,
        ..Limits::default()
    };
    for (fault, seed) in [
        (NetFault::Clean, 10),
        (NetFault::Delay, 11),
        (NetFault::Drop, 12),
        (NetFault::Reorder, 13),
        (NetFault::Duplicate, 14),
        (NetFault::Truncate, 15),
        (NetFault::BitFlip, 16),
    ] {
        eprintln!("fault: {fault:?}");
        let setup = through_relay(
            fault,
            seed,
            fast(),
            limits.clone(),
            loopback_allowed(),
            &[echo],
        )
        .await;
        let Ok((whole, cut)) = tokio::time::timeout(
            HANG,
            echoes_never_wrong(setup.px.forwards[0], 20, seed as u32),
        )
        .await
        else {
            panic!(
                "{fault:?}: echoes hung\nproxy: {:#?}\ngateway: {:#?}",
                setup.px.log(),
                setup.gw.log()
            );
        };
        let log = setup.px.log();
        match fault {
            NetFault::Clean | NetFault::Delay => {
                assert_eq!((whole, cut), (20, 0), "{fault:?} loses nothing: {log:?}");
            }
            _ => {
                // The stream was damaged: the proxy saw it, said so, and came back.
                assert!(
                    log.iter().any(|l| l.contains("lost")),
                    "{fault:?}: the damage went unnoticed ({whole} whole, {cut} cut): {log:?}"
                );
            }
        }
        // Whatever happened, the proxy and gateway still serve (a new tunnel if need be).
        let after = echoes_never_wrong(setup.px.forwards[0], 3, 999).await;
        assert!(after.0 + after.1 == 3, "{fault:?}");
        setup.px.stop().await;
        setup.gw.stop().await;
        drop(setup.relay);
        let _ = setup.dev;
    }
}

/// `connections` clients for `seconds`: random sizes, random pauses, every third one a slow
/// reader. Every byte must come back intact; returns (bytes echoed, peak RSS in KiB).
async fn soak(connections: usize, seconds: f64) -> (u64, u64) {
    let echo = echo_server().await;
    let limits = Limits {
        max_streams_per_tunnel: connections.max(1024),
        ..Limits::default()
    };
    let (gw, px) = pair(fast(), &[echo], limits).await;
    let fwd = px.forwards[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let total = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let total = Arc::clone(&total);
        tasks.push(tokio::spawn(async move {
            let mut rng = c as u64 * 0x9e37_79b9 + 1;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let mut s = TcpStream::connect(fwd).await.unwrap();
            let (mut r, mut w) = s.split();
            let slow = c % 3 == 0;
            let mut round = 0u32;
            while tokio::time::Instant::now() < deadline {
                let data = pattern(1 + next(32_000) as usize, c as u32 * 1000 + round);
                let write = w.write_all(&data);
                let read = async {
                    let mut back = vec![0u8; data.len()];
                    let mut at = 0;
                    while at < back.len() {
                        let end = if slow {
                            (at + 512).min(back.len())
                        } else {
                            back.len()
                        };
                        let n = r.read(&mut back[at..end]).await?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        at += n;
                        if slow {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                    Ok::<_, std::io::Error>(back)
                };
                let (a, b) = tokio::join!(write, read);
                a.unwrap();
                let back = b.unwrap();
                assert!(back == data, "connection {c} round {round}: corrupted echo");
                total.fetch_add(data.len() as u64, Ordering::Relaxed);
                round += 1;
                tokio::time::sleep(Duration::from_millis(next(200))).await;
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(HANG + Duration::from_secs_f64(seconds), t)
            .await
            .expect("a soak connection hung")
            .expect("a soak connection failed");
    }
    let report = px.stop().await;
    assert_eq!(report.bytes_unconfirmed, 0);
    assert!(report.streams > 0);
    gw.stop().await;
    (total.load(Ordering::Relaxed), peak_rss_kib())
}

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_soak_short() {
    let (bytes, rss_kib) = soak(50, 3.0).await;
    assert!(bytes > 0);
    assert!(rss_kib < 1 << 20, "peak RSS {rss_kib} KiB");
}

/// The soak of issue 15: 1,000 concurrent connections for 60 s. `bench/net_soak.sh` runs it and
/// keeps the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 60 s and 1,000 connections (bench/net_soak.sh)"]
async fn issue15_soak_1000_connections_60_s() {
    let connections: usize = std::env::var("SOAK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seconds: f64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60.0);
    let (bytes, rss_kib) = soak(connections, seconds).await;
    println!(
        "soak: {connections} connections, {seconds} s, {bytes} bytes echoed intact, 0 lost or corrupted, peak RSS {} MiB",
        rss_kib / 1024
    );
    assert!(
        rss_kib < 2 << 20,
        "peak RSS {rss_kib} KiB: memory is not bounded"
    );
}

//! `hush proxy` and `hush gateway` end to end on loopback: an unmodified client, through SOCKS5 or
//! a fixed forward, one shaped tunnel, to a real TCP server.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::daemons::*;
use hush_net::{Limits, generate_keypair};
use hush_shape::{ScheduleSpec, ShapeConfig};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ride_one_shaped_tunnel_to_real_servers() {
    let echo = echo_server().await;
    let shape = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.001,
        size_bytes: 1400,
    });
    let (gw, px) = pair(shape, &[echo], Limits::default()).await;
    let (socks, forward) = (px.socks, px.forwards[0]);

    // A fixed forward.
    let s = TcpStream::connect(forward).await.unwrap();
    assert_eq!(
        round_trip(s, b"hello through the tunnel".to_vec())
            .await
            .unwrap(),
        b"hello through the tunnel"
    );

    // Ten SOCKS connections at once, by host name (resolved at the gateway).
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        tasks.push(tokio::spawn(async move {
            let s = socks_connect(socks, "localhost", echo.port()).await;
            let data = pattern(20_000 + i as usize * 1000, i);
            (round_trip(s, data.clone()).await.unwrap(), data)
        }));
    }
    for t in tasks {
        let (got, want) = t.await.unwrap();
        assert!(got == want, "echo of {} bytes differs", want.len());
    }

    // A target nobody listens on: the stream is reset, the tunnel lives on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = socks_connect(socks, "127.0.0.1", closed.port()).await;
    let mut buf = [0u8; 8];
    let n = s.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "refused target ends the local connection");
    let s = TcpStream::connect(forward).await.unwrap();
    assert_eq!(
        round_trip(s, b"still up".to_vec()).await.unwrap(),
        b"still up"
    );

    let report = px.stop().await;
    assert_eq!(report.streams, 13);
    assert_eq!(report.bytes_unconfirmed, 0);
    assert!(report.tunnel.records > 0);
    assert_eq!(
        report.tunnel.wire_bytes,
        report.tunnel.records * 1400,
        "every record of the tunnel is 1400 bytes"
    );
    let lines = gw.log();
    let gw_report = gw.stop().await;
    assert_eq!(gw_report.tunnels, 1, "all connections in one tunnel");
    assert_eq!(gw_report.streams, 12, "the refused connect is not a stream");
    assert!(lines.iter().any(|l| l.contains("test-device")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("connect 127.0.0.1")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_unknown_devices() {
    let (gw_key, dev_key, stranger) = (
        generate_keypair().unwrap(),
        generate_keypair().unwrap(),
        generate_keypair().unwrap(),
    );
    let shape = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let gw = start_gateway(GatewayPlan {
        listen: "127.0.0.1:0".parse().unwrap(),
        key: gw_key,
        device: dev_key.public(),
        shape: shape.clone(),
        targets: loopback_allowed(),
        limits: Limits::default(),
    })
    .await;
    let stranger_pub = stranger.public();
    let result = start_proxy(
        gw.addr,
        gw.public,
        stranger,
        shape,
        vec![],
        Limits::default(),
    )
    .await;
    let err = result.err().expect("a stranger's tunnel must not come up");
    let text = hush_net::error_chain(&err);
    assert!(text.contains("without answering the handshake"), "{text}");
    assert!(text.contains(&stranger_pub.to_string()), "{text}");
    eventually("the gateway logs the refusal", || {
        gw.log().iter().any(|l| l.contains("not allowed"))
    })
    .await;
    assert_eq!(gw.stop().await.tunnels, 0);
}

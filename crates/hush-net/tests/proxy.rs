//! `hush proxy` and `hush gateway` end to end on loopback: an unmodified client, through SOCKS5 or
//! a fixed forward, one shaped tunnel, to a real TCP server.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hush_net::gateway::{Device, Gateway, GatewaySettings};
use hush_net::proxy::{Forward, Log, Proxy, ProxySettings};
use hush_shape::{Keypair, ScheduleSpec, ShapeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

fn logger(lines: &Arc<Mutex<Vec<String>>>) -> Log {
    let lines = Arc::clone(lines);
    Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_string()))
}

async fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.unwrap();
    assert_eq!(r, [5, 0]);
    let mut req = vec![5, 1, 0, 3, host.len() as u8];
    req.extend_from_slice(host.as_bytes());
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "SOCKS success");
    s
}

async fn round_trip(mut s: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let read = r.read_to_end(&mut back);
    let ((), n) = tokio::join!(write, read);
    n.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ride_one_shaped_tunnel_to_real_servers() {
    let echo = echo_server().await;
    let (gw_key, dev_key) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let shape = ShapeConfig::new(ScheduleSpec::Constant {
        gap_s: 0.001,
        size_bytes: 1400,
    });
    let gw_lines = Arc::new(Mutex::new(Vec::new()));
    let gateway = Gateway::bind(
        GatewaySettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            key: gw_key.clone(),
            devices: vec![Device {
                name: "test-device".into(),
                key: dev_key.public(),
                shape: None,
            }],
            allow_any: false,
            shape: shape.clone(),
            seed: 1,
        },
        logger(&gw_lines),
    )
    .await
    .unwrap();
    let gw_addr = gateway.local_addr().unwrap();
    let (gw_stop, gw_stopped) = tokio::sync::oneshot::channel::<()>();
    let gw = tokio::spawn(gateway.run(async {
        let _ = gw_stopped.await;
    }));

    let px_lines = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy::bind(
        ProxySettings {
            gateway: gw_addr.to_string(),
            gateway_key: gw_key.public(),
            key: dev_key.clone(),
            socks: Some("127.0.0.1:0".parse().unwrap()),
            forwards: vec![Forward {
                listen: "127.0.0.1:0".parse().unwrap(),
                target: echo.to_string(),
            }],
            shape,
            seed: 2,
        },
        logger(&px_lines),
    )
    .await
    .unwrap();
    let socks = proxy.socks_addr().unwrap();
    let forward = proxy.forward_addrs()[0];
    let (px_stop, px_stopped) = tokio::sync::oneshot::channel::<()>();
    let px = tokio::spawn(proxy.run(async {
        let _ = px_stopped.await;
    }));

    // A fixed forward.
    let s = TcpStream::connect(forward).await.unwrap();
    assert_eq!(
        round_trip(s, b"hello through the tunnel".to_vec()).await,
        b"hello through the tunnel"
    );

    // Ten SOCKS connections at once, by host name (resolved at the gateway).
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        tasks.push(tokio::spawn(async move {
            let s = socks_connect(socks, "localhost", echo.port()).await;
            let data: Vec<u8> = (0..20_000 + i * 1000).map(|j| (j ^ i) as u8).collect();
            (round_trip(s, data.clone()).await, data)
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
    assert_eq!(round_trip(s, b"still up".to_vec()).await, b"still up");

    px_stop.send(()).unwrap();
    let report = px.await.unwrap().unwrap();
    assert_eq!(report.streams, 13);
    assert!(report.tunnel.records > 0);
    assert_eq!(
        report.tunnel.wire_bytes,
        report.tunnel.records * 1400,
        "every record of the tunnel is 1400 bytes"
    );
    gw_stop.send(()).unwrap();
    let gw_report = gw.await.unwrap().unwrap();
    assert_eq!(gw_report.tunnels, 1, "all connections in one tunnel");
    assert_eq!(gw_report.streams, 13);
    let gw_lines = gw_lines.lock().unwrap();
    assert!(
        gw_lines.iter().any(|l| l.contains("test-device")),
        "{gw_lines:?}"
    );
    assert!(
        gw_lines.iter().any(|l| l.contains("connect 127.0.0.1")),
        "{gw_lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_unknown_devices() {
    let (gw_key, dev_key, stranger) = (
        Keypair::generate().unwrap(),
        Keypair::generate().unwrap(),
        Keypair::generate().unwrap(),
    );
    let shape = ShapeConfig::new(ScheduleSpec::datta_low_latency());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let gateway = Gateway::bind(
        GatewaySettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            key: gw_key.clone(),
            devices: vec![Device {
                name: "known".into(),
                key: dev_key.public(),
                shape: None,
            }],
            allow_any: false,
            shape: shape.clone(),
            seed: 1,
        },
        logger(&lines),
    )
    .await
    .unwrap();
    let addr = gateway.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gw = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));
    let result = Proxy::bind(
        ProxySettings {
            gateway: addr.to_string(),
            gateway_key: gw_key.public(),
            key: stranger,
            socks: Some("127.0.0.1:0".parse().unwrap()),
            forwards: vec![],
            shape,
            seed: 1,
        },
        logger(&lines),
    )
    .await;
    assert!(result.is_err(), "a stranger's tunnel must not come up");
    stop.send(()).unwrap();
    assert_eq!(gw.await.unwrap().unwrap().tunnels, 0);
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("not allowed")),
        "{:?}",
        lines.lock().unwrap()
    );
}

//! A `hush gateway` and a `hush proxy` in-process on loopback, plain TCP servers to reach through
//! them, and a fault-injecting relay to put between them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_net::gateway::{Device, Gateway, GatewayReport, GatewaySettings};
use hush_net::policy::TargetPolicy;
use hush_net::proxy::{Forward, Log, Proxy, ProxyReport, ProxySettings};
use hush_net::{Limits, generate_keypair};
use hush_shape::{Keypair, PublicKey, ShapeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An echo server on loopback.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A server that accepts and never reads, with a small receive buffer: a stalled peer.
pub async fn stalled_server() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = socket.listen(16).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s); // never read
        }
    });
    addr
}

pub fn logger(lines: &Arc<Mutex<Vec<String>>>) -> Log {
    let lines = Arc::clone(lines);
    Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_string()))
}

pub async fn socks_connect(proxy: SocketAddr, host: &str, port: u16) -> TcpStream {
    let (s, code) = socks_try(proxy, host, port).await;
    assert_eq!(code, 0, "SOCKS success");
    s
}

/// A SOCKS5 CONNECT; returns the stream and the reply code.
pub async fn socks_try(proxy: SocketAddr, host: &str, port: u16) -> (TcpStream, u8) {
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
    (s, reply[1])
}

/// Write `data`, half-close, read everything back.
pub async fn round_trip(mut s: TcpStream, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(&data).await?;
        w.shutdown().await
    };
    let mut back = Vec::new();
    let read = r.read_to_end(&mut back);
    let (a, b) = tokio::join!(write, read);
    a?;
    b?;
    Ok(back)
}

/// A pattern that differs per connection, so a byte from another stream shows.
pub fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|j| (j.wrapping_mul(31) ^ salt.wrapping_mul(0x9e37_79b9) ^ (j >> 8)) as u8)
        .collect()
}

/// Loopback allowed as a target (tests' servers live there).
pub fn loopback_allowed() -> TargetPolicy {
    TargetPolicy {
        public: false,
        allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
    }
}

pub struct GatewayHandle {
    pub addr: SocketAddr,
    pub public: PublicKey,
    pub lines: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<GatewayReport, hush_net::NetError>>,
}

impl GatewayHandle {
    pub async fn stop(mut self) -> GatewayReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

pub struct GatewayPlan {
    pub listen: SocketAddr,
    pub key: Keypair,
    pub device: PublicKey,
    pub shape: ShapeConfig,
    pub targets: TargetPolicy,
    pub limits: Limits,
}

pub async fn start_gateway(plan: GatewayPlan) -> GatewayHandle {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let public = plan.key.public();
    let gateway = Gateway::bind(
        GatewaySettings {
            listen: plan.listen,
            key: plan.key,
            devices: vec![Device {
                name: "test-device".into(),
                key: plan.device,
                shape: None,
            }],
            allow_any: false,
            shape: plan.shape,
            seed: Some(1),
            targets: plan.targets,
            limits: plan.limits,
        },
        logger(&lines),
    )
    .await
    .unwrap();
    let addr = gateway.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async {
        let _ = stopped.await;
    }));
    GatewayHandle {
        addr,
        public,
        lines,
        stop: Some(stop),
        task,
    }
}

pub struct ProxyHandle {
    pub socks: SocketAddr,
    pub forwards: Vec<SocketAddr>,
    pub lines: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<ProxyReport, hush_net::NetError>>,
}

impl ProxyHandle {
    pub async fn stop(mut self) -> ProxyReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

pub async fn start_proxy(
    gateway: SocketAddr,
    gateway_key: PublicKey,
    key: Keypair,
    shape: ShapeConfig,
    forwards: Vec<String>,
    limits: Limits,
) -> Result<ProxyHandle, hush_net::NetError> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy::bind(
        ProxySettings {
            gateway: gateway.to_string(),
            gateway_key,
            key,
            socks: Some("127.0.0.1:0".parse().unwrap()),
            forwards: forwards
                .into_iter()
                .map(|target| Forward {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    target,
                })
                .collect(),
            shape,
            seed: Some(2),
            limits,
        },
        logger(&lines),
    )
    .await?;
    let socks = proxy.socks_addr().unwrap();
    let forwards = proxy.forward_addrs();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(async {
        let _ = stopped.await;
    }));
    Ok(ProxyHandle {
        socks,
        forwards,
        lines,
        stop: Some(stop),
        task,
    })
}

/// A gateway allowing loopback targets and a proxy with a forward to each of `forwards`, both
/// shaped with `shape`.
pub async fn pair(
    shape: ShapeConfig,
    forwards: &[SocketAddr],
    limits: Limits,
) -> (GatewayHandle, ProxyHandle) {
    let (gw_key, dev_key) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let gw = start_gateway(GatewayPlan {
        listen: "127.0.0.1:0".parse().unwrap(),
        key: gw_key,
        device: dev_key.public(),
        shape: shape.clone(),
        targets: loopback_allowed(),
        limits: limits.clone(),
    })
    .await;
    let px = start_proxy(
        gw.addr,
        gw.public,
        dev_key,
        shape,
        forwards.iter().map(ToString::to_string).collect(),
        limits,
    )
    .await
    .unwrap();
    (gw, px)
}

/// Wait (bounded, only against hangs) until `f` holds.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// What the fault relay does to the bytes between proxy and gateway (netem-like, on a byte
/// stream: TCP already retransmits, so loss and reordering show up as missing, repeated or
/// swapped chunks of the stream).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NetFault {
    /// Forward faithfully.
    Clean,
    /// Drop a chunk now and then.
    Drop,
    /// Hold a chunk back now and then (random, up to 50 ms): late but intact.
    Delay,
    /// Swap two consecutive chunks now and then.
    Reorder,
    /// Send a chunk twice now and then.
    Duplicate,
    /// Cut the connection after a random number of bytes.
    Truncate,
    /// Flip a bit now and then.
    BitFlip,
}

/// A relay on loopback in front of `upstream` that applies `fault` to every connection in both
/// directions, with a seeded generator (the same seed, the same faults for the same chunks).
pub struct FaultRelay {
    pub addr: SocketAddr,
    pub connections: Arc<std::sync::atomic::AtomicU64>,
    /// The first 4 KiB the first client sent (what an eavesdropper could replay).
    pub captured: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultRelay {
    pub async fn start(upstream: SocketAddr, fault: NetFault, seed: u64) -> FaultRelay {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = Arc::clone(&connections);
        let captured = Arc::new(Mutex::new(Vec::new()));
        let capture = Arc::clone(&captured);
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok((down, _)) = l.accept().await {
                n += 1;
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Ok(up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let s = seed.wrapping_mul(1_000_003).wrapping_add(n);
                let cap = (n == 1).then(|| Arc::clone(&capture));
                tokio::spawn(pump(dr, uw, fault, s, cap));
                tokio::spawn(pump(ur, dw, fault, s ^ 0xabcd, None));
            }
        });
        FaultRelay {
            addr,
            connections,
            captured,
            task,
        }
    }
}

/// A small deterministic generator (splitmix64): the relay's faults are reproducible.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: NetFault,
    seed: u64,
    capture: Option<Arc<Mutex<Vec<u8>>>>,
) {
    let mut rng = Mix(seed);
    let mut buf = vec![0u8; 8192];
    let mut held: Option<Vec<u8>> = None;
    let mut passed = 0u64;
    let mut chunks = 0u32;
    // Faults start after the handshake has had its chance (the first 200 bytes pass), so the
    // tunnel comes up and the fault hits records, then strike about once per 40 chunks.
    let cut_at = 200 + rng.below(200_000);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        if let Some(c) = &capture {
            let mut c = c.lock().unwrap();
            let room = 4096usize.saturating_sub(c.len());
            c.extend_from_slice(&chunk[..room.min(n)]);
        }
        chunks += 1;
        // The 8th chunk always, then about one in 40: a fault is certain to strike.
        let strike = passed > 200 && (chunks == 8 || rng.below(40) == 0);
        passed += n as u64;
        let mut out: Vec<Vec<u8>> = Vec::new();
        match fault {
            NetFault::Clean => out.push(chunk),
            NetFault::Drop if strike => {}
            NetFault::Delay => {
                if strike {
                    tokio::time::sleep(Duration::from_millis(rng.below(50))).await;
                }
                out.push(chunk);
            }
            NetFault::Reorder if strike && held.is_none() => held = Some(chunk),
            NetFault::Duplicate if strike => {
                out.push(chunk.clone());
                out.push(chunk);
            }
            NetFault::Truncate if passed >= cut_at => {
                let keep = (cut_at + n as u64).saturating_sub(passed) as usize;
                let _ = to.write_all(&chunk[..keep.min(n)]).await;
                return; // dropping both halves closes the connection mid-stream
            }
            NetFault::BitFlip if strike => {
                let at = rng.below(n as u64) as usize;
                chunk[at] ^= 1 << rng.below(8);
                out.push(chunk);
            }
            _ => out.push(chunk),
        }
        if !out.is_empty() {
            if let Some(h) = held.take() {
                out.push(h); // after the chunk that overtook it
            }
        }
        for c in out {
            if to.write_all(&c).await.is_err() {
                return;
            }
        }
    }
    if let Some(h) = held {
        let _ = to.write_all(&h).await;
    }
    let _ = to.shutdown().await;
}

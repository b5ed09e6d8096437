//! `hush proxy`: runs beside an unmodified device or app and carries its TCP connections through
//! one shaped, encrypted tunnel to a `hush gateway`.
//!
//! Connections come in two ways: a SOCKS5 listener (no authentication, CONNECT only; host names
//! are passed to the gateway unresolved) and fixed forwards (`127.0.0.1:8883` → a broker). The
//! proxy answers SOCKS requests at once rather than waiting a tunnel round trip for the
//! gateway's connect; if the gateway cannot connect, the stream is reset.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hush_shape::{Keypair, PublicKey, ShapeConfig, ShaperStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::aio::{self, MessageReceiver, MessageSender};
use crate::mux::{Frame, Inbound, Streams, splice};
use crate::{NetError, Options};

/// Where log lines go (the CLI prints them to stderr).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How long shutdown waits for the tunnel's queue to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A fixed forward: connections to `listen` go to `target` through the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Local address to listen on.
    pub listen: SocketAddr,
    /// `host:port` the gateway connects to.
    pub target: String,
}

/// Everything `hush proxy` needs.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The gateway's address (`host:port`).
    pub gateway: String,
    /// The gateway's public key.
    pub gateway_key: PublicKey,
    /// Our key.
    pub key: Keypair,
    /// SOCKS5 listener.
    pub socks: Option<SocketAddr>,
    /// Fixed forwards.
    pub forwards: Vec<Forward>,
    /// How the tunnel shapes what we send (the gateway shapes the other direction).
    pub shape: ShapeConfig,
    /// Schedule seed.
    pub seed: u64,
}

/// What a proxy run did.
#[derive(Clone, Debug, Default)]
pub struct ProxyReport {
    /// Connections carried.
    pub streams: u64,
    /// Local bytes sent into the tunnel.
    pub bytes_to_tunnel: u64,
    /// Bytes delivered from the tunnel to local connections.
    pub bytes_from_tunnel: u64,
    /// The tunnel's outbound accounts.
    pub tunnel: ShaperStats,
}

/// A proxy with its tunnel up and its listeners bound.
pub struct Proxy {
    settings: ProxySettings,
    sender: MessageSender,
    receiver: MessageReceiver,
    socks: Option<TcpListener>,
    forwards: Vec<(TcpListener, String)>,
    log: Log,
}

enum Target {
    Fixed(String),
    Socks,
}

impl Proxy {
    /// Connect the tunnel and bind every listener.
    pub async fn bind(settings: ProxySettings, log: Log) -> Result<Proxy, NetError> {
        if settings.socks.is_none() && settings.forwards.is_empty() {
            return Err(NetError::Config(
                "the proxy has nothing to listen on: give a SOCKS address or at least one forward"
                    .into(),
            ));
        }
        let tunnel = aio::connect(
            settings.gateway.as_str(),
            &settings.shape,
            &settings.key,
            &settings.gateway_key,
            Options::new(settings.seed),
        )
        .await
        .map_err(|e| e.context(format!("to gateway {}", settings.gateway)))?;
        log(&format!(
            "tunnel to {} up ({} schedule, seed {})",
            settings.gateway,
            settings.shape.schedule.kind(),
            settings.seed
        ));
        let socks = match settings.socks {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(NetError::io(format!("bind SOCKS listener {addr}")))?,
            ),
            None => None,
        };
        let mut forwards = Vec::new();
        for f in &settings.forwards {
            let l = TcpListener::bind(f.listen)
                .await
                .map_err(NetError::io(format!("bind forward {}", f.listen)))?;
            forwards.push((l, f.target.clone()));
        }
        Ok(Proxy {
            settings,
            sender: tunnel.sender,
            receiver: tunnel.receiver,
            socks,
            forwards,
            log,
        })
    }

    /// The SOCKS listener's address.
    pub fn socks_addr(&self) -> Option<SocketAddr> {
        self.socks.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The forward listeners' addresses, in configuration order.
    pub fn forward_addrs(&self) -> Vec<SocketAddr> {
        self.forwards
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Serve until `shutdown` resolves or the tunnel fails; then drain the tunnel and report.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ProxyReport, NetError> {
        let Proxy {
            settings,
            sender,
            mut receiver,
            socks,
            forwards,
            log,
        } = self;
        let streams = Streams::default();
        let (accepted_tx, mut accepted) = mpsc::channel::<(TcpStream, Target)>(64);
        let mut acceptors = Vec::new();
        if let Some(l) = socks {
            acceptors.push(tokio::spawn(accept_loop(l, accepted_tx.clone(), || {
                Target::Socks
            })));
        }
        for (l, target) in forwards {
            acceptors.push(tokio::spawn(accept_loop(
                l,
                accepted_tx.clone(),
                move || Target::Fixed(target.clone()),
            )));
        }
        drop(accepted_tx);

        let mut dispatcher = {
            let streams = streams.clone();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let end = dispatch(&mut receiver, &streams, &log).await;
                streams.reset_all();
                end
            })
        };
        let totals = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
        let mut next_id: u32 = 1;
        tokio::pin!(shutdown);
        let failure = loop {
            tokio::select! {
                () = &mut shutdown => break None,
                end = &mut dispatcher => {
                    break Some(match end {
                        Ok(Ok(())) => NetError::Closed,
                        Ok(Err(e)) => e,
                        Err(_) => NetError::Closed,
                    });
                }
                conn = accepted.recv() => {
                    let Some((tcp, target)) = conn else { break None };
                    let id = next_id;
                    next_id = next_id.wrapping_add(1).max(1);
                    let inbound = streams.open(id);
                    let (sender, streams, totals, log) = (sender.clone(), streams.clone(), Arc::clone(&totals), Arc::clone(&log));
                    tokio::spawn(async move {
                        let (tcp, target) = match target {
                            Target::Fixed(t) => (tcp, t),
                            Target::Socks => match socks_handshake(tcp).await {
                                Ok(x) => x,
                                Err(e) => {
                                    log(&format!("SOCKS request refused: {e}"));
                                    streams.remove(id);
                                    return;
                                }
                            },
                        };
                        if sender.send(Frame::Open { stream: id, target }.encode()).await.is_err() {
                            streams.remove(id);
                            return;
                        }
                        let bytes = splice(tcp, id, inbound, sender, streams).await;
                        totals.0.fetch_add(1, Ordering::Relaxed);
                        totals.1.fetch_add(bytes.to_tunnel, Ordering::Relaxed);
                        totals.2.fetch_add(bytes.from_tunnel, Ordering::Relaxed);
                    });
                }
            }
        };
        for a in acceptors {
            a.abort();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        log(&format!(
            "shutting down: draining the tunnel to {} ({} streams open)",
            settings.gateway,
            streams.len()
        ));
        let tunnel = match tokio::time::timeout(DRAIN_TIMEOUT, sender.close()).await {
            Ok(r) => r?,
            Err(_) => sender.stats(),
        };
        Ok(ProxyReport {
            streams: totals.0.load(Ordering::Relaxed),
            bytes_to_tunnel: totals.1.load(Ordering::Relaxed),
            bytes_from_tunnel: totals.2.load(Ordering::Relaxed),
            tunnel,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    out: mpsc::Sender<(TcpStream, Target)>,
    target: impl Fn() -> Target,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                if out.send((tcp, target())).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: wait and go on rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Route the gateway's frames to streams until the tunnel ends.
async fn dispatch(
    receiver: &mut MessageReceiver,
    streams: &Streams,
    log: &Log,
) -> Result<(), NetError> {
    while let Some(msg) = receiver.recv().await? {
        match Frame::decode(msg) {
            Ok(Frame::Data { stream, data }) => {
                streams.deliver(stream, Inbound::Data(data)).await;
            }
            Ok(Frame::Fin { stream }) => {
                streams.deliver(stream, Inbound::Fin).await;
            }
            Ok(Frame::Reset { stream, reason }) => {
                log(&format!("stream {stream} reset by the gateway: {reason}"));
                streams.deliver(stream, Inbound::Reset).await;
            }
            Ok(Frame::Open { stream, .. }) => log(&format!(
                "ignored: the gateway tried to open stream {stream}"
            )),
            Err(e) => return Err(NetError::Config(format!("gateway sent a bad frame: {e}"))),
        }
    }
    Ok(())
}

/// Why a SOCKS request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// Not SOCKS version 5.
    #[error("not SOCKS5 (version byte {0})")]
    Version(u8),
    /// The client offers no method we support (we support "no authentication").
    #[error("client offers no supported authentication method")]
    Method,
    /// Not CONNECT.
    #[error("command {0} not supported (only CONNECT)")]
    Command(u8),
    /// An unknown address type.
    #[error("address type {0} not supported")]
    AddressType(u8),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serve a SOCKS5 CONNECT request; returns the stream and the requested `host:port`.
pub async fn socks_handshake(mut tcp: TcpStream) -> Result<(TcpStream, String), SocksError> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(SocksError::Version(head[0]));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    tcp.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        tcp.write_all(&[5, 0xff]).await?;
        return Err(SocksError::Method);
    }
    tcp.write_all(&[5, 0]).await?;
    let mut req = [0u8; 4];
    tcp.read_exact(&mut req).await?;
    if req[0] != 5 {
        return Err(SocksError::Version(req[0]));
    }
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    if req[1] != 1 {
        tcp.write_all(&reply(7)).await?;
        return Err(SocksError::Command(req[1]));
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            tcp.read_exact(&mut a).await?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            tcp.read_exact(&mut n).await?;
            let mut name = vec![0u8; usize::from(n[0])];
            tcp.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut a = [0u8; 16];
            tcp.read_exact(&mut a).await?;
            format!("[{}]", Ipv6Addr::from(a))
        }
        t => {
            tcp.write_all(&reply(8)).await?;
            return Err(SocksError::AddressType(t));
        }
    };
    let mut port = [0u8; 2];
    tcp.read_exact(&mut port).await?;
    tcp.write_all(&reply(0)).await?;
    Ok((tcp, format!("{host}:{}", u16::from_be_bytes(port))))
}

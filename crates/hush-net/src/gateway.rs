//! `hush gateway`: terminates device tunnels and connects their streams to the real servers.
//!
//! Only devices whose public keys are configured complete the handshake (unless the gateway is
//! explicitly open to any key). Each device's inbound traffic is shaped by its own schedule, or
//! the gateway's default, so both directions of the device's traffic are shaped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hush_shape::{Keypair, PublicKey, ShapeConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::aio::{self, MessageReceiver, MessageSender};
use crate::mux::{Frame, Inbound, Streams, splice};
use crate::proxy::{DRAIN_TIMEOUT, Log};
use crate::{NetError, Options};

/// How long the gateway waits to connect to a target server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A device the gateway serves.
#[derive(Clone, Debug)]
pub struct Device {
    /// For logs.
    pub name: String,
    /// Its key.
    pub key: PublicKey,
    /// How the gateway shapes traffic to it (`None`: the gateway's default).
    pub shape: Option<ShapeConfig>,
}

/// Everything `hush gateway` needs.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// Where to listen for tunnels.
    pub listen: SocketAddr,
    /// Our key.
    pub key: Keypair,
    /// Devices allowed in.
    pub devices: Vec<Device>,
    /// Accept any device key (for trials; otherwise only `devices`).
    pub allow_any: bool,
    /// Default shaping toward devices.
    pub shape: ShapeConfig,
    /// Base schedule seed; tunnel `i` uses `seed + i`.
    pub seed: u64,
}

/// What a gateway run did.
#[derive(Clone, Debug, Default)]
pub struct GatewayReport {
    /// Tunnels that completed a handshake.
    pub tunnels: u64,
    /// Streams connected to targets.
    pub streams: u64,
}

/// A bound gateway.
pub struct Gateway {
    settings: Arc<GatewaySettings>,
    listener: TcpListener,
    log: Log,
}

impl Gateway {
    /// Bind the listener.
    pub async fn bind(settings: GatewaySettings, log: Log) -> Result<Gateway, NetError> {
        if settings.devices.is_empty() && !settings.allow_any {
            return Err(NetError::Config(
                "the gateway allows no device: list devices (public keys) or set allow_any_device = true".into(),
            ));
        }
        settings.shape.validate()?;
        for d in &settings.devices {
            if let Some(s) = &d.shape {
                s.validate()
                    .map_err(|e| NetError::Config(format!("device {}: {}", d.name, e.0)))?;
            }
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(NetError::io(format!("bind {}", settings.listen)))?;
        Ok(Gateway {
            settings: Arc::new(settings),
            listener,
            log,
        })
    }

    /// The address tunnels connect to.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.listener
            .local_addr()
            .map_err(NetError::io("local address"))
    }

    /// Serve until `shutdown` resolves; then drain every tunnel and report.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<GatewayReport, NetError> {
        let Gateway {
            settings,
            listener,
            log,
        } = self;
        let report = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tunnels = JoinSet::new();
        let mut index = 0u64;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                conn = listener.accept() => {
                    let Ok((tcp, addr)) = conn else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let seed = settings.seed.wrapping_add(index);
                    index += 1;
                    let (settings, log, report, stop) = (Arc::clone(&settings), Arc::clone(&log), Arc::clone(&report), stop_rx.clone());
                    tunnels.spawn(async move {
                        if let Err(e) = serve_tunnel(tcp, addr, &settings, seed, &log, &report, stop).await {
                            log(&format!("tunnel from {addr}: {}", crate::error_chain(&e)));
                        }
                    });
                }
                Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
            }
        }
        log(&format!(
            "shutting down: draining {} tunnels",
            tunnels.len()
        ));
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), async {
            while tunnels.join_next().await.is_some() {}
        })
        .await;
        Ok(GatewayReport {
            tunnels: report.0.load(Ordering::Relaxed),
            streams: report.1.load(Ordering::Relaxed),
        })
    }
}

async fn serve_tunnel(
    tcp: TcpStream,
    addr: SocketAddr,
    settings: &GatewaySettings,
    seed: u64,
    log: &Log,
    report: &(AtomicU64, AtomicU64),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), NetError> {
    let allowed = (!settings.allow_any).then(|| settings.devices.iter().map(|d| d.key).collect());
    let mut name = String::from("unlisted device");
    let tunnel = aio::accept_with(tcp, &settings.key, allowed, |peer| {
        let device = peer.and_then(|k| settings.devices.iter().find(|d| d.key == k));
        if let Some(d) = device {
            name = d.name.clone();
        }
        let shape = device
            .and_then(|d| d.shape.clone())
            .unwrap_or_else(|| settings.shape.clone());
        (shape, Options::new(seed))
    })
    .await?;
    report.0.fetch_add(1, Ordering::Relaxed);
    log(&format!(
        "tunnel from {addr}: {name} ({})",
        tunnel.peer().map_or(String::new(), |k| k.to_string())
    ));
    let (sender, mut receiver) = (tunnel.sender, tunnel.receiver);
    let streams = Streams::default();
    let end = tokio::select! {
        end = dispatch(&mut receiver, &sender, &streams, log, report) => end,
        _ = stop.wait_for(|s| *s) => Ok(()),
    };
    streams.reset_all();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, sender.close()).await;
    log(&format!("tunnel from {addr} ({name}) closed"));
    end
}

async fn dispatch(
    receiver: &mut MessageReceiver,
    sender: &MessageSender,
    streams: &Streams,
    log: &Log,
    report: &(AtomicU64, AtomicU64),
) -> Result<(), NetError> {
    while let Some(msg) = receiver.recv().await? {
        let frame = Frame::decode(msg)
            .map_err(|e| NetError::Config(format!("device sent a bad frame: {e}")))?;
        match frame {
            Frame::Open { stream, target } => {
                let inbound = streams.open(stream);
                let (sender, streams, log) = (sender.clone(), streams.clone(), Arc::clone(log));
                report.1.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.as_str()))
                        .await
                    {
                        Ok(Ok(tcp)) => {
                            splice(tcp, stream, inbound, sender, streams).await;
                        }
                        Ok(Err(e)) => {
                            refuse(
                                &sender,
                                &streams,
                                stream,
                                &log,
                                &format!("connect {target}: {e}"),
                            )
                            .await
                        }
                        Err(_) => {
                            refuse(
                                &sender,
                                &streams,
                                stream,
                                &log,
                                &format!("connect {target}: timed out"),
                            )
                            .await
                        }
                    }
                });
            }
            Frame::Data { stream, data } => {
                if !streams.deliver(stream, Inbound::Data(data)).await {
                    let reason = "unknown stream".to_string();
                    let _ = sender.send(Frame::Reset { stream, reason }.encode()).await;
                }
            }
            Frame::Fin { stream } => {
                streams.deliver(stream, Inbound::Fin).await;
            }
            Frame::Reset { stream, .. } => {
                streams.deliver(stream, Inbound::Reset).await;
            }
        }
    }
    Ok(())
}

async fn refuse(sender: &MessageSender, streams: &Streams, stream: u32, log: &Log, reason: &str) {
    log(&format!("stream {stream}: {reason}"));
    streams.remove(stream);
    let _ = sender
        .send(
            Frame::Reset {
                stream,
                reason: reason.to_string(),
            }
            .encode(),
        )
        .await;
}

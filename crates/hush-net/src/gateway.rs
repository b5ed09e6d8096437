//! `hush gateway`: terminates device tunnels and connects their streams to the real servers.
//!
//! Only devices whose public keys are configured complete the handshake (unless the gateway is
//! explicitly open to any key). Each device's inbound traffic is shaped by its own schedule, or
//! the gateway's default, so both directions of the device's traffic are shaped.
//!
//! Facing the internet, the gateway answers no replayed handshake, sends nothing shaped before
//! the device's first authenticated record, limits handshakes per source and in flight, caps
//! tunnels and streams ([`Limits`]), and connects only where its [`TargetPolicy`] allows:
//! public addresses by default, never its own loopback or private networks unless listed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hush_shape::{Keypair, ShapeConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aio::{MessageReceiver, Responder};
use crate::limits::SourceRate;
use crate::mux::{Frame, Mux, refuse, splice};
use crate::policy::TargetPolicy;
use crate::proxy::{DRAIN_TIMEOUT, Log};
use crate::{Limits, NetError, Options};

/// How long the gateway waits to connect to a target server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A device the gateway serves.
#[derive(Clone, Debug)]
pub struct Device {
    /// For logs.
    pub name: String,
    /// Its key.
    pub key: hush_shape::PublicKey,
    /// How the gateway shapes traffic to it (`None`: the gateway's default).
    pub shape: Option<ShapeConfig>,
}

/// Everything `hush gateway` needs.
#[derive(Debug)]
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
    /// A reproducible base schedule seed (tunnel `i` uses `seed + i`), for reproduction only;
    /// `None` draws 256 bits from the OS per tunnel.
    pub seed: Option<u64>,
    /// Where streams may connect.
    pub targets: TargetPolicy,
    /// What peers may cost.
    pub limits: Limits,
}

/// What a gateway run did.
#[derive(Clone, Debug, Default)]
pub struct GatewayReport {
    /// Tunnels that completed a handshake.
    pub tunnels: u64,
    /// Streams connected to targets.
    pub streams: u64,
    /// Streams refused by the target policy.
    pub denied: u64,
    /// Connections dropped unanswered by the per-source rate, the handshake or the tunnel cap.
    pub dropped: u64,
}

#[derive(Default)]
struct Counts {
    tunnels: AtomicU64,
    streams: AtomicU64,
    denied: AtomicU64,
    dropped: AtomicU64,
}

struct Shared {
    responder: Responder,
    devices: Vec<Device>,
    shape: ShapeConfig,
    seed: Option<u64>,
    targets: TargetPolicy,
    limits: Limits,
    counts: Counts,
    log: Log,
}

/// A bound gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
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
        settings.limits.validate()?;
        for d in &settings.devices {
            if let Some(s) = &d.shape {
                s.validate()
                    .map_err(|e| NetError::Config(format!("device {}: {}", d.name, e.0)))?;
            }
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(NetError::io(format!("bind {}", settings.listen)))?;
        let allowed =
            (!settings.allow_any).then(|| settings.devices.iter().map(|d| d.key).collect());
        let responder = Responder::new(Arc::new(settings.key), allowed, settings.limits.clone())?;
        Ok(Gateway {
            shared: Arc::new(Shared {
                responder,
                devices: settings.devices,
                shape: settings.shape,
                seed: settings.seed,
                targets: settings.targets,
                limits: settings.limits,
                counts: Counts::default(),
                log,
            }),
            listener,
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
        let Gateway { shared, listener } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let rate = SourceRate::new(&shared.limits);
        let handshakes = Arc::new(Semaphore::new(shared.limits.max_handshakes_in_flight));
        let tunnel_slots = Arc::new(Semaphore::new(shared.limits.max_tunnels));
        let mut tunnels = JoinSet::new();
        let mut index = 0u64;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                conn = listener.accept() => {
                    let Ok((tcp, addr)) = conn else {
                        // Out of file descriptors and the like: wait and go on rather than spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let why = if !rate.allow(addr.ip(), std::time::Instant::now()) {
                        Some("over the per-source handshake rate")
                    } else {
                        None
                    };
                    let permits = match why {
                        Some(w) => Err(w),
                        None => match (Arc::clone(&tunnel_slots).try_acquire_owned(), Arc::clone(&handshakes).try_acquire_owned()) {
                            (Ok(t), Ok(h)) => Ok((t, h)),
                            (Err(_), _) => Err("at limits.max_tunnels"),
                            (_, Err(_)) => Err("at limits.max_handshakes_in_flight"),
                        },
                    };
                    let (tunnel_permit, hs_permit) = match permits {
                        Ok(p) => p,
                        Err(why) => {
                            // Closed unanswered; logged sparingly, a flood must not flood the log.
                            let n = shared.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_power_of_two() {
                                (shared.log)(&format!("dropped {n} connections so far unanswered (latest from {addr}: {why})"));
                            }
                            drop(tcp);
                            continue;
                        }
                    };
                    let seed = shared.seed.map(|s| s.wrapping_add(index));
                    index += 1;
                    let (shared, stop) = (Arc::clone(&shared), stop_rx.clone());
                    tunnels.spawn(async move {
                        let _tunnel_permit = tunnel_permit;
                        if let Err(e) = serve_tunnel(tcp, addr, &shared, seed, hs_permit, stop).await {
                            (shared.log)(&format!("tunnel from {addr}: {}", crate::error_chain(&e)));
                        }
                    });
                }
                Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
            }
        }
        (shared.log)(&format!(
            "shutting down: draining {} tunnels",
            tunnels.len()
        ));
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), async {
            while tunnels.join_next().await.is_some() {}
        })
        .await;
        let c = &shared.counts;
        Ok(GatewayReport {
            tunnels: c.tunnels.load(Ordering::Relaxed),
            streams: c.streams.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        })
    }
}

async fn serve_tunnel(
    tcp: TcpStream,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    seed: Option<u64>,
    hs_permit: tokio::sync::OwnedSemaphorePermit,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), NetError> {
    let mut name = String::from("unlisted device");
    let tunnel = shared
        .responder
        .accept_with(tcp, |peer| {
            let device = peer.and_then(|k| shared.devices.iter().find(|d| d.key == k));
            if let Some(d) = device {
                name = d.name.clone();
            }
            let shape = device
                .and_then(|d| d.shape.clone())
                .unwrap_or_else(|| shared.shape.clone());
            let options = Options {
                seed,
                tap: None,
                limits: shared.limits.clone(),
            };
            (shape, options)
        })
        .await?;
    drop(hs_permit);
    shared.counts.tunnels.fetch_add(1, Ordering::Relaxed);
    (shared.log)(&format!(
        "tunnel from {addr}: {name} ({})",
        tunnel.peer().map_or(String::new(), |k| k.to_string())
    ));
    let (sender, mut receiver) = (tunnel.sender, tunnel.receiver);
    let mux = Mux::new(sender.clone(), shared.limits.clone());
    let end = tokio::select! {
        end = dispatch(&mut receiver, &mux, shared) => end,
        _ = stop.wait_for(|s| *s) => Ok(()),
    };
    mux.reset_all();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, sender.close()).await;
    (shared.log)(&format!("tunnel from {addr} ({name}) closed"));
    end
}

async fn dispatch(
    receiver: &mut MessageReceiver,
    mux: &Mux,
    shared: &Arc<Shared>,
) -> Result<(), NetError> {
    while let Some(msg) = receiver.recv().await? {
        match Frame::decode(msg)? {
            Frame::Open { stream, target } => {
                let handle = match mux.open(stream) {
                    Ok(h) => h,
                    Err(e) => {
                        (shared.log)(&format!("stream {stream} to {target} refused: {e}"));
                        refuse(mux, stream, e.to_string());
                        continue;
                    }
                };
                let (mux, shared) = (mux.clone(), Arc::clone(shared));
                tokio::spawn(async move {
                    match connect_target(&target, &shared.targets).await {
                        Ok(tcp) => {
                            shared.counts.streams.fetch_add(1, Ordering::Relaxed);
                            splice(tcp, handle, mux).await;
                        }
                        Err(Refusal { reason, denied }) => {
                            if denied {
                                shared.counts.denied.fetch_add(1, Ordering::Relaxed);
                            }
                            (shared.log)(&format!("stream {stream}: {reason}"));
                            refuse(&mux, stream, reason);
                        }
                    }
                });
            }
            other => {
                if let Some(line) = mux.handle(other) {
                    (shared.log)(&line);
                }
            }
        }
    }
    Ok(())
}

struct Refusal {
    reason: String,
    denied: bool,
}

/// Resolve `target`, keep the addresses the policy allows, and connect to the first that
/// answers. Only checked addresses are connected to, so DNS cannot smuggle in a denied one.
async fn connect_target(target: &str, policy: &TargetPolicy) -> Result<TcpStream, Refusal> {
    let failed = |reason: String| Refusal {
        reason,
        denied: false,
    };
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(failed(format!("resolve {target}: {e}"))),
            Err(_) => return Err(failed(format!("resolve {target}: timed out"))),
        };
    let mut denied = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| match policy.check(*a) {
            Ok(()) => true,
            Err(why) => {
                denied.get_or_insert((*a, why));
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(match denied {
            Some((a, why)) => Refusal {
                reason: format!("target {target} denied by the gateway's policy: {a}: {why}"),
                denied: true,
            },
            None => failed(format!("resolve {target}: no addresses")),
        });
    }
    let mut last = String::new();
    for a in allowed {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("connect {target} ({a}): {e}"),
            Err(_) => last = format!("connect {target} ({a}): timed out"),
        }
    }
    Err(failed(last))
}

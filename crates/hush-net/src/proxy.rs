//! `hush proxy`: runs beside an unmodified device or app and carries its TCP connections through
//! one shaped, encrypted tunnel to a `hush gateway`.
//!
//! Connections come in two ways: a SOCKS5 listener (no authentication, CONNECT only; host names
//! are passed to the gateway unresolved) and fixed forwards (`127.0.0.1:8883` → a broker). The
//! proxy answers SOCKS requests as soon as the tunnel is up rather than waiting a tunnel round
//! trip for the gateway's connect; if the gateway cannot connect, the stream is reset.
//!
//! The first tunnel must come up (a wrong key or address fails at once, in one line). If the
//! tunnel goes away later, the proxy resets the connections it carried, logs for each how many
//! bytes it had sent that the gateway never confirmed writing (so exactly what may be lost is
//! known), and reconnects with exponential backoff and jitter. Connections accepted meanwhile
//! wait up to [`Limits::reconnect_wait_s`] for the tunnel, then are refused (SOCKS clients get
//! a failure reply).

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hush_shape::{Keypair, PublicKey, ShapeConfig, ShaperStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::aio::{self, MessageReceiver, MessageSender};
use crate::mux::{Frame, Mux, splice};
use crate::{Limits, NetError, Options};

/// Where log lines go (the CLI prints them to stderr).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How long shutdown waits for the tunnel's queue to drain.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The first wait before reconnecting to a gateway that went away.
const RECONNECT_FIRST_S: f64 = 0.25;

/// A fixed forward: connections to `listen` go to `target` through the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Local address to listen on.
    pub listen: SocketAddr,
    /// `host:port` the gateway connects to.
    pub target: String,
}

/// Everything `hush proxy` needs.
#[derive(Debug)]
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
    /// A reproducible schedule seed, for reproduction only; `None` draws 256 bits from the OS
    /// for each tunnel.
    pub seed: Option<u64>,
    /// Flow control, timeouts and reconnection.
    pub limits: Limits,
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
    /// Bytes sent by connections cut by a tunnel failure that the gateway had not confirmed
    /// writing: at most this much may have been lost.
    pub bytes_unconfirmed: u64,
    /// Times the tunnel came back after failing.
    pub reconnects: u64,
    /// Connections refused because the tunnel stayed down.
    pub refused: u64,
    /// The last tunnel's outbound accounts.
    pub tunnel: ShaperStats,
}

struct Settings {
    gateway: String,
    gateway_key: PublicKey,
    key: Keypair,
    shape: ShapeConfig,
    seed: Option<u64>,
    limits: Limits,
}

impl Settings {
    async fn connect(&self) -> Result<aio::Tunnel, NetError> {
        let options = Options {
            seed: self.seed,
            tap: None,
            limits: self.limits.clone(),
        };
        aio::connect(
            self.gateway.as_str(),
            &self.shape,
            &self.key,
            &self.gateway_key,
            options,
        )
        .await
        .map_err(|e| e.context(format!("to gateway {}", self.gateway)))
    }
}

/// A proxy with its tunnel up and its listeners bound.
pub struct Proxy {
    settings: Arc<Settings>,
    tunnel: aio::Tunnel,
    socks: Option<TcpListener>,
    forwards: Vec<(TcpListener, String)>,
    log: Log,
}

#[derive(Clone)]
enum Target {
    Fixed(String),
    Socks,
}

#[derive(Default)]
struct Totals {
    streams: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
    unconfirmed: AtomicU64,
    refused: AtomicU64,
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
        settings.limits.validate()?;
        let inner = Arc::new(Settings {
            gateway: settings.gateway,
            gateway_key: settings.gateway_key,
            key: settings.key,
            shape: settings.shape,
            seed: settings.seed,
            limits: settings.limits,
        });
        let tunnel = inner.connect().await?;
        log(&format!(
            "tunnel to {} up ({} schedule)",
            inner.gateway,
            inner.shape.schedule.kind(),
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
            settings: inner,
            tunnel,
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

    /// Serve until `shutdown` resolves; reconnect whenever the tunnel fails; then drain the
    /// tunnel and report.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ProxyReport, NetError> {
        let Proxy {
            settings,
            tunnel,
            socks,
            forwards,
            log,
        } = self;
        let totals = Arc::new(Totals::default());
        let (current_tx, current) = watch::channel::<Option<Mux>>(None);
        let mut acceptors = Vec::new();
        let ctx = Arc::new(ConnContext {
            current,
            totals: Arc::clone(&totals),
            log: Arc::clone(&log),
            wait: Duration::from_secs_f64(settings.limits.reconnect_wait_s),
        });
        if let Some(l) = socks {
            acceptors.push(tokio::spawn(accept_loop(
                l,
                Target::Socks,
                Arc::clone(&ctx),
            )));
        }
        for (l, target) in forwards {
            acceptors.push(tokio::spawn(accept_loop(
                l,
                Target::Fixed(target),
                Arc::clone(&ctx),
            )));
        }
        tokio::pin!(shutdown);
        let mut tunnel = Some(tunnel);
        let mut reconnects = 0u64;
        let mut last_sender: Option<MessageSender> = None;
        'outer: loop {
            let Some(t) = tunnel.take() else { break };
            let (sender, mut receiver) = (t.sender, t.receiver);
            let mux = Mux::new(sender.clone(), settings.limits.clone());
            last_sender = Some(sender.clone());
            current_tx.send_replace(Some(mux.clone()));
            let mut dispatcher = {
                let (mux, log) = (mux.clone(), Arc::clone(&log));
                tokio::spawn(async move { dispatch(&mut receiver, &mux, &log).await })
            };
            let failure = tokio::select! {
                () = &mut shutdown => break 'outer,
                end = &mut dispatcher => match end {
                    Ok(Ok(())) => NetError::Closed,
                    Ok(Err(e)) => e,
                    Err(_) => NetError::Closed,
                },
            };
            current_tx.send_replace(None);
            let open = mux.len();
            mux.reset_all();
            log(&format!(
                "tunnel to {} lost ({}); reset {open} open connections, reconnecting",
                settings.gateway,
                crate::error_chain(&failure)
            ));
            let mut attempt = 0u32;
            loop {
                let delay = backoff_delay(attempt, settings.limits.reconnect_max_s, jitter());
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    () = &mut shutdown => break 'outer,
                    () = tokio::time::sleep(delay) => {}
                }
                match settings.connect().await {
                    Ok(t) => {
                        reconnects += 1;
                        log(&format!("tunnel to {} up again", settings.gateway));
                        tunnel = Some(t);
                        break;
                    }
                    Err(e) => log(&format!(
                        "reconnect attempt {attempt}: {}",
                        crate::error_chain(&e)
                    )),
                }
            }
        }
        for a in acceptors {
            a.abort();
        }
        current_tx.send_replace(None);
        let stats = match last_sender {
            Some(sender) => {
                log(&format!(
                    "shutting down: draining the tunnel to {}",
                    settings.gateway
                ));
                match tokio::time::timeout(DRAIN_TIMEOUT, sender.close()).await {
                    Ok(Ok(s)) => s,
                    _ => sender.stats(),
                }
            }
            None => ShaperStats::default(),
        };
        Ok(ProxyReport {
            streams: totals.streams.load(Ordering::Relaxed),
            bytes_to_tunnel: totals.up.load(Ordering::Relaxed),
            bytes_from_tunnel: totals.down.load(Ordering::Relaxed),
            bytes_unconfirmed: totals.unconfirmed.load(Ordering::Relaxed),
            reconnects,
            refused: totals.refused.load(Ordering::Relaxed),
            tunnel: stats,
        })
    }
}

/// The wait before reconnect attempt `attempt` (0-based): 0.25 s doubling up to `max_s`, times
/// a jitter factor in [0.5, 1] (`unit` in [0, 1]) so proxies that lost one gateway do not all
/// come back at the same instant.
pub fn backoff_delay(attempt: u32, max_s: f64, unit: f64) -> Duration {
    let base = (RECONNECT_FIRST_S * 2f64.powi(attempt.min(30) as i32)).min(max_s);
    Duration::from_secs_f64(base * (0.5 + 0.5 * unit.clamp(0.0, 1.0)))
}

/// A uniform draw in [0, 1] from the OS (0.5 if it fails: jitter is not worth an error).
fn jitter() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

struct ConnContext {
    current: watch::Receiver<Option<Mux>>,
    totals: Arc<Totals>,
    log: Log,
    wait: Duration,
}

async fn accept_loop(listener: TcpListener, target: Target, ctx: Arc<ConnContext>) {
    loop {
        match listener.accept().await {
            Ok((tcp, from)) => {
                tokio::spawn(serve_conn(tcp, from, target.clone(), Arc::clone(&ctx)));
            }
            // Out of file descriptors and the like: wait and go on rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One local connection: its SOCKS request if any, a tunnel (waiting for one, bounded), a
/// stream.
async fn serve_conn(mut tcp: TcpStream, from: SocketAddr, target: Target, ctx: Arc<ConnContext>) {
    let (target, socks) = match target {
        Target::Fixed(t) => (t, false),
        Target::Socks => match socks_request(&mut tcp).await {
            Ok(t) => (t, true),
            Err(e) => {
                (ctx.log)(&format!("SOCKS request from {from} refused: {e}"));
                return;
            }
        },
    };
    let mut current = ctx.current.clone();
    let mux = match tokio::time::timeout(ctx.wait, current.wait_for(Option::is_some)).await {
        Ok(Ok(m)) => m.clone(),
        _ => None,
    };
    let Some(mux) = mux else {
        ctx.totals.refused.fetch_add(1, Ordering::Relaxed);
        (ctx.log)(&format!(
            "connection from {from} to {target} refused: no tunnel to the gateway for {:.0} s",
            ctx.wait.as_secs_f64()
        ));
        if socks {
            let _ = tcp.write_all(&socks_reply(1)).await;
        }
        return;
    };
    let id = mux.next_id();
    let handle = match mux.open(id) {
        Ok(h) => h,
        Err(e) => {
            ctx.totals.refused.fetch_add(1, Ordering::Relaxed);
            (ctx.log)(&format!("connection from {from} to {target} refused: {e}"));
            if socks {
                let _ = tcp.write_all(&socks_reply(1)).await;
            }
            return;
        }
    };
    if socks && tcp.write_all(&socks_reply(0)).await.is_err() {
        crate::mux::refuse(&mux, id, "local client went away".into());
        return;
    }
    let open = Frame::Open {
        stream: id,
        target: target.clone(),
    };
    if mux.sender().send(open.encode()).await.is_err() {
        return;
    }
    let bytes = splice(tcp, handle, mux).await;
    let t = &ctx.totals;
    t.streams.fetch_add(1, Ordering::Relaxed);
    t.up.fetch_add(bytes.to_tunnel, Ordering::Relaxed);
    t.down.fetch_add(bytes.from_tunnel, Ordering::Relaxed);
    t.unconfirmed
        .fetch_add(bytes.unconfirmed, Ordering::Relaxed);
    if bytes.unconfirmed > 0 {
        (ctx.log)(&format!(
            "connection {id} to {target} was cut: {} of the {} bytes it sent were not confirmed written by the gateway",
            bytes.unconfirmed, bytes.to_tunnel
        ));
    }
}

/// Route the gateway's frames to streams until the tunnel ends.
async fn dispatch(receiver: &mut MessageReceiver, mux: &Mux, log: &Log) -> Result<(), NetError> {
    while let Some(msg) = receiver.recv().await? {
        match Frame::decode(msg)? {
            Frame::Reset { stream, reason } => {
                log(&format!("stream {stream} reset by the gateway: {reason}"));
                mux.handle(Frame::Reset { stream, reason });
            }
            Frame::Open { stream, .. } => {
                log(&format!(
                    "ignored: the gateway tried to open stream {stream}"
                ));
                crate::mux::refuse(
                    mux,
                    stream,
                    "the proxy opens no streams for the gateway".into(),
                );
            }
            other => {
                if let Some(line) = mux.handle(other) {
                    log(&line);
                }
            }
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

/// A SOCKS5 reply with this status (0 success, 1 general failure, 7 command not supported, 8
/// address type not supported).
fn socks_reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// Serve a SOCKS5 CONNECT request; returns the stream and the requested `host:port`, having
/// answered success.
pub async fn socks_handshake(mut tcp: TcpStream) -> Result<(TcpStream, String), SocksError> {
    let target = socks_request(&mut tcp).await?;
    tcp.write_all(&socks_reply(0)).await?;
    Ok((tcp, target))
}

/// Read a SOCKS5 CONNECT request up to the final reply, which the caller sends.
async fn socks_request(tcp: &mut TcpStream) -> Result<String, SocksError> {
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
    let reply = socks_reply;
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
    Ok(format!("{host}:{}", u16::from_be_bytes(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_between_half_and_all() {
        let d = |a, u| backoff_delay(a, 30.0, u).as_secs_f64();
        assert!((d(0, 1.0) - 0.25).abs() < 1e-9);
        assert!((d(0, 0.0) - 0.125).abs() < 1e-9);
        assert!((d(3, 1.0) - 2.0).abs() < 1e-9);
        assert!((d(20, 1.0) - 30.0).abs() < 1e-9, "capped");
        assert!((d(u32::MAX, 0.0) - 15.0).abs() < 1e-9);
        let u = jitter();
        assert!((0.0..=1.0).contains(&u));
    }
}

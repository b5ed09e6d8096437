//! The tokio API: a [`Tunnel`] of message [`MessageSender`] / [`MessageReceiver`] halves, or a
//! [`ShapedStream`] that is `AsyncRead + AsyncWrite`.
//!
//! Each tunnel runs two tasks, quinn-style: a writer that owns the [`Shaper`] and the socket's
//! write half, wakes at the schedule's deadlines (on hush's precise timer, not tokio's
//! millisecond wheel) and writes every record due; and a reader that owns the [`Receiver`] and
//! delivers whole messages. Dropping every sender closes gracefully: the queue still drains.
//!
//! Beyond the application's messages the tunnel carries empty ones, which are never delivered:
//! the initiator sends one at once (the responder sends nothing shaped until a first record of
//! the initiator's has authenticated, so a replayed handshake draws no traffic), and either end
//! sends one after [`crate::Limits::keepalive_s`] without a record, so that the peer's idle
//! timeout only closes tunnels whose peer is gone.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hush_net::NetError> {
//! use hush_net::{aio, generate_keypair, Options};
//! use hush_shape::{ScheduleSpec, ShapeConfig};
//!
//! let (gw_key, dev_key) = (generate_keypair()?, generate_keypair()?);
//! let gw_public = gw_key.public();
//! let config = ShapeConfig::new(ScheduleSpec::datta_low_latency());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = tokio::spawn({
//!     let config = config.clone();
//!     async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let mut tunnel = aio::accept(stream, &config, &gw_key, None, Options::secure()).await?;
//!         tunnel.receiver.recv().await
//!     }
//! });
//! let tunnel = aio::connect(addr, &config, &dev_key, &gw_public, Options::secure()).await?;
//! tunnel.sender.send(b"door open".to_vec()).await?;
//! tunnel.sender.close().await?;
//! assert_eq!(server.await.unwrap()?, Some(b"door open".to_vec()));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use hush_shape::{Keypair, PublicKey, Receiver, SendError, ShapeConfig, Shaper, ShaperStats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::PollSender;

use crate::clock::{Clock, TunnelTimer};
use crate::limits::ReplayGuard;
use crate::{Limits, NetError, Options, Tap, handshake};

const COMMANDS: usize = 64;
const INBOX_MESSAGES: usize = 256;
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Largest message one `poll_write` of a [`ShapedStream`] makes.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

enum Command {
    Message(Vec<u8>),
    Close,
}

/// How a writer ended.
#[derive(Clone, Debug)]
enum Outcome {
    Running,
    Closed(ShaperStats),
    Failed(String),
}

struct Status {
    stats: Mutex<ShaperStats>,
    bytes_written: Mutex<u64>,
    outcome: watch::Sender<Outcome>,
}

/// Sends messages into a tunnel. Clone it to send from many tasks.
#[derive(Clone)]
pub struct MessageSender {
    commands: mpsc::Sender<Command>,
    status: Arc<Status>,
}

/// Receives whole messages from a tunnel.
pub struct MessageReceiver {
    inbox: mpsc::Receiver<Result<Vec<u8>, NetError>>,
}

/// An established tunnel.
pub struct Tunnel {
    /// Our direction.
    pub sender: MessageSender,
    /// The peer's direction.
    pub receiver: MessageReceiver,
    peer: Option<PublicKey>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel").field("peer", &self.peer).finish()
    }
}

/// Connect to a hush peer (the responder) at `addr` whose key is `remote`.
pub async fn connect(
    addr: impl ToSocketAddrs,
    config: &ShapeConfig,
    local: &Keypair,
    remote: &PublicKey,
    options: Options,
) -> Result<Tunnel, NetError> {
    config.validate()?;
    options.limits.validate()?;
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(NetError::io("connect"))?;
    let name = stream
        .peer_addr()
        .map_or_else(|_| "peer".into(), |a| a.to_string());
    let hs = handshake::initiator(local, remote, &name)?;
    let expect = handshake::Expect {
        remote: *remote,
        local: local.public(),
    };
    let est = handshake::tokio(
        &mut stream,
        hs,
        &name,
        Some(&expect),
        &mut |_| Ok(()),
        options.limits.handshake_timeout(),
    )
    .await?;
    let peer = est.session.remote();
    let (sealer, opener) = est.session.split();
    let mut receiver = Receiver::new(opener, config.max_message_bytes);
    receiver.receive(&est.leftover)?;
    start(stream, sealer, receiver, peer, config, options, true)
}

/// Complete the responder's handshake on an accepted stream. With `allowed`, only those keys.
/// For a server that accepts many connections, use a [`Responder`]: it remembers handshake
/// timestamps across connections, so replayed handshakes get no answer.
pub async fn accept(
    stream: TcpStream,
    config: &ShapeConfig,
    local: &Keypair,
    allowed: Option<Vec<PublicKey>>,
    options: Options,
) -> Result<Tunnel, NetError> {
    config.validate()?;
    let guard = ReplayGuard::new();
    let limits = options.limits.clone();
    accept_inner(stream, local, allowed, &guard, &limits, |_| {
        (config.clone(), options)
    })
    .await
}

/// The responder's state across connections: its key, the keys it allows, the greatest
/// handshake timestamp seen from each, and its limits.
pub struct Responder {
    key: Arc<Keypair>,
    allowed: Option<Vec<PublicKey>>,
    replay: ReplayGuard,
    limits: Limits,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key", &self.key)
            .field("allowed", &self.allowed.as_ref().map(Vec::len))
            .finish()
    }
}

impl Responder {
    /// A responder with key `key`; with `allowed`, only those initiator keys get an answer.
    pub fn new(
        key: Arc<Keypair>,
        allowed: Option<Vec<PublicKey>>,
        limits: Limits,
    ) -> Result<Responder, NetError> {
        limits.validate()?;
        Ok(Responder {
            key,
            allowed,
            replay: ReplayGuard::new(),
            limits,
        })
    }

    /// Our public key.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// [`accept`] with this responder's state.
    pub async fn accept(
        &self,
        stream: TcpStream,
        config: &ShapeConfig,
        options: Options,
    ) -> Result<Tunnel, NetError> {
        config.validate()?;
        self.accept_with(stream, |_| (config.clone(), options))
            .await
    }

    /// Accept, choosing the shaping once the peer's key is known (a gateway shapes each device
    /// with its own schedule). Nothing shaped is sent before the initiator's first record has
    /// authenticated: until then the peer has had one handshake answer and nothing else.
    pub async fn accept_with(
        &self,
        stream: TcpStream,
        choose: impl FnOnce(Option<PublicKey>) -> (ShapeConfig, Options),
    ) -> Result<Tunnel, NetError> {
        accept_inner(
            stream,
            &self.key,
            self.allowed.clone(),
            &self.replay,
            &self.limits,
            choose,
        )
        .await
    }
}

async fn accept_inner(
    mut stream: TcpStream,
    local: &Keypair,
    allowed: Option<Vec<PublicKey>>,
    replay: &ReplayGuard,
    limits: &Limits,
    choose: impl FnOnce(Option<PublicKey>) -> (ShapeConfig, Options),
) -> Result<Tunnel, NetError> {
    let name = stream
        .peer_addr()
        .map_or_else(|_| "peer".into(), |a| a.to_string());
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout();
    let hs = handshake::responder(local, allowed, &name)?;
    let mut check = |hello: hush_shape::Hello| {
        if replay.check(hello.peer, hello.timestamp) {
            Ok(())
        } else {
            Err(NetError::Replay {
                peer: name.clone(),
                key: hello.peer,
            })
        }
    };
    let est = handshake::tokio(
        &mut stream,
        hs,
        &name,
        None,
        &mut check,
        limits.handshake_timeout(),
    )
    .await?;
    let peer = est.session.remote();
    let (config, options) = choose(peer);
    config.validate()?;
    options.limits.validate()?;
    let (sealer, opener) = est.session.split();
    let mut receiver = Receiver::new(opener, config.max_message_bytes);
    receiver.receive(&est.leftover)?;
    // No shaped record before the initiator proves it holds the session keys.
    let mut buf = vec![0u8; 4096];
    while receiver.stats().records == 0 {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return Err(NetError::NoFirstRecord(name)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(NetError::io(format!("{name}: read"))(e)),
        };
        receiver.receive(&buf[..n])?;
    }
    start(stream, sealer, receiver, peer, &config, options, false)
}

fn start(
    stream: TcpStream,
    sealer: hush_shape::crypto::Sealer,
    receiver: Receiver,
    peer: Option<PublicKey>,
    config: &ShapeConfig,
    options: Options,
    initiator: bool,
) -> Result<Tunnel, NetError> {
    stream
        .set_nodelay(true)
        .map_err(NetError::io("set TCP_NODELAY"))?;
    let clock = Clock::new();
    let mut shaper = Shaper::new(config, sealer, options.schedule_seed()?, clock.now())?;
    if initiator {
        // Confirms the session to the responder, which sends nothing shaped before it.
        shaper.send_owned(clock.now(), Vec::new())?;
    }
    let (read, write) = stream.into_split();
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMANDS);
    let (msg_tx, msg_rx) = mpsc::channel(INBOX_MESSAGES);
    let status = Arc::new(Status {
        stats: Mutex::new(ShaperStats::default()),
        bytes_written: Mutex::new(0),
        outcome: watch::channel(Outcome::Running).0,
    });
    tokio::spawn(write_task(
        shaper,
        write,
        cmd_rx,
        Arc::clone(&status),
        clock,
        options.tap,
        options.limits.keepalive(),
    ));
    tokio::spawn(read_task(
        receiver,
        read,
        msg_tx,
        options.limits.idle_timeout(),
    ));
    Ok(Tunnel {
        sender: MessageSender {
            commands: cmd_tx,
            status,
        },
        receiver: MessageReceiver { inbox: msg_rx },
        peer,
    })
}

impl Tunnel {
    /// The peer's static public key.
    pub fn peer(&self) -> Option<PublicKey> {
        self.peer
    }

    /// The tunnel as a byte stream.
    pub fn into_stream(self) -> ShapedStream {
        ShapedStream {
            commands: PollSender::new(self.sender.commands.clone()),
            sender: self.sender,
            inbox: self.receiver.inbox,
            current: Vec::new(),
            pos: 0,
            shutdown: None,
        }
    }
}

impl MessageSender {
    /// Queue a message; waits while the tunnel's queue is full. An empty message is carried
    /// but not delivered: empty messages are hush's confirmations and keepalives.
    pub async fn send(&self, message: Vec<u8>) -> Result<(), NetError> {
        self.commands
            .send(Command::Message(message))
            .await
            .map_err(|_| self.ended())
    }

    /// Stop sending: everything queued leaves on schedule, then the close record. Returns the
    /// final accounts once the close record is written.
    pub async fn close(&self) -> Result<ShaperStats, NetError> {
        // If the writer is gone, the outcome says why.
        let _ = self.commands.send(Command::Close).await;
        let mut rx = self.status.outcome.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Outcome::Running => {}
                Outcome::Closed(stats) => return Ok(stats.clone()),
                Outcome::Failed(e) => return Err(failed(e)),
            }
            if rx.changed().await.is_err() {
                return Err(NetError::Closed);
            }
        }
    }

    /// Outbound accounting as of the writer's last wake-up.
    pub fn stats(&self) -> ShaperStats {
        self.status
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bytes written to the socket after the handshake.
    pub fn bytes_written(&self) -> u64 {
        *self
            .status
            .bytes_written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn ended(&self) -> NetError {
        match &*self.status.outcome.borrow() {
            Outcome::Failed(e) => failed(e),
            _ => NetError::Send(SendError::Closed),
        }
    }
}

fn failed(e: &str) -> NetError {
    NetError::Io {
        context: "tunnel".into(),
        source: io::Error::other(e.to_string()),
    }
}

impl MessageReceiver {
    /// The next whole message; `None` once the peer has closed cleanly.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        match self.inbox.recv().await {
            Some(Ok(m)) => Ok(Some(m)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

async fn write_task(
    mut shaper: Shaper,
    mut write: OwnedWriteHalf,
    mut commands: mpsc::Receiver<Command>,
    status: Arc<Status>,
    clock: Clock,
    tap: Option<Arc<dyn Tap>>,
    keepalive: std::time::Duration,
) {
    let result = write_loop(
        &mut shaper,
        &mut write,
        &mut commands,
        &status,
        clock,
        tap.as_deref(),
        keepalive,
    )
    .await;
    *status.stats.lock().unwrap_or_else(|p| p.into_inner()) = shaper.stats().clone();
    let outcome = match result {
        Ok(()) => Outcome::Closed(shaper.stats().clone()),
        Err(e) => Outcome::Failed(crate::error_chain(&e)),
    };
    status.outcome.send_replace(outcome);
}

async fn write_loop(
    shaper: &mut Shaper,
    write: &mut OwnedWriteHalf,
    commands: &mut mpsc::Receiver<Command>,
    status: &Status,
    clock: Clock,
    tap: Option<&dyn Tap>,
    keepalive: std::time::Duration,
) -> Result<(), NetError> {
    let mut record = Vec::new();
    let mut out = Vec::new();
    let mut timer = TunnelTimer::new().map_err(NetError::io("create timer"))?;
    // When we last wrote a record: a keepalive is due `keepalive` after it.
    let mut last_write = clock.now();
    // A message that did not fit the queue waits here, and no more commands are read.
    let mut held: Option<Vec<u8>> = None;
    // False once the application closed or dropped every sender.
    let mut open = true;
    loop {
        let now = clock.now();
        if let Some(m) = held.take() {
            match shaper.check_send(m.len()) {
                Ok(()) => {
                    shaper.send_owned(now, m)?;
                }
                Err(SendError::QueueFull { .. }) => held = Some(m),
                Err(e) => return Err(e.into()),
            }
        }
        // Take what is waiting without sleeping: a writer that is behind its schedule (a busy
        // machine) writes catch-up slots without reaching the select below, and those slots
        // must carry the waiting data rather than only cover.
        while held.is_none() && open {
            match commands.try_recv() {
                Ok(Command::Message(m)) => queue_message(shaper, now, m, &mut held)?,
                Ok(Command::Close) | Err(mpsc::error::TryRecvError::Disconnected) => {
                    shaper.close();
                    open = false;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        out.clear();
        while out.len() < WRITE_BATCH_BYTES {
            let Some(t) = shaper.poll_transmit(now, &mut record) else {
                break;
            };
            out.extend_from_slice(&record);
            if let Some(tap) = tap {
                tap.on_record(&t, now);
            }
        }
        if !out.is_empty() {
            last_write = now;
            write.write_all(&out).await.map_err(NetError::io("write"))?;
            *status
                .bytes_written
                .lock()
                .unwrap_or_else(|p| p.into_inner()) += out.len() as u64;
            *status.stats.lock().unwrap_or_else(|p| p.into_inner()) = shaper.stats().clone();
            if out.len() >= WRITE_BATCH_BYTES {
                // More may be due: go round again, but let other tasks run first.
                tokio::task::yield_now().await;
                continue;
            }
        }
        if shaper.is_finished() {
            write.shutdown().await.map_err(NetError::io("shutdown"))?;
            return Ok(());
        }
        let mut deadline = shaper.poll_timeout();
        if open && shaper.queued_messages() == 0 {
            let due = last_write + keepalive;
            if now >= due {
                // Rides the schedule's next slot like any message; never delivered.
                shaper.send_owned(now, Vec::new())?;
                last_write = now;
                continue;
            }
            deadline = Some(deadline.map_or(due, |d| d.min(due)));
        }
        let deadline = deadline.map(|d| clock.to_std(d));
        let accepting = held.is_none() && open;
        tokio::select! {
            biased;
            () = sleep_until_opt(&mut timer, deadline) => {}
            cmd = commands.recv(), if accepting => match cmd {
                Some(Command::Message(m)) => queue_message(shaper, clock.now(), m, &mut held)?,
                Some(Command::Close) | None => {
                    shaper.close();
                    open = false;
                }
            },
        }
    }
}

/// Queue `m`, or hold it while the shaper's queue is full.
fn queue_message(
    shaper: &mut Shaper,
    now: hush_shape::Instant,
    m: Vec<u8>,
    held: &mut Option<Vec<u8>>,
) -> Result<(), NetError> {
    match shaper.check_send(m.len()) {
        Ok(()) => {
            shaper.send_owned(now, m)?;
        }
        Err(SendError::QueueFull { .. }) => *held = Some(m),
        Err(SendError::Closed) => {} // sent after close: dropped, like a closed socket
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn sleep_until_opt(timer: &mut TunnelTimer, deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => timer.sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn read_task(
    mut receiver: Receiver,
    mut read: OwnedReadHalf,
    inbox: mpsc::Sender<Result<Vec<u8>, NetError>>,
    idle: std::time::Duration,
) {
    // Once the application drops its receiver we keep reading, so the peer's records still
    // leave on schedule, and discard what arrives. Empty messages are the peer's confirmation
    // and keepalives: never delivered.
    async fn deliver(receiver: &mut Receiver, inbox: &mpsc::Sender<Result<Vec<u8>, NetError>>) {
        while let Some(m) = receiver.poll_message() {
            if !m.is_empty() {
                let _ = inbox.send(Ok(m)).await;
            }
        }
    }
    deliver(&mut receiver, &inbox).await;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(idle, read.read(&mut buf)).await {
            Err(_) => {
                let _ = inbox.send(Err(NetError::Idle(idle.as_secs_f64()))).await;
                return;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                if let Err(r) = receiver.finish() {
                    let _ = inbox
                        .send(Err(NetError::Io {
                            context: format!("read ({r})"),
                            source: e,
                        }))
                        .await;
                }
                return;
            }
        };
        if n == 0 {
            if let Err(e) = receiver.finish() {
                let _ = inbox.send(Err(e.into())).await;
            }
            return;
        }
        let r = receiver.receive(&buf[..n]);
        deliver(&mut receiver, &inbox).await;
        if let Err(e) = r {
            let _ = inbox.send(Err(e.into())).await;
            return;
        }
    }
}

type CloseFuture = Pin<Box<dyn Future<Output = Result<ShaperStats, NetError>> + Send>>;

/// A tunnel as a byte stream: each write becomes a message (up to 64 KiB), reads return the
/// peer's bytes in order. `shutdown` closes our direction after the queue drains.
pub struct ShapedStream {
    commands: PollSender<Command>,
    sender: MessageSender,
    inbox: mpsc::Receiver<Result<Vec<u8>, NetError>>,
    current: Vec<u8>,
    pos: usize,
    shutdown: Option<CloseFuture>,
}

impl ShapedStream {
    /// The message sender behind the stream (for stats).
    pub fn sender(&self) -> &MessageSender {
        &self.sender
    }
}

impl AsyncWrite for ShapedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if ready!(self.commands.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = buf.len().min(STREAM_CHUNK_BYTES);
        if self
            .commands
            .send_item(Command::Message(buf[..n].to_vec()))
            .is_err()
        {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Records leave on the schedule; flushing cannot make them leave sooner.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shutdown.is_none() {
            let sender = self.sender.clone();
            self.shutdown = Some(Box::pin(async move { sender.close().await }));
        }
        let fut = self.shutdown.as_mut().expect("just set");
        match ready!(fut.as_mut().poll(cx)) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io::Error::other(crate::error_chain(&e)))),
        }
    }
}

impl AsyncRead for ShapedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pos >= self.current.len() {
            match ready!(self.inbox.poll_recv(cx)) {
                Some(Ok(m)) => {
                    self.current = m;
                    self.pos = 0;
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(crate::error_chain(&e)))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = buf.remaining().min(self.current.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.current[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

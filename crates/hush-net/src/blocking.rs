//! The blocking API, shaped like Datta et al.'s library: connect with a schedule, `send`, `recv`
//! whole messages, `close` after the queue drains.
//!
//! Each [`Connection`] owns two threads: a writer that sleeps until the schedule's next slot and
//! writes records, and a reader that reassembles the peer's records. There is no global state, so
//! a process can hold as many connections as it likes.
//!
//! As in [`crate::aio`], the connecting side first sends an empty message (the listener sends
//! nothing shaped before a first authenticated record), either side sends one after
//! [`crate::Limits::keepalive_s`] without a record, and empty messages are never delivered; a
//! connection with no record from the peer for [`crate::Limits::idle_timeout_s`] fails.
//!
//! ```no_run
//! use hush_net::blocking::{Connection, Listener};
//! use hush_net::{generate_keypair, Options};
//! use hush_shape::{ScheduleSpec, ShapeConfig};
//!
//! let (server_key, client_key) = (generate_keypair()?, generate_keypair()?);
//! let server_public = server_key.public();
//! let config = ShapeConfig::new(ScheduleSpec::datta_high_latency());
//! let listener = Listener::bind("127.0.0.1:0", &config, server_key, None, Options::secure())?;
//! let addr = listener.local_addr()?;
//! std::thread::spawn(move || {
//!     let conn = listener.accept().unwrap();
//!     while let Ok(Some(m)) = conn.recv() {
//!         println!("{} bytes", m.len());
//!     }
//! });
//! let conn = Connection::connect(addr, &config, &client_key, &server_public, Options::secure())?;
//! conn.send(b"heart rate 61")?;
//! let stats = conn.close()?; // returns once every accepted byte has left, on schedule
//! println!("{} wire bytes for {} real", stats.wire_bytes, stats.real_bytes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use hush_shape::{Keypair, PublicKey, Receiver, SendError, ShapeConfig, Shaper, ShaperStats};

use crate::clock::Clock;
use crate::limits::ReplayGuard;
use crate::{NetError, Options, handshake};

/// How many delivered messages may wait for [`Connection::recv`] before the reader stops reading
/// the socket (TCP flow control then pushes back on the peer).
const INBOX_MESSAGES: usize = 1024;
/// Records are batched into one write up to this many bytes when several are due at once.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

struct WriterState {
    shaper: Shaper,
    /// Set when the writer thread fails or stops.
    error: Option<String>,
    finished: bool,
    bytes_written: u64,
}

struct Shared {
    state: Mutex<WriterState>,
    /// Wakes the writer: a message was queued or close was called.
    wake: Condvar,
    /// Wakes senders: records have drained the queue, or the writer stopped.
    drained: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, WriterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One shaped, encrypted connection.
pub struct Connection {
    shared: Arc<Shared>,
    inbox: Mutex<mpsc::Receiver<Result<Vec<u8>, NetError>>>,
    stream: TcpStream,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    peer: Option<PublicKey>,
    clock: Clock,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Connection {
    /// Connect to a hush peer at `addr` whose public key is `remote`, and shape what we send
    /// with `config`.
    pub fn connect(
        addr: impl ToSocketAddrs,
        config: &ShapeConfig,
        local: &Keypair,
        remote: &PublicKey,
        options: Options,
    ) -> Result<Connection, NetError> {
        config.validate()?;
        options.limits.validate()?;
        let mut stream = TcpStream::connect(addr).map_err(NetError::io("connect"))?;
        let name = peer_name(&stream);
        let hs = handshake::initiator(local, remote, &name)?;
        let expect = handshake::Expect {
            remote: *remote,
            local: local.public(),
        };
        let est = handshake::blocking(
            &mut stream,
            hs,
            &name,
            Some(&expect),
            &mut |_| Ok(()),
            options.limits.handshake_timeout(),
        )?;
        let peer = est.session.remote();
        let (sealer, opener) = est.session.split();
        let mut receiver = Receiver::new(opener, config.max_message_bytes);
        receiver.receive(&est.leftover)?;
        Connection::start(stream, sealer, receiver, peer, config, options, true)
    }

    fn start(
        stream: TcpStream,
        sealer: hush_shape::crypto::Sealer,
        receiver: Receiver,
        peer: Option<PublicKey>,
        config: &ShapeConfig,
        options: Options,
        initiator: bool,
    ) -> Result<Connection, NetError> {
        stream
            .set_nodelay(true)
            .map_err(NetError::io("set TCP_NODELAY"))?;
        let clock = Clock::new();
        let mut shaper = Shaper::new(config, sealer, options.schedule_seed()?, clock.now())?;
        if initiator {
            // Confirms the session to the responder, which sends nothing shaped before it.
            shaper.send_owned(clock.now(), Vec::new())?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(WriterState {
                shaper,
                error: None,
                finished: false,
                bytes_written: 0,
            }),
            wake: Condvar::new(),
            drained: Condvar::new(),
        });
        let (tx, rx) = mpsc::sync_channel(INBOX_MESSAGES);
        let keepalive = options.limits.keepalive();
        let writer = {
            let shared = Arc::clone(&shared);
            let stream = stream.try_clone().map_err(NetError::io("clone socket"))?;
            let tap = options.tap.clone();
            std::thread::Builder::new()
                .name("hush-writer".into())
                .spawn(move || write_loop(&shared, stream, clock, tap.as_deref(), keepalive))
                .map_err(NetError::io("spawn writer"))?
        };
        let reader = {
            let stream = stream.try_clone().map_err(NetError::io("clone socket"))?;
            stream
                .set_read_timeout(Some(options.limits.idle_timeout()))
                .map_err(NetError::io("set idle timeout"))?;
            std::thread::Builder::new()
                .name("hush-reader".into())
                .spawn(move || read_loop(receiver, stream, tx))
                .map_err(NetError::io("spawn reader"))?
        };
        Ok(Connection {
            shared,
            inbox: Mutex::new(rx),
            stream,
            writer: Some(writer),
            reader: Some(reader),
            peer,
            clock,
        })
    }

    /// The peer's static public key.
    pub fn peer(&self) -> Option<PublicKey> {
        self.peer
    }

    /// Queue a message; it leaves in the schedule's slots. Blocks while the queue is full. An
    /// empty message is carried but not delivered: empty messages are hush's confirmations and
    /// keepalives.
    pub fn send(&self, message: &[u8]) -> Result<(), NetError> {
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.error {
                return Err(NetError::Io {
                    context: "send".into(),
                    source: std::io::Error::other(e.clone()),
                });
            }
            match st.shaper.check_send(message.len()) {
                Ok(()) => {
                    st.shaper.send(self.clock.now(), message)?;
                    self.shared.wake.notify_one();
                    return Ok(());
                }
                Err(SendError::QueueFull { .. }) => {
                    st = self
                        .shared
                        .drained
                        .wait(st)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next whole message from the peer; `None` once the peer has closed cleanly. Blocks.
    pub fn recv(&self) -> Result<Option<Vec<u8>>, NetError> {
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        match inbox.recv() {
            Ok(Ok(m)) => Ok(Some(m)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvError) => Ok(None),
        }
    }

    /// [`Connection::recv`] that gives up after `timeout` (returns `Err(NetError::Io)` with
    /// kind `TimedOut`).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>, NetError> {
        let inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        match inbox.recv_timeout(timeout) {
            Ok(Ok(m)) => Ok(Some(m)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(NetError::Io {
                context: "recv".into(),
                source: std::io::ErrorKind::TimedOut.into(),
            }),
        }
    }

    /// Close our direction: stop accepting messages, let everything queued leave on schedule,
    /// send the close record and half-close the socket. The peer's messages can still be read.
    pub fn close_send(&self) -> Result<ShaperStats, NetError> {
        let mut st = self.shared.lock();
        st.shaper.close();
        self.shared.wake.notify_one();
        while !st.finished && st.error.is_none() {
            st = self
                .shared
                .drained
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        match &st.error {
            Some(e) => Err(NetError::Io {
                context: "close".into(),
                source: std::io::Error::other(e.clone()),
            }),
            None => Ok(st.shaper.stats().clone()),
        }
    }

    /// [`Connection::close_send`], then close the socket. Nothing that `send` accepted is lost;
    /// messages from the peer not yet read are dropped.
    pub fn close(mut self) -> Result<ShaperStats, NetError> {
        let stats = self.close_send();
        self.shutdown();
        stats
    }

    /// Outbound accounting so far.
    pub fn stats(&self) -> ShaperStats {
        self.shared.lock().shaper.stats().clone()
    }

    /// Bytes the writer has handed to the socket (records only, after the handshake).
    pub fn bytes_written(&self) -> u64 {
        self.shared.lock().bytes_written
    }

    fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        {
            let mut st = self.shared.lock();
            if !st.finished && st.error.is_none() {
                st.error = Some("connection dropped".into());
            }
            self.shared.wake.notify_all();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Connection {
    /// Dropping without [`Connection::close`] aborts: queued messages are lost.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn peer_name(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "peer".into(), |a| a.to_string())
}

fn write_loop(
    shared: &Shared,
    mut stream: TcpStream,
    clock: Clock,
    tap: Option<&dyn crate::Tap>,
    keepalive: Duration,
) {
    let mut record = Vec::new();
    let mut out = Vec::new();
    let mut last_write = clock.now();
    let mut st = shared.lock();
    loop {
        if st.error.is_some() {
            shared.drained.notify_all();
            return;
        }
        let now = clock.now();
        out.clear();
        while out.len() < WRITE_BATCH_BYTES {
            let Some(t) = st.shaper.poll_transmit(now, &mut record) else {
                break;
            };
            out.extend_from_slice(&record);
            if let Some(tap) = tap {
                tap.on_record(&t, now);
            }
        }
        if !out.is_empty() {
            // Held across the write: records must leave in order, and senders wait anyway.
            if let Err(e) = stream.write_all(&out) {
                st.error = Some(format!("write: {e}"));
                shared.drained.notify_all();
                return;
            }
            st.bytes_written += out.len() as u64;
            last_write = now;
            shared.drained.notify_all();
            if out.len() >= WRITE_BATCH_BYTES {
                continue;
            }
        }
        if st.shaper.is_finished() {
            let _ = stream.shutdown(Shutdown::Write);
            st.finished = true;
            shared.drained.notify_all();
            return;
        }
        let mut deadline = st.shaper.poll_timeout();
        if !st.shaper.is_closing() && st.shaper.queued_messages() == 0 {
            let due = last_write + keepalive;
            if now >= due {
                // Rides the schedule's next slot like any message; never delivered.
                if st.shaper.send_owned(now, Vec::new()).is_err() {
                    return;
                }
                last_write = now;
                continue;
            }
            deadline = Some(deadline.map_or(due, |d| d.min(due)));
        }
        st = match deadline {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(clock.now());
                if wait.is_zero() {
                    continue;
                }
                shared
                    .wake
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => shared.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

fn read_loop(
    mut receiver: Receiver,
    mut stream: TcpStream,
    tx: mpsc::SyncSender<Result<Vec<u8>, NetError>>,
) {
    // Empty messages are the peer's confirmation and keepalives: never delivered.
    let deliver = |receiver: &mut Receiver| -> bool {
        while let Some(m) = receiver.poll_message() {
            if !m.is_empty() && tx.send(Ok(m)).is_err() {
                return false;
            }
        }
        true
    };
    if !deliver(&mut receiver) {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let idle = stream
                    .read_timeout()
                    .ok()
                    .flatten()
                    .map_or(0.0, |d| d.as_secs_f64());
                let _ = tx.send(Err(NetError::Idle(idle)));
                return;
            }
            Err(e) => {
                // A reset mid-stream is a truncation unless the peer had closed.
                let _ = match receiver.finish() {
                    Ok(()) => Ok(()),
                    Err(r) => tx.send(Err(NetError::Io {
                        context: format!("read ({r})"),
                        source: e,
                    })),
                };
                return;
            }
        };
        if n == 0 {
            if let Err(e) = receiver.finish() {
                let _ = tx.send(Err(e.into()));
            }
            return;
        }
        if let Err(e) = receiver.receive(&buf[..n]) {
            let _ = deliver(&mut receiver);
            let _ = tx.send(Err(e.into()));
            return;
        }
        if !deliver(&mut receiver) {
            return;
        }
    }
}

/// Accepts shaped connections.
pub struct Listener {
    inner: TcpListener,
    config: ShapeConfig,
    key: Keypair,
    allowed: Option<Vec<PublicKey>>,
    options: Options,
    accepted: AtomicU64,
    replay: ReplayGuard,
}

impl Listener {
    /// Listen on `addr`; shape what we send to each peer with `config`. With `allowed`, only
    /// those peers' keys complete the handshake.
    pub fn bind(
        addr: impl ToSocketAddrs,
        config: &ShapeConfig,
        key: Keypair,
        allowed: Option<Vec<PublicKey>>,
        options: Options,
    ) -> Result<Listener, NetError> {
        config.validate()?;
        options.limits.validate()?;
        Ok(Listener {
            inner: TcpListener::bind(addr).map_err(NetError::io("bind"))?,
            config: config.clone(),
            key,
            allowed,
            options,
            accepted: AtomicU64::new(0),
            replay: ReplayGuard::new(),
        })
    }

    /// The address we listen on.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.inner
            .local_addr()
            .map_err(NetError::io("local address"))
    }

    /// Wait for the next peer and complete its handshake; a replayed first handshake message
    /// gets no answer, and nothing shaped is sent before the peer's first record authenticates.
    /// With a reproducible seed, connection `i` uses the listener's seed plus `i`, so connections
    /// do not share a schedule.
    pub fn accept(&self) -> Result<Connection, NetError> {
        let (mut stream, addr) = self.inner.accept().map_err(NetError::io("accept"))?;
        let name = addr.to_string();
        let limits = &self.options.limits;
        let started = std::time::Instant::now();
        let hs = handshake::responder(&self.key, self.allowed.clone(), &name)?;
        let mut check = |hello: hush_shape::Hello| {
            if self.replay.check(hello.peer, hello.timestamp) {
                Ok(())
            } else {
                Err(NetError::Replay {
                    peer: name.clone(),
                    key: hello.peer,
                })
            }
        };
        let est = handshake::blocking(
            &mut stream,
            hs,
            &name,
            None,
            &mut check,
            limits.handshake_timeout(),
        )?;
        let peer = est.session.remote();
        let (sealer, opener) = est.session.split();
        let mut receiver = Receiver::new(opener, self.config.max_message_bytes);
        receiver.receive(&est.leftover)?;
        let mut buf = [0u8; 4096];
        while receiver.stats().records == 0 {
            let left = limits.handshake_timeout().saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(NetError::NoFirstRecord(name));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(NetError::io(format!("{name}: set timeout")))?;
            let n = match stream.read(&mut buf) {
                Ok(0) => return Err(NetError::NoFirstRecord(name)),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(NetError::NoFirstRecord(name));
                }
                Err(e) => return Err(NetError::io(format!("{name}: read"))(e)),
            };
            receiver.receive(&buf[..n])?;
        }
        stream
            .set_read_timeout(None)
            .map_err(NetError::io(format!("{name}: set timeout")))?;
        let mut options = self.options.clone();
        let index = self.accepted.fetch_add(1, Ordering::Relaxed);
        options.seed = options.seed.map(|s| s.wrapping_add(index));
        Connection::start(stream, sealer, receiver, peer, &self.config, options, false)
    }
}

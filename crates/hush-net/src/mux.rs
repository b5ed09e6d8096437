//! Many TCP connections inside one tunnel, each with its own flow control.
//!
//! Each tunnel message is one frame: `kind:u8 stream:u32be payload`. The proxy opens streams
//! (`OPEN` with the target as `host:port`, resolved by the gateway so DNS does not leak beside
//! the tunnel), both sides send `DATA`, `FIN` half-closes a direction and `RESET` aborts a
//! stream. Because every connection rides the same shaped tunnel, an eavesdropper sees one
//! flow whose shape is the schedule's, however many connections the device opens.
//!
//! # Flow control (credit windows, as in yamux and HTTP/2)
//!
//! A sender may have at most its credit of `DATA` bytes in flight on a stream. Every stream
//! starts with [`INITIAL_WINDOW_BYTES`] of credit in each direction. The receiver of a stream
//! first sends `WINDOW` with its configured window minus the initial one (possibly 0: the
//! *announcement*), then a `WINDOW` (`increment:u32be`) for bytes it has written to the local
//! socket, in batches of half a window. So a stream whose local reader stalls stops granting
//! credit, its sender stops reading its own local socket, and TCP pushes back on that
//! connection only: the tunnel's reader never waits for a stream, and the other streams go on.
//! A peer that sends past its credit has its stream reset; a stream that would take the
//! tunnel's buffered bytes past [`Limits::tunnel_buffer_bytes`] is reset too.
//!
//! `FIN` is delivered after the stream's data (it means "nothing after this"); `RESET` acts at
//! once, ahead of any data still buffered for the stream.
//!
//! Because consumption is acknowledged, an end that loses its tunnel knows, per stream, how many
//! bytes it sent that the far end never confirmed writing ([`SpliceBytes::unconfirmed`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Limits;
use crate::aio::MessageSender;

/// Bytes of local TCP data per `DATA` frame, at most.
pub const DATA_CHUNK_BYTES: usize = 16 * 1024;
/// Credit every stream starts with in each direction, before any `WINDOW` frame.
pub const INITIAL_WINDOW_BYTES: u32 = 64 * 1024;
/// Control frames (resets of unknown streams) waiting to be sent; past this they are dropped
/// (a peer flooding us with frames for streams that do not exist gets fewer answers).
const CONTROL_BACKLOG: usize = 1024;

/// A frame inside the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Open `stream` to `target` (`host:port`).
    Open {
        /// Stream id.
        stream: u32,
        /// Where the gateway should connect.
        target: String,
    },
    /// Bytes of `stream`.
    Data {
        /// Stream id.
        stream: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The sender may send `increment` more bytes on `stream`.
    Window {
        /// Stream id.
        stream: u32,
        /// Bytes of credit.
        increment: u32,
    },
    /// The sender will send no more on `stream`.
    Fin {
        /// Stream id.
        stream: u32,
    },
    /// Abort `stream`.
    Reset {
        /// Stream id.
        stream: u32,
        /// Why, for logs.
        reason: String,
    },
}

/// A tunnel message that is not a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the 5-byte frame header.
    #[error("frame of {0} bytes is shorter than its 5-byte header")]
    Short(usize),
    /// An unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// A target or reason that is not UTF-8.
    #[error("frame text is not UTF-8")]
    Text,
    /// A `WINDOW` frame whose payload is not 4 bytes.
    #[error("WINDOW frame with a {0}-byte payload (expected 4)")]
    Window(usize),
}

const OPEN: u8 = 1;
const DATA: u8 = 2;
const FIN: u8 = 3;
const RESET: u8 = 4;
const WINDOW: u8 = 5;

impl Frame {
    /// The frame as a tunnel message.
    pub fn encode(&self) -> Vec<u8> {
        let window;
        let (kind, stream, payload): (u8, u32, &[u8]) = match self {
            Frame::Open { stream, target } => (OPEN, *stream, target.as_bytes()),
            Frame::Data { stream, data } => (DATA, *stream, data),
            Frame::Window { stream, increment } => {
                window = increment.to_be_bytes();
                (WINDOW, *stream, &window)
            }
            Frame::Fin { stream } => (FIN, *stream, &[]),
            Frame::Reset { stream, reason } => (RESET, *stream, reason.as_bytes()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Parse a tunnel message.
    pub fn decode(mut message: Vec<u8>) -> Result<Frame, FrameError> {
        if message.len() < 5 {
            return Err(FrameError::Short(message.len()));
        }
        let kind = message[0];
        let stream = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| FrameError::Text);
        Ok(match kind {
            OPEN => Frame::Open {
                stream,
                target: text(&message[5..])?,
            },
            DATA => Frame::Data {
                stream,
                data: message.split_off(5),
            },
            WINDOW => {
                let p: [u8; 4] = message[5..]
                    .try_into()
                    .map_err(|_| FrameError::Window(message.len() - 5))?;
                Frame::Window {
                    stream,
                    increment: u32::from_be_bytes(p),
                }
            }
            FIN => Frame::Fin { stream },
            RESET => Frame::Reset {
                stream,
                reason: text(&message[5..])?,
            },
            k => return Err(FrameError::Kind(k)),
        })
    }

    /// The stream a frame belongs to.
    pub fn stream(&self) -> u32 {
        match self {
            Frame::Open { stream, .. }
            | Frame::Data { stream, .. }
            | Frame::Window { stream, .. }
            | Frame::Fin { stream }
            | Frame::Reset { stream, .. } => *stream,
        }
    }
}

/// What the tunnel delivers to one stream, in order.
#[derive(Debug)]
enum Inbound {
    Data(Vec<u8>),
    Fin,
}

/// Credit to send on one stream.
#[derive(Debug, Default)]
struct Credit {
    bytes: AtomicI64,
    /// `WINDOW` frames received (the first is the announcement).
    windows: AtomicU32,
    /// Bytes the peer confirmed writing (increments after the announcement).
    confirmed: AtomicU64,
    more: Notify,
}

/// One open stream, as the tunnel's reader sees it.
struct Entry {
    tx: mpsc::UnboundedSender<Inbound>,
    /// Bytes the peer may still send us on this stream.
    recv_left: Arc<AtomicI64>,
    credit: Arc<Credit>,
    reset: CancellationToken,
}

/// The local end of a stream, handed to [`splice`].
pub(crate) struct StreamHandle {
    pub id: u32,
    rx: mpsc::UnboundedReceiver<Inbound>,
    recv_left: Arc<AtomicI64>,
    credit: Arc<Credit>,
    reset: CancellationToken,
}

struct Inner {
    streams: Mutex<HashMap<u32, Entry>>,
    /// Bytes delivered to streams and not yet written to their sockets.
    buffered: AtomicI64,
    limits: Limits,
    sender: MessageSender,
    control: mpsc::Sender<Frame>,
    next_id: AtomicU32,
}

/// The streams of one tunnel.
#[derive(Clone)]
pub(crate) struct Mux {
    inner: Arc<Inner>,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("too many streams in this tunnel (limits.max_streams_per_tunnel = {0})")]
    TooMany(usize),
    #[error("stream {0} is already open")]
    InUse(u32),
}

impl Mux {
    /// A mux sending through `sender`. Spawns the task that sends its control frames.
    pub fn new(sender: MessageSender, limits: Limits) -> Mux {
        let (control, mut rx) = mpsc::channel::<Frame>(CONTROL_BACKLOG);
        let out = sender.clone();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if out.send(f.encode()).await.is_err() {
                    return;
                }
            }
        });
        Mux {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                buffered: AtomicI64::new(0),
                limits,
                sender,
                control,
                next_id: AtomicU32::new(1),
            }),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tunnel's sender.
    pub fn sender(&self) -> &MessageSender {
        &self.inner.sender
    }

    /// A fresh stream id (the opening side's).
    pub fn next_id(&self) -> u32 {
        loop {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !self.streams().contains_key(&id) {
                return id;
            }
        }
    }

    /// Register stream `id`.
    pub fn open(&self, id: u32) -> Result<StreamHandle, OpenError> {
        let mut streams = self.streams();
        if streams.len() >= self.inner.limits.max_streams_per_tunnel {
            return Err(OpenError::TooMany(self.inner.limits.max_streams_per_tunnel));
        }
        if streams.contains_key(&id) {
            return Err(OpenError::InUse(id));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let recv_left = Arc::new(AtomicI64::new(i64::from(INITIAL_WINDOW_BYTES)));
        let credit = Arc::new(Credit {
            bytes: AtomicI64::new(i64::from(INITIAL_WINDOW_BYTES)),
            ..Credit::default()
        });
        let reset = CancellationToken::new();
        streams.insert(
            id,
            Entry {
                tx,
                recv_left: Arc::clone(&recv_left),
                credit: Arc::clone(&credit),
                reset: reset.clone(),
            },
        );
        Ok(StreamHandle {
            id,
            rx,
            recv_left,
            credit,
            reset,
        })
    }

    /// Streams open.
    pub fn len(&self) -> usize {
        self.streams().len()
    }

    /// Forget stream `id` and abort its splice.
    fn remove(&self, id: u32) {
        if let Some(e) = self.streams().remove(&id) {
            e.reset.cancel();
        }
    }

    /// Queue a control frame without waiting; dropped if the backlog is full.
    fn control(&self, frame: Frame) {
        let _ = self.inner.control.try_send(frame);
    }

    /// Handle a frame that is not `OPEN`, at once: never waits for a stream. Returns a line for
    /// the log when the peer broke the protocol on a stream.
    pub fn handle(&self, frame: Frame) -> Option<String> {
        match frame {
            Frame::Open { .. } => None,
            Frame::Data { stream, data } => {
                let len = data.len() as i64;
                let streams = self.streams();
                let Some(e) = streams.get(&stream) else {
                    drop(streams);
                    self.control(Frame::Reset {
                        stream,
                        reason: "unknown stream".into(),
                    });
                    return None;
                };
                let problem = if e.recv_left.fetch_sub(len, Ordering::AcqRel) < len {
                    Some("sent past its credit window")
                } else if self.inner.buffered.load(Ordering::Acquire) + len
                    > self.inner.limits.tunnel_buffer_bytes as i64
                {
                    Some("would take the tunnel past limits.tunnel_buffer_bytes")
                } else {
                    self.inner.buffered.fetch_add(len, Ordering::AcqRel);
                    if e.tx.send(Inbound::Data(data)).is_err() {
                        // The splice has ended; it accounts for nothing more.
                        self.inner.buffered.fetch_sub(len, Ordering::AcqRel);
                    }
                    None
                };
                drop(streams);
                problem.map(|why| {
                    self.remove(stream);
                    self.control(Frame::Reset {
                        stream,
                        reason: why.into(),
                    });
                    format!("stream {stream} reset: the peer {why}")
                })
            }
            Frame::Window { stream, increment } => {
                if let Some(e) = self.streams().get(&stream) {
                    let c = &e.credit;
                    if c.windows.fetch_add(1, Ordering::AcqRel) > 0 {
                        c.confirmed
                            .fetch_add(u64::from(increment), Ordering::AcqRel);
                    }
                    c.bytes.fetch_add(i64::from(increment), Ordering::AcqRel);
                    c.more.notify_one();
                }
                None
            }
            Frame::Fin { stream } => {
                if let Some(e) = self.streams().get(&stream) {
                    let _ = e.tx.send(Inbound::Fin);
                }
                None
            }
            Frame::Reset { stream, .. } => {
                self.remove(stream);
                None
            }
        }
    }

    /// Reset every stream (the tunnel is gone).
    pub fn reset_all(&self) {
        let all: Vec<_> = self.streams().drain().collect();
        for (_, e) in all {
            e.reset.cancel();
        }
    }
}

/// Bytes a spliced stream carried.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpliceBytes {
    /// From the local socket into the tunnel.
    pub to_tunnel: u64,
    /// From the tunnel to the local socket.
    pub from_tunnel: u64,
    /// Of `to_tunnel`, bytes the far end had not confirmed writing to its socket when the
    /// stream ended (0 after a clean close): what may be lost if the tunnel failed.
    pub unconfirmed: u64,
    /// Whether both directions ended with `FIN`.
    pub clean: bool,
}

/// Relay between a TCP connection and a stream of the tunnel until both directions end or the
/// stream is reset.
pub(crate) async fn splice(tcp: TcpStream, stream: StreamHandle, mux: Mux) -> SpliceBytes {
    let _ = tcp.set_nodelay(true);
    let StreamHandle {
        id,
        mut rx,
        recv_left,
        credit,
        reset,
    } = stream;
    let (mut rd, mut wr) = tcp.into_split();
    let sender = mux.sender().clone();
    let window = mux.inner.limits.stream_window_bytes;
    let up = {
        let (sender, reset, credit) = (sender.clone(), reset.clone(), Arc::clone(&credit));
        async move {
            let mut buf = vec![0u8; DATA_CHUNK_BYTES];
            let mut total = 0u64;
            loop {
                // Wait for credit: a stalled far side stops us reading our own socket.
                let avail = loop {
                    let notified = credit.more.notified();
                    let a = credit.bytes.load(Ordering::Acquire);
                    if a > 0 {
                        break a;
                    }
                    tokio::select! {
                        () = notified => {}
                        () = reset.cancelled() => return (total, false),
                    }
                };
                let want = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
                let read = tokio::select! {
                    r = rd.read(&mut buf[..want]) => r,
                    () = reset.cancelled() => return (total, false),
                };
                match read {
                    Ok(0) => {
                        let ok = sender
                            .send(Frame::Fin { stream: id }.encode())
                            .await
                            .is_ok();
                        return (total, ok);
                    }
                    Ok(n) => {
                        total += n as u64;
                        credit.bytes.fetch_sub(n as i64, Ordering::AcqRel);
                        let frame = Frame::Data {
                            stream: id,
                            data: buf[..n].to_vec(),
                        };
                        if sender.send(frame.encode()).await.is_err() {
                            return (total, false);
                        }
                    }
                    Err(_) => return (total, false),
                }
            }
        }
    };
    let down = {
        let (sender, reset, mux) = (sender.clone(), reset.clone(), mux.clone());
        async move {
            let mut total = 0u64;
            // Announce our window: what we grant beyond the initial credit.
            let extra = window.saturating_sub(INITIAL_WINDOW_BYTES);
            recv_left.fetch_add(i64::from(extra), Ordering::AcqRel);
            let announce = Frame::Window {
                stream: id,
                increment: extra,
            };
            if sender.send(announce.encode()).await.is_err() {
                return (total, false, rx);
            }
            let mut unacked: u32 = 0;
            loop {
                let msg = tokio::select! {
                    m = rx.recv() => m,
                    () = reset.cancelled() => return (total, false, rx),
                };
                match msg {
                    Some(Inbound::Data(d)) => {
                        let n = d.len();
                        let wrote = tokio::select! {
                            r = wr.write_all(&d) => r.is_ok(),
                            () = reset.cancelled() => false,
                        };
                        mux.inner.buffered.fetch_sub(n as i64, Ordering::AcqRel);
                        if !wrote {
                            return (total, false, rx);
                        }
                        total += n as u64;
                        unacked = unacked.saturating_add(n as u32);
                        if unacked >= window / 2 {
                            recv_left.fetch_add(i64::from(unacked), Ordering::AcqRel);
                            let w = Frame::Window {
                                stream: id,
                                increment: unacked,
                            };
                            unacked = 0;
                            if sender.send(w.encode()).await.is_err() {
                                return (total, false, rx);
                            }
                        }
                    }
                    Some(Inbound::Fin) => {
                        let _ = wr.shutdown().await;
                        return (total, true, rx);
                    }
                    None => return (total, false, rx),
                }
            }
        }
    };
    let ((to_tunnel, up_clean), (from_tunnel, down_clean, mut rx)) = tokio::join!(up, down);
    // What was delivered to us and never written no longer counts against the tunnel.
    rx.close();
    while let Ok(m) = rx.try_recv() {
        if let Inbound::Data(d) = m {
            mux.inner
                .buffered
                .fetch_sub(d.len() as i64, Ordering::AcqRel);
        }
    }
    let clean = up_clean && down_clean;
    let was_open = mux.streams().remove(&id).is_some();
    if !clean && was_open {
        // One side failed: make sure the peer drops the stream too.
        mux.control(Frame::Reset {
            stream: id,
            reason: "stream aborted".into(),
        });
    }
    SpliceBytes {
        to_tunnel,
        from_tunnel,
        unconfirmed: if clean {
            0
        } else {
            to_tunnel.saturating_sub(credit.confirmed.load(Ordering::Acquire))
        },
        clean,
    }
}

/// Refuse a stream the peer asked for: a reset frame and nothing else.
pub(crate) fn refuse(mux: &Mux, stream: u32, reason: String) {
    mux.remove(stream);
    mux.control(Frame::Reset { stream, reason });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for f in [
            Frame::Open {
                stream: 7,
                target: "example.com:443".into(),
            },
            Frame::Data {
                stream: u32::MAX,
                data: vec![1, 2, 3],
            },
            Frame::Data {
                stream: 0,
                data: vec![],
            },
            Frame::Window {
                stream: 3,
                increment: 0x0102_0304,
            },
            Frame::Fin { stream: 9 },
            Frame::Reset {
                stream: 1,
                reason: "refused".into(),
            },
        ] {
            assert_eq!(Frame::decode(f.encode()), Ok(f));
        }
        assert_eq!(Frame::decode(vec![2, 0, 0]), Err(FrameError::Short(3)));
        assert_eq!(Frame::decode(vec![9, 0, 0, 0, 0]), Err(FrameError::Kind(9)));
        assert_eq!(
            Frame::decode(vec![1, 0, 0, 0, 0, 0xff]),
            Err(FrameError::Text)
        );
        assert_eq!(
            Frame::decode(vec![5, 0, 0, 0, 0, 1]),
            Err(FrameError::Window(1))
        );
    }
}

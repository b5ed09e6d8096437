//! Many TCP connections inside one tunnel.
//!
//! Each tunnel message is one frame: `kind:u8 stream:u32be payload`. The proxy opens streams
//! (`OPEN` with the target as `host:port`, resolved by the gateway so DNS does not leak beside
//! the tunnel), both sides send `DATA`, `FIN` half-closes a direction and `RESET` aborts a
//! stream. Because every connection rides the same shaped tunnel, an eavesdropper sees one
//! flow whose shape is the schedule's, however many connections the device opens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::aio::MessageSender;

/// Bytes of local TCP data per `DATA` frame.
pub const DATA_CHUNK_BYTES: usize = 16 * 1024;
/// Frames that may wait for one stream before the tunnel's reader waits for it.
const STREAM_BACKLOG: usize = 64;

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
}

const OPEN: u8 = 1;
const DATA: u8 = 2;
const FIN: u8 = 3;
const RESET: u8 = 4;

impl Frame {
    /// The frame as a tunnel message.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, stream, payload): (u8, u32, &[u8]) = match self {
            Frame::Open { stream, target } => (OPEN, *stream, target.as_bytes()),
            Frame::Data { stream, data } => (DATA, *stream, data),
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
            | Frame::Fin { stream }
            | Frame::Reset { stream, .. } => *stream,
        }
    }
}

/// What the tunnel delivers to one stream.
#[derive(Debug)]
pub(crate) enum Inbound {
    Data(Vec<u8>),
    Fin,
    Reset,
}

/// The open streams of one tunnel, by id.
#[derive(Clone, Default)]
pub(crate) struct Streams {
    inner: Arc<Mutex<HashMap<u32, mpsc::Sender<Inbound>>>>,
}

impl Streams {
    /// Register a stream; returns the receiving end of its inbound frames.
    pub fn open(&self, id: u32) -> mpsc::Receiver<Inbound> {
        let (tx, rx) = mpsc::channel(STREAM_BACKLOG);
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        rx
    }

    pub fn remove(&self, id: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Hand a frame to its stream; false if the stream is unknown or gone.
    pub async fn deliver(&self, id: u32, inbound: Inbound) -> bool {
        let tx = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        match tx {
            Some(tx) => tx.send(inbound).await.is_ok(),
            None => false,
        }
    }

    /// Reset every stream (the tunnel is gone).
    pub fn reset_all(&self) {
        let all: Vec<_> = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, tx) in all {
            let _ = tx.try_send(Inbound::Reset);
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
}

/// Relay between a TCP connection and stream `id` of a tunnel until both directions end.
pub(crate) async fn splice(
    tcp: TcpStream,
    id: u32,
    mut inbound: mpsc::Receiver<Inbound>,
    sender: MessageSender,
    streams: Streams,
) -> SpliceBytes {
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    // A reset from the tunnel aborts the local read side as well.
    let (abort_tx, mut abort_rx) = tokio::sync::oneshot::channel::<()>();
    let up = {
        let sender = sender.clone();
        async move {
            let mut buf = vec![0u8; DATA_CHUNK_BYTES];
            let mut total = 0u64;
            // The abort channel completes once: with Ok on a reset, with Err when the other
            // half ends cleanly. Never poll it again after that.
            let mut abort_pending = true;
            loop {
                let read = tokio::select! {
                    r = rd.read(&mut buf) => r,
                    a = &mut abort_rx, if abort_pending => {
                        abort_pending = false;
                        if a.is_ok() {
                            return (total, false);
                        }
                        continue;
                    }
                };
                match read {
                    Ok(0) => {
                        let _ = sender.send(Frame::Fin { stream: id }.encode()).await;
                        return (total, true);
                    }
                    Ok(n) => {
                        total += n as u64;
                        let frame = Frame::Data {
                            stream: id,
                            data: buf[..n].to_vec(),
                        };
                        if sender.send(frame.encode()).await.is_err() {
                            return (total, false);
                        }
                    }
                    Err(e) => {
                        let reason = format!("local read: {e}");
                        let _ = sender
                            .send(Frame::Reset { stream: id, reason }.encode())
                            .await;
                        return (total, false);
                    }
                }
            }
        }
    };
    let down = async move {
        let mut total = 0u64;
        while let Some(msg) = inbound.recv().await {
            match msg {
                Inbound::Data(d) => {
                    total += d.len() as u64;
                    if wr.write_all(&d).await.is_err() {
                        return (total, false);
                    }
                }
                Inbound::Fin => {
                    let _ = wr.shutdown().await;
                    return (total, true);
                }
                Inbound::Reset => {
                    let _ = abort_tx.send(());
                    return (total, false);
                }
            }
        }
        let _ = abort_tx.send(());
        (total, false)
    };
    let ((to_tunnel, up_clean), (from_tunnel, down_clean)) = tokio::join!(up, down);
    if !(up_clean && down_clean) {
        // One side failed: make sure the peer drops the stream too.
        let _ = sender
            .send(
                Frame::Reset {
                    stream: id,
                    reason: "stream aborted".into(),
                }
                .encode(),
            )
            .await;
    }
    streams.remove(id);
    SpliceBytes {
        to_tunnel,
        from_tunnel,
    }
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
    }
}

//! Running the sans-IO Noise handshake over a TCP stream, blocking or async.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hush_shape::{Handshake, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::NetError;

/// How long a peer may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The session, and bytes the peer sent after its last handshake message (its first records).
pub(crate) struct Established {
    pub session: Session,
    pub leftover: Vec<u8>,
}

fn hs_err(peer: &str) -> impl Fn(hush_shape::CryptoError) -> NetError + '_ {
    move |source| NetError::Handshake {
        peer: peer.to_string(),
        source,
    }
}

/// Blocking: the stream's read timeout bounds the whole exchange.
pub(crate) fn blocking(
    stream: &mut TcpStream,
    mut hs: Handshake,
    peer: &str,
) -> Result<Established, NetError> {
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(NetError::io(format!("{peer}: set timeout")))?;
    let mut buf = [0u8; 4096];
    let mut leftover = Vec::new();
    loop {
        if let Some(out) = hs.poll_output() {
            stream
                .write_all(&out)
                .map_err(NetError::io(format!("{peer}: handshake write")))?;
        }
        if hs.is_finished() {
            break;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                return Err(NetError::Io {
                    context: format!("{peer}: handshake"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "peer closed the connection",
                    ),
                });
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NetError::HandshakeTimeout(peer.to_string()));
            }
            Err(e) => return Err(NetError::io(format!("{peer}: handshake read"))(e)),
        };
        let used = hs.handle_input(&buf[..n]).map_err(hs_err(peer))?;
        leftover.extend_from_slice(&buf[used..n]);
    }
    stream
        .set_read_timeout(None)
        .map_err(NetError::io(format!("{peer}: set timeout")))?;
    Ok(Established {
        session: hs.into_session().map_err(hs_err(peer))?,
        leftover,
    })
}

/// Async, bounded by [`HANDSHAKE_TIMEOUT`].
pub(crate) async fn tokio(
    stream: &mut tokio::net::TcpStream,
    hs: Handshake,
    peer: &str,
) -> Result<Established, NetError> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_inner(stream, hs, peer)).await {
        Ok(r) => r,
        Err(_) => Err(NetError::HandshakeTimeout(peer.to_string())),
    }
}

async fn tokio_inner(
    stream: &mut tokio::net::TcpStream,
    mut hs: Handshake,
    peer: &str,
) -> Result<Established, NetError> {
    let mut buf = [0u8; 4096];
    let mut leftover = Vec::new();
    loop {
        if let Some(out) = hs.poll_output() {
            stream
                .write_all(&out)
                .await
                .map_err(NetError::io(format!("{peer}: handshake write")))?;
        }
        if hs.is_finished() {
            break;
        }
        let n = stream
            .read(&mut buf)
            .await
            .map_err(NetError::io(format!("{peer}: handshake read")))?;
        if n == 0 {
            return Err(NetError::Io {
                context: format!("{peer}: handshake"),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "peer closed the connection",
                ),
            });
        }
        let used = hs.handle_input(&buf[..n]).map_err(hs_err(peer))?;
        leftover.extend_from_slice(&buf[used..n]);
    }
    Ok(Established {
        session: hs.into_session().map_err(hs_err(peer))?,
        leftover,
    })
}

//! Running the sans-IO Noise handshake over a TCP stream, blocking or async, with the OS's
//! entropy and clock.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_shape::{CryptoError, Handshake, Hello, Keypair, PublicKey, Session, Tai64N};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::NetError;

/// How long a peer may take to complete the handshake (the default of
/// [`crate::limits::Limits::handshake_timeout_s`]).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// 32 bytes from the operating system's CSPRNG.
pub fn os_entropy() -> Result<[u8; 32], NetError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(NetError::Entropy)?;
    Ok(b)
}

/// A new static key pair from the operating system's CSPRNG.
pub fn generate_keypair() -> Result<Keypair, NetError> {
    let mut private = zeroize::Zeroizing::new(os_entropy()?);
    let key = Keypair::from_private(*private);
    zeroize::Zeroize::zeroize(&mut *private);
    Ok(key)
}

/// The wall clock as a handshake timestamp (a clock before 1970 reads as 1970).
pub(crate) fn tai64n_now() -> Tai64N {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Tai64N::from_unix(d.as_secs(), d.subsec_nanos())
}

/// A new initiator handshake with a fresh timestamp and ephemeral key.
pub(crate) fn initiator(
    local: &Keypair,
    remote: &PublicKey,
    peer: &str,
) -> Result<Handshake, NetError> {
    Handshake::initiator(local, remote, tai64n_now(), os_entropy()?).map_err(hs_err(peer))
}

/// A new responder handshake with a fresh ephemeral key.
pub(crate) fn responder(
    local: &Keypair,
    allowed: Option<Vec<PublicKey>>,
    peer: &str,
) -> Result<Handshake, NetError> {
    Handshake::responder(local, allowed, os_entropy()?).map_err(hs_err(peer))
}

/// The session, and bytes the peer sent after its last handshake message (its first records).
pub(crate) struct Established {
    pub session: Session,
    pub leftover: Vec<u8>,
}

fn hs_err(peer: &str) -> impl Fn(CryptoError) -> NetError + '_ {
    move |source| NetError::Handshake {
        peer: peer.to_string(),
        source,
    }
}

/// What the initiator knows, to say why a responder closed without answering.
pub(crate) struct Expect {
    /// The responder's key we used.
    pub remote: PublicKey,
    /// Ours.
    pub local: PublicKey,
}

/// The peer closed during the handshake: for an initiator that usually means a wrong responder
/// key (the responder cannot read our first message) or a key it does not allow.
fn closed(peer: &str, expect: Option<&Expect>) -> NetError {
    match expect {
        Some(e) => NetError::NoAnswer {
            peer: peer.to_string(),
            gateway_key: e.remote,
            device_key: e.local,
        },
        None => NetError::Io {
            context: format!("{peer}: handshake"),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            ),
        },
    }
}

/// Feed bytes; answer a first message once `check` accepts it. Returns bytes used.
fn feed(
    hs: &mut Handshake,
    bytes: &[u8],
    peer: &str,
    check: &mut dyn FnMut(Hello) -> Result<(), NetError>,
) -> Result<usize, NetError> {
    let used = hs.handle_input(bytes).map_err(hs_err(peer))?;
    if let Some(hello) = hs.hello() {
        check(hello)?;
        hs.respond().map_err(hs_err(peer))?;
    }
    Ok(used)
}

/// Blocking: `timeout` bounds each read.
pub(crate) fn blocking(
    stream: &mut TcpStream,
    mut hs: Handshake,
    peer: &str,
    expect: Option<&Expect>,
    check: &mut dyn FnMut(Hello) -> Result<(), NetError>,
    timeout: Duration,
) -> Result<Established, NetError> {
    stream
        .set_read_timeout(Some(timeout))
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
            Ok(0) => return Err(closed(peer, expect)),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NetError::HandshakeTimeout(peer.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && expect.is_some() => {
                return Err(closed(peer, expect));
            }
            Err(e) => return Err(NetError::io(format!("{peer}: handshake read"))(e)),
        };
        let used = feed(&mut hs, &buf[..n], peer, check)?;
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

/// Async, bounded by `timeout`.
pub(crate) async fn tokio(
    stream: &mut tokio::net::TcpStream,
    hs: Handshake,
    peer: &str,
    expect: Option<&Expect>,
    check: &mut (dyn FnMut(Hello) -> Result<(), NetError> + Send),
    timeout: Duration,
) -> Result<Established, NetError> {
    match tokio::time::timeout(timeout, tokio_inner(stream, hs, peer, expect, check)).await {
        Ok(r) => r,
        Err(_) => Err(NetError::HandshakeTimeout(peer.to_string())),
    }
}

async fn tokio_inner(
    stream: &mut tokio::net::TcpStream,
    mut hs: Handshake,
    peer: &str,
    expect: Option<&Expect>,
    check: &mut (dyn FnMut(Hello) -> Result<(), NetError> + Send),
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
        let n = match stream.read(&mut buf).await {
            Ok(0) => return Err(closed(peer, expect)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && expect.is_some() => {
                return Err(closed(peer, expect));
            }
            Err(e) => return Err(NetError::io(format!("{peer}: handshake read"))(e)),
        };
        let used = feed(&mut hs, &buf[..n], peer, check)?;
        leftover.extend_from_slice(&buf[used..n]);
    }
    Ok(Established {
        session: hs.into_session().map_err(hs_err(peer))?,
        leftover,
    })
}

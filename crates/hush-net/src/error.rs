//! Errors of the live drivers.

use std::io;
use std::path::PathBuf;

use hush_shape::{CryptoError, DistError, PublicKey, RecvError, SendError};

/// What went wrong on a live connection, or in its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A socket operation failed (`context` says which; the cause is the error's source, so
    /// reporters such as anyhow print it once).
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The handshake failed: wrong keys, an unknown peer, or not a hush peer at all.
    #[error("handshake with {peer}")]
    Handshake {
        /// The address.
        peer: String,
        /// Why.
        #[source]
        source: CryptoError,
    },
    /// A key could not be made or read.
    #[error(transparent)]
    Key(#[from] CryptoError),
    /// The handshake did not finish in time.
    #[error("handshake with {0} timed out")]
    HandshakeTimeout(String),
    /// The responder closed without answering our first handshake message: it could not read
    /// it (its key is not the one we have) or it does not allow our key.
    #[error(
        "{peer} closed the connection without answering the handshake: its public key is not \
         {gateway_key} (check the gateway key: `hush pubkey` of its key file), or it does not \
         allow this device's key {device_key}"
    )]
    NoAnswer {
        /// The address.
        peer: String,
        /// The key we expected it to have.
        gateway_key: PublicKey,
        /// Our key.
        device_key: PublicKey,
    },
    /// A first handshake message whose timestamp is not newer than one already accepted from
    /// that peer: a replay (or a peer whose clock went back). It got no answer.
    #[error("handshake from {peer}: replayed or out-of-date timestamp for key {key}; not answered")]
    Replay {
        /// The address.
        peer: String,
        /// The key the message claimed.
        key: PublicKey,
    },
    /// The peer completed the handshake but sent no authenticated record in time.
    #[error("{0} sent no record after the handshake; closed without sending anything")]
    NoFirstRecord(String),
    /// No record from the peer for the idle timeout.
    #[error("no record from the peer for {0:.0} s (idle timeout)")]
    Idle(f64),
    /// The peer sent a tunnel message that is not a frame.
    #[error("the peer sent a bad tunnel frame")]
    Frame(#[from] crate::mux::FrameError),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Entropy(#[source] getrandom::Error),
    /// The peer's byte stream failed authentication or ended without a close.
    #[error(transparent)]
    Recv(#[from] RecvError),
    /// The shaper refused a message.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The connection's driver has stopped (after an error or a close).
    #[error("the connection is closed")]
    Closed,
    /// A configuration value is wrong (bad input: the CLI exits 2).
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}", path.display())]
    File {
        /// Which.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl NetError {
    /// Say more about where an I/O error happened (`connect` becomes `connect to gateway X`).
    pub fn context(self, more: impl std::fmt::Display) -> NetError {
        match self {
            NetError::Io { context, source } => NetError::Io {
                context: format!("{context} {more}"),
                source,
            },
            other => other,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
        let context = context.into();
        move |source| NetError::Io { context, source }
    }

    /// Whether this is a problem with the user's input (configuration, keys, files), not a
    /// failure of the network or of hush.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, NetError::Config(_) | NetError::File { .. })
    }
}

impl From<DistError> for NetError {
    fn from(e: DistError) -> Self {
        NetError::Config(e.0)
    }
}

/// An error and its chain of sources on one line: `handshake with 10.0.0.2:5000: peer ... is not
/// allowed`. For logs; the CLI gets the same from anyhow's `{:#}`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

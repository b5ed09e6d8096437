//! Keys, the Noise handshake (sans-IO) and the per-direction record ciphers.
//!
//! hush uses **Noise IK** (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, via the `snow` crate) rather than
//! TLS. A shaping tunnel runs between two parties that are configured in advance (a device or
//! its proxy and the gateway it pays for), so static X25519 keys, printable in one line like
//! WireGuard's, fit better than certificates; IK authenticates both ends in one round trip and
//! hides the device's identity from eavesdroppers; and a Noise transport message is exactly
//! `plaintext + 16` bytes, so the engine can make every record precisely the size its schedule
//! drew. TLS 1.3 would add its own record header and content-type byte, choose record
//! boundaries itself, and need a PKI or pinned self-signed certificates.
//!
//! After the handshake each direction has its own key and a record counter used as the nonce, so
//! a record that is replayed, dropped, reordered or altered fails authentication.
//!
//! This module reads no clock and no entropy source (hush-shape is sans-IO): the caller passes the
//! 32 random bytes of a new static key ([`Keypair::from_private`]), 32 bytes that seed the
//! handshake's ephemeral key (a ChaCha12 CSPRNG), and the initiator's [`Tai64N`] timestamp. The
//! live drivers take all three from the operating system; seeds that decide the *shape* of
//! traffic never feed key material.
//!
//! **Replay.** The initiator's first message carries its timestamp, encrypted and authenticated
//! with the initiator's static key. The responder reads it before answering
//! ([`Handshake::hello`]); a caller that keeps the greatest timestamp seen per peer (as
//! WireGuard does) answers no replayed first message. [`Handshake::respond`] then writes the
//! answer.
//!
//! **Secrets in memory.** [`Keypair`] and [`Session`] are not `Clone`, and a key pair zeroes its
//! private key when dropped. The copies that snow and ring keep inside their handshake and cipher
//! states are theirs: neither crate zeroes on drop.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::{Rng as _, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use zeroize::{Zeroize, Zeroizing};

use crate::frame::{LENGTH_PREFIX_BYTES, TAG_BYTES};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake hash: both ends must speak this version of hush's record format.
const PROLOGUE: &[u8] = b"hush/1 records";
/// Largest handshake message we accept (IK messages are 108 and 48 bytes).
const MAX_HANDSHAKE_BYTES: usize = 1024;
/// Bytes of the initiator's first-message payload: its [`Tai64N`] timestamp.
const HELLO_PAYLOAD_BYTES: usize = Tai64N::BYTES;

/// Errors from keys and handshakes.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A key in text form that is not 32 bytes of base64.
    #[error("not a hush key: expected 44 characters of base64 (32 bytes), got {0:?}")]
    BadKey(String),
    /// The peer's static key is not on the allow list.
    #[error("peer {0} is not allowed")]
    UnknownPeer(PublicKey),
    /// A handshake message longer than any valid one.
    #[error("handshake message of {0} bytes is too long (at most {MAX_HANDSHAKE_BYTES})")]
    Oversize(usize),
    /// The Noise library rejected a message or a key (wrong peer key, corrupted message).
    #[error("the Noise handshake failed")]
    Noise(#[from] snow::Error),
    /// `into_session` before the handshake finished.
    #[error("the handshake has not finished")]
    NotFinished,
    /// The initiator's first message carries no valid timestamp (an old or foreign client).
    #[error("the first handshake message carries no timestamp (a hush/1 peer of another version?)")]
    NoTimestamp,
    /// [`Handshake::respond`] on a handshake that has no first message to answer.
    #[error("no first handshake message to answer")]
    NothingToAnswer,
}

/// An X25519 public key: who a peer is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    /// Base64, 44 characters, as WireGuard prints keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_key(s).map(PublicKey)
    }
}

fn decode_key(s: &str) -> Result<[u8; 32], CryptoError> {
    let s = s.trim();
    BASE64
        .decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| CryptoError::BadKey(s.chars().take(60).collect()))
}

/// A static X25519 key pair. Not `Clone` (share it behind an `Arc`); the private key is zeroed on
/// drop and never printed by `Debug`.
pub struct Keypair {
    private: [u8; 32],
    public: PublicKey,
}

impl Drop for Keypair {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ public: {} }}", self.public)
    }
}

/// snow's primitives with the caller's randomness: ring's ChaCha20-Poly1305 (assembly; 8x faster
/// on small records than the pure-Rust crate's runtime-dispatched SIMD), the default resolver's
/// X25519 and BLAKE2s, and a ChaCha12 generator seeded by the caller for the ephemeral key, so
/// no OS entropy source is reached from here.
struct Resolver {
    entropy: Zeroizing<[u8; 32]>,
}

/// The handshake's CSPRNG (snow asks for it once per handshake, for the ephemeral key).
struct SeededRandom(rand::rngs::StdRng);

impl snow::types::Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(SeededRandom(rand::rngs::StdRng::from_seed(
            *self.entropy,
        ))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        RingResolver
            .resolve_hash(choice)
            .or_else(|| DefaultResolver.resolve_hash(choice))
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn snow::types::Cipher>> {
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

fn builder<'a>(entropy: [u8; 32]) -> Result<snow::Builder<'a>, CryptoError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let resolver = Resolver {
        entropy: Zeroizing::new(entropy),
    };
    Ok(snow::Builder::with_resolver(params, Box::new(resolver)))
}

fn dh() -> Box<dyn snow::types::Dh> {
    let choice = snow::params::DHChoice::Curve25519;
    // The default resolver always has Curve25519 with the features this crate enables.
    DefaultResolver
        .resolve_dh(&choice)
        .expect("bug: snow's default resolver lacks Curve25519")
}

impl Keypair {
    /// The key pair of a private key. Any 32 bytes are a valid X25519 private key, so a new key
    /// is 32 bytes from a CSPRNG (hush-net's `generate_keypair` reads the operating system's).
    pub fn from_private(private: [u8; 32]) -> Keypair {
        let mut d = dh();
        d.set(&private);
        let mut public = [0u8; 32];
        public.copy_from_slice(d.pubkey());
        Keypair {
            private,
            public: PublicKey(public),
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private key as base64 (what a key file holds); zeroed when dropped.
    pub fn private_to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.private))
    }

    /// Read a private key: base64, with blank lines and `#` comment lines ignored.
    pub fn from_text(text: &str) -> Result<Keypair, CryptoError> {
        let body: Zeroizing<String> = Zeroizing::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect(),
        );
        let s = body.trim();
        let bytes = Zeroizing::new(BASE64.decode(s).ok());
        let private = bytes
            .as_deref()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            // Never echo a private key: say how long it was instead.
            .ok_or_else(|| CryptoError::BadKey(format!("{} characters", s.chars().count())))?;
        Ok(Keypair::from_private(private))
    }

    /// The contents of a key file: a comment with the public key, then the private key; zeroed
    /// when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# hush private key: keep this file secret.\n# public key: {}\n{}\n",
            self.public,
            *self.private_to_base64()
        ))
    }
}

/// A TAI64N timestamp (WireGuard's handshake timestamp): 8 bytes of seconds since 1970 plus
/// 2^62 + 10, then 4 bytes of nanoseconds, both big-endian, so byte order is time order. The
/// caller reads the clock ([`Tai64N::from_unix`]); hush-shape never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tai64N([u8; 12]);

impl Tai64N {
    /// Bytes on the wire.
    pub const BYTES: usize = 12;
    /// The earliest timestamp (a peer never seen before is older than any real one).
    pub const ZERO: Tai64N = Tai64N([0; 12]);

    /// From seconds and nanoseconds since the Unix epoch. Nanoseconds are rounded down to a
    /// multiple of 2^24 (~17 ms), as WireGuard does, so the timestamp does not fingerprint the
    /// sender's clock more finely than needed to order its handshakes.
    pub fn from_unix(secs: u64, nanos: u32) -> Tai64N {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&(secs.wrapping_add((1 << 62) + 10)).to_be_bytes());
        b[8..].copy_from_slice(&(nanos.min(999_999_999) & !0x00ff_ffff).to_be_bytes());
        Tai64N(b)
    }

    /// The wire form.
    pub fn to_bytes(self) -> [u8; 12] {
        self.0
    }

    /// From the wire form.
    pub fn from_bytes(b: [u8; 12]) -> Tai64N {
        Tai64N(b)
    }
}

/// Which end of a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connects and knows the responder's public key (the device or proxy).
    Initiator,
    /// Accepts (the gateway or receiver).
    Responder,
}

/// A sans-IO Noise IK handshake. Feed it bytes from the peer with [`Handshake::handle_input`],
/// send what [`Handshake::poll_output`] returns, then turn it into a [`Session`].
///
/// Messages on the wire are framed like records (a 2-byte length prefix), so a driver can hand it
/// whatever the socket returned: bytes past the end of the handshake are left unconsumed for the
/// record receiver.
pub struct Handshake {
    state: Box<snow::HandshakeState>,
    role: Role,
    allowed: Option<Vec<PublicKey>>,
    input: Vec<u8>,
    output: Option<Vec<u8>>,
    /// The responder's view of a first message it read and has not answered yet.
    hello: Option<Hello>,
}

/// What a responder learned from a valid first message, before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The initiator's static key (authenticated by the message).
    pub peer: PublicKey,
    /// The initiator's timestamp (authenticated by the message).
    pub timestamp: Tai64N,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Handshake {
    /// Start as the initiator: `local` is our key, `remote` the responder's public key, `now`
    /// our clock (each handshake's timestamp must exceed the last one the responder accepted
    /// from us), `entropy` 32 bytes from a CSPRNG for the ephemeral key. The first message is
    /// ready in [`Handshake::poll_output`] at once.
    pub fn initiator(
        local: &Keypair,
        remote: &PublicKey,
        now: Tai64N,
        entropy: [u8; 32],
    ) -> Result<Handshake, CryptoError> {
        let mut state = builder(entropy)?
            .local_private_key(&local.private)?
            .remote_public_key(&remote.0)?
            .prologue(PROLOGUE)?
            .build_initiator()?;
        let output = Some(write_framed(&mut state, &now.to_bytes())?);
        Ok(Handshake {
            state: Box::new(state),
            role: Role::Initiator,
            allowed: None,
            input: Vec::new(),
            output,
            hello: None,
        })
    }

    /// Start as the responder, with 32 bytes from a CSPRNG for the ephemeral key. With
    /// `allowed`, only initiators whose static key is listed get past the first message; `None`
    /// accepts any key. After a valid first message, [`Handshake::hello`] tells who sent it and
    /// when, and nothing is sent until the caller calls [`Handshake::respond`].
    pub fn responder(
        local: &Keypair,
        allowed: Option<Vec<PublicKey>>,
        entropy: [u8; 32],
    ) -> Result<Handshake, CryptoError> {
        let state = builder(entropy)?
            .local_private_key(&local.private)?
            .prologue(PROLOGUE)?
            .build_responder()?;
        Ok(Handshake {
            state: Box::new(state),
            role: Role::Responder,
            allowed,
            input: Vec::new(),
            output: None,
            hello: None,
        })
    }

    /// The responder's view of the initiator's valid first message, until it is answered.
    pub fn hello(&self) -> Option<Hello> {
        self.hello
    }

    /// Answer the first message (after checking [`Handshake::hello`], e.g. its timestamp against
    /// the greatest seen from that peer): the answer is then in [`Handshake::poll_output`] and the
    /// handshake is finished.
    pub fn respond(&mut self) -> Result<(), CryptoError> {
        if self.role != Role::Responder || self.hello.take().is_none() {
            return Err(CryptoError::NothingToAnswer);
        }
        self.output = Some(write_framed(&mut self.state, &[])?);
        Ok(())
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Consume bytes from the peer; returns how many were handshake bytes. Once the handshake is
    /// finished (or, for the responder, a first message waits for [`Handshake::respond`]) it
    /// consumes nothing, and the rest of `bytes` belongs to the record stream.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<usize, CryptoError> {
        let mut used = 0;
        while !self.is_finished() && !self.state.is_my_turn() && used < bytes.len() {
            // Accumulate one framed message.
            let need = if self.input.len() < LENGTH_PREFIX_BYTES {
                LENGTH_PREFIX_BYTES - self.input.len()
            } else {
                let len = usize::from(u16::from_be_bytes([self.input[0], self.input[1]]));
                if len > MAX_HANDSHAKE_BYTES {
                    return Err(CryptoError::Oversize(len));
                }
                LENGTH_PREFIX_BYTES + len - self.input.len()
            };
            let take = need.min(bytes.len() - used);
            self.input.extend_from_slice(&bytes[used..used + take]);
            used += take;
            if self.input.len() >= LENGTH_PREFIX_BYTES {
                let len = usize::from(u16::from_be_bytes([self.input[0], self.input[1]]));
                if len > MAX_HANDSHAKE_BYTES {
                    return Err(CryptoError::Oversize(len));
                }
                if self.input.len() == LENGTH_PREFIX_BYTES + len {
                    let mut payload = [0u8; MAX_HANDSHAKE_BYTES];
                    let n = self
                        .state
                        .read_message(&self.input[LENGTH_PREFIX_BYTES..], &mut payload)?;
                    self.input.clear();
                    if self.role == Role::Responder {
                        let remote = self.remote().ok_or(CryptoError::NotFinished)?;
                        if let Some(allowed) = &self.allowed {
                            if !allowed.contains(&remote) {
                                return Err(CryptoError::UnknownPeer(remote));
                            }
                        }
                        let stamp = <[u8; HELLO_PAYLOAD_BYTES]>::try_from(&payload[..n])
                            .map_err(|_| CryptoError::NoTimestamp)?;
                        self.hello = Some(Hello {
                            peer: remote,
                            timestamp: Tai64N::from_bytes(stamp),
                        });
                    }
                }
            }
        }
        Ok(used)
    }

    /// The next handshake message to send, framed, if one is ready.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        self.output.take()
    }

    /// Whether both messages have been exchanged (for the responder: its answer is ready to send).
    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// The peer's static key, once known (the responder learns it from the first message).
    pub fn remote(&self) -> Option<PublicKey> {
        self.state
            .get_remote_static()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .map(PublicKey)
    }

    /// The transport session. Send any pending [`Handshake::poll_output`] first.
    pub fn into_session(self) -> Result<Session, CryptoError> {
        if !self.is_finished() {
            return Err(CryptoError::NotFinished);
        }
        let remote = self.remote();
        let transport = self.state.into_stateless_transport_mode()?;
        Ok(Session {
            transport: Transport::Noise(Arc::new(transport)),
            remote,
        })
    }
}

fn write_framed(state: &mut snow::HandshakeState, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; LENGTH_PREFIX_BYTES + MAX_HANDSHAKE_BYTES];
    let n = state.write_message(payload, &mut buf[LENGTH_PREFIX_BYTES..])?;
    // n ≤ MAX_HANDSHAKE_BYTES < 65536.
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&(n as u16).to_be_bytes());
    buf.truncate(LENGTH_PREFIX_BYTES + n);
    Ok(buf)
}

/// An established session: one key per direction, shared by the [`Sealer`] and [`Opener`] halves.
/// Not `Clone`: each session has one sealer and one opener, whose record counters are its nonces.
pub struct Session {
    transport: Transport,
    remote: Option<PublicKey>,
}

/// How records are protected.
#[derive(Clone)]
enum Transport {
    /// Noise transport keys.
    Noise(Arc<snow::StatelessTransportState>),
    /// No protection, same sizes: see [`Session::unencrypted_pair_for_simulation`].
    Plain,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote)
            .finish()
    }
}

impl Session {
    /// Two ends of a session made by a real handshake in memory, with keys derived from fixed
    /// public bytes: for the simulator and tests, where the records must be real but nothing is
    /// secret (anyone can derive these keys; never use them on a network).
    pub fn in_memory_pair() -> Result<(Session, Session), CryptoError> {
        Session::in_memory_pair_from([0x5e; 32])
    }

    /// [`Session::in_memory_pair`] with keys derived from `seed` (not secret either).
    pub fn in_memory_pair_from(seed: [u8; 32]) -> Result<(Session, Session), CryptoError> {
        let mut rng = rand::rngs::StdRng::from_seed(seed);
        let mut draw = || {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            b
        };
        let (a, b) = (Keypair::from_private(draw()), Keypair::from_private(draw()));
        let mut init = Handshake::initiator(&a, &b.public(), Tai64N::from_unix(1, 0), draw())?;
        let mut resp = Handshake::responder(&b, None, draw())?;
        while !(init.is_finished() && resp.is_finished()) {
            let mut progressed = false;
            if let Some(m) = init.poll_output() {
                resp.handle_input(&m)?;
                if resp.hello().is_some() {
                    resp.respond()?;
                }
                progressed = true;
            }
            if let Some(m) = resp.poll_output() {
                init.handle_input(&m)?;
                progressed = true;
            }
            if !progressed {
                return Err(CryptoError::NotFinished);
            }
        }
        Ok((init.into_session()?, resp.into_session()?))
    }

    /// Two ends of a session whose records are **not encrypted**: the "tag" is 16 zero bytes, so
    /// every record has exactly the size and framing of a real one. For simulating defenses over
    /// recorded traffic, where the AEAD's cost (~0.2 µs a record) would dominate and nothing is
    /// secret; never for a network (hush-net only makes sessions from handshakes).
    pub fn unencrypted_pair_for_simulation() -> (Session, Session) {
        let s = || Session {
            transport: Transport::Plain,
            remote: None,
        };
        (s(), s())
    }

    /// Whether records are encrypted (false only for simulation sessions).
    pub fn is_encrypted(&self) -> bool {
        matches!(self.transport, Transport::Noise(_))
    }

    /// The peer's static key.
    pub fn remote(&self) -> Option<PublicKey> {
        self.remote
    }

    /// The sealing (outbound) and opening (inbound) halves, each with its own record counter.
    pub fn split(self) -> (Sealer, Opener) {
        (
            Sealer {
                transport: self.transport.clone(),
                nonce: 0,
            },
            Opener {
                transport: self.transport,
                nonce: 0,
            },
        )
    }
}

/// Seals outbound records; the nonce is the record number.
pub struct Sealer {
    transport: Transport,
    nonce: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Sealer {
    /// Encrypt `plain` into `out` (which must hold `plain.len() + 16` bytes); returns bytes written.
    pub fn seal(&mut self, plain: &[u8], out: &mut [u8]) -> usize {
        let n = match &self.transport {
            // The engine only builds records of at most MAX_RECORD_BYTES, so snow's length check
            // holds.
            Transport::Noise(t) => t
                .write_message(self.nonce, plain, out)
                .expect("bug: record larger than a Noise message"),
            Transport::Plain => {
                out[..plain.len()].copy_from_slice(plain);
                out[plain.len()..plain.len() + TAG_BYTES].fill(0);
                plain.len() + TAG_BYTES
            }
        };
        self.nonce += 1;
        debug_assert_eq!(n, plain.len() + TAG_BYTES);
        n
    }
}

impl Sealer {
    /// [`Sealer::seal`] appending the sealed bytes to `out` (no zero-filling of the output first:
    /// what the simulator's plaintext sessions spend most of their time on otherwise).
    pub fn seal_append(&mut self, plain: &[u8], out: &mut Vec<u8>) -> usize {
        match &self.transport {
            Transport::Plain => {
                out.extend_from_slice(plain);
                out.resize(out.len() + TAG_BYTES, 0);
                self.nonce += 1;
                plain.len() + TAG_BYTES
            }
            Transport::Noise(_) => {
                let start = out.len();
                out.resize(start + plain.len() + TAG_BYTES, 0);
                self.seal(plain, &mut out[start..])
            }
        }
    }
}

/// Opens inbound records in order; any failure is final for the session.
pub struct Opener {
    transport: Transport,
    nonce: u64,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Opener {
    /// Decrypt and authenticate `sealed` into `out`; `None` if it fails (tampered, replayed,
    /// reordered, from another session).
    pub fn open(&mut self, sealed: &[u8], out: &mut [u8]) -> Option<usize> {
        let n = match &self.transport {
            Transport::Noise(t) => t.read_message(self.nonce, sealed, out).ok()?,
            Transport::Plain => {
                // Zero "tags" at least catch a stream cut or shifted by a bug in a simulation.
                let n = sealed.len().checked_sub(TAG_BYTES)?;
                if sealed[n..].iter().any(|&b| b != 0) {
                    return None;
                }
                out[..n].copy_from_slice(&sealed[..n]);
                n
            }
        };
        self.nonce += 1;
        Some(n)
    }

    /// Records opened so far.
    pub fn records(&self) -> u64 {
        self.nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test keys and entropy: fixed bytes, distinct per `n`.
    fn key(n: u8) -> Keypair {
        Keypair::from_private([n; 32])
    }

    const T1: Tai64N = Tai64N([0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0]);

    #[test]
    fn keys_round_trip_as_text() {
        let kp = key(1);
        let back = Keypair::from_text(&kp.to_text()).unwrap();
        assert_eq!(back.public(), kp.public());
        assert_eq!(
            kp.public().to_string().parse::<PublicKey>().unwrap(),
            kp.public()
        );
        assert!(!format!("{kp:?}").contains(kp.private_to_base64().as_str()));
        assert!(matches!(
            "abc".parse::<PublicKey>(),
            Err(CryptoError::BadKey(_))
        ));
        // A bad private key file is named by its length, never echoed.
        let err = Keypair::from_text("c2VjcmV0\n").unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn handshake_in_one_chunk_leaves_trailing_bytes() {
        let (a, b) = (key(1), key(2));
        let mut init = Handshake::initiator(&a, &b.public(), T1, [7; 32]).unwrap();
        let mut resp = Handshake::responder(&b, Some(vec![a.public()]), [8; 32]).unwrap();
        let mut m1 = init.poll_output().unwrap();
        m1.extend_from_slice(b"tail");
        // Byte by byte, to check accumulation.
        let mut used = 0;
        for i in 0..m1.len() {
            used += resp.handle_input(&m1[i..=i]).unwrap();
        }
        assert_eq!(used, m1.len() - 4);
        assert_eq!(resp.remote(), Some(a.public()));
        // Nothing is sent until the caller has looked at the hello and answers.
        assert_eq!(
            resp.hello(),
            Some(Hello {
                peer: a.public(),
                timestamp: T1
            })
        );
        assert!(resp.poll_output().is_none());
        assert!(!resp.is_finished());
        resp.respond().unwrap();
        assert!(resp.respond().is_err(), "one answer only");
        let m2 = resp.poll_output().unwrap();
        assert_eq!(init.handle_input(&m2).unwrap(), m2.len());
        let (s1, s2) = (init.into_session().unwrap(), resp.into_session().unwrap());
        let ((mut seal, _), (_, mut open)) = (s1.split(), s2.split());
        let mut sealed = [0u8; 21];
        seal.seal(b"hello", &mut sealed);
        let mut out = [0u8; 5];
        assert_eq!(open.open(&sealed, &mut out), Some(5));
        assert_eq!(&out, b"hello");
        // Replaying the same record fails: the counter moved on.
        assert_eq!(open.open(&sealed, &mut out), None);
    }

    #[test]
    fn responder_rejects_unknown_and_wrong_keys() {
        let (a, b, c) = (key(1), key(2), key(3));
        let mut init = Handshake::initiator(&a, &b.public(), T1, [7; 32]).unwrap();
        let mut resp = Handshake::responder(&b, Some(vec![c.public()]), [8; 32]).unwrap();
        let m1 = init.poll_output().unwrap();
        assert!(
            matches!(resp.handle_input(&m1), Err(CryptoError::UnknownPeer(k)) if k == a.public())
        );
        // An initiator that has the wrong responder key cannot get through.
        let mut init = Handshake::initiator(&a, &c.public(), T1, [7; 32]).unwrap();
        let mut resp = Handshake::responder(&b, None, [8; 32]).unwrap();
        let m1 = init.poll_output().unwrap();
        assert!(matches!(resp.handle_input(&m1), Err(CryptoError::Noise(_))));
        let mut resp = Handshake::responder(&b, None, [8; 32]).unwrap();
        assert!(matches!(
            resp.handle_input(&[0xff, 0xff]),
            Err(CryptoError::Oversize(65535))
        ));
    }

    #[test]
    fn timestamps_order_like_time_and_hide_fine_clock_bits() {
        let a = Tai64N::from_unix(1_700_000_000, 5);
        let b = Tai64N::from_unix(1_700_000_000, 20_000_000);
        let c = Tai64N::from_unix(1_700_000_001, 0);
        assert!(Tai64N::ZERO < a && a < b && b < c);
        // Within one 2^24 ns step the timestamp does not change.
        assert_eq!(a, Tai64N::from_unix(1_700_000_000, 16_000_000));
        assert_eq!(Tai64N::from_bytes(c.to_bytes()), c);
    }

    #[test]
    fn the_ephemeral_key_comes_from_the_callers_entropy() {
        let (a, b) = (key(1), key(2));
        let m = |e: [u8; 32]| {
            Handshake::initiator(&a, &b.public(), T1, e)
                .unwrap()
                .poll_output()
                .unwrap()
        };
        assert_eq!(m([1; 32]), m([1; 32]), "same entropy, same message");
        assert_ne!(m([1; 32]), m([2; 32]), "other entropy, other ephemeral key");
    }
}

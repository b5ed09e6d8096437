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
//! a record that is replayed, dropped, reordered or altered fails authentication. Key material
//! comes from the operating system's CSPRNG, never from a user seed: seeds decide the shape of
//! traffic, not its secrecy.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use snow::resolvers::{CryptoResolver, DefaultResolver, FallbackResolver, RingResolver};

use crate::frame::{LENGTH_PREFIX_BYTES, TAG_BYTES};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake hash: both ends must speak this version of hush's record format.
const PROLOGUE: &[u8] = b"hush/1 records";
/// Largest handshake message we accept (IK messages are 96 and 48 bytes).
const MAX_HANDSHAKE_BYTES: usize = 1024;

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

/// A static X25519 key pair. `Debug` never prints the private half.
#[derive(Clone)]
pub struct Keypair {
    private: [u8; 32],
    public: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ public: {} }}", self.public)
    }
}

/// A Noise builder: ring's ChaCha20-Poly1305 (assembly; 8x faster on small records than the
/// pure-Rust crate's runtime-dispatched SIMD), the default resolver for X25519 and BLAKE2s.
fn builder<'a>() -> Result<snow::Builder<'a>, CryptoError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let resolver = FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver));
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
    /// A fresh key pair from the operating system's random source.
    pub fn generate() -> Result<Keypair, CryptoError> {
        let kp = builder()?.generate_keypair()?;
        let private: [u8; 32] = kp
            .private
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKey("generated".into()))?;
        Ok(Keypair::from_private(private))
    }

    /// The key pair of a private key.
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

    /// The private key as base64 (what a key file holds).
    pub fn private_to_base64(&self) -> String {
        BASE64.encode(self.private)
    }

    /// Read a private key: base64, with blank lines and `#` comment lines ignored.
    pub fn from_text(text: &str) -> Result<Keypair, CryptoError> {
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        decode_key(&body).map(Keypair::from_private)
    }

    /// The contents of a key file: a comment with the public key, then the private key.
    pub fn to_text(&self) -> String {
        format!(
            "# hush private key: keep this file secret.\n# public key: {}\n{}\n",
            self.public,
            self.private_to_base64()
        )
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
    /// Start as the initiator: `local` is our key, `remote` the responder's public key. The first
    /// message is ready in [`Handshake::poll_output`] at once.
    pub fn initiator(local: &Keypair, remote: &PublicKey) -> Result<Handshake, CryptoError> {
        let mut state = builder()?
            .local_private_key(&local.private)?
            .remote_public_key(&remote.0)?
            .prologue(PROLOGUE)?
            .build_initiator()?;
        let output = Some(write_framed(&mut state)?);
        Ok(Handshake {
            state: Box::new(state),
            role: Role::Initiator,
            allowed: None,
            input: Vec::new(),
            output,
        })
    }

    /// Start as the responder. With `allowed`, only initiators whose static key is listed get an
    /// answer; `None` accepts any key (the caller can still check [`Handshake::remote`]).
    pub fn responder(
        local: &Keypair,
        allowed: Option<Vec<PublicKey>>,
    ) -> Result<Handshake, CryptoError> {
        let state = builder()?
            .local_private_key(&local.private)?
            .prologue(PROLOGUE)?
            .build_responder()?;
        Ok(Handshake {
            state: Box::new(state),
            role: Role::Responder,
            allowed,
            input: Vec::new(),
            output: None,
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Consume bytes from the peer; returns how many were handshake bytes. Once the handshake is
    /// finished it consumes nothing, and the rest of `bytes` belongs to the record stream.
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
                    self.state
                        .read_message(&self.input[LENGTH_PREFIX_BYTES..], &mut payload)?;
                    self.input.clear();
                    if self.role == Role::Responder {
                        if let (Some(allowed), Some(remote)) = (&self.allowed, self.remote()) {
                            if !allowed.contains(&remote) {
                                return Err(CryptoError::UnknownPeer(remote));
                            }
                        }
                        self.output = Some(write_framed(&mut self.state)?);
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

fn write_framed(state: &mut snow::HandshakeState) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; LENGTH_PREFIX_BYTES + MAX_HANDSHAKE_BYTES];
    let n = state.write_message(&[], &mut buf[LENGTH_PREFIX_BYTES..])?;
    // n ≤ MAX_HANDSHAKE_BYTES < 65536.
    buf[..LENGTH_PREFIX_BYTES].copy_from_slice(&(n as u16).to_be_bytes());
    buf.truncate(LENGTH_PREFIX_BYTES + n);
    Ok(buf)
}

/// An established session: one key per direction, shared by the [`Sealer`] and [`Opener`] halves.
#[derive(Clone)]
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
    /// Two ends of a session made by a real handshake in memory, with fresh keys: for the
    /// simulator and tests, where the records must be real but nothing is secret.
    pub fn in_memory_pair() -> Result<(Session, Session), CryptoError> {
        let (a, b) = (Keypair::generate()?, Keypair::generate()?);
        let mut init = Handshake::initiator(&a, &b.public())?;
        let mut resp = Handshake::responder(&b, None)?;
        while !(init.is_finished() && resp.is_finished()) {
            let mut progressed = false;
            if let Some(m) = init.poll_output() {
                resp.handle_input(&m)?;
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
        let s = Session {
            transport: Transport::Plain,
            remote: None,
        };
        (s.clone(), s)
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

    #[test]
    fn keys_round_trip_as_text() {
        let kp = Keypair::generate().unwrap();
        let back = Keypair::from_text(&kp.to_text()).unwrap();
        assert_eq!(back.public(), kp.public());
        assert_eq!(
            kp.public().to_string().parse::<PublicKey>().unwrap(),
            kp.public()
        );
        assert!(!format!("{kp:?}").contains(&kp.private_to_base64()));
        assert!(matches!(
            "abc".parse::<PublicKey>(),
            Err(CryptoError::BadKey(_))
        ));
    }

    #[test]
    fn handshake_in_one_chunk_leaves_trailing_bytes() {
        let (a, b) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
        let mut init = Handshake::initiator(&a, &b.public()).unwrap();
        let mut resp = Handshake::responder(&b, Some(vec![a.public()])).unwrap();
        let mut m1 = init.poll_output().unwrap();
        m1.extend_from_slice(b"tail");
        // Byte by byte, to check accumulation.
        let mut used = 0;
        for i in 0..m1.len() {
            used += resp.handle_input(&m1[i..=i]).unwrap();
        }
        assert_eq!(used, m1.len() - 4);
        assert_eq!(resp.remote(), Some(a.public()));
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
        let (a, b, c) = (
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
            Keypair::generate().unwrap(),
        );
        let mut init = Handshake::initiator(&a, &b.public()).unwrap();
        let mut resp = Handshake::responder(&b, Some(vec![c.public()])).unwrap();
        let m1 = init.poll_output().unwrap();
        assert!(
            matches!(resp.handle_input(&m1), Err(CryptoError::UnknownPeer(k)) if k == a.public())
        );
        // An initiator that has the wrong responder key cannot get through.
        let mut init = Handshake::initiator(&a, &c.public()).unwrap();
        let mut resp = Handshake::responder(&b, None).unwrap();
        let m1 = init.poll_output().unwrap();
        assert!(matches!(resp.handle_input(&m1), Err(CryptoError::Noise(_))));
        let mut resp = Handshake::responder(&b, None).unwrap();
        assert!(matches!(
            resp.handle_input(&[0xff, 0xff]),
            Err(CryptoError::Oversize(65535))
        ));
    }
}

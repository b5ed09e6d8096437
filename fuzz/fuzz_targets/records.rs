//! A hostile but authenticated peer: arbitrary plaintext records, properly sealed, through the
//! record receiver in arbitrary chunks. The AEAD keeps unauthenticated bytes out, so this is
//! where a bug in header, varint or reassembly parsing would show.
#![no_main]

use std::sync::OnceLock;

use hush_shape::Session;
use libfuzzer_sys::fuzz_target;

// One handshake for the whole run: each input gets fresh halves of a cloned session.
fn session() -> &'static (Session, Session) {
    static S: OnceLock<(Session, Session)> = OnceLock::new();
    S.get_or_init(|| Session::in_memory_pair().expect("in-memory handshake"))
}

fuzz_target!(|data: &[u8]| {
    // Input: records separated by 0xff 0x00; the first byte of each is a chunk size for feeding.
    let (a, b) = session().clone();
    let (mut sealer, _) = a.split();
    let (_, opener) = b.split();
    let mut rx = hush_shape::Receiver::new(opener, 1 << 20);
    let mut stream = Vec::new();
    for plain in data.split(|&x| x == 0xfe).take(64) {
        let plain = &plain[..plain.len().min(65_000)];
        let mut rec = vec![0u8; 2 + plain.len() + 16];
        rec[..2].copy_from_slice(&((plain.len() + 16) as u16).to_be_bytes());
        sealer.seal(plain, &mut rec[2..]);
        stream.extend_from_slice(&rec);
    }
    let chunk = usize::from(data.first().copied().unwrap_or(7)).max(1);
    let mut delivered = 0usize;
    for piece in stream.chunks(chunk) {
        let r = rx.receive(piece);
        while let Some(m) = rx.poll_message() {
            delivered += m.len();
        }
        if r.is_err() {
            assert!(rx.receive(piece).is_err(), "errors are final");
            break;
        }
    }
    assert!(delivered <= data.len());
    let _ = rx.finish();
});

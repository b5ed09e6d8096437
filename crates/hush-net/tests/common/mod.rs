//! A passive observer between two hush peers on loopback: it forwards bytes both ways, counts
//! them, and timestamps every frame (handshake message or record) of the client's direction as
//! an eavesdropper on the path would see it. It can also inject faults.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// What the observer does to the client → server stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Forward this many bytes of the stream, then reset both connections.
    CutAfter(usize),
    /// Flip one bit of the stream byte at this offset.
    FlipBit(usize),
    /// Send record number `n` (counting the handshake message as frame 0) twice.
    Replay(usize),
}

#[derive(Default, Debug)]
pub struct Observed {
    /// (arrival time, frame length including its 2-byte prefix), client → server.
    pub frames: Vec<(Instant, usize)>,
    pub client_to_server_bytes: u64,
    pub server_to_client_bytes: u64,
}

pub struct Observer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Observed>>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Listen on loopback; the first client is relayed to `server`.
    pub fn start(server: SocketAddr, fault: Fault) -> Observer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Observed::default()));
        let seen2 = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let (client, _) = listener.accept().unwrap();
            let upstream = TcpStream::connect(server).unwrap();
            client.set_nodelay(true).unwrap();
            upstream.set_nodelay(true).unwrap();
            let back = {
                let (mut from, mut to) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                let seen = Arc::clone(&seen2);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = to.shutdown(Shutdown::Write);
                                return;
                            }
                            Ok(n) => {
                                seen.lock().unwrap().server_to_client_bytes += n as u64;
                                if to.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                })
            };
            forward_frames(client, upstream, &seen2, fault);
            let _ = back.join();
        });
        Observer {
            addr,
            seen,
            thread: Some(thread),
        }
    }

    pub fn join(mut self) -> Observed {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn forward_frames(mut from: TcpStream, mut to: TcpStream, seen: &Mutex<Observed>, fault: Fault) {
    let mut buf = [0u8; 65536];
    let mut offset = 0usize;
    // Frame parser state: bytes of the current frame seen, and its total length once known.
    let mut frame: Vec<u8> = Vec::new();
    let mut frame_index = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let now = Instant::now();
        let mut chunk = buf[..n].to_vec();
        if let Fault::FlipBit(at) = fault {
            if (offset..offset + n).contains(&at) {
                chunk[at - offset] ^= 0x04;
            }
        }
        if let Fault::CutAfter(limit) = fault {
            if offset + n >= limit {
                let keep = limit - offset;
                let _ = to.write_all(&chunk[..keep]);
                seen.lock().unwrap().client_to_server_bytes += keep as u64;
                // An abrupt end: both directions closed without a close record.
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
        offset += n;
        // Forward every byte at once; the parser only watches (and, for Replay, repeats a frame
        // right after itself).
        let mut out = Vec::with_capacity(chunk.len());
        for &b in &chunk {
            out.push(b);
            frame.push(b);
            if frame.len() >= 2 {
                let len = 2 + usize::from(u16::from_be_bytes([frame[0], frame[1]]));
                if frame.len() == len {
                    if fault == Fault::Replay(frame_index) {
                        out.extend_from_slice(&frame);
                    }
                    seen.lock().unwrap().frames.push((now, len));
                    frame.clear();
                    frame_index += 1;
                }
            }
        }
        seen.lock().unwrap().client_to_server_bytes += out.len() as u64;
        if to.write_all(&out).is_err() {
            return;
        }
    }
}

/// Two-sample Kolmogorov–Smirnov statistic.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// One-sample KS statistic against a CDF.
pub fn ks_one_sample(xs: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// The KS critical value at significance 0.01 for sample sizes n and m (m = None: one-sample).
pub fn ks_critical_01(n: usize, m: Option<usize>) -> f64 {
    let c = 1.628; // sqrt(-ln(0.005) / 2)
    match m {
        None => c / (n as f64).sqrt(),
        Some(m) => c * ((n + m) as f64 / (n * m) as f64).sqrt(),
    }
}
pub mod daemons;

/// A copy of a key pair (keys are not `Clone`; tests hand one to each end).
pub fn dup(k: &hush_shape::Keypair) -> hush_shape::Keypair {
    hush_shape::Keypair::from_text(&k.to_text()).unwrap()
}

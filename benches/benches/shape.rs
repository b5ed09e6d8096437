//! Micro-benchmarks of the shaping engine: what one record costs to build and seal
//! (`Shaper::poll_transmit`) and to open and reassemble (`Receiver::receive`), engine and
//! ChaCha20-Poly1305 together, with no socket and no clock.
//!
//! Each iteration handles [`RECORDS`] = 1000 records, so **the time column in µs reads as ns per
//! record**; the item and byte counters give records/s and wire bytes/s. The cases:
//!
//! - `cover_150B`: 150-byte records every 50 ms (Datta et al.'s low-latency schedule) with nothing
//!   queued, so every record is cover;
//! - `data_150B`, `data_1400B`, `data_16KiB`: the same constant schedule with that record size and
//!   4 KiB messages queued (the `pad` policy), so every record is full of data;
//! - `unshaped_64KiB`: the `unshaped` schedule (`immediate` policy) with 64 KiB messages queued, the
//!   largest records the format allows (65,537 bytes): the engine side of `net_bench throughput`.
//!
//! `poll_transmit` is called at each slot's own time (`poll_timeout`), so no record is late. The
//! queued data is copied in before the timed loop; `receive` gets one record per call, as if
//! each socket read returned exactly one record, and drains the messages it completes. Each
//! iteration starts from a fresh shaper or receiver (schedule seed 0) over the same in-memory
//! Noise session; the session keys come from the OS, which does not change the cost.
//! Run: `cargo bench -p hush-benches --bench shape`.

use std::fmt;
use std::sync::LazyLock;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use hush_shape::frame::{LENGTH_PREFIX_BYTES, TAG_BYTES};
use hush_shape::{Instant, Receiver, RecordKind, ScheduleSpec, Session, ShapeConfig, Shaper};

fn main() {
    // Make the session and the records before divan starts printing its table.
    LazyLock::force(&RECORDED);
    divan::main();
}

/// Records per iteration.
const RECORDS: usize = 1000;
/// The schedule seed of every shaper.
const SEED: u64 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Cover150,
    Data150,
    Data1400,
    Data16K,
    Unshaped64K,
}

const CASES: [Case; 5] = [
    Case::Cover150,
    Case::Data150,
    Case::Data1400,
    Case::Data16K,
    Case::Unshaped64K,
];

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Case::Cover150 => "cover_150B",
            Case::Data150 => "data_150B",
            Case::Data1400 => "data_1400B",
            Case::Data16K => "data_16KiB",
            Case::Unshaped64K => "unshaped_64KiB",
        })
    }
}

impl Case {
    fn config(self) -> ShapeConfig {
        let constant = |size_bytes| ScheduleSpec::Constant {
            gap_s: 0.05,
            size_bytes,
        };
        let mut config = ShapeConfig::new(match self {
            Case::Cover150 | Case::Data150 => constant(150),
            Case::Data1400 => constant(1400),
            Case::Data16K => constant(16 * 1024),
            Case::Unshaped64K => ScheduleSpec::Unshaped,
        });
        // Room for every record of an iteration to be queued up front.
        config.max_queue_bytes = 1 << 30;
        config
    }

    /// The size of the messages queued, if any.
    fn message_bytes(self) -> Option<usize> {
        match self {
            Case::Cover150 => None,
            Case::Data150 | Case::Data1400 | Case::Data16K => Some(4096),
            Case::Unshaped64K => Some(64 * 1024),
        }
    }

    fn kind(self) -> RecordKind {
        match self {
            Case::Cover150 => RecordKind::Cover,
            _ => RecordKind::Data,
        }
    }
}

/// Both ends of one session: the shapers seal with the first, the receivers open with the second.
/// Sessions are not `Clone` (their keys zeroize on drop), but the in-memory pair derives the same
/// keys every time, so each input makes a fresh pair outside the timing.
fn sessions() -> (Session, Session) {
    Session::in_memory_pair().expect("in-memory handshake")
}

/// What one iteration of each case puts on the wire, for `receive` and the byte counters.
static RECORDED: LazyLock<Vec<Vec<Vec<u8>>>> = LazyLock::new(|| {
    CASES
        .iter()
        .map(|&case| {
            let (mut shaper, mut buf) = shaper_with_queue(case);
            (0..RECORDS)
                .map(|_| {
                    let t = next_record(&mut shaper, &mut buf);
                    assert_eq!(t.kind, case.kind(), "{case}: wrong record kind");
                    assert_eq!(t.size_bytes as usize, buf.len());
                    buf.clone()
                })
                .collect()
        })
        .collect()
});

fn recorded(case: Case) -> &'static [Vec<u8>] {
    let i = CASES
        .iter()
        .position(|&c| c == case)
        .expect("a listed case");
    &RECORDED[i]
}

/// A fresh shaper (seed 0) with enough messages queued for [`RECORDS`] records, and its buffer.
fn shaper_with_queue(case: Case) -> (Shaper, Vec<u8>) {
    let config = case.config();
    let (sealer, _) = sessions().0.split();
    let mut shaper = Shaper::new(&config, sealer, SEED, Instant::ZERO).expect("valid config");
    if let Some(len) = case.message_bytes() {
        let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let capacity = match config.schedule {
            ScheduleSpec::Constant { size_bytes, .. } => size_bytes as usize,
            _ => 65_537,
        };
        for _ in 0..(RECORDS * capacity).div_ceil(len) + 1 {
            shaper
                .send(Instant::ZERO, &message)
                .expect("the queue has room");
        }
    }
    (shaper, Vec::new())
}

/// The next record, written into `buf` at its own slot time.
fn next_record(shaper: &mut Shaper, buf: &mut Vec<u8>) -> hush_shape::Transmit {
    let at = shaper.poll_timeout().expect("a record is always due");
    shaper
        .poll_transmit(at, buf)
        .expect("due at its own deadline")
}

fn wire_bytes(case: Case) -> usize {
    recorded(case).iter().map(Vec::len).sum()
}

#[divan::bench(args = CASES)]
fn poll_transmit(bencher: Bencher, case: Case) {
    bencher
        .counter(ItemsCount::new(RECORDS))
        .counter(BytesCount::new(wire_bytes(case)))
        .with_inputs(|| shaper_with_queue(case))
        .bench_local_values(|(mut shaper, mut buf)| {
            for _ in 0..RECORDS {
                let t = next_record(&mut shaper, &mut buf);
                divan::black_box((&t, &buf));
            }
            // Dropped outside the timing.
            (shaper, buf)
        });
}

#[divan::bench(args = CASES)]
fn receive(bencher: Bencher, case: Case) {
    let records = recorded(case);
    let max_message_bytes = case.config().max_message_bytes;
    bencher
        .counter(ItemsCount::new(RECORDS))
        .counter(BytesCount::new(wire_bytes(case)))
        .with_inputs(|| Receiver::new(sessions().1.split().1, max_message_bytes))
        .bench_local_values(|mut receiver| {
            for r in records {
                receiver.receive(divan::black_box(r)).expect("authentic");
                while let Some(m) = receiver.poll_message() {
                    divan::black_box(m);
                }
            }
            receiver
        });
}

/// The AEAD alone: `Sealer::seal` of each record's plaintext (the engine's share is the rest of
/// `poll_transmit`).
#[divan::bench(args = CASES)]
fn seal_only(bencher: Bencher, case: Case) {
    let sizes: Vec<usize> = recorded(case).iter().map(Vec::len).collect();
    let plain = vec![0u8; 65_535];
    bencher
        .counter(ItemsCount::new(RECORDS))
        .counter(BytesCount::new(wire_bytes(case)))
        .with_inputs(|| (sessions().0.split().0, vec![0u8; 65_537]))
        .bench_local_values(|(mut sealer, mut out)| {
            for &size in &sizes {
                let n = size - LENGTH_PREFIX_BYTES - TAG_BYTES;
                sealer.seal(divan::black_box(&plain[..n]), &mut out[..n + TAG_BYTES]);
            }
            (sealer, out)
        });
}

/// The AEAD alone: `Opener::open` of each record (the engine's share is the rest of `receive`).
#[divan::bench(args = CASES)]
fn open_only(bencher: Bencher, case: Case) {
    let records = recorded(case);
    bencher
        .counter(ItemsCount::new(RECORDS))
        .counter(BytesCount::new(wire_bytes(case)))
        .with_inputs(|| (sessions().1.split().1, vec![0u8; 65_535]))
        .bench_local_values(|(mut opener, mut out)| {
            for r in records {
                let sealed = &r[LENGTH_PREFIX_BYTES..];
                opener
                    .open(
                        divan::black_box(sealed),
                        &mut out[..sealed.len() - TAG_BYTES],
                    )
                    .expect("authentic");
            }
            (opener, out)
        });
}

//! The website-fingerprinting attackers (DF, its signed-size variant, Tik-Tok, k-FP) and the
//! ensemble on synthetic device traffic each of them must learn, with what each can and cannot
//! see; bad input refused clearly.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hush_attack::{Attack, AttackError, EvalOptions, evaluate};
use hush_trace::dataset::{Dataset, LabelledTrace};
use hush_trace::{Direction, Packet, Trace};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A class of synthetic device: its direction pattern, packet size and gap between packets.
#[derive(Clone, Copy)]
struct Device {
    /// Direction of packet `i` of `n`.
    pattern: fn(usize, usize) -> bool,
    size: u32,
    gap_s: f64,
}

fn burst(i: usize, n: usize) -> bool {
    i < n / 2
}
fn alternate(i: usize, _: usize) -> bool {
    i % 2 == 0
}
fn late(i: usize, n: usize) -> bool {
    i >= n / 4 && i < n / 3
}

/// `per_class` captures of each device: 48 packets, 5% of directions flipped, sizes ±10 bytes,
/// gaps ±20%, each capture its own group.
fn dataset(devices: &[Device], per_class: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = 48;
    let mut traces = Vec::new();
    for (c, d) in devices.iter().enumerate() {
        for k in 0..per_class {
            let mut t_s = 100.0;
            let packets = (0..n)
                .map(|i| {
                    t_s += d.gap_s * rng.random_range(0.8..1.2);
                    let out = (d.pattern)(i, n) != (rng.random::<f64>() < 0.05);
                    Packet {
                        t_ns: (t_s * 1e9) as i64,
                        frame_len: d.size + rng.random_range(0..20) - 10,
                        dir: if out {
                            Direction::Outbound
                        } else {
                            Direction::Inbound
                        },
                        ..Packet::default()
                    }
                })
                .collect();
            traces.push(LabelledTrace {
                label: format!("device{c}"),
                group: format!("device{c}-{k}"),
                trace: Trace {
                    name: format!("device{c}-{k}"),
                    packets,
                    endpoints: Vec::new(),
                    report: Default::default(),
                },
            });
        }
    }
    let labels = (0..devices.len()).map(|c| format!("device{c}")).collect();
    Dataset {
        traces,
        labels,
        report: Default::default(),
    }
}

fn accuracy(ds: &Dataset, name: &str) -> f64 {
    let attack = Attack::by_name(name).unwrap();
    let r = evaluate(
        ds,
        &attack,
        &EvalOptions {
            folds: 3,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.window.examples as usize, ds.traces.len(), "{name}");
    r.window.accuracy
}

const SAME_SIZE: u32 = 300;
const SAME_GAP_S: f64 = 0.05;

#[test]
fn every_attacker_learns_direction_patterns() {
    let devices = [burst, alternate, late].map(|pattern| Device {
        pattern,
        size: SAME_SIZE,
        gap_s: SAME_GAP_S,
    });
    let ds = dataset(&devices, 12, 1);
    for name in [
        "df:length=64",
        "df-size:length=64",
        "tiktok:length=64",
        "k-fp",
        "ensemble",
        "ensemble:members=flow-stats+k-fp+df,combine=weighted,df_length=64",
    ] {
        let acc = accuracy(&ds, name);
        // Tik-Tok sees directions only through the sign of its timing values.
        let bar = if name.starts_with("tiktok") {
            0.75
        } else {
            0.9
        };
        assert!(acc > bar, "{name}: {acc} (chance 0.33)");
    }
}

/// Two devices with the same directions and sizes, one sending every 20 ms, the other every
/// 200 ms: only timing tells them apart. Tik-Tok sees it; DF, over directions alone, cannot.
#[test]
fn tiktok_sees_timing_that_df_cannot() {
    let devices = [0.02, 0.2].map(|gap_s| Device {
        pattern: alternate,
        size: SAME_SIZE,
        gap_s,
    });
    let ds = dataset(&devices, 12, 2);
    let tiktok = accuracy(&ds, "tiktok:length=64");
    assert!(tiktok > 0.9, "tiktok {tiktok}");
    let df = accuracy(&ds, "df:length=64");
    assert!(df < 0.75, "df {df} on directions that do not differ");
    assert!(accuracy(&ds, "k-fp") > 0.9, "k-FP has timing features");
}

/// Two devices that differ only in packet size: DF over signed sizes sees it, DF over
/// directions does not.
#[test]
fn signed_sizes_see_what_directions_cannot() {
    let devices = [200, 900].map(|size| Device {
        pattern: burst,
        size,
        gap_s: SAME_GAP_S,
    });
    let ds = dataset(&devices, 12, 3);
    let sized = accuracy(&ds, "df-size:length=64");
    assert!(sized > 0.9, "df-size {sized}");
    let df = accuracy(&ds, "df:length=64");
    assert!(df < 0.75, "df {df} on directions that do not differ");
}

#[test]
fn same_seed_same_model_bytes() {
    let devices = [burst, alternate].map(|pattern| Device {
        pattern,
        size: SAME_SIZE,
        gap_s: SAME_GAP_S,
    });
    let ds = dataset(&devices, 6, 4);
    for name in [
        "df:length=32",
        "k-fp",
        "ensemble:members=k-fp+df,df_length=32",
    ] {
        let mut attack = Attack::by_name(name).unwrap();
        attack.set_max_epochs(2);
        let (data, _) = attack.dataset_of(&ds).unwrap();
        let a = attack.fit(&data, "t").unwrap().to_bytes().unwrap();
        assert_eq!(
            attack.fit(&data, "t").unwrap().to_bytes().unwrap(),
            a,
            "{name}"
        );
        attack.set_seed(9);
        assert_ne!(
            attack.fit(&data, "t").unwrap().to_bytes().unwrap(),
            a,
            "{name}"
        );
        // The spec round-trips through the model file, and predicting works from it.
        let model = attack.fit(&data, "t").unwrap();
        let again = Attack::by_name(&model.header.feature_set).unwrap();
        assert_eq!(again.spec(), attack.spec());
        let p = again.predict(&model, &ds.traces[0].trace).unwrap();
        assert_eq!(p.len(), 1);
        assert!(
            (p[0].iter().sum::<f32>() - 1.0).abs() < 1e-4,
            "{name}: {p:?}"
        );
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let devices = [burst, alternate].map(|pattern| Device {
        pattern,
        size: SAME_SIZE,
        gap_s: SAME_GAP_S,
    });
    let ds = dataset(&devices, 4, 5);
    for name in ["df:length=16", "k-fp", "ensemble"] {
        let attack = Attack::by_name(name).unwrap();
        let (data, _) = attack.dataset_of(&ds).unwrap();
        // One class only.
        let one: Vec<usize> = (0..data.y.len()).filter(|&i| data.y[i] == 0).collect();
        let err = attack.fit(&data.select(&one), "t").unwrap_err();
        assert!(matches!(err, AttackError::Data(_)), "{name}: {err}");
        assert!(err.to_string().contains("at least two"), "{name}: {err}");
        // No rows.
        let err = attack.fit(&data.select(&[]), "t").unwrap_err();
        assert!(
            err.to_string().contains("no training rows"),
            "{name}: {err}"
        );
    }
    for bad in [
        "df:length=0",
        "df:width=3",
        "tiktok:length=x",
        "k-fp:k=3",
        "ensemble:members=df",
        "ensemble:members=m-seq+df",
        "ensemble:combine=max",
    ] {
        assert!(
            matches!(Attack::by_name(bad), Err(AttackError::Data(_))),
            "{bad}"
        );
    }
    // A trace with no packet of known direction gives no row.
    let mut silent = ds.traces[0].trace.clone();
    silent
        .packets
        .iter_mut()
        .for_each(|p| p.dir = Direction::Unknown);
    for name in ["df", "k-fp", "ensemble"] {
        assert!(
            Attack::by_name(name).unwrap().windows(&silent).is_empty(),
            "{name}"
        );
    }
}

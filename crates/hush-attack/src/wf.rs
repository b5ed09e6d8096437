//! Website-fingerprinting attacks adapted to device traffic: what the strongest published
//! attackers on Tor see of a trace, computed over a device's packets.
//!
//! - **Deep Fingerprinting** (Sirinam, Imani, Juarez and Wright, "Deep Fingerprinting:
//!   Undermining Website Fingerprinting Defenses with Deep Learning", CCS 2018): the sequence of
//!   packet directions (+1 sent by the device, −1 received), cut or zero-padded to a fixed length
//!   (5000 in the paper), into a 1-D CNN; and the variant over signed packet sizes that later work
//!   uses where sizes are visible (TLS rather than Tor cells).
//! - **Tik-Tok** (Rahman, Sirinam, Mathews, Gangadhara and Wright, "Tik-Tok: The Utility of Packet
//!   Timing in Website Fingerprinting Attacks", PETS 2020): DF's network over *directional
//!   timing*, each packet's time since the first packet multiplied by its direction.
//! - **k-FP** (Hayes and Danezis, "k-fingerprinting: A Robust Scalable Website Fingerprinting
//!   Technique", USENIX Security 2016): its hand-made features ([`kfp_features`]), a forest of
//!   1000 trees, and k = 3 nearest neighbours in the forest's leaves.
//!
//! Only packets whose direction is known are seen; the sequences start at the first of them.

use hush_trace::{Direction, Packet, Trace};
use serde::Serialize;

/// The sequence length of Deep Fingerprinting and Tik-Tok (5000 cells in both papers).
pub const DF_LENGTH: usize = 5000;

/// What each step of a DF input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DfInput {
    /// +1 for a packet the device sent, −1 for one it received (DF).
    Direction,
    /// The frame size, positive when sent, negative when received.
    SignedSize,
    /// Seconds since the first packet, positive when sent, negative when received (Tik-Tok).
    DirectionalTiming,
}

/// A DF-style attack's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DfParams {
    /// What each step holds.
    pub input: DfInput,
    /// Steps: the first `length` packets, zero-padded.
    pub length: usize,
}

impl DfParams {
    /// The published input: the first [`DF_LENGTH`] packets.
    pub fn new(input: DfInput) -> DfParams {
        DfParams {
            input,
            length: DF_LENGTH,
        }
    }

    /// Options after the attack's name: `length=N` (empty: the defaults).
    pub fn parse(self, opts: &str) -> Result<DfParams, String> {
        let mut p = self;
        for kv in opts.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("option {kv:?} is not key=value"))?;
            match k.trim() {
                "length" => {
                    p.length = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("length {v:?} is not a whole number"))?;
                    if !(1..=100_000).contains(&p.length) {
                        return Err(format!("length {} is not in 1..=100000", p.length));
                    }
                }
                other => return Err(format!("unknown option {other:?} (known: length)")),
            }
        }
        Ok(p)
    }

    /// The options as [`DfParams::parse`] reads them.
    pub fn to_options(self) -> String {
        format!("length={}", self.length)
    }
}

/// Packets with a known direction.
fn directed(trace: &Trace) -> impl Iterator<Item = &Packet> {
    trace.packets.iter().filter(|p| p.dir != Direction::Unknown)
}

fn sign(p: &Packet) -> f32 {
    if p.dir == Direction::Outbound {
        1.0
    } else {
        -1.0
    }
}

/// A trace's DF row: `params.length` values, zero after the last packet. `None` when the trace
/// has no packet with a known direction.
pub fn df_row(trace: &Trace, params: &DfParams) -> Option<Vec<f32>> {
    let t0 = directed(trace).next()?.t_ns;
    let mut row = vec![0f32; params.length];
    for (v, p) in row.iter_mut().zip(directed(trace)) {
        *v = sign(p)
            * match params.input {
                DfInput::Direction => 1.0,
                DfInput::SignedSize => p.frame_len as f32,
                DfInput::DirectionalTiming => ((p.t_ns - t0) as f64 * 1e-9) as f32,
            };
    }
    Some(row)
}

/// Names of a DF row's values (`dir_0000`, `size_0000`, `dirtime_0000`).
pub fn df_feature_names(params: &DfParams) -> Vec<String> {
    let prefix = match params.input {
        DfInput::Direction => "dir",
        DfInput::SignedSize => "size",
        DfInput::DirectionalTiming => "dirtime",
    };
    (0..params.length)
        .map(|i| format!("{prefix}_{i:04}"))
        .collect()
}

/// Features in a k-FP row.
pub const KFP_FEATURES: usize = 175;

/// The names of k-FP's fixed features, in the order of its code (`RF_fextract.py`,
/// `TOTAL_FEATURES`), before the concentration and per-second lists that fill the row to 175.
fn kfp_fixed_names() -> Vec<String> {
    let mut n: Vec<String> = Vec::new();
    for stat in ["max", "mean", "std", "p75"] {
        for d in ["in", "out", "total"] {
            n.push(format!("iat_{stat}_{d}"));
        }
    }
    for d in ["in", "out", "total"] {
        for q in ["p25", "p50", "p75", "p100"] {
            n.push(format!("time_{q}_{d}"));
        }
    }
    n.extend(["packets_in", "packets_out", "packets_total"].map(String::from));
    n.extend(["first30_in", "first30_out", "last30_in", "last30_out"].map(String::from));
    n.extend(
        [
            "conc_std",
            "conc_mean",
            "per_s_mean",
            "per_s_std",
            "order_out_mean",
            "order_in_mean",
            "order_out_std",
            "order_in_std",
            "conc_median",
            "per_s_median",
            "per_s_min",
            "per_s_max",
            "conc_max",
            "share_in",
            "share_out",
        ]
        .map(String::from),
    );
    n.extend((0..70).map(|i| format!("alt_conc_{i:02}")));
    n.extend((0..20).map(|i| format!("alt_per_s_{i:02}")));
    n.extend(
        [
            "alt_conc_sum",
            "alt_per_s_sum",
            "iat_sum",
            "time_sum",
            "packets_sum",
        ]
        .map(String::from),
    );
    n.extend(
        [
            "bytes_total",
            "bytes_in",
            "bytes_out",
            "size_mean_total",
            "size_mean_in",
            "size_mean_out",
            "size_var_total",
            "size_var_in",
            "size_var_out",
            "size_std_total",
            "size_std_in",
            "size_std_out",
            "size_max_in",
            "size_max_out",
        ]
        .map(String::from),
    );
    n
}

/// Names of the 175 k-FP features.
pub fn kfp_feature_names() -> Vec<String> {
    let mut n = kfp_fixed_names();
    let fill = KFP_FEATURES - n.len();
    n.extend((0..fill).map(|i| format!("conc_or_per_s_{i:02}")));
    n
}

/// numpy's default percentile (linear interpolation between closest ranks) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Population variance (numpy's default).
fn var(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(0.0)
}

fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Sums of `parts` nearly equal consecutive slices of `v` (k-FP's `chunkIt`, always `parts`
/// sums: where the published code's floating-point stepping makes one slice too many or too
/// few, it pads with a constant 0).
fn chunk_sums(v: &[f64], parts: usize) -> Vec<f64> {
    let avg = v.len() as f64 / parts as f64;
    (0..parts)
        .map(|j| {
            let a = (j as f64 * avg) as usize;
            let b = if j + 1 == parts {
                v.len()
            } else {
                ((j + 1) as f64 * avg) as usize
            };
            v[a.min(v.len())..b.min(v.len())].iter().sum()
        })
        .collect()
}

/// k-FP's features of a trace (Hayes and Danezis 2016, the `TOTAL_FEATURES` function of their
/// code), with the size features their code lists for traffic whose sizes are visible:
///
/// - inter-arrival times of received, sent and all packets: max, mean, std, 75th percentile;
/// - the 25th, 50th, 75th and 100th percentiles of received, sent and all packet times;
/// - packet counts (received, sent, all); received and sent among the first and last 30;
/// - the number of sent packets in each chunk of 20 packets ("concentration"): std, mean,
///   median, min, max, and its sums over 70 equal parts of the trace;
/// - packets per second: mean, std, median, min, max, and its sums over 20 equal parts;
/// - the mean and std of the positions of sent and of received packets; the shares of each;
/// - five sums (alternative concentrations, alternative rates, the inter-arrival statistics,
///   the time percentiles, the counts);
/// - bytes (all, received, sent), and size mean, variance and std (all, received, sent) and
///   maximum (received, sent);
/// - then the concentration and per-second lists themselves, cut or zero-padded to 175 values.
///
/// Times are seconds since the first packet with a known direction; sizes are frame sizes.
/// `None` when no packet has a known direction.
pub fn kfp_features(trace: &Trace) -> Option<Vec<f32>> {
    let pkts: Vec<&Packet> = directed(trace).collect();
    let t0 = pkts.first()?.t_ns;
    let time = |p: &Packet| (p.t_ns - t0) as f64 * 1e-9;
    let out = |p: &Packet| p.dir == Direction::Outbound;
    let all_t: Vec<f64> = pkts.iter().map(|p| time(p)).collect();
    let in_t: Vec<f64> = pkts.iter().filter(|p| !out(p)).map(|p| time(p)).collect();
    let out_t: Vec<f64> = pkts.iter().filter(|p| out(p)).map(|p| time(p)).collect();
    let mut f: Vec<f64> = Vec::with_capacity(KFP_FEATURES);

    // Inter-arrival statistics: a list with no gap counts as all zeros, as in k-FP's code.
    let (g_in, g_out, g_all) = (gaps(&in_t), gaps(&out_t), gaps(&all_t));
    let groups = [&g_in, &g_out, &g_all];
    let iat_start = f.len();
    f.extend(groups.map(|g| max(g)));
    f.extend(groups.map(|g| mean(g)));
    f.extend(groups.map(|g| var(g).sqrt()));
    f.extend(groups.map(|g| percentile(&sorted(g), 75.0)));
    let iat_sum: f64 = f[iat_start..].iter().sum();

    let time_start = f.len();
    for t in [&in_t, &out_t, &all_t] {
        // Times are already in order.
        for q in [25.0, 50.0, 75.0, 100.0] {
            f.push(percentile(t, q));
        }
    }
    let time_sum: f64 = f[time_start..].iter().sum();

    let counts = [in_t.len() as f64, out_t.len() as f64, all_t.len() as f64];
    f.extend(counts);
    let first30 = &pkts[..pkts.len().min(30)];
    let last30 = &pkts[pkts.len().saturating_sub(30)..];
    for part in [first30, last30] {
        let o = part.iter().filter(|p| out(p)).count() as f64;
        f.extend([part.len() as f64 - o, o]);
    }

    let conc: Vec<f64> = pkts
        .chunks(20)
        .map(|c| c.iter().filter(|p| out(p)).count() as f64)
        .collect();
    // Packets in each second (1, 2, ... up to the last packet's time rounded up; a trace whose
    // packets all share one instant is one second).
    let seconds = (all_t.last().copied().unwrap_or(0.0).ceil() as usize).max(1);
    let mut per_s = vec![0f64; seconds];
    for &t in &all_t {
        // k-FP counts a packet in second i when its time is at most i.
        let i = (t.ceil() as usize).saturating_sub(1).min(seconds - 1);
        per_s[i] += 1.0;
    }
    let (conc_s, per_s_s) = (sorted(&conc), sorted(&per_s));
    let positions = |sent: bool| -> Vec<f64> {
        pkts.iter()
            .enumerate()
            .filter(|(_, p)| out(p) == sent)
            .map(|(i, _)| i as f64)
            .collect()
    };
    let (pos_out, pos_in) = (positions(true), positions(false));
    let n = pkts.len() as f64;
    f.extend([
        var(&conc).sqrt(),
        mean(&conc),
        mean(&per_s),
        var(&per_s).sqrt(),
        mean(&pos_out),
        mean(&pos_in),
        var(&pos_out).sqrt(),
        var(&pos_in).sqrt(),
        percentile(&conc_s, 50.0),
        percentile(&per_s_s, 50.0),
        per_s_s.first().copied().unwrap_or(0.0),
        per_s_s.last().copied().unwrap_or(0.0),
        conc_s.last().copied().unwrap_or(0.0),
        in_t.len() as f64 / n,
        out_t.len() as f64 / n,
    ]);
    let alt_conc = chunk_sums(&conc, 70);
    let alt_per_s = chunk_sums(&per_s, 20);
    f.extend(&alt_conc);
    f.extend(&alt_per_s);
    f.extend([
        alt_conc.iter().sum(),
        alt_per_s.iter().sum(),
        iat_sum,
        time_sum,
        counts.iter().sum(),
    ]);

    let size = |p: &&Packet| f64::from(p.frame_len);
    let all_s: Vec<f64> = pkts.iter().map(size).collect();
    let in_s: Vec<f64> = pkts.iter().filter(|p| !out(p)).map(size).collect();
    let out_s: Vec<f64> = pkts.iter().filter(|p| out(p)).map(size).collect();
    let sizes = [&all_s, &in_s, &out_s];
    f.extend(sizes.map(|s| s.iter().sum::<f64>()));
    f.extend(sizes.map(|s| mean(s)));
    f.extend(sizes.map(|s| var(s)));
    f.extend(sizes.map(|s| var(s).sqrt()));
    f.extend([max(&in_s), max(&out_s)]);

    debug_assert_eq!(f.len(), kfp_fixed_names().len());
    f.extend(conc.iter().chain(&per_s).take(KFP_FEATURES - f.len()));
    f.resize(KFP_FEATURES, 0.0);
    Some(f.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(pkts: &[(f64, Direction, u32)]) -> Trace {
        Trace {
            name: "t".into(),
            packets: pkts
                .iter()
                .map(|&(t, dir, len)| Packet {
                    t_ns: (t * 1e9) as i64,
                    frame_len: len,
                    dir,
                    ..Packet::default()
                })
                .collect(),
            endpoints: Vec::new(),
            report: Default::default(),
        }
    }

    #[test]
    fn df_rows_by_hand() {
        use Direction::{Inbound as I, Outbound as O, Unknown as U};
        let t = trace(&[(1.0, U, 60), (2.0, O, 100), (2.5, I, 1500), (4.0, O, 80)]);
        let p = |input| DfParams { input, length: 5 };
        assert_eq!(
            df_row(&t, &p(DfInput::Direction)).unwrap(),
            [1.0, -1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(
            df_row(&t, &p(DfInput::SignedSize)).unwrap(),
            [100.0, -1500.0, 80.0, 0.0, 0.0]
        );
        assert_eq!(
            df_row(&t, &p(DfInput::DirectionalTiming)).unwrap(),
            [0.0, -0.5, 2.0, 0.0, 0.0]
        );
        let short = DfParams {
            input: DfInput::Direction,
            length: 2,
        };
        assert_eq!(df_row(&t, &short).unwrap(), [1.0, -1.0]);
        assert!(df_row(&trace(&[(0.0, U, 60)]), &short).is_none());
        assert_eq!(df_feature_names(&short), ["dir_0000", "dir_0001"]);
    }

    #[test]
    fn df_options_parse_and_refuse() {
        let p = DfParams::new(DfInput::Direction);
        assert_eq!(p.length, 5000);
        assert_eq!(p.parse("length=300").unwrap().length, 300);
        assert_eq!(
            p.parse(&p.parse("length=7").unwrap().to_options())
                .unwrap()
                .length,
            7
        );
        for bad in ["length=0", "length=x", "width=3", "length"] {
            assert!(p.parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kfp_features_by_hand() {
        use Direction::{Inbound as I, Outbound as O};
        // out at 0, in at 0.5, in at 1.5, out at 2.0.
        let t = trace(&[
            (10.0, O, 100),
            (10.5, I, 1000),
            (11.5, I, 500),
            (12.0, O, 60),
        ]);
        let f = kfp_features(&t).unwrap();
        let names = kfp_feature_names();
        assert_eq!(f.len(), KFP_FEATURES);
        assert_eq!(names.len(), KFP_FEATURES);
        let get = |name: &str| f[names.iter().position(|n| n == name).unwrap()];
        // Gaps: in [1.0], out [2.0], total [0.5, 1.0, 0.5].
        assert_eq!(get("iat_max_in"), 1.0);
        assert_eq!(get("iat_max_out"), 2.0);
        assert_eq!(get("iat_max_total"), 1.0);
        assert!((get("iat_mean_total") - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(get("iat_p75_total"), 0.75);
        // Times: in [0.5, 1.5]: p25 = 0.75.
        assert_eq!(get("time_p25_in"), 0.75);
        assert_eq!(get("time_p100_total"), 2.0);
        assert_eq!(get("packets_in"), 2.0);
        assert_eq!(get("packets_out"), 2.0);
        assert_eq!(get("first30_out"), 2.0);
        // One chunk of 20 with two sent packets; seconds (0,1] has 2 packets, (1,2] has 2.
        assert_eq!(get("conc_mean"), 2.0);
        assert_eq!(get("per_s_mean"), 2.0);
        assert_eq!(get("per_s_std"), 0.0);
        // Sent at positions 0 and 3, received at 1 and 2.
        assert_eq!(get("order_out_mean"), 1.5);
        assert_eq!(get("order_in_mean"), 1.5);
        assert_eq!(get("share_in"), 0.5);
        assert_eq!(get("alt_conc_sum"), 2.0);
        assert_eq!(get("alt_per_s_sum"), 4.0);
        assert_eq!(get("bytes_total"), 1660.0);
        assert_eq!(get("bytes_in"), 1500.0);
        assert_eq!(get("size_max_out"), 100.0);
        assert_eq!(get("size_mean_in"), 750.0);
        assert_eq!(get("size_var_in"), 62_500.0);
        // The fill: the concentration list [2], then per second [2, 2], then zeros.
        assert_eq!(get("conc_or_per_s_00"), 2.0);
        assert_eq!(get("conc_or_per_s_01"), 2.0);
        assert_eq!(get("conc_or_per_s_02"), 2.0);
        assert_eq!(get("conc_or_per_s_03"), 0.0);
        assert!(f.iter().all(|v| v.is_finite()));
        // One packet, or none with a direction.
        assert!(
            kfp_features(&trace(&[(1.0, O, 60)]))
                .unwrap()
                .iter()
                .all(|v| v.is_finite())
        );
        assert!(kfp_features(&trace(&[(1.0, Direction::Unknown, 60)])).is_none());
    }

    #[test]
    fn chunk_sums_cover_everything_once() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        for parts in [1, 3, 7, 10, 20, 70] {
            let s = chunk_sums(&v, parts);
            assert_eq!(s.len(), parts);
            assert_eq!(s.iter().sum::<f64>(), 55.0, "{parts}");
        }
        assert_eq!(chunk_sums(&[], 5), [0.0; 5]);
    }
}

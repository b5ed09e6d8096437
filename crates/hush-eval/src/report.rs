//! The report: one static HTML file with inline SVG (no server, no CDN, no script), from a run's
//! [`Results`]. It has one section per dataset, in order of first appearance in the rows, each
//! with
//!
//! - the privacy–overhead frontier: the strongest attack's accuracy per defense setting
//!   against bytes added (log scale), adaptive and non-adaptive attackers, the Pareto front
//!   joined and the highest chance level over the defenses dashed, and the same against the
//!   real data's delay (without the front);
//! - a frontier table ([`frontier`]);
//! - traffic-rate plots of the dataset's rate trace, one small chart per defense (rate in B/s
//!   over time, the defended traffic's two directions over the original's in grey, like Datta
//!   et al.'s Figures 2 and 3), each with its own y range since costs span from a few percent
//!   to 100×;
//! - confusion matrices as heatmaps, one per defense (its strongest adaptive row), each folded
//!   in a `<details>` element, the undefended one open;
//!
//! then a table of every cell. Every name in the results (datasets, defenses, attacks, labels,
//! traces) is escaped, and the same results give the same bytes.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::EvalError;
use crate::matrix::{Cell, RatePlot, Rates, Results};

/// One point per defense setting: its cost and the strongest attack against it.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontierPoint {
    /// The defense.
    pub defense: String,
    /// The observation model its rows were seen under (`session` or `window`).
    pub observation: String,
    /// Bytes added, % of the original.
    pub bytes_added_pct: f64,
    /// 95th percentile delay of real data, seconds.
    pub latency_p95_s: f64,
    /// Best adaptive accuracy over the attacks (and seeds' mean).
    pub adaptive_accuracy: f64,
    /// The attack that reached it.
    pub adaptive_attack: String,
    /// Best non-adaptive accuracy.
    pub naive_accuracy: f64,
    /// Majority-class chance of that attack's rows (defenses change how many windows there
    /// are, and so the chance).
    pub chance: f64,
    /// Bytes added per second of original traffic.
    pub added_bps: f64,
    /// On the Pareto front: no other setting costs no more bytes and leaks no more.
    pub pareto: bool,
}

/// The observation models of `cells`, in order of first appearance.
pub fn observations(cells: &[Cell]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in cells {
        if !out.contains(&c.observation) {
            out.push(c.observation.clone());
        }
    }
    out
}

/// The frontier of the rows seen under one observation model.
pub fn frontier_of(cells: &[Cell], observation: &str) -> Vec<FrontierPoint> {
    let mine: Vec<Cell> = cells
        .iter()
        .filter(|c| c.observation == observation)
        .cloned()
        .collect();
    frontier(&mine)
}

/// Whether a row's defense is always on (its parameters name a catalog defense that is; see
/// [`hush_defense::DefenseSpec::always_on`]).
fn always_on(c: &Cell) -> bool {
    c.parameters
        .parse::<hush_defense::DefenseSpec>()
        .is_ok_and(|d| d.always_on())
}

/// The headline frontier: each defense under the view that fits it, the window view for an
/// always-on defense (a capture's length is not visible on an always-on link) and the session
/// view for the rest (their sessions do start and end), whichever of the two the rows have.
pub fn headline(cells: &[Cell]) -> Vec<FrontierPoint> {
    let has = |d: &str, o: &str| cells.iter().any(|c| c.defense == d && c.observation == o);
    let chosen: Vec<Cell> = cells
        .iter()
        .filter(|c| {
            let want = if always_on(c) { "window" } else { "session" };
            c.observation == want || !has(&c.defense, want)
        })
        .cloned()
        .collect();
    // A defense with neither view preferred keeps one: the first it has.
    let mut out = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for c in chosen {
        let key = (c.defense.clone(), c.observation.clone());
        if !seen.iter().any(|(d, o)| *d == key.0 && *o != key.1) {
            if !seen.contains(&key) {
                seen.push(key);
            }
            out.push(c);
        }
    }
    frontier(&out)
}

/// The frontier's points, in the rows' defense order. `cells` are one dataset's and one
/// observation's: rows of several are pooled by defense name.
pub fn frontier(cells: &[Cell]) -> Vec<FrontierPoint> {
    let mut defenses: Vec<&str> = Vec::new();
    for c in cells {
        if !defenses.contains(&c.defense.as_str()) {
            defenses.push(&c.defense);
        }
    }
    // Per attack, the mean over seeds; then the best attack: (accuracy, attack, chance).
    let mean_best = |mine: &[&Cell], who: &str| -> (f64, String, f64) {
        let mut attacks: Vec<&str> = Vec::new();
        for c in mine.iter().filter(|c| c.attacker == who) {
            if !attacks.contains(&c.attack.as_str()) {
                attacks.push(&c.attack);
            }
        }
        let mut best = (0.0, String::new(), 0.0);
        for a in attacks {
            let v: Vec<&&Cell> = mine
                .iter()
                .filter(|c| c.attacker == who && c.attack == a)
                .collect();
            let n = v.len().max(1) as f64;
            let acc = v.iter().map(|c| c.accuracy).sum::<f64>() / n;
            if acc > best.0 || best.1.is_empty() {
                best = (
                    acc,
                    a.to_string(),
                    v.iter().map(|c| c.chance).sum::<f64>() / n,
                );
            }
        }
        best
    };
    let mut pts: Vec<FrontierPoint> = defenses
        .iter()
        .map(|d| {
            let mine: Vec<&Cell> = cells.iter().filter(|c| c.defense == *d).collect();
            let n = mine.len().max(1) as f64;
            let (adaptive_accuracy, adaptive_attack, chance) = mean_best(&mine, "adaptive");
            FrontierPoint {
                defense: d.to_string(),
                observation: mine
                    .first()
                    .map_or_else(String::new, |c| c.observation.clone()),
                bytes_added_pct: mine.iter().map(|c| c.bytes_added_pct).sum::<f64>() / n,
                latency_p95_s: mine.iter().map(|c| c.latency_p95_s).sum::<f64>() / n,
                adaptive_accuracy,
                adaptive_attack,
                naive_accuracy: mean_best(&mine, "non-adaptive").0,
                chance,
                added_bps: mine.iter().map(|c| c.added_bps).sum::<f64>() / n,
                pareto: false,
            }
        })
        .collect();
    for i in 0..pts.len() {
        let (x, y) = (pts[i].bytes_added_pct, pts[i].adaptive_accuracy);
        pts[i].pareto = !pts.iter().enumerate().any(|(j, q)| {
            j != i
                && q.bytes_added_pct <= x
                && q.adaptive_accuracy <= y
                && (q.bytes_added_pct < x || q.adaptive_accuracy < y)
        });
    }
    pts
}

fn plot_err<E: std::fmt::Debug>(e: E) -> EvalError {
    EvalError::Report(format!("{e:?}"))
}

/// `log10(1 + v)`: costs span from 0 to tens of thousands of percent.
fn log1p10(v: f64) -> f64 {
    (1.0 + v.max(0.0)).log10()
}

/// Ticks for a `log1p10` axis up to `top` (in data units): 0, then powers of ten, with 2 and 5
/// between them while the axis spans no more than two decades. plotters would put its ticks at
/// round positions in log space, which read as 9, 99 or 31.
fn log_ticks(top: f64) -> Vec<f64> {
    let mut ticks = vec![0.0];
    let mut d = 1.0;
    while d <= top && ticks.len() < 24 {
        ticks.push(d);
        if top < 100.0 {
            ticks.extend([2.0 * d, 5.0 * d].into_iter().filter(|&t| t <= top));
        }
        d *= 10.0;
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// A pixel box: left, top, right, bottom.
type PixelBox = (i32, i32, i32, i32);

fn overlaps(a: PixelBox, b: PixelBox) -> bool {
    a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
}

/// Where to write each marker's label (left end, vertical middle), so labels overlap neither
/// each other nor the markers, inside `bounds`: the first of a few spots around the marker
/// that is free, else the one that hits least. Greedy and in input order, so deterministic.
fn place_labels(
    labels: &[(String, (i32, i32))],
    markers: &[(i32, i32)],
    bounds: PixelBox,
) -> Vec<(i32, i32)> {
    // ~10 px sans-serif (plotters' size 12): about 5.5 px a character, 12 px a line.
    let width = |s: &str| (s.chars().count() as f64 * 5.5).ceil() as i32;
    let mut taken: Vec<PixelBox> = markers
        .iter()
        .map(|&(x, y)| (x - 6, y - 6, x + 6, y + 6))
        .collect();
    let mut out = Vec::with_capacity(labels.len());
    for (text, (x, y)) in labels {
        let w = width(text);
        let spots = [
            (8, 0),
            (6, -13),
            (6, 13),
            (-8 - w, 0),
            (-6 - w, -13),
            (-6 - w, 13),
            (6, -26),
            (6, 26),
            (-6 - w, -26),
            (-6 - w, 26),
        ];
        let boxed = |&(dx, dy): &(i32, i32)| (x + dx, y + dy - 6, x + dx + w, y + dy + 6);
        let inside =
            |b: PixelBox| b.0 >= bounds.0 && b.1 >= bounds.1 && b.2 <= bounds.2 && b.3 <= bounds.3;
        let hits = |b: PixelBox| taken.iter().filter(|t| overlaps(b, **t)).count();
        let best = spots
            .iter()
            .map(boxed)
            .filter(|b| inside(*b))
            .min_by_key(|b| hits(*b))
            .unwrap_or_else(|| boxed(&spots[0]));
        taken.push(best);
        out.push((best.0, (best.1 + best.3) / 2));
    }
    out
}

/// A scatter of the points against `x` (log scale), adaptive filled, naive hollow, the Pareto
/// front joined, the highest chance level over the points dashed. The legend sits right of the plot, where it hides no
/// point; points that coincide share one label.
fn scatter(
    pts: &[FrontierPoint],
    x: impl Fn(&FrontierPoint) -> f64,
    x_desc: &str,
    title: &str,
    front: bool,
) -> Result<String, EvalError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (plot_area, legend_area) = root.split_horizontally(720);
        let xmax = pts.iter().map(|p| log1p10(x(p))).fold(1.0, f64::max) * 1.08;
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..xmax, 0f64..1.05f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            // The x ticks are drawn below, at round values of the data.
            .disable_x_mesh()
            .x_labels(0)
            .x_desc(x_desc)
            .y_desc("attack accuracy")
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .draw()
            .map_err(plot_err)?;
        let ticks = log_ticks(10f64.powf(xmax) - 1.0);
        for &t in &ticks {
            chart
                .draw_series(LineSeries::new(
                    [(log1p10(t), 0.0), (log1p10(t), 1.05)],
                    BLACK.mix(0.1),
                ))
                .map_err(plot_err)?;
            let (px, py) = chart.backend_coord(&(log1p10(t), 0.0));
            root.draw(&PathElement::new([(px, py), (px, py + 5)], BLACK))
                .map_err(plot_err)?;
            root.draw(&Text::new(
                si(t),
                (px, py + 7),
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(plot_err)?;
        }
        let chance = pts.iter().map(|p| p.chance).fold(0.0, f64::max);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, chance), (xmax, chance)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(plot_err)?;
        if front {
            let mut f: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.pareto)
                .map(|p| (log1p10(x(p)), p.adaptive_accuracy))
                .collect();
            f.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(f, RED.stroke_width(2)))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(pts.iter().map(|p| {
                Circle::new(
                    (log1p10(x(p)), p.naive_accuracy),
                    4,
                    BLUE.mix(0.8).stroke_width(1),
                )
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((log1p10(x(p)), p.adaptive_accuracy), 5, RED.filled())),
            )
            .map_err(plot_err)?;
        // Labels for the adaptive points; points within a few pixels of each other share one.
        let mut groups: Vec<(String, (i32, i32))> = Vec::new();
        for p in pts {
            let at = chart.backend_coord(&(log1p10(x(p)), p.adaptive_accuracy));
            match groups
                .iter_mut()
                .find(|(_, g)| (g.0 - at.0).abs() <= 3 && (g.1 - at.1).abs() <= 3)
            {
                Some((names, _)) => {
                    names.push_str(", ");
                    names.push_str(&p.defense);
                }
                None => groups.push((p.defense.clone(), at)),
            }
        }
        let markers: Vec<(i32, i32)> = pts
            .iter()
            .flat_map(|p| [p.adaptive_accuracy, p.naive_accuracy].map(|y| (x(p), y)))
            .map(|(v, y)| chart.backend_coord(&(log1p10(v), y)))
            .collect();
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let spots = place_labels(&groups, &markers, (xr.start, yr.start, xr.end, yr.end));
        for ((names, _), at) in groups.iter().zip(spots) {
            root.draw(&Text::new(
                names.clone(),
                at,
                TextStyle::from(("sans-serif", 12).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(plot_err)?;
        }
        // The legend, right of the plot.
        let label = |s: String, y: i32| -> Result<(), EvalError> {
            legend_area
                .draw(&Text::new(
                    s,
                    (34, y),
                    TextStyle::from(("sans-serif", 13).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(plot_err)
        };
        let mut y = 70;
        label("adaptive attacker".into(), y)?;
        legend_area
            .draw(&Circle::new((16, y), 5, RED.filled()))
            .map_err(plot_err)?;
        y += 22;
        label("non-adaptive attacker".into(), y)?;
        legend_area
            .draw(&Circle::new((16, y), 4, BLUE.stroke_width(1)))
            .map_err(plot_err)?;
        if front {
            y += 22;
            label("Pareto front".into(), y)?;
            legend_area
                .draw(&PathElement::new([(6, y), (26, y)], RED.stroke_width(2)))
                .map_err(plot_err)?;
        }
        y += 22;
        label(format!("chance (highest) {:.1}%", 100.0 * chance), y)?;
        for x0 in [6, 18] {
            legend_area
                .draw(&PathElement::new(
                    [(x0, y), (x0 + 7, y)],
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number for an axis or a caption: at most two decimals, no trailing zeros (`0.5`, `30`).
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A rate with an SI prefix (`850`, `12.5k`, `3M`): rates span from bytes to megabytes per
/// second.
fn si(v: f64) -> String {
    let a = v.abs();
    let (d, p) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    let s = if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        num((x * 10.0).round() / 10.0)
    };
    format!("{s}{p}")
}

/// A rate read from a results file as a plottable value: negative or non-finite rates (a
/// hand-edited or damaged file) are drawn as zero rather than breaking the chart.
fn finite(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// Defended traffic's two directions: colours from plotters' palette, clear of the pure red
/// and blue that mark the scatters' adaptive and non-adaptive points.
const OUT_COLOR: RGBColor = RGBColor(230, 97, 1);
const IN_COLOR: RGBColor = RGBColor(0, 128, 128);
/// The original traffic behind them.
const ORIGINAL_COLOR: RGBColor = RGBColor(190, 190, 190);

/// One defense's chart of a rate plot: the defended traffic's outbound and inbound rate over
/// the original's in grey, with a y range of its own (defenses differ in cost by 100×, so a
/// shared one would flatten the cheap ones).
fn rate_chart(plot: &RatePlot, defense: &str, defended: &Rates) -> Result<String, EvalError> {
    let bin_s = if plot.bin_s.is_finite() && plot.bin_s > 0.0 {
        plot.bin_s
    } else {
        1.0
    };
    let series = [
        &plot.original.out_bps,
        &plot.original.in_bps,
        &defended.out_bps,
        &defended.in_bps,
    ];
    let bins = series.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let xmax = bins as f64 * bin_s;
    let ymax = series
        .iter()
        .flat_map(|s| s.iter().copied().map(finite))
        .fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let points = |s: &[f64]| -> Vec<(f64, f64)> {
        // Each bin's rate at its middle.
        s.iter()
            .enumerate()
            .map(|(i, &v)| ((i as f64 + 0.5) * bin_s, finite(v)))
            .collect()
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(defense, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(5)
            .x_desc("time, s")
            .y_desc("B/s")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(BLACK.mix(0.05))
            .bold_line_style(BLACK.mix(0.12))
            .x_label_formatter(&|v| num(*v))
            .y_label_formatter(&|v| si(*v))
            .draw()
            .map_err(plot_err)?;
        for s in [&plot.original.out_bps, &plot.original.in_bps] {
            chart
                .draw_series(LineSeries::new(points(s), ORIGINAL_COLOR.stroke_width(2)))
                .map_err(plot_err)?;
        }
        // Outbound wider, under inbound: where the two coincide (constant-rate defenses) both
        // still show.
        for (s, c, w) in [
            (&defended.out_bps, OUT_COLOR, 2),
            (&defended.in_bps, IN_COLOR, 1),
        ] {
            chart
                .draw_series(LineSeries::new(points(s), c.stroke_width(w)))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Confusion matrices with more classes than this are not drawn: a results file is input, and
/// a few hundred classes would make an unreadable, megabyte-sized chart.
const MAX_HEATMAP_CLASSES: usize = 64;

/// A heatmap of a confusion matrix (`confusion[true][predicted]`): each cell shaded by its share
/// of the true class's windows, the count written in it when the cells are big enough, the
/// class names on both axes. Sized by the number of classes, so ~30 stay legible.
fn heatmap(labels: &[String], confusion: &[Vec<u64>]) -> Result<String, EvalError> {
    let n = confusion.len();
    let name = |i: usize| -> String {
        let full = labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("class {i}"));
        // Long names would push the grid off the page.
        if full.chars().count() > 24 {
            format!("{}…", full.chars().take(23).collect::<String>())
        } else {
            full
        }
    };
    let names: Vec<String> = (0..n).map(name).collect();
    let cell: i32 = (560 / n.max(1) as i32).clamp(16, 44);
    // plotters writes font-size as size / 1.24; this gives ~11 px names.
    let font = if cell >= 22 { 14.0 } else { 12.5 };
    let char_w = font / 1.24 * 0.56;
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1);
    let label_w = (longest as f64 * char_w).ceil() as i32 + 8;
    let (axis, title_h, pad) = (20, 8, 12);
    let x0 = pad + axis + label_w;
    let y0 = title_h + pad;
    let side = cell * n as i32;
    let width = (x0 + side + pad).max(200);
    let height = y0 + side + label_w + axis + pad;
    let counts_fit = cell >= 26;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let text = |size: f64, h: HPos| {
            TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(h, VPos::Center))
        };
        for (t, row) in confusion.iter().enumerate() {
            let total: u64 = row.iter().take(n).sum();
            for p in 0..n {
                let count = row.get(p).copied().unwrap_or(0);
                let share = if total > 0 {
                    count as f64 / total as f64
                } else {
                    0.0
                };
                // White to a dark blue-green, by the share.
                let mix = |dark: u8| (255.0 - share * (255.0 - f64::from(dark))).round() as u8;
                let shade = RGBColor(mix(8), mix(64), mix(129));
                let (cx, cy) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell, cy + cell)],
                    shade.filled(),
                ))
                .map_err(plot_err)?;
                if counts_fit && count > 0 {
                    let ink = if share > 0.5 { &WHITE } else { &BLACK };
                    root.draw(&Text::new(
                        count.to_string(),
                        (cx + cell / 2, cy + cell / 2),
                        text(font, HPos::Center).color(ink),
                    ))
                    .map_err(plot_err)?;
                }
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(plot_err)?;
        for (i, s) in names.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            // True classes left of their rows, predicted ones upright below their columns.
            root.draw(&Text::new(
                s.clone(),
                (x0 - 4, y0 + mid),
                text(font, HPos::Right),
            ))
            .map_err(plot_err)?;
            root.draw(&Text::new(
                s.clone(),
                (x0 + mid, y0 + side + 4),
                text(font, HPos::Right).transform(FontTransform::Rotate270),
            ))
            .map_err(plot_err)?;
        }
        root.draw(&Text::new(
            "true class",
            (pad + axis / 2, y0 + side / 2),
            text(15.0, HPos::Center).transform(FontTransform::Rotate270),
        ))
        .map_err(plot_err)?;
        root.draw(&Text::new(
            "predicted class",
            (x0 + side / 2, y0 + side + label_w + axis / 2 + 4),
            text(15.0, HPos::Center),
        ))
        .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The cell whose confusion matrix stands for `defense`: of the frontier's strongest adaptive
/// `attack`, the seed with the highest accuracy (the first of equals), among rows that kept a
/// confusion matrix.
fn confusion_cell<'a>(cells: &[&'a Cell], defense: &str, attack: &str) -> Option<&'a Cell> {
    cells
        .iter()
        .copied()
        .filter(|c| {
            c.defense == defense
                && c.attack == attack
                && c.attacker == "adaptive"
                && !c.confusion.is_empty()
        })
        .fold(None, |best: Option<&Cell>, c| match best {
            Some(b) if b.accuracy >= c.accuracy => Some(b),
            _ => Some(c),
        })
}

/// The datasets in order of first appearance: in the rows, then in the rate plots.
fn datasets(results: &Results) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    let all = results
        .cells
        .iter()
        .map(|c| c.dataset.as_str())
        .chain(results.rates.iter().map(|r| r.dataset.as_str()));
    for d in all {
        if !names.contains(&d) {
            names.push(d);
        }
    }
    names
}

/// A frontier table under an optional heading.
fn frontier_table(h: &mut String, heading: &str, pts: &[FrontierPoint]) {
    if !heading.is_empty() {
        h.push_str(&format!("<h3>{}</h3>\n", esc(heading)));
    }
    h.push_str(
        "<table><tr><th>defense</th><th>observed</th><th>adaptive</th><th>non-adaptive</th>\
         <th>chance</th><th>best adaptive attack</th><th>bytes added %</th><th>B/s added</th>\
         <th>delay p95 s</th><th>Pareto</th></tr>\n",
    );
    for p in pts {
        h.push_str(&format!(
            "<tr{cls}><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{}</td></tr>\n",
            esc(&p.defense),
            esc(&p.observation),
            100.0 * p.adaptive_accuracy,
            100.0 * p.naive_accuracy,
            100.0 * p.chance,
            esc(&p.adaptive_attack),
            p.bytes_added_pct,
            p.added_bps,
            p.latency_p95_s,
            if p.pareto { "yes" } else { "" },
            cls = if p.pareto { " class=\"pareto\"" } else { "" }
        ));
    }
    h.push_str("</table>\n");
}

/// One dataset's section: the headline table, per observation model its frontier and latency
/// scatters and frontier table, the rate plots and the confusion matrices.
fn section(
    h: &mut String,
    index: usize,
    dataset: &str,
    results: &Results,
) -> Result<(), EvalError> {
    let mine: Vec<&Cell> = results
        .cells
        .iter()
        .filter(|c| c.dataset == dataset)
        .collect();
    h.push_str(&format!(
        "<section id=\"dataset-{index}\">\n<h2>{}</h2>\n",
        esc(dataset)
    ));
    let owned: Vec<Cell> = mine.iter().map(|c| (*c).clone()).collect();
    let pts = headline(&owned);
    if mine.is_empty() {
        h.push_str("<p>No rows for this dataset.</p>\n");
    }
    let views = observations(&owned);
    if views.len() > 1 {
        h.push_str(
            "<p>Each defense under each observation model. <b>Session</b>: the eavesdropper sees \
             one capture, start to end. <b>Window</b>: it watches an always-on link through fixed \
             windows chosen without looking at the traffic; always-on defenses (independent link \
             padding, cover periods) run before each window opens and after it closes, so a \
             capture's length is no longer visible. The headline table takes the window view for \
             always-on defenses and the session view for the others.</p>\n",
        );
        frontier_table(h, "Headline", &pts);
    }
    for view in &views {
        let vp = frontier_of(&owned, view);
        let window_s = owned
            .iter()
            .find(|c| &c.observation == view)
            .map_or(0.0, |c| c.window_s);
        let what = match view.as_str() {
            "window" => format!("observed through windows of {} s", num(window_s)),
            "session" => "observed as sessions".to_string(),
            other => format!("observed as {other}"),
        };
        let privacy = scatter(
            &vp,
            |p| p.bytes_added_pct,
            "bytes added, % (log scale)",
            &format!("Privacy against bandwidth, {what}: the strongest attack per defense"),
            true,
        )?;
        let latency = scatter(
            &vp,
            |p| p.latency_p95_s,
            "real-data delay p95, s (log scale)",
            &format!("Privacy against latency, {what}"),
            false,
        )?;
        h.push_str(&format!(
            "<h3 id=\"dataset-{index}-{v}\">{}</h3>\n<figure>{privacy}</figure>\n<figure>{latency}</figure>\n",
            esc(&format!("Frontier, {what}")),
            v = esc(view)
        ));
        frontier_table(h, "", &vp);
    }
    for plot in results.rates.iter().filter(|r| r.dataset == dataset) {
        h.push_str(&format!(
            "<h3>Traffic rate, {}</h3>\n<figure class=\"rates\">\n<figcaption>Trace <b>{}</b> (label \
             <b>{}</b>) before and after each defense, in bytes per second over {} s bins from {}: <span style=\"color:#e66101\">&#9632; outbound</span> and \
             <span style=\"color:#008080\">&#9632; inbound</span> defended traffic, over the \
             <span style=\"color:#9a9a9a\">&#9632; original</span> traffic in both directions. \
             Each chart has its own y range.</figcaption>\n<div class=\"grid\">\n",
            if plot.observation == "window" {
                "window view"
            } else {
                "session view"
            },
            esc(&plot.trace),
            esc(&plot.label),
            num(plot.bin_s),
            if plot.observation == "window" {
                "the opening of its first window (the capture sits inside at a random offset)"
            } else {
                "the original's first packet"
            }
        ));
        for (defense, rates) in &plot.defended {
            let svg = rate_chart(plot, defense, rates)?;
            h.push_str(&format!("<div>{svg}</div>\n"));
        }
        h.push_str("</div>\n</figure>\n");
    }
    let chosen: Vec<&Cell> = pts
        .iter()
        .filter_map(|p| {
            let same: Vec<&Cell> = mine
                .iter()
                .filter(|c| c.observation == p.observation)
                .copied()
                .collect();
            confusion_cell(&same, &p.defense, &p.adaptive_attack)
        })
        .collect();
    if !chosen.is_empty() {
        h.push_str(
            "<h3>Confusion matrices</h3>\n<p>Per defense, the strongest adaptive attack of the \
             headline table (in its observation model), its best seed: rows are the true class, columns the predicted one, and each \
             cell's shade is its share of the true class's windows.</p>\n",
        );
        // The undefended matrix starts open, as the baseline the others are read against.
        let open = chosen.iter().position(|c| c.defense == "none").unwrap_or(0);
        for (i, c) in chosen.iter().enumerate() {
            h.push_str(&format!(
                "<details{}><summary>{} ({}) — {}, accuracy {:.1}% (seed {}, {} classes)</summary>\n",
                if i == open { " open" } else { "" },
                esc(&c.defense),
                esc(&c.observation),
                esc(&c.attack),
                100.0 * c.accuracy,
                c.seed,
                c.confusion.len()
            ));
            if c.confusion.len() > MAX_HEATMAP_CLASSES {
                h.push_str(&format!(
                    "<p>Not drawn: more than {MAX_HEATMAP_CLASSES} classes.</p>\n"
                ));
            } else {
                h.push_str(&format!(
                    "<figure>{}</figure>\n",
                    heatmap(&c.labels, &c.confusion)?
                ));
            }
            h.push_str("</details>\n");
        }
    }
    h.push_str("</section>\n");
    Ok(())
}

/// The whole report as one HTML document (the same results give the same bytes): one section
/// per dataset, in order of first appearance, then a table of every cell.
pub fn render(results: &Results, title: &str) -> Result<String, EvalError> {
    let cells = &results.cells[..];
    if cells.is_empty() {
        return Err(EvalError::Report("no rows to report".into()));
    }
    let names = datasets(results);
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.pareto{{font-weight:bold}}\
         section{{border-top:2px solid #888;margin-top:2em}}figure{{margin:1em 0}}\
         .grid{{display:grid;grid-template-columns:repeat(2,520px);gap:8px}}\
         figcaption{{font-size:14px;margin-bottom:.5em}}summary{{cursor:pointer;margin:.3em 0}}\
         .wide{{overflow-x:auto}}.cells{{font-size:12px}}.cells td,.cells th{{padding:2px 4px}}.cells td{{white-space:nowrap}}.cells td:nth-child(-n+6),.cells th:nth-child(-n+6){{text-align:left}}\
         .cells td.p{{white-space:normal;overflow-wrap:anywhere;min-width:12em}}</style></head><body>\n\
         <h1>{t}</h1>\n<p>hush {v}. Each defense's traffic attacked by an <b>adaptive</b> attacker (trained on \
         defended traffic) and a <b>non-adaptive</b> one (trained on undefended traffic), folds by capture. \
         Lower is more private; the dashed line is chance (the highest over the defenses).</p>\n",
        t = esc(title),
        v = env!("CARGO_PKG_VERSION")
    ));
    if names.len() > 1 {
        h.push_str("<p>Datasets:");
        for (i, d) in names.iter().enumerate() {
            h.push_str(&format!(
                "{} <a href=\"#dataset-{}\">{}</a>",
                if i == 0 { "" } else { "," },
                i + 1,
                esc(d)
            ));
        }
        h.push_str(".</p>\n");
    }
    for (i, d) in names.iter().enumerate() {
        section(&mut h, i + 1, d, results)?;
    }
    h.push_str(
        "<h2>Every cell</h2>\n<div class=\"wide\"><table class=\"cells\"><tr><th>dataset</th><th>observed</th><th>defense</th><th>parameters</th><th>attack</th>\
         <th>attacker</th><th>seed</th><th>accuracy</th><th>macro-F1</th><th>capture acc.</th><th>chance</th>\
         <th>windows</th><th>bytes +%</th><th>B/s +</th><th>p50 s</th><th>p95 s</th><th>p99 s</th></tr>\n",
    );
    for c in cells {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"p\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td>\
             <td>{:.1}%</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>\n",
            esc(&c.dataset),
            esc(&if c.observation == "window" {
                format!("window {} s", num(c.window_s))
            } else {
                c.observation.clone()
            }),
            esc(&c.defense),
            esc(&c.parameters),
            esc(&c.attack),
            esc(&c.attacker),
            c.seed,
            100.0 * c.accuracy,
            100.0 * c.macro_f1,
            100.0 * c.capture_accuracy,
            100.0 * c.chance,
            c.windows,
            c.bytes_added_pct,
            c.added_bps,
            c.latency_p50_s,
            c.latency_p95_s,
            c.latency_p99_s
        ));
    }
    h.push_str("</table></div>\n</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(defense: &str, attacker: &str, acc: f64, bytes: f64) -> Cell {
        Cell {
            dataset: "d".into(),
            observation: "session".into(),
            window_s: 0.0,
            defense: defense.into(),
            parameters: defense.into(),
            attack: "flow-stats".into(),
            attacker: attacker.into(),
            seed: 0,
            accuracy: acc,
            macro_f1: acc,
            capture_accuracy: acc,
            chance: 0.1,
            windows: 10,
            bytes_added_pct: bytes,
            added_bps: bytes,
            added_bytes_per_day: bytes,
            latency_p50_s: 0.0,
            latency_p95_s: bytes / 100.0,
            latency_p99_s: 0.0,
            labels: Vec::new(),
            confusion: Vec::new(),
        }
    }

    #[test]
    fn frontier_and_report() {
        let cells = vec![
            cell("none", "adaptive", 0.9, 0.0),
            cell("none", "non-adaptive", 0.9, 0.0),
            cell("cheap", "adaptive", 0.8, 50.0),
            cell("cheap", "non-adaptive", 0.3, 50.0),
            // Dominated: costs more than "cheap" and leaks more.
            cell("bad", "adaptive", 0.85, 400.0),
            cell("bad", "non-adaptive", 0.2, 400.0),
            cell("<strong>", "adaptive", 0.2, 5000.0),
            cell("<strong>", "non-adaptive", 0.1, 5000.0),
        ];
        let f = frontier(&cells);
        let pareto: Vec<bool> = f.iter().map(|p| p.pareto).collect();
        assert_eq!(pareto, vec![true, true, false, true]);
        assert_eq!(f[2].naive_accuracy, 0.2);
        let results = Results::new(cells, Vec::new());
        let html = render(&results, "test").unwrap();
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("&lt;strong&gt;") && !html.contains("<td><strong>"));
        // Self-contained: no script, no linked or fetched resource.
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        assert_eq!(
            render(&results, "test").unwrap(),
            html,
            "same rows, same bytes"
        );
        assert!(render(&Results::new(Vec::new(), Vec::new()), "x").is_err());
    }

    /// `cell` in `dataset`, with a 2×2 confusion matrix when `confused`.
    fn cell_in(dataset: &str, defense: &str, attacker: &str, acc: f64, confused: bool) -> Cell {
        let mut c = cell(defense, attacker, acc, 10.0);
        c.dataset = dataset.into();
        if confused {
            c.labels = vec!["plug".into(), "<i a=\"x\">cam</i>".into()];
            c.confusion = vec![vec![9, 1], vec![3, 7]];
        }
        c
    }

    fn rates(k: f64) -> Rates {
        Rates {
            out_bps: vec![k, 2.0 * k, 0.0, k],
            in_bps: vec![0.0, k, k, 3.0 * k],
        }
    }

    const HOSTILE: &str = "<i onmouseover=\"x\">pad</i>";

    fn two_datasets() -> Results {
        let cells = vec![
            cell_in("iot-sentinel", "none", "adaptive", 0.9, true),
            cell_in("iot-sentinel", "none", "non-adaptive", 0.9, true),
            cell_in("iot-sentinel", HOSTILE, "adaptive", 0.5, true),
            // A stronger attack against the same defense: its matrix is the one shown.
            cell_in("iot-sentinel", HOSTILE, "adaptive", 0.6, true),
            cell_in("iot-sentinel", HOSTILE, "non-adaptive", 0.4, true),
            // Rows from before confusion matrices were kept: no heatmap.
            cell_in("pingpong-tplink", "none", "adaptive", 0.8, false),
            cell_in("pingpong-tplink", "none", "non-adaptive", 0.8, false),
            cell_in("pingpong-tplink", "front", "adaptive", 0.7, true),
            cell_in("pingpong-tplink", "front", "non-adaptive", 0.3, false),
        ];
        let plot = |dataset: &str, defenses: &[&str]| RatePlot {
            dataset: dataset.into(),
            observation: "session".into(),
            trace: format!("{HOSTILE}-trace"),
            label: format!("{HOSTILE}-label"),
            bin_s: 0.5,
            original: rates(100.0),
            defended: defenses
                .iter()
                .enumerate()
                .map(|(i, d)| (d.to_string(), rates(100.0 * (1 + 10 * i) as f64)))
                .collect(),
        };
        let rate_plots = vec![
            plot("iot-sentinel", &["none", HOSTILE]),
            plot("pingpong-tplink", &["none", "front"]),
        ];
        Results::new(cells, rate_plots)
    }

    #[test]
    fn sections_per_dataset() {
        let results = two_datasets();
        let html = render(&results, "test").unwrap();
        // Two sections, in order of first appearance, then the table of every cell.
        assert_eq!(html.matches("<h2>").count(), 3);
        let a = html.find("<h2>iot-sentinel</h2>").unwrap();
        let b = html.find("<h2>pingpong-tplink</h2>").unwrap();
        let all = html.find("<h2>Every cell</h2>").unwrap();
        assert!(a < b && b < all);
        assert_eq!(html.matches("<section").count(), 2);
        // Per dataset: 2 scatters, 2 rate charts, and one heatmap per defense with a non-empty
        // confusion (iot-sentinel 2, pingpong-tplink 1: "none" has none there).
        let svgs = |from: usize, to: usize| html[from..to].matches("<svg").count();
        assert_eq!(svgs(a, b), 2 + 2 + 2);
        assert_eq!(svgs(b, all), 2 + 2 + 1);
        assert_eq!(html.matches("<svg").count(), 11);
        assert_eq!(html.matches("<details").count(), 3);
        // One open per dataset: the undefended one, else the first.
        assert_eq!(html.matches("<details open>").count(), 2);
        assert!(
            html.contains("<details open><summary>none (session) — flow-stats, accuracy 90.0%")
        );
        assert!(
            html.contains("<details open><summary>front (session) — flow-stats, accuracy 70.0%")
        );
        // The strongest adaptive row stands for its defense.
        assert!(html.contains("accuracy 60.0%") && !html.contains("accuracy 50.0%"));
        // Every cell, with its dataset.
        assert_eq!(html[all..].matches("<tr><td>iot-sentinel</td>").count(), 5);
        assert_eq!(
            html[all..].matches("<tr><td>pingpong-tplink</td>").count(),
            4
        );
        // Frontier per dataset: each section's table has its own defenses.
        assert_eq!(html[b..all].matches("<td>front</td>").count(), 1);
        assert!(!html[a..b].contains("<td>front</td>"));
        assert_eq!(
            render(&results, "test").unwrap(),
            html,
            "same results, same bytes"
        );
    }

    #[test]
    fn hostile_names_are_escaped_everywhere() {
        let html = render(&two_datasets(), "test").unwrap();
        // In the frontier and cell tables, the rate plots' captions and chart titles, the
        // confusion summaries and the heatmaps' class names: never as markup.
        assert!(!html.contains("<i "), "a name got through as markup");
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        let escaped = "&lt;i onmouseover=&quot;x&quot;&gt;";
        // Tables (frontier, every cell), summary, chart title (plotters escapes too), the
        // caption's trace and label, and the heatmap's axes.
        assert!(html.contains(&format!("<td>{escaped}pad&lt;/i&gt;</td>")));
        assert!(html.contains(&format!("<summary>{escaped}pad&lt;/i&gt; (session) — ")));
        assert!(html.contains(&format!("<b>{escaped}pad&lt;/i&gt;-trace</b>")));
        assert!(html.contains(&format!("<b>{escaped}pad&lt;/i&gt;-label</b>")));
        // plotters also escapes apostrophes; the title sits in an SVG text element.
        assert!(html.contains(&format!(">\n{escaped}pad&lt;/i&gt;\n</text>")));
        assert!(html.contains(">\n&lt;i a=&quot;x&quot;&gt;cam&lt;/i&gt;\n</text>"));
    }

    #[test]
    fn heatmap_scales_with_classes() {
        for n in [1usize, 2, 12, 31] {
            let labels: Vec<String> = (0..n).map(|i| format!("device-{i}")).collect();
            let confusion: Vec<Vec<u64>> = (0..n)
                .map(|t| (0..n).map(|p| u64::from(t == p) * 5 + 1).collect())
                .collect();
            let svg = heatmap(&labels, &confusion).unwrap();
            // Every class named on both axes.
            assert_eq!(svg.matches("device-").count(), 2 * n, "{n} classes");
            // Counts only while the cells are big enough to read them.
            assert_eq!(svg.contains(">\n6\n</text>"), n <= 12, "{n} classes");
        }
        // Ragged rows and missing labels from a damaged file still draw.
        let svg = heatmap(&[], &[vec![1], vec![2, 3, 4]]).unwrap();
        assert!(svg.contains("class 1"));
    }

    #[test]
    fn rate_chart_survives_bad_numbers() {
        let plot = RatePlot {
            dataset: "d".into(),
            observation: "session".into(),
            trace: "t".into(),
            label: "l".into(),
            bin_s: f64::NAN,
            original: Rates {
                out_bps: vec![f64::INFINITY, -1.0],
                in_bps: Vec::new(),
            },
            defended: Vec::new(),
        };
        let empty = Rates {
            out_bps: Vec::new(),
            in_bps: vec![f64::NAN],
        };
        assert!(rate_chart(&plot, "x", &empty).unwrap().contains("<svg"));
    }

    #[test]
    fn log_axis_ticks_and_labels_apart() {
        assert_eq!(
            log_ticks(150_000.0),
            vec![0.0, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5]
        );
        assert_eq!(log_ticks(30.0), vec![0.0, 1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(si(1e5), "100k");
        assert_eq!(si(1500.0), "1.5k");
        // Three markers on one spot, two labels: none overlaps another.
        let labels = vec![
            ("none, pad-mtu".to_string(), (100, 100)),
            ("front".to_string(), (104, 100)),
            ("stp".to_string(), (100, 108)),
        ];
        let at = place_labels(
            &labels,
            &[(100, 100), (104, 100), (100, 108)],
            (0, 0, 400, 300),
        );
        let boxes: Vec<PixelBox> = labels
            .iter()
            .zip(&at)
            .map(|((s, _), &(x, y))| (x, y - 6, x + (s.len() as f64 * 5.5).ceil() as i32, y + 6))
            .collect();
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                assert!(
                    !overlaps(boxes[i], boxes[j]),
                    "{:?} and {:?}",
                    boxes[i],
                    boxes[j]
                );
            }
        }
    }
}

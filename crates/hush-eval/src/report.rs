//! The report: one static HTML file with inline SVG (no server, no CDN, no script), from the
//! matrix's rows: the privacy–overhead frontier, the latency–privacy plot and a table of every
//! cell.

use plotters::prelude::*;

use crate::EvalError;
use crate::matrix::{Cell, Results};

/// One point per defense setting: its cost and the strongest attack against it.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontierPoint {
    /// The defense.
    pub defense: String,
    /// Bytes added, % of the original.
    pub bytes_added_pct: f64,
    /// 95th percentile delay of real data, seconds.
    pub latency_p95_s: f64,
    /// Best adaptive accuracy over the attacks (and seeds' mean).
    pub adaptive_accuracy: f64,
    /// Best non-adaptive accuracy.
    pub naive_accuracy: f64,
    /// Majority-class chance.
    pub chance: f64,
    /// On the Pareto front: no other setting costs no more bytes and leaks no more.
    pub pareto: bool,
}

/// The frontier's points, in the rows' defense order.
pub fn frontier(cells: &[Cell]) -> Vec<FrontierPoint> {
    let mut defenses: Vec<&str> = Vec::new();
    for c in cells {
        if !defenses.contains(&c.defense.as_str()) {
            defenses.push(&c.defense);
        }
    }
    let mean_best = |mine: &[&Cell], who: &str| -> f64 {
        // Per attack, the mean over seeds; then the best attack.
        let mut attacks: Vec<&str> = Vec::new();
        for c in mine.iter().filter(|c| c.attacker == who) {
            if !attacks.contains(&c.attack.as_str()) {
                attacks.push(&c.attack);
            }
        }
        attacks
            .iter()
            .map(|a| {
                let v: Vec<f64> = mine
                    .iter()
                    .filter(|c| c.attacker == who && c.attack == *a)
                    .map(|c| c.accuracy)
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            })
            .fold(0.0, f64::max)
    };
    let mut pts: Vec<FrontierPoint> = defenses
        .iter()
        .map(|d| {
            let mine: Vec<&Cell> = cells.iter().filter(|c| c.defense == *d).collect();
            let n = mine.len().max(1) as f64;
            FrontierPoint {
                defense: d.to_string(),
                bytes_added_pct: mine.iter().map(|c| c.bytes_added_pct).sum::<f64>() / n,
                latency_p95_s: mine.iter().map(|c| c.latency_p95_s).sum::<f64>() / n,
                adaptive_accuracy: mean_best(&mine, "adaptive"),
                naive_accuracy: mean_best(&mine, "non-adaptive"),
                chance: mine.iter().map(|c| c.chance).fold(0.0, f64::max),
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

/// A scatter of the points against `x` (log scale), adaptive filled, naive hollow, the Pareto
/// front joined, the chance level dashed.
fn scatter(
    pts: &[FrontierPoint],
    x: impl Fn(&FrontierPoint) -> f64,
    x_desc: &str,
    title: &str,
    front: bool,
) -> Result<String, EvalError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let xmax = pts.iter().map(|p| log1p10(x(p))).fold(1.0, f64::max) * 1.08;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..xmax, 0f64..1.05f64)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("attack accuracy")
            .x_label_formatter(&|v| format!("{:.0}", 10f64.powf(*v) - 1.0))
            .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
            .draw()
            .map_err(plot_err)?;
        let chance = pts.iter().map(|p| p.chance).fold(0.0, f64::max);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, chance), (xmax, chance)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(plot_err)?
            .label(format!("chance {:.1}%", 100.0 * chance))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.6)));
        if front {
            let mut f: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.pareto)
                .map(|p| (log1p10(x(p)), p.adaptive_accuracy))
                .collect();
            f.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(f, RED.stroke_width(2)))
                .map_err(plot_err)?
                .label("Pareto front (adaptive)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
        }
        chart
            .draw_series(pts.iter().map(|p| {
                Circle::new(
                    (log1p10(x(p)), p.naive_accuracy),
                    4,
                    BLUE.mix(0.8).stroke_width(1),
                )
            }))
            .map_err(plot_err)?
            .label("non-adaptive attacker")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, BLUE.stroke_width(1)));
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new((log1p10(x(p)), p.adaptive_accuracy), 5, RED.filled())),
            )
            .map_err(plot_err)?
            .label("adaptive attacker")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.filled()));
        chart
            .draw_series(pts.iter().map(|p| {
                Text::new(
                    p.defense.clone(),
                    (log1p10(x(p)) + xmax * 0.01, p.adaptive_accuracy + 0.025),
                    ("sans-serif", 12),
                )
            }))
            .map_err(plot_err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(plot_err)?;
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

/// The whole report as one HTML document (the same results give the same bytes).
pub fn render(results: &Results, title: &str) -> Result<String, EvalError> {
    let cells = &results.cells[..];
    if cells.is_empty() {
        return Err(EvalError::Report("no rows to report".into()));
    }
    let pts = frontier(cells);
    let privacy = scatter(
        &pts,
        |p| p.bytes_added_pct,
        "bytes added, % (log scale)",
        "Privacy against bandwidth: the strongest attack per defense",
        true,
    )?;
    let latency = scatter(
        &pts,
        |p| p.latency_p95_s,
        "real-data delay p95, s (log scale)",
        "Privacy against latency",
        false,
    )?;
    let mut h = String::new();
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.pareto{{font-weight:bold}}</style></head><body>\n\
         <h1>{t}</h1>\n<p>hush {v}. Each defense's traffic attacked by an <b>adaptive</b> attacker (trained on \
         defended traffic) and a <b>non-adaptive</b> one (trained on undefended traffic), folds by capture. \
         Lower is more private; the dashed line is chance.</p>\n",
        t = esc(title),
        v = env!("CARGO_PKG_VERSION")
    ));
    h.push_str(&format!(
        "<figure>{privacy}</figure>\n<figure>{latency}</figure>\n"
    ));
    h.push_str(
        "<h2>Frontier</h2>\n<table><tr><th>defense</th><th>adaptive</th><th>non-adaptive</th>\
         <th>chance</th><th>bytes added %</th><th>delay p95 s</th><th>Pareto</th></tr>\n",
    );
    for p in &pts {
        h.push_str(&format!(
            "<tr{cls}><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}</td><td>{:.3}</td><td>{}</td></tr>\n",
            esc(&p.defense),
            100.0 * p.adaptive_accuracy,
            100.0 * p.naive_accuracy,
            100.0 * p.chance,
            p.bytes_added_pct,
            p.latency_p95_s,
            if p.pareto { "yes" } else { "" },
            cls = if p.pareto { " class=\"pareto\"" } else { "" }
        ));
    }
    h.push_str(
        "</table>\n<h2>Every cell</h2>\n<table><tr><th>defense</th><th>parameters</th><th>attack</th>\
         <th>attacker</th><th>seed</th><th>accuracy</th><th>macro-F1</th><th>capture acc.</th><th>chance</th>\
         <th>windows</th><th>bytes +%</th><th>B/s +</th><th>p50 s</th><th>p95 s</th><th>p99 s</th></tr>\n",
    );
    for c in cells {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td>\
             <td>{:.1}%</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>\n",
            esc(&c.defense),
            esc(&c.parameters),
            esc(&c.attack),
            c.attacker,
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
    h.push_str("</table>\n</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(defense: &str, attacker: &str, acc: f64, bytes: f64) -> Cell {
        Cell {
            dataset: "d".into(),
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
}

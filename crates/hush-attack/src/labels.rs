//! User-event labels: when something happened, to which device, and what.
//!
//! Four layouts are read:
//!
//! - **hush's CSV**, for your own captures: a header `time,device,event` (and optionally `end`),
//!   one row per event. `time` and `end` are seconds since the Unix epoch (`1713252489.5`) or
//!   ISO 8601 (`2024-04-16T15:28:09Z`, `2024-04-16T15:28:09+08:00`, or without a zone, in the
//!   `--utc-offset` given); `device` is a MAC, an IP, a name or empty; `event` is free text.
//! - **phase lists** (NKU lifecycle): `phase start_time end_time duration` lines with times like
//!   `2024-04-16_15:28:09` in local time (NKU: UTC+8), `#` comments.
//! - **PingPong timestamp files**: `2:38:04 PM` lines, the date from the file name
//!   (`tplink-feb-13-2018.timestamps`) and a UTC offset.
//! - **one capture per event**: a folder of captures named by event (`on_local.pcap`); see
//!   [`label_of_file`].

use std::path::Path;

use serde::Serialize;

/// One labelled event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// End (equal to the start for an instant).
    pub end_ns: i64,
    /// What happened.
    pub label: String,
    /// Which device, if the labels say.
    pub device: Option<String>,
}

/// Why labels could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct LabelError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn err(file: &Path, line: usize, reason: impl Into<String>) -> LabelError {
    LabelError {
        file: file.display().to_string(),
        line,
        reason: reason.into(),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn ymd_hms_to_ns(
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    s: f64,
    utc_offset_s: i64,
) -> Option<i64> {
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0.0..61.0).contains(&s)
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 - utc_offset_s;
    Some(secs * 1_000_000_000 + (s * 1e9).round() as i64)
}

/// `2024-04-16T15:28:09[.5][Z|+08:00|-0700]` or with `_` or a space for `T`; a missing zone
/// means `utc_offset_s`.
pub fn parse_datetime(text: &str, utc_offset_s: i64) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = t.split_at_checked(10)?;
    let mut dp = date.split('-');
    let (y, mo, d) = (
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
    );
    let rest = rest.strip_prefix(['T', '_', ' '])?;
    // Split a zone off the end.
    let (time, offset) = if let Some(tm) = rest.strip_suffix('Z') {
        (tm, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']).filter(|&p| p >= 5) {
        let (tm, z) = rest.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = z[1..].replace(':', "");
        if z.len() != 4 {
            return None;
        }
        let (zh, zm): (i64, i64) = (z[..2].parse().ok()?, z[2..].parse().ok()?);
        (tm, sign * (zh * 3600 + zm * 60))
    } else {
        (rest, utc_offset_s)
    };
    let mut tp = time.split(':');
    let (h, mi) = (tp.next()?.parse().ok()?, tp.next()?.parse().ok()?);
    let s: f64 = tp.next().unwrap_or("0").parse().ok()?;
    ymd_hms_to_ns(y, mo, d, h, mi, s, offset)
}

/// A time: epoch seconds or ISO 8601.
fn parse_time(text: &str, utc_offset_s: i64) -> Option<i64> {
    let t = text.trim();
    if let Ok(s) = t.parse::<f64>() {
        return s.is_finite().then(|| (s * 1e9).round() as i64);
    }
    parse_datetime(t, utc_offset_s)
}

/// Read hush's event CSV.
pub fn read_csv(path: &Path, utc_offset_s: i64) -> Result<Vec<Event>, LabelError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, e.to_string()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let (_, header) = lines
        .next()
        .ok_or_else(|| err(path, 0, "empty: expected a header time,device,event"))?;
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| cols.iter().position(|c| c == name);
    let (Some(ct), Some(ce)) = (col("time"), col("event")) else {
        return Err(err(
            path,
            1,
            "the header needs time and event columns (time,device,event[,end])",
        ));
    };
    let (cd, cend) = (col("device"), col("end"));
    let mut out = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| err(path, i + 1, format!("missing column {}", cols[c])))
        };
        let start_ns = parse_time(get(ct)?, utc_offset_s).ok_or_else(|| {
            err(
                path,
                i + 1,
                format!("time {:?} is not epoch seconds or ISO 8601", f[ct]),
            )
        })?;
        let end_ns = match cend.and_then(|c| f.get(c)).filter(|s| !s.is_empty()) {
            Some(s) => parse_time(s, utc_offset_s)
                .ok_or_else(|| err(path, i + 1, format!("end {s:?} is not a time")))?,
            None => start_ns,
        };
        if end_ns < start_ns {
            return Err(err(path, i + 1, "end is before time"));
        }
        let label = get(ce)?.to_string();
        if label.is_empty() {
            return Err(err(path, i + 1, "empty event"));
        }
        out.push(Event {
            start_ns,
            end_ns,
            label,
            device: cd
                .and_then(|c| f.get(c))
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
        });
    }
    out.sort_by_key(|e| e.start_ns);
    Ok(out)
}

/// Read an NKU-style phase list (`phase start end duration`, local times).
pub fn read_phases(path: &Path, utc_offset_s: i64) -> Result<Vec<Event>, LabelError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            return Err(err(
                path,
                i + 1,
                "expected: phase start_time end_time [duration]",
            ));
        }
        let t = |s: &str| {
            parse_datetime(s, utc_offset_s).ok_or_else(|| {
                err(
                    path,
                    i + 1,
                    format!("{s:?} is not a time like 2024-04-16_15:28:09"),
                )
            })
        };
        let (start_ns, end_ns) = (t(f[1])?, t(f[2])?);
        if end_ns < start_ns {
            return Err(err(path, i + 1, "the phase ends before it starts"));
        }
        out.push(Event {
            start_ns,
            end_ns,
            label: f[0].to_string(),
            device: None,
        });
    }
    if out.is_empty() {
        return Err(err(path, 0, "no phases"));
    }
    out.sort_by_key(|e| e.start_ns);
    Ok(out)
}

/// Read a PingPong timestamp file (`2:38:04 PM` per line); the date comes from the file name
/// (`...-feb-13-2018.timestamps`), times are at `utc_offset_s`, each event labelled `label`.
pub fn read_pingpong(
    path: &Path,
    utc_offset_s: i64,
    label: &str,
) -> Result<Vec<Event>, LabelError> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parts: Vec<&str> = name.split('-').collect();
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let date = parts.windows(3).find_map(|w| {
        let m = months.iter().position(|&m| w[0].starts_with(m))? as i64 + 1;
        let d: i64 = w[1].parse().ok()?;
        let y: i64 = w[2].parse().ok()?;
        Some((y, m, d))
    });
    let (y, mo, d) =
        date.ok_or_else(|| err(path, 0, "no date like feb-13-2018 in the file name"))?;
    let text = std::fs::read_to_string(path).map_err(|e| err(path, 0, e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let bad = || err(path, i + 1, format!("{l:?} is not a time like 2:38:04 PM"));
        let (clock, ampm) = l.split_once(' ').ok_or_else(bad)?;
        let mut hp = clock.split(':');
        let (h, mi, s): (i64, i64, f64) = (
            hp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
            hp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
            hp.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        );
        let h = match (ampm.trim().to_ascii_uppercase().as_str(), h) {
            ("AM", 12) => 0,
            ("AM", h) => h,
            ("PM", 12) => 12,
            ("PM", h) => h + 12,
            _ => return Err(bad()),
        };
        let t = ymd_hms_to_ns(y, mo, d, h, mi, s, utc_offset_s).ok_or_else(bad)?;
        out.push(Event {
            start_ns: t,
            end_ns: t,
            label: label.to_string(),
            device: None,
        });
    }
    Ok(out)
}

/// The event a capture file names (`on_local.pcap` → `on_local`; NKU's slices carry a device
/// prefix and a sequence number, e.g. `xiaodu_plug_on_local_1.pcap` → `on_local` with
/// `prefix = "xiaodu_plug_"`).
pub fn label_of_file(path: &Path, prefix: &str) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let stem = stem.strip_prefix(prefix).unwrap_or(stem);
    // A trailing _<number> is a repetition, not part of the event.
    let label = match stem.rsplit_once('_') {
        Some((head, tail)) if tail.chars().all(|c| c.is_ascii_digit()) && !head.is_empty() => head,
        _ => stem,
    };
    Some(label.to_string())
}

/// Problems with labels against a capture: events outside its time range, overlapping events.
/// These are warnings, never silent: the caller prints or refuses them.
pub fn check(events: &[Event], capture_start_ns: i64, capture_end_ns: i64) -> Vec<String> {
    let mut out = Vec::new();
    let outside = events
        .iter()
        .filter(|e| e.end_ns < capture_start_ns || e.start_ns > capture_end_ns)
        .count();
    if outside > 0 {
        out.push(format!(
            "{outside} of {} events fall outside the capture ({:.0} s to {:.0} s since the epoch): wrong date or time zone?",
            events.len(),
            capture_start_ns as f64 * 1e-9,
            capture_end_ns as f64 * 1e-9
        ));
    }
    for w in events.windows(2) {
        if w[1].start_ns < w[0].end_ns {
            out.push(format!(
                "events {:?} and {:?} overlap",
                w[0].label, w[1].label
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_by_hand() {
        // 2024-04-16 15:28:09 at UTC+8 is 07:28:09 UTC = 1713252489.
        assert_eq!(
            parse_datetime("2024-04-16_15:28:09", 8 * 3600),
            Some(1_713_252_489_000_000_000)
        );
        assert_eq!(
            parse_datetime("2024-04-16T07:28:09Z", 0),
            Some(1_713_252_489_000_000_000)
        );
        assert_eq!(
            parse_datetime("2024-04-16T15:28:09+08:00", -5 * 3600),
            Some(1_713_252_489_000_000_000)
        );
        assert_eq!(
            parse_datetime("2024-04-16 00:28:09.5-0700", 0),
            Some(1_713_252_489_500_000_000)
        );
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z", 0), Some(0));
        for bad in [
            "2024-13-01T00:00:00Z",
            "2024-04-16",
            "yesterday",
            "2024-04-16T25:00:00Z",
        ] {
            assert_eq!(parse_datetime(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn file_labels() {
        assert_eq!(
            label_of_file(Path::new("d/on_local.pcap"), ""),
            Some("on_local".into())
        );
        assert_eq!(
            label_of_file(Path::new("xiaodu_plug_on_local_3.pcap"), "xiaodu_plug_"),
            Some("on_local".into())
        );
        assert_eq!(
            label_of_file(Path::new("TP_LINK_LOCAL_ON.pcap"), "TP_LINK_"),
            Some("LOCAL_ON".into())
        );
    }

    #[test]
    fn checks_warn() {
        let e = |a: i64, b: i64| Event {
            start_ns: a,
            end_ns: b,
            label: "x".into(),
            device: None,
        };
        let w = check(&[e(0, 10), e(5, 20), e(500, 600)], 0, 100);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(check(&[e(0, 10), e(20, 30)], 0, 100).is_empty());
    }
}

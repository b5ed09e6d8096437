//! `--data`: the dataset layouts that `hush eval`, `hush attack` and `hush defend` read, loaded
//! one way for all three.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use hush_trace::dataset::{Dataset, IOT_SENTINEL_TYPES, Layout, LoadOptions};
use hush_trace::home::HomeWindows;

use crate::BadInput;

/// What turns `--data` into a whole-home capture, and how that is cut.
#[derive(Args, Clone, Debug)]
pub struct LayoutArgs {
    /// Read --data as a whole-home capture (a pcap or pcapng file, or a folder of files that are
    /// parts of one capture) holding the devices listed in this CSV: a header `mac,name[,type]`,
    /// then one row per device. Each device's frames (from or to its MAC) are cut into windows,
    /// one trace each, labelled with its type, else its name.
    #[arg(long, value_name = "CSV")]
    pub devices: Option<PathBuf>,
    /// With --devices: window length, seconds. One clock grid from the capture's first packet
    /// for every device, never placed by the traffic.
    #[arg(long, value_name = "S", default_value_t = 60.0, requires = "devices")]
    pub home_window_s: f64,
    /// With --devices: time block length, seconds, a whole number of windows. The windows of one
    /// block are one group for every device, kept on one side of every split, so no test window
    /// has a training window from the same block.
    #[arg(long, value_name = "S", default_value_t = 600.0, requires = "devices")]
    pub home_block_s: f64,
}

impl LayoutArgs {
    /// Which layout `data` is (see [`Layout::detect`]).
    pub fn layout(&self, data: &Path) -> Result<Layout> {
        let windows = HomeWindows {
            window_s: self.home_window_s,
            block_s: self.home_block_s,
        };
        if let Err(e) = windows.lengths_ns() {
            return Err(BadInput(format!(
                "--home-window-s {} --home-block-s {}: {}",
                self.home_window_s, self.home_block_s, e.kind
            ))
            .into());
        }
        Ok(Layout::detect(data, self.devices.as_deref(), windows)?)
    }
}

/// Load a dataset with a progress bar, then say on stderr what was left out: files not read,
/// devices never seen. `types` merges IoT Sentinel's devices into types; `join` joins each
/// label's traces into that many long ones, `join_gap_s` apart.
pub fn load_data(
    layout: &Layout,
    types: bool,
    join: Option<(usize, f64)>,
    opts: &LoadOptions<'_>,
) -> Result<Dataset> {
    if let Some((n, gap_s)) = join
        && (n == 0 || !(gap_s.is_finite() && gap_s >= 0.0))
    {
        return Err(BadInput(format!(
            "--join {n} --join-gap-s {gap_s}: need at least 1 trace and a gap of 0 s or more"
        ))
        .into());
    }
    let bar = crate::progress_bar("reading captures")?;
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let mut ds = layout.load(&LoadOptions {
        progress: Some(&progress),
        ..*opts
    })?;
    bar.finish_and_clear();
    for (path, why) in &ds.report.not_read {
        eprintln!("hush: skipped {path}: {why}");
    }
    if !ds.report.unseen_devices.is_empty() {
        eprintln!(
            "hush: warning: {} device(s) never seen in the capture, so without traces: {}",
            ds.report.unseen_devices.len(),
            ds.report.unseen_devices.join(", ")
        );
    }
    if types {
        ds.relabel(IOT_SENTINEL_TYPES);
    }
    if let Some((n, gap_s)) = join {
        ds = hush_attack::images::join_captures(&ds, n, gap_s);
    }
    if ds.traces.is_empty() {
        return Err(BadInput(format!("{}: no captures", name_of(layout))).into());
    }
    Ok(ds)
}

/// The path a layout was read from, for messages.
fn name_of(layout: &Layout) -> String {
    match layout {
        Layout::Folder(p) | Layout::Manifest(p) => p.display().to_string(),
        Layout::Home(h) => h.devices.display().to_string(),
    }
}

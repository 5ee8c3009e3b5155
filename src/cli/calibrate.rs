//! `basin calibrate CAL.toml [--out DIR] [--quick] [--set KEY=VALUE]...`: measure cost and
//! quality tables on this host (see [`crate::calibrate`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::calibrate::{self, Options};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The calibration file (TOML), e.g. calibration/cal-cpu.toml.
    pub config: PathBuf,
    /// Output directory (default: <folder of CAL.toml>/<host-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Short smoke run: at most ~1 s and 10 repetitions per point, 0.5 s idle window.
    #[arg(long)]
    pub quick: bool,
    /// Override any key by its dotted path, e.g. --set backends.triton.url=http://127.0.0.1:8010.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// No progress bar or per-point lines.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: CalibrateArgs) -> Result<()> {
    let opts = Options { config: a.config, out: a.out, quick: a.quick, overrides: a.set, progress: !a.quiet };
    let (out, cal) = calibrate::run(&opts)?;
    let est = cal.measured.iter().any(|m| m.estimated);
    println!(
        "calibrated {} points in {:.1} s; wrote {}{}",
        cal.measured.len(),
        cal.wall_s,
        out.display(),
        if est { " (energy ESTIMATED from CPU time: no energy counters on this host)" } else { "" }
    );
    for (model, v) in calibrate::output::request_overheads(&cal) {
        println!("transport: {model} on triton: set [[server]] request_overhead_ms = {v:.3} (overhead.csv)");
    }
    for n in &cal.transport_notes {
        println!("transport: {n}");
    }
    if let Some(c) = cal.quality.as_ref().and_then(|q| q.summary.check.as_ref()) {
        println!(
            "quality: {} rows, {} vs {} (max |confidence diff| {:.1e}, {} correct mismatches)",
            c.rows_compared,
            if c.equal { "equal to" } else { "DIFFERS from" },
            c.reference,
            c.max_abs_confidence_diff,
            c.correct_mismatches
        );
    }
    Ok(())
}

//! `basin trace stats FILE` and `basin trace gen SHAPE ...`.

use crate::io::traces::{IpaOptions, load_workload, write_rate_csv};
use crate::traces::TraceFormat;
use crate::traces::r#gen::{GenParams, Shape, generate};
use std::path::PathBuf;

/// Workload-trace tools.
#[derive(Debug, clap::Subcommand)]
pub enum TraceCmd {
    /// Print seconds, mean, peak, peak/mean and CV of a trace's per-second rate.
    Stats {
        /// A rate CSV, IPA raw series or request CSV (arrivals counted per second).
        file: PathBuf,
        /// The file's format (default: told from its first line).
        #[arg(long, value_enum)]
        format: Option<TraceFormat>,
        /// IPA raw series only: keep values START..END (0-based, end excluded).
        #[arg(long, value_name = "START..END", value_parser = parse_window)]
        window: Option<(usize, usize)>,
        /// IPA raw series only: divide each value by this (integer division; IPA uses 8).
        #[arg(long, default_value_t = 1)]
        damping: u64,
    },
    /// Write a synthetic Twitter-style rate CSV and print its statistics. Unset options take
    /// the shape's defaults (those of the real IPA trace).
    Gen {
        /// bursty | steady_low | steady_high | fluctuating
        #[arg(value_enum)]
        shape: Shape,
        /// Mean rate, requests/s.
        #[arg(long, allow_negative_numbers = true)]
        mean_rps: Option<f64>,
        /// Target coefficient of variation of the per-second rate.
        #[arg(long, allow_negative_numbers = true)]
        burstiness: Option<f64>,
        /// Length in seconds.
        #[arg(long)]
        duration_s: Option<u64>,
        /// Seed of the generator.
        #[arg(long)]
        seed: Option<u64>,
        /// Output rate CSV.
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_window(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("`{s}` is not START..END"))?;
    let num = |x: &str| x.trim().parse::<usize>().map_err(|_| format!("`{x}` in `{s}` is not a non-negative integer"));
    Ok((num(a)?, num(b)?))
}

pub fn run(cmd: TraceCmd) -> anyhow::Result<()> {
    match cmd {
        TraceCmd::Stats { file, format, window, damping } => {
            let w = load_workload(&file, format, IpaOptions { window, damping })?;
            println!("{}", file.display());
            println!("{}", w.per_second().stats());
        }
        TraceCmd::Gen { shape, mean_rps, burstiness, duration_s, seed, out } => {
            let d = shape.default_params();
            let p = GenParams {
                mean_rps: mean_rps.unwrap_or(d.mean_rps),
                burstiness: burstiness.unwrap_or(d.burstiness),
                duration_s: duration_s.unwrap_or(d.duration_s),
                seed: seed.unwrap_or(d.seed),
            };
            let trace = generate(shape, &p)?;
            write_rate_csv(&out, &trace)?;
            println!(
                "{} ({shape}, mean_rps {}, burstiness {}, duration_s {}, seed {})",
                out.display(),
                p.mean_rps,
                p.burstiness,
                p.duration_s,
                p.seed
            );
            println!("{}", trace.stats());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: TraceCmd,
    }

    #[test]
    fn parses_both_subcommands() {
        let c = Cli::try_parse_from(["t", "gen", "steady_low", "--seed", "3", "--out", "x.csv"]).unwrap();
        assert!(matches!(c.cmd, TraceCmd::Gen { shape: Shape::SteadyLow, seed: Some(3), mean_rps: None, .. }));
        let c = Cli::try_parse_from(["t", "stats", "f", "--format", "ipa_raw", "--window", "5..10", "--damping", "8"]).unwrap();
        assert!(matches!(c.cmd, TraceCmd::Stats { format: Some(TraceFormat::IpaRaw), window: Some((5, 10)), damping: 8, .. }));
        assert!(Cli::try_parse_from(["t", "gen", "spiky", "--out", "x"]).is_err());
        assert!(Cli::try_parse_from(["t", "stats", "f", "--window", "5-10"]).is_err());
    }
}

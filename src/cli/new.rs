//! `basin new EXP.toml --template NAME`: a commented, runnable experiment to start from.
//!
//! The templates read the real traces through `${BASIN_TRACES_DIR}` and the repository's
//! measured CPU tables (`calibration/vm-amd-epyc/`), whose absolute path is written into the
//! file, so the experiment runs wherever it is written. They declare the idle power the
//! CPU-time estimate cannot see as an assumption, with its source.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::io::{experiment, outputs};

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The experiment file to write (refused if it exists).
    pub experiment: PathBuf,
    /// What to start from.
    #[arg(long, value_enum, default_value_t = Template::Batched)]
    pub template: Template,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// A Triton-style dynamic batcher on the IPA bursty trace.
    Batched,
    /// Local workers on a constant-rate Poisson workload.
    Local,
    /// An early-exit cascade behind the bio-inspired threshold controller.
    CascadeBio,
    /// IPA-style model, batch and instance adaptation.
    Ipa,
    /// Carbon-aware model switching on California's grid.
    Carbon,
}

impl Template {
    pub const ALL: [Template; 5] = [Template::Batched, Template::Local, Template::CascadeBio, Template::Ipa, Template::Carbon];

    fn text(self) -> &'static str {
        match self {
            Template::Batched => include_str!("templates/batched.toml"),
            Template::Local => include_str!("templates/local.toml"),
            Template::CascadeBio => include_str!("templates/cascade-bio.toml"),
            Template::Ipa => include_str!("templates/ipa.toml"),
            Template::Carbon => include_str!("templates/carbon.toml"),
        }
    }
}

/// The measured tables the templates use, relative to the repository root.
const CALIBRATION: &str = "calibration/vm-amd-epyc";

/// The assumed idle power of the templates' CPU host and where it comes from.
const IDLE_W: &str = "42.5";
const IDLE_SOURCE: &str = "assumed: half the 85 W generic TDP that the cost table's CPU-time estimate uses (servers idle near half their peak power: Barroso and Hoelzle, The Case for Energy-Proportional Computing, IEEE Computer 2007); not measured";

/// The experiment text of `template` for a file at `dest`.
pub fn render(template: Template, dest: &Path) -> Result<String> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let traces = experiment::traces_dir(dir).map_err(anyhow::Error::msg)?;
    let calibration = traces.parent().map(|root| root.join(CALIBRATION)).filter(|c| c.join("cost.csv").is_file()).with_context(|| {
        format!("the templates use the basin repository's measured tables ({CALIBRATION}/), expected beside the traces folder {}; set BASIN_TRACES_DIR to a clone's traces/", traces.display())
    })?;
    let calibration = std::fs::canonicalize(&calibration).unwrap_or(calibration);
    let name = dest.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into());
    Ok(template
        .text()
        .replace("@NAME@", &name.replace('"', "'"))
        .replace("@CALIBRATION@", &calibration.display().to_string())
        .replace("@IDLE_W@", IDLE_W)
        .replace("@IDLE_SOURCE@", IDLE_SOURCE))
}

pub fn run(a: NewArgs) -> Result<()> {
    if a.experiment.exists() {
        bail!("{} exists; basin new does not overwrite a file (choose another name or remove it)", a.experiment.display());
    }
    let text = render(a.template, &a.experiment)?;
    // Written beside the destination, checked, then linked into place: an existing file is
    // never replaced (even one created meanwhile) and nothing partial is left on error.
    let tmp = outputs::tmp_sibling(&a.experiment);
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    let checked = experiment::load(&tmp, &[], None).map(|_| ()).with_context(|| format!("template `{:?}` does not load", a.template));
    let placed =
        checked.and_then(|()| std::fs::hard_link(&tmp, &a.experiment).with_context(|| format!("cannot create {}", a.experiment.display())));
    let _ = std::fs::remove_file(&tmp);
    placed?;
    println!(
        "wrote {} (template {}); run it: basin simulate {}",
        a.experiment.display(),
        a.template.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string()),
        a.experiment.display()
    );
    Ok(())
}

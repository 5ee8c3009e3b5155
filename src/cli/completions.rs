//! `basin completions bash|zsh|fish`: the shell completion script, on standard output.

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish (also elvish, powershell).
    pub shell: Shell,
}

pub fn run(a: CompletionsArgs) -> Result<()> {
    clap_complete::generate(a.shell, &mut super::Cli::command(), "basin", &mut std::io::stdout());
    Ok(())
}

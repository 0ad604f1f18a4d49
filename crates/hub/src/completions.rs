//! `bastion completions bash|zsh|fish` and `bastion man`: shell completions and man pages
//! generated from the clap definitions, so they never drift from the flags the binary accepts.
//! The `.deb` ships both; `cargo xtask dist` produces them by running the built binary.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

/// The shells `bastion completions` writes a script for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Shell {
    /// Bash (source it, or install as /usr/share/bash-completion/completions/bastion).
    Bash,
    /// Zsh (install as `_bastion` in a directory of `$fpath`).
    Zsh,
    /// Fish (install as ~/.config/fish/completions/bastion.fish).
    Fish,
}

/// Flags of `bastion completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write completions for; the script goes to stdout.
    shell: Shell,
}

/// Flags of `bastion man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write `bastion.1` and one `bastion-SUBCOMMAND.1` per subcommand into DIR (created if
    /// missing) instead of printing `bastion.1` on stdout.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` of the command line `cmd` on stdout.
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into a buffer first: clap_complete panics when its writer fails (`... | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "bastion", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).context("writing the completion script")
}

/// Writes the man pages of `cmd`: the top page on stdout, or every page into `--out-dir`.
pub fn man(args: &ManArgs, cmd: clap::Command) -> anyhow::Result<()> {
    let mut cmd = cmd.name("bastion");
    // Building fills in the display names ("bastion-token-create") that pages and their
    // usage lines are named after.
    cmd.build();
    match &args.out_dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out).context("writing the man page")?;
            out.flush().context("writing the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            write_pages(&cmd, dir)
        }
    }
}

/// Writes `NAME.1` for `cmd` and, recursively, one page per visible subcommand.
fn write_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_owned();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.clone())
        .render(&mut buf)
        .with_context(|| format!("rendering {name}.1"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, dir)?;
    }
    Ok(())
}

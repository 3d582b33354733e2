//! `stylize-models fetch|verify|list`: puts the model files named in
//! `models/manifest.json` into the model folder, checking size and sha256.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use stylize::{models, paths};

#[derive(Parser)]
#[command(version, about = "Fetch and verify the stylize model files")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download the models (or copy them from a mirror folder) and check their hashes.
    Fetch {
        /// Folder that holds copies of the model files, used instead of downloading.
        #[arg(long, env = models::MIRROR_ENV)]
        mirror: Option<PathBuf>,
        /// Where the models go (default: $STYLIZE_MODEL_DIR, else models/cache in a checkout or
        /// /var/lib/stylize/models when installed).
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Check the files already in the model folder.
    Verify {
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// Print the manifest.
    List,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let manifest = models::manifest()?;
    match cli.command {
        Cmd::Fetch { mirror, dest } => {
            let dest = dest.unwrap_or_else(paths::default_model_dir);
            for entry in &manifest.models {
                let outcome = models::fetch(entry, &dest, mirror.as_deref())
                    .with_context(|| format!("fetching {}", entry.file))?;
                let how = match outcome {
                    models::FetchOutcome::AlreadyPresent => "already present, hash ok",
                    models::FetchOutcome::Copied => "copied from mirror, hash ok",
                    models::FetchOutcome::Downloaded => "downloaded, hash ok",
                };
                println!("{}: {how}", entry.file);
            }
            println!("models are in {}", dest.display());
        }
        Cmd::Verify { dest } => {
            let dest = dest.unwrap_or_else(paths::default_model_dir);
            let mut failed = 0;
            for entry in &manifest.models {
                match models::verify(entry, &dest.join(&entry.file)) {
                    Ok(()) => println!("{}: ok", entry.file),
                    Err(e) => {
                        eprintln!("{e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{failed} model file(s) missing or wrong in {}",
                    dest.display()
                );
            }
        }
        Cmd::List => {
            for m in &manifest.models {
                println!("{}\t{}\t{}\t{}", m.role, m.size, m.sha256, m.url);
            }
        }
    }
    Ok(())
}

//! `stylize-store`: computes style vectors with the prediction network and keeps them in
//! the style store.
//!
//!   stylize-store add --store STORE.json --id ID [--name NAME] IMAGE
//!   stylize-store add --store STORE.json DIR
//!   stylize-store list [--store STORE.json] [--json]
//!   stylize-store remove --store STORE.json ID

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use stylize::engine::{Engine, EngineConfig};
use stylize::store::{id_from_name, valid_id, Store, Style};
use stylize::Accelerator;
use stylize::{models, paths};

#[derive(Parser)]
#[command(version, about = "Compute style vectors and manage the style store")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a style from an image, or every image in a folder (ids from the file names).
    Add {
        #[arg(long)]
        store: PathBuf,
        /// Style id (only with a single image; default: the file name without extension).
        #[arg(long)]
        id: Option<String>,
        /// Human-readable name (only with a single image; default: from the id).
        #[arg(long)]
        name: Option<String>,
        /// The prediction network (default: the fetched int8 prediction model).
        #[arg(long)]
        predict: Option<PathBuf>,
        /// An image file or a folder of images.
        image: PathBuf,
    },
    /// List the styles in a store.
    List {
        #[arg(long)]
        store: Option<PathBuf>,
        /// Print the store as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a style.
    Remove {
        #[arg(long)]
        store: PathBuf,
        id: String,
    },
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Add {
            store,
            id,
            name,
            predict,
            image,
        } => add(&store, id, name, predict, &image),
        Cmd::List { store, json } => {
            let path = store.unwrap_or_else(paths::default_store);
            let store = Store::load(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&store)?);
            } else {
                for s in &store.styles {
                    println!("{:<24} {}", s.id, s.name);
                }
            }
            Ok(())
        }
        Cmd::Remove { store, id } => {
            let mut s = Store::load(&store)?;
            if !s.remove(&id) {
                bail!(
                    "no style {id:?} in {}; known styles: {}",
                    store.display(),
                    s.ids().join(", ")
                );
            }
            s.save(&store)?;
            println!("removed {id}");
            Ok(())
        }
    }
}

fn add(
    store_path: &Path,
    id: Option<String>,
    name: Option<String>,
    predict: Option<PathBuf>,
    image: &Path,
) -> Result<()> {
    let mut store = Store::load_or_default(store_path)?;
    let images: Vec<PathBuf> = if image.is_dir() {
        if id.is_some() || name.is_some() {
            bail!(
                "--id and --name name a single image, but {} is a folder",
                image.display()
            );
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(image)
            .with_context(|| format!("reading folder {}", image.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && has_image_extension(p))
            .collect();
        found.sort();
        if found.is_empty() {
            bail!("no .jpg, .jpeg or .png images in {}", image.display());
        }
        found
    } else {
        vec![image.to_path_buf()]
    };

    let config = EngineConfig {
        accelerator: Accelerator::Cpu,
        prediction_model: predict,
        ..Default::default()
    };
    let mut engine = Engine::new(&config)?;
    let model_sha256 = models::sha256_file(engine.prediction_path()).ok();

    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if images.len() == 1 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // In a folder, a bad image is reported and skipped; the others are still added.
    let batch = image.is_dir();
    let mut added = Vec::new();
    let mut skipped = Vec::new();
    for path in &images {
        let style = match &id {
            Some(id) => Ok(id.clone()),
            None => id_from_file_name(path),
        }
        .and_then(|style_id| {
            if !valid_id(&style_id) {
                bail!("style id {style_id:?} may only use letters, digits, '-', '_' and '.'");
            }
            bar.set_message(style_id.clone());
            let rgb = load_rgb(path)?;
            let (w, h) = (rgb.width() as usize, rgb.height() as usize);
            let vector = engine
                .style_vector(rgb.as_raw(), w * 3, w, h)
                .with_context(|| format!("computing the style vector of {}", path.display()))?;
            Ok(Style {
                name: name.clone().unwrap_or_else(|| name_from_id(&style_id)),
                id: style_id,
                vector: vector.to_vec(),
                source: path.file_name().map(|f| f.to_string_lossy().into_owned()),
                source_sha256: models::sha256_file(path).ok(),
                model_sha256: model_sha256.clone(),
                thumbnail: None,
            })
        });
        bar.inc(1);
        match style {
            Ok(style) => {
                added.push(style.id.clone());
                store.upsert(style);
            }
            Err(e) if batch => {
                bar.suspend(|| eprintln!("stylize-store: skipped {}: {e:#}", path.display()));
                skipped.push(path.display().to_string());
            }
            Err(e) => return Err(e),
        }
    }
    bar.finish_and_clear();
    if !added.is_empty() {
        store.save(store_path)?;
        println!(
            "{} {} in {}",
            if added.len() == 1 {
                "added"
            } else {
                "added styles"
            },
            added.join(", "),
            store_path.display()
        );
    }
    if !skipped.is_empty() {
        bail!(
            "{} of {} images skipped (see above): {}",
            skipped.len(),
            images.len(),
            skipped.join(", ")
        );
    }
    Ok(())
}

/// Decodes an image to RGB. A JPEG must end with its end-of-image marker: the decoder
/// would otherwise fill a cut-off file with grey and give a wrong vector silently.
fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    let format = image::guess_format(&bytes)
        .with_context(|| format!("{} is not a JPEG or PNG image", path.display()))?;
    if format == image::ImageFormat::Jpeg {
        let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
        if end < 1 || bytes[end - 1..=end] != [0xff, 0xd9] {
            bail!(
                "{} is truncated: the JPEG has no end-of-image marker",
                path.display()
            );
        }
    }
    Ok(image::load_from_memory_with_format(&bytes, format)
        .with_context(|| format!("cannot decode image {}", path.display()))?
        .to_rgb8())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// The style id of an image: its file name without the extension, as a slug.
fn id_from_file_name(path: &Path) -> Result<String> {
    path.file_stem()
        .map(|s| s.to_string_lossy())
        .and_then(|s| id_from_name(&s))
        .with_context(|| {
            format!(
                "{} gives no style id (no letters or digits in its name); pass --id",
                path.display()
            )
        })
}

fn name_from_id(id: &str) -> String {
    id.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<String>>()
        .join(" ")
}

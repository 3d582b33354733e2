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
                bar.suspend(|| {
                    eprintln!(
                        "stylize-store: skipped {}: {}",
                        path.display(),
                        stylized::report::one_line(e.chain())
                    )
                });
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

/// Why a style image cannot be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
enum ImageError {
    #[error("cannot read image {}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{} is not a JPEG or PNG image", path.display())]
    Format { path: PathBuf },
    #[error("{} is truncated: the JPEG has no end-of-image marker", path.display())]
    Truncated { path: PathBuf },
    #[error("cannot decode image {}: {cause}", path.display())]
    Decode {
        path: PathBuf,
        cause: image::ImageError,
    },
}

/// The largest style image side: the prediction network sees 256x256, and a header that
/// claims more is more likely damaged than a real picture.
const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most the decoder may allocate for one image (an RGBA picture of 8192x8192 is
/// 256 MiB); a damaged header cannot make it ask for gigabytes.
const MAX_IMAGE_ALLOC: u64 = 512 << 20;

/// Reads and decodes an image file to RGB.
fn load_rgb(path: &Path) -> Result<image::RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|cause| ImageError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    decode_rgb(&bytes, path)
}

/// Decodes an image to RGB. A JPEG must end with its end-of-image marker: the decoder
/// would otherwise fill a cut-off file with grey and give a wrong vector silently.
fn decode_rgb(bytes: &[u8], path: &Path) -> Result<image::RgbImage, ImageError> {
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| matches!(f, image::ImageFormat::Jpeg | image::ImageFormat::Png))
        .ok_or_else(|| ImageError::Format {
            path: path.to_path_buf(),
        })?;
    if format == image::ImageFormat::Jpeg {
        let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
        if end < 1 || bytes[end - 1..=end] != [0xff, 0xd9] {
            return Err(ImageError::Truncated {
                path: path.to_path_buf(),
            });
        }
    }
    let decode = |cause| ImageError::Decode {
        path: path.to_path_buf(),
        cause,
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    reader.limits(limits);
    Ok(reader.decode().map_err(decode)?.to_rgb8())
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

#[cfg(test)]
mod tests {
    //! Mutation test of the style image decoding: the shared style images (PNG, baseline
    //! and progressive JPEG) and small re-encodings of them, with bits flipped, header
    //! words overwritten (sizes, chunk and segment lengths), ranges removed or repeated,
    //! and cuts. Whatever the bytes, `decode_rgb` gives a picture or an `ImageError`
    //! naming the file; never a panic, a hang or an allocation past the limit.

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config as ProptestConfig, TestRunner};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// 10000 take about 5 s on two busy cores (the count is printed).
    const CASES: u32 = 10_000;
    const MAX_CASE_TIME: Duration = Duration::from_secs(5);

    /// This test binary's allocator: the system's, recording the largest single
    /// allocation of each thread.
    struct Watched;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }

    // SAFETY: every call is passed to `System` unchanged; `note` does not allocate.
    unsafe impl GlobalAlloc for Watched {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            System.alloc_zeroed(layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            System.realloc(ptr, layout, new_size)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
    }

    #[global_allocator]
    static ALLOCATOR: Watched = Watched;

    fn styles_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/styles")
    }

    /// The images the mutations start from: a few shared style images as they are, and
    /// each of them shrunk to 40x30 and written again as PNG and as JPEG, where a
    /// mutation lands on a header or a table more often than in the picture data.
    fn seeds() -> Vec<(String, Vec<u8>)> {
        let mut seeds = Vec::new();
        for name in [
            "klimt.png",
            "monet.png",
            "udnie.jpg",
            "monet_charing_cross.jpg",
            "delaunay.jpg",
        ] {
            let path = styles_dir().join(name);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "the image mutation test needs the shared style images and {} is \
                     missing ({e}); they come with the project's shared data (../shared)",
                    path.display()
                )
            });
            let full = decode_rgb(&bytes, &path).expect("a shared style image decodes");
            let small = image::imageops::thumbnail(&full, 40, 30);
            for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
                let mut out = std::io::Cursor::new(Vec::new());
                small.write_to(&mut out, format).expect("encodes");
                seeds.push((format!("{name} at 40x30 as {format:?}"), out.into_inner()));
            }
            seeds.push((name.to_string(), bytes));
        }
        seeds
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        FlipBit(usize, u8),
        SetByte(usize, u8),
        /// Big-endian, as PNG and JPEG store sizes and lengths.
        SetU16(usize, u16),
        SetU32(usize, u32),
        Remove(usize, u16),
        Repeat(usize, u16),
        Truncate(usize),
    }

    /// Most mutations land in the first 512 bytes, where the headers are.
    fn at() -> impl Strategy<Value = usize> {
        prop_oneof![3 => 0usize..512, 1 => any::<usize>()]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            3 => (at(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
            2 => (at(), any::<u8>()).prop_map(|(a, v)| Mutation::SetByte(a, v)),
            2 => (at(), prop_oneof![Just(0u16), Just(u16::MAX), Just(0x8000), any::<u16>()])
                .prop_map(|(a, v)| Mutation::SetU16(a, v)),
            2 => (at(), prop_oneof![Just(0u32), Just(u32::MAX), Just(0x7fff_ffff), any::<u32>()])
                .prop_map(|(a, v)| Mutation::SetU32(a, v)),
            1 => (at(), 1u16..256).prop_map(|(a, n)| Mutation::Remove(a, n)),
            1 => (at(), 1u16..256).prop_map(|(a, n)| Mutation::Repeat(a, n)),
            1 => any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for m in mutations {
            let len = b.len();
            if len == 0 {
                break;
            }
            let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| {
                let at = at % len;
                let end = (at + v.len()).min(len);
                b[at..end].copy_from_slice(&v[..end - at]);
            };
            match *m {
                Mutation::FlipBit(i, bit) => b[i % len] ^= 1 << bit,
                Mutation::SetByte(i, v) => b[i % len] = v,
                Mutation::SetU16(i, v) => put(&mut b, i, &v.to_be_bytes()),
                Mutation::SetU32(i, v) => put(&mut b, i, &v.to_be_bytes()),
                Mutation::Remove(i, n) => {
                    let i = i % len;
                    b.drain(i..(i + n as usize).min(len));
                }
                Mutation::Repeat(i, n) => {
                    let i = i % len;
                    let piece = b[i..(i + n as usize).min(len)].to_vec();
                    b.splice(i..i, piece);
                }
                Mutation::Truncate(n) => b.truncate(n % (len + 1)),
            }
        }
        b
    }

    #[test]
    fn mutated_style_images_decode_or_give_an_error_naming_the_file() {
        let seeds = seeds();
        let config = ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let (cases, decoded) = (Cell::new(0u32), Cell::new(0u32));
        let path = Path::new("/home/user/styles/mutated.img");
        let started = Instant::now();
        let result = TestRunner::new(config).run(
            &(0..seeds.len(), prop::collection::vec(mutation(), 1..5)),
            |(seed, mutations)| {
                cases.set(cases.get() + 1);
                let bytes = apply(&seeds[seed].1, &mutations);
                LARGEST.with(|l| l.set(0));
                let start = Instant::now();
                let result = decode_rgb(&bytes, path);
                let (took, largest) = (start.elapsed(), LARGEST.with(|l| l.get()));
                prop_assert!(took < MAX_CASE_TIME, "{}: {took:?}", seeds[seed].0);
                prop_assert!(
                    largest as u64 <= MAX_IMAGE_ALLOC,
                    "{}: one allocation of {largest} bytes",
                    seeds[seed].0
                );
                match result {
                    Ok(rgb) => {
                        decoded.set(decoded.get() + 1);
                        prop_assert!(rgb.width() > 0 && rgb.height() > 0);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        prop_assert!(
                            message.contains("/home/user/styles/mutated.img"),
                            "{message}"
                        );
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = result {
            panic!("{e}");
        }
        eprintln!(
            "style image mutation cases: {} in {:.1?} ({} still decode)",
            cases.get(),
            started.elapsed(),
            decoded.get()
        );
        assert_eq!(cases.get(), CASES);
    }
}

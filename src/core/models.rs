//! The model manifest (`models/manifest.json`) and the fetch step that fills the model
//! folder from the official URLs or from a local mirror, checking size and sha256.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const MANIFEST_JSON: &str = include_str!("../../models/manifest.json");
/// Environment variable naming a local mirror folder for `stylize-models fetch`.
pub const MIRROR_ENV: &str = "STYLIZE_MODEL_MIRROR";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub role: String,
    pub file: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// Why a model cannot be fetched or checked. The text carries any cause, so none is
/// also the `source()` (a chain would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("model manifest is invalid: {0}")]
    Manifest(serde_json::Error),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: truncated or wrong file: {found} bytes, the manifest says {expected}")]
    Size {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("{path}: sha256 mismatch: got {found}, the manifest says {expected}")]
    Hash {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{file} is not in the mirror folder {mirror}")]
    NotInMirror { file: String, mirror: PathBuf },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
}

pub fn manifest() -> Result<Manifest, FetchError> {
    serde_json::from_str(MANIFEST_JSON).map_err(FetchError::Manifest)
}

impl Manifest {
    pub fn by_role(&self, role: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.role == role)
    }
}

/// The file name of the model for `role` ("transfer-int8", "transfer-fp16",
/// "prediction-int8").
pub fn file_for(role: &str) -> Option<String> {
    manifest().ok()?.by_role(role).map(|m| m.file.clone())
}

pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let io = |cause| FetchError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut chunk).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks one file against its manifest entry.
pub fn verify(entry: &ModelEntry, path: &Path) -> Result<(), FetchError> {
    let found = std::fs::metadata(path)
        .map_err(|cause| FetchError::Io {
            path: path.to_path_buf(),
            cause,
        })?
        .len();
    if found != entry.size {
        return Err(FetchError::Size {
            path: path.to_path_buf(),
            found,
            expected: entry.size,
        });
    }
    let hash = sha256_file(path)?;
    if !hash.eq_ignore_ascii_case(&entry.sha256) {
        return Err(FetchError::Hash {
            path: path.to_path_buf(),
            found: hash,
            expected: entry.sha256.clone(),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    AlreadyPresent,
    Copied,
    Downloaded,
}

/// Puts a verified copy of `entry` in `dest_dir`: kept if already good, else copied from
/// `mirror` or downloaded with `curl`. The file appears under its final name only after
/// its hash checked out.
pub fn fetch(
    entry: &ModelEntry,
    dest_dir: &Path,
    mirror: Option<&Path>,
) -> Result<FetchOutcome, FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| FetchError::Io { path, cause }
    };
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let dest = dest_dir.join(&entry.file);
    if dest.is_file() && verify(entry, &dest).is_ok() {
        return Ok(FetchOutcome::AlreadyPresent);
    }
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{}.", entry.file))
        .tempfile_in(dest_dir)
        .map_err(io(dest_dir))?;
    let outcome = if let Some(mirror) = mirror {
        let source = mirror.join(&entry.file);
        if !source.is_file() {
            return Err(FetchError::NotInMirror {
                file: entry.file.clone(),
                mirror: mirror.to_path_buf(),
            });
        }
        verify(entry, &source)?;
        std::fs::copy(&source, partial.path()).map_err(io(partial.path()))?;
        FetchOutcome::Copied
    } else {
        let status = Command::new("curl")
            .args(["--fail", "--location", "--silent", "--show-error", "-o"])
            .arg(partial.path())
            .arg(&entry.url)
            .status()
            .map_err(|e| FetchError::Download {
                url: entry.url.clone(),
                reason: format!("could not run curl: {e}"),
            })?;
        if !status.success() {
            return Err(FetchError::Download {
                url: entry.url.clone(),
                reason: format!("curl exited with {status}"),
            });
        }
        FetchOutcome::Downloaded
    };
    verify(entry, partial.path()).map_err(|e| match e {
        FetchError::Size {
            found, expected, ..
        } => FetchError::Size {
            path: dest.clone(),
            found,
            expected,
        },
        FetchError::Hash {
            found, expected, ..
        } => FetchError::Hash {
            path: dest.clone(),
            found,
            expected,
        },
        other => other,
    })?;
    partial.persist(&dest).map_err(|e| FetchError::Io {
        path: dest.clone(),
        cause: e.error,
    })?;
    Ok(outcome)
}

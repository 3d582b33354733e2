//! Where the project keeps its runtime pieces. A source checkout uses its own folders;
//! an installed system uses the FHS locations.

use std::path::{Path, PathBuf};

/// The project's source folder, as built.
pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Folders searched for `libLiteRt.so` after the explicit path and `$STYLIZE_LITERT_LIB`.
pub fn litert_dirs() -> Vec<PathBuf> {
    vec![
        project_dir().join("third_party/litert"),
        PathBuf::from("/usr/lib/stylize/litert"),
    ]
}

pub const MODEL_DIR_ENV: &str = "STYLIZE_MODEL_DIR";
pub const STORE_ENV: &str = "STYLIZE_STORE";

/// The folder that `stylize-models fetch` fills by default.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let local = project_dir().join("models/cache");
    let system = PathBuf::from("/usr/share/stylize/models");
    if !local.is_dir() && system.is_dir() {
        system
    } else {
        local
    }
}

/// The style store used when none is named.
pub fn default_store() -> PathBuf {
    if let Some(p) = std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let local = project_dir().join("models/styles.json");
    let system = PathBuf::from("/usr/share/stylize/styles.json");
    if !local.is_file() && system.is_file() {
        system
    } else {
        local
    }
}

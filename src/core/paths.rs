//! Where the project keeps its runtime pieces. A build run from its source checkout uses
//! the checkout's folders; an installed copy (a package, `scripts/install.sh`) uses the
//! system locations, even on a machine that also holds the checkout it was built from.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The project's source folder (the checkout), as built: this crate is `src/core/` in it.
pub fn project_dir() -> &'static Path {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    core.parent().and_then(Path::parent).unwrap_or(core)
}

pub const SYSTEM_LITERT_DIR: &str = "/usr/lib/stylize/litert";
pub const SYSTEM_MODEL_DIR: &str = "/var/lib/stylize/models";
pub const SYSTEM_STORE: &str = "/usr/share/stylize/styles.json";
pub const MODEL_DIR_ENV: &str = "STYLIZE_MODEL_DIR";
pub const STORE_ENV: &str = "STYLIZE_STORE";
pub const CACHE_DIR_ENV: &str = "STYLIZE_CACHE_DIR";

static MODULE_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Tells where the code runs from when that is not the executable: the plugin calls this
/// with its own file, since inside `gst-launch-1.0` the executable says nothing.
pub fn set_module_file(path: PathBuf) {
    let _ = MODULE_FILE.set(path);
}

/// True when the running code lives inside the checkout it was built from.
pub fn running_from_checkout() -> bool {
    let module = MODULE_FILE
        .get()
        .cloned()
        .or_else(|| std::env::current_exe().ok());
    match module {
        Some(m) => std::fs::canonicalize(&m)
            .unwrap_or(m)
            .starts_with(project_dir()),
        None => true,
    }
}

/// Folders searched for `libLiteRt.so` after the explicit path and `$STYLIZE_LITERT_LIB`.
/// A checkout may hold runtimes for several architectures (`litert-aarch64` for the
/// cross build); the one for this architecture comes first.
pub fn litert_dirs() -> Vec<PathBuf> {
    let system = PathBuf::from(SYSTEM_LITERT_DIR);
    if !running_from_checkout() {
        return vec![system];
    }
    let third_party = project_dir().join("third_party");
    vec![
        third_party.join(format!("litert-{}", std::env::consts::ARCH)),
        third_party.join("litert"),
        system,
    ]
}

/// The folder that `stylize-models fetch` fills by default.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if running_from_checkout() {
        project_dir().join("models/cache")
    } else {
        PathBuf::from(SYSTEM_MODEL_DIR)
    }
}

/// The style store used when none is named.
pub fn default_store() -> PathBuf {
    if let Some(p) = std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if running_from_checkout() {
        project_dir().join("models/styles.json")
    } else {
        PathBuf::from(SYSTEM_STORE)
    }
}

/// Where the GPU accelerator keeps compiled programs: `$STYLIZE_CACHE_DIR`, systemd's
/// `$CACHE_DIRECTORY` (from `CacheDirectory=` in the unit), `$XDG_CACHE_HOME/stylize`,
/// then `~/.cache/stylize`. None when there is no home either.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(CACHE_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dirs) = var("CACHE_DIRECTORY") {
        // systemd lists one path per CacheDirectory= entry, separated by colons.
        let dirs = dirs.to_string_lossy().into_owned();
        if let Some(first) = dirs.split(':').find(|d| !d.is_empty()) {
            return Some(PathBuf::from(first));
        }
    }
    // The XDG spec says to ignore a relative XDG_CACHE_HOME.
    if let Some(xdg) = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(xdg.join("stylize"));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".cache/stylize"))
}

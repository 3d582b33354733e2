//! Finding and loading libLiteRt.so at run time, once per process and path, and what
//! is known about the GPU accelerator library that sits next to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::error::LiteRtError;
use super::ffi;
use crate::paths;

/// The pinned wheel that provides `libLiteRt.so`.
pub const WHEEL: &str = "ai-edge-litert==2.3.0";
pub const LIBRARY_NAME: &str = "libLiteRt.so";
pub const GPU_ACCELERATOR_NAME: &str = "libLiteRtWebGpuAccelerator.so";
/// Environment variable naming `libLiteRt.so` or the folder that holds it.
pub const LIBRARY_ENV: &str = "STYLIZE_LITERT_LIB";

/// The loaded runtime library and its resolved functions.
pub struct Runtime {
    pub(super) api: ffi::Api,
    path: PathBuf,
    /// Why the GPU accelerator failed in this process, so later engines skip the probe.
    gpu_failure: std::sync::Mutex<Option<String>>,
    _lib: libloading::Library,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("path", &self.path).finish()
    }
}

/// Where `libLiteRt.so` is looked for, in order: the explicit path (element property),
/// else `$STYLIZE_LITERT_LIB`, else the project's install locations and then the system
/// search path. A path the user named is the only candidate, so a typo is an error
/// rather than a silent fallback to another copy.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let as_library = |p: PathBuf| if p.is_dir() { p.join(LIBRARY_NAME) } else { p };
    if let Some(p) = explicit {
        return vec![as_library(p.to_path_buf())];
    }
    if let Some(p) = std::env::var_os(LIBRARY_ENV).filter(|v| !v.is_empty()) {
        return vec![as_library(PathBuf::from(p))];
    }
    let mut out: Vec<PathBuf> = paths::litert_dirs()
        .into_iter()
        .map(|dir| dir.join(LIBRARY_NAME))
        .collect();
    // A bare name makes dlopen search the system path (ld.so.cache, LD_LIBRARY_PATH).
    out.push(PathBuf::from(LIBRARY_NAME));
    out
}

impl Runtime {
    /// Loads the first library found among [`candidates`].
    pub fn load(explicit: Option<&Path>) -> Result<Arc<Runtime>, LiteRtError> {
        let mut tried = Vec::new();
        for candidate in candidates(explicit) {
            let bare = candidate.components().count() == 1;
            if !bare && !candidate.exists() {
                tried.push(format!("{} (no such file)", candidate.display()));
                continue;
            }
            match Self::open(&candidate) {
                Ok(rt) => return Ok(rt),
                Err(LiteRtError::LibraryNotFound { tried: why }) => tried.push(why),
                Err(other) => return Err(other),
            }
        }
        Err(LiteRtError::LibraryNotFound {
            tried: tried.join("; "),
        })
    }

    /// Loads the library once per process and path; later calls share it.
    pub fn shared(explicit: Option<&Path>) -> Result<Arc<Runtime>, LiteRtError> {
        static CACHE: OnceLock<std::sync::Mutex<HashMap<Vec<PathBuf>, Arc<Runtime>>>> =
            OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = candidates(explicit);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = cache.get(&key) {
            return Ok(rt.clone());
        }
        let rt = Self::load(explicit)?;
        cache.insert(key, rt.clone());
        Ok(rt)
    }

    fn open(path: &Path) -> Result<Arc<Runtime>, LiteRtError> {
        // SAFETY: loading a shared library runs its initialisers; libLiteRt.so's are benign.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
            LiteRtError::LibraryNotFound {
                tried: format!("{} ({e})", path.display()),
            }
        })?;
        // SAFETY: the declarations in `ffi` match the 2.3.0 library (see tests/litert_abi.rs).
        let api = unsafe { ffi::Api::load(&lib) }.map_err(|(symbol, cause)| {
            LiteRtError::MissingSymbol {
                path: path.display().to_string(),
                symbol,
                cause,
            }
        })?;
        let resolved = resolved_path(path).unwrap_or_else(|| path.to_path_buf());
        Ok(Arc::new(Runtime {
            api,
            path: resolved,
            gpu_failure: Default::default(),
            _lib: lib,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder that holds the runtime, where the GPU accelerator is expected too.
    pub fn dir(&self) -> Option<&Path> {
        self.path.parent().filter(|p| !p.as_os_str().is_empty())
    }

    pub fn gpu_failure(&self) -> Option<String> {
        self.gpu_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_gpu_failure(&self, reason: &str) {
        *self.gpu_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
    }

    pub fn gpu_accelerator_present(&self) -> bool {
        self.dir()
            .map(|d| d.join(GPU_ACCELERATOR_NAME).is_file())
            .unwrap_or(false)
    }
}

/// The arm64 CPU features that libLiteRtWebGpuAccelerator.so 2.3.0 was compiled for
/// (its "go/sigill-fail-fast" check aborts the process on load without them), missing on
/// this CPU. Cortex-A53/A72 cores (Raspberry Pi 3 and 4) lack most of them. Empty on
/// other architectures.
pub fn gpu_accelerator_cpu_gap() -> Vec<&'static str> {
    #[cfg(target_arch = "aarch64")]
    {
        let mut missing = Vec::new();
        macro_rules! need {
            ($($feature:tt),*) => {
                $(if !std::arch::is_aarch64_feature_detected!($feature) {
                    missing.push($feature);
                })*
            };
        }
        need!("aes", "crc", "dotprod", "fp16", "lse", "rcpc", "rdm", "sha2");
        missing
    }
    #[cfg(not(target_arch = "aarch64"))]
    Vec::new()
}

/// The real path of a library opened by bare name, read from the process's maps.
fn resolved_path(path: &Path) -> Option<PathBuf> {
    if path.is_absolute() || path.components().count() > 1 {
        return std::fs::canonicalize(path).ok();
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let name = path.file_name()?.to_str()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with(name))
        .map(PathBuf::from)
}

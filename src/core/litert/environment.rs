//! The LiteRT environment: the runtime handle that models are created in, told where the
//! accelerator libraries are (or not, for CPU only) and which GPU cache to use.

use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::Arc;

use super::error::{check, LiteRtError};
use super::ffi;
use super::options::GpuCache;
use super::runtime::Runtime;

/// A LiteRT environment. It tells the runtime where its accelerator libraries are.
pub struct Environment {
    pub(super) rt: Arc<Runtime>,
    pub(super) raw: ffi::Environment,
    _library_dir: Option<CString>,
    pub(super) gpu_cache: Option<GpuCache>,
}

// SAFETY: the environment is only used behind `&mut` or shared read-only; LiteRT
// environments are not tied to the creating thread.
unsafe impl Send for Environment {}
unsafe impl Sync for Environment {}

impl Environment {
    /// A CPU-only environment: LiteRT is not told where its accelerators are, so it never
    /// loads the GPU accelerator (which on some arm64 cores kills the process on load).
    pub fn cpu_only(rt: Arc<Runtime>) -> Result<Arc<Environment>, LiteRtError> {
        Self::create(rt, false, None)
    }

    /// An environment that may load the GPU accelerator next to the runtime, its
    /// compiled programs cached in `gpu_cache`. Check
    /// [`gpu_accelerator_cpu_gap`](super::gpu_accelerator_cpu_gap) first.
    pub fn with_accelerators(
        rt: Arc<Runtime>,
        gpu_cache: Option<GpuCache>,
    ) -> Result<Arc<Environment>, LiteRtError> {
        Self::create(rt, true, gpu_cache)
    }

    fn create(
        rt: Arc<Runtime>,
        accelerators: bool,
        gpu_cache: Option<GpuCache>,
    ) -> Result<Arc<Environment>, LiteRtError> {
        let library_dir = rt
            .dir()
            .filter(|_| accelerators)
            .and_then(|d| CString::new(d.as_os_str().as_encoded_bytes()).ok());
        let mut options = Vec::new();
        if let Some(dir) = &library_dir {
            options.push(ffi::EnvOption {
                tag: ffi::ENV_OPTION_RUNTIME_LIBRARY_DIR,
                value: ffi::Any {
                    kind: ffi::ANY_TYPE_STRING,
                    value: dir.as_ptr() as *const c_void,
                },
            });
        }
        let mut raw = ptr::null_mut();
        // It prints which accelerators it registers: routed (see crate::native_log).
        // SAFETY: the options array and the string it points to outlive the call and the
        // environment (`_library_dir` is kept).
        check(
            "LiteRtCreateEnvironment",
            crate::native_log::routed(|| unsafe {
                (rt.api.create_environment)(options.len() as i32, options.as_ptr(), &mut raw)
            }),
        )?;
        Ok(Arc::new(Environment {
            rt,
            raw,
            _library_dir: library_dir,
            gpu_cache,
        }))
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // It prints as it unregisters the accelerators (and the GPU writes its cache).
        // SAFETY: created by LiteRtCreateEnvironment; every model holds an Arc to us.
        crate::native_log::routed(|| unsafe { (self.rt.api.destroy_environment)(self.raw) })
    }
}

//! A small safe layer over the LiteRT C API, loaded at run time with `libloading`.

pub mod ffi;

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, OnceLock};

use crate::accelerator::Accelerator;
use crate::paths;

/// The pinned wheel that provides `libLiteRt.so`.
pub const WHEEL: &str = "ai-edge-litert==2.3.0";
pub const LIBRARY_NAME: &str = "libLiteRt.so";
pub const GPU_ACCELERATOR_NAME: &str = "libLiteRtWebGpuAccelerator.so";
/// Environment variable naming `libLiteRt.so` or the folder that holds it.
pub const LIBRARY_ENV: &str = "STYLIZE_LITERT_LIB";

#[derive(Debug, thiserror::Error)]
pub enum LiteRtError {
    #[error(
        "the LiteRT runtime ({LIBRARY_NAME}) could not be loaded; tried: {tried}. \
         Install it with `scripts/setup-litert.sh` (it fetches {WHEEL}), \
         or point {LIBRARY_ENV} or the element's `litert-library` property at it"
    )]
    LibraryNotFound { tried: String },
    #[error("{path} is not a usable LiteRT runtime: missing symbol {symbol} ({source})")]
    MissingSymbol {
        path: String,
        symbol: &'static str,
        source: libloading::Error,
    },
    #[error("LiteRT call {call} failed with status {status} ({})", status_name(*.status))]
    Call { call: &'static str, status: i32 },
    #[error("model has no input or output named {0:?}")]
    NoSuchTensor(String),
    #[error("tensor {name:?} holds {have} floats, {want} were given")]
    SizeMismatch {
        name: String,
        have: usize,
        want: usize,
    },
}

pub fn status_name(status: i32) -> &'static str {
    match status {
        0 => "ok",
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        7 => "timeout expired",
        8 => "wrong version",
        _ => "error",
    }
}

fn check(call: &'static str, status: ffi::Status) -> Result<(), LiteRtError> {
    if status == ffi::STATUS_OK {
        Ok(())
    } else {
        Err(LiteRtError::Call { call, status })
    }
}

/// The loaded runtime library and its resolved functions.
pub struct Runtime {
    api: ffi::Api,
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
        let api = unsafe { ffi::Api::load(&lib) }.map_err(|(symbol, source)| {
            LiteRtError::MissingSymbol {
                path: path.display().to_string(),
                symbol,
                source,
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

/// Where the GPU accelerator keeps compiled shader programs between runs.
///
/// The WebGPU accelerator of LiteRT 2.3.0 reads this from its "gpu_options" TOML: it
/// loads `<dir>/<key>_mldrift_compiled_cache.bin` when the first GPU model compiles and
/// writes it back when the environment is destroyed. The folder must exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuCache {
    pub dir: PathBuf,
    /// The file's name prefix; it may not hold path separators.
    pub key: String,
}

impl GpuCache {
    /// The accelerator's options as TOML text.
    pub fn toml(&self) -> String {
        format!(
            "serialization_dir = {}\nmodel_cache_key = {}\ncache_only_compiled_programs = true\n",
            toml_string(&self.dir.to_string_lossy()),
            toml_string(&self.key)
        )
    }

    /// The file the accelerator writes.
    pub fn file(&self) -> PathBuf {
        self.dir
            .join(format!("{}_mldrift_compiled_cache.bin", self.key))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A LiteRT environment. It tells the runtime where its accelerator libraries are.
pub struct Environment {
    rt: Arc<Runtime>,
    raw: ffi::Environment,
    _library_dir: Option<CString>,
    gpu_cache: Option<GpuCache>,
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
    /// compiled programs cached in `gpu_cache`. Check [`gpu_accelerator_cpu_gap`] first.
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
        // SAFETY: the options array and the string it points to outlive the call and the
        // environment (`_library_dir` is kept).
        check("LiteRtCreateEnvironment", unsafe {
            (rt.api.create_environment)(options.len() as i32, options.as_ptr(), &mut raw)
        })?;
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
        // SAFETY: created by LiteRtCreateEnvironment; every model holds an Arc to us.
        unsafe { (self.rt.api.destroy_environment)(self.raw) }
    }
}

#[derive(Clone, Debug)]
struct TensorInfo {
    name: String,
    dims: Vec<i32>,
}

/// A model compiled for one piece of hardware, with its input and output buffers kept
/// across runs so the streaming path allocates nothing.
pub struct Network {
    env: Arc<Environment>,
    _bytes: Arc<[u8]>,
    model: ffi::Model,
    compiled: ffi::CompiledModel,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    input_buffers: Vec<ffi::TensorBuffer>,
    output_buffers: Vec<ffi::TensorBuffer>,
    accelerator: Accelerator,
}

// SAFETY: a Network is used by one thread at a time (`&mut self` for every call that
// touches LiteRT state).
unsafe impl Send for Network {}

/// Adds TOML settings under `identifier` to compilation options. The text is handed to
/// LiteRT, which frees it with `free_c_string`.
///
/// # Safety
/// `options` must be a live LiteRtOptions from `api`.
unsafe fn add_toml_options(
    api: &ffi::Api,
    options: ffi::Options,
    identifier: &CStr,
    toml: String,
) -> Result<(), LiteRtError> {
    let toml = CString::new(toml)
        .expect("no NUL: integers, environment values and toml_string's escaped text");
    let payload = toml.into_raw() as *mut c_void;
    let mut opaque = ptr::null_mut();
    // SAFETY: the payload is a leaked CString whose deleter is free_c_string; on failure
    // nothing took ownership, so it is freed here.
    unsafe {
        let status = (api.create_opaque_options)(
            identifier.as_ptr(),
            payload,
            Some(free_c_string),
            &mut opaque,
        );
        if status != ffi::STATUS_OK {
            free_c_string(payload);
            return check("LiteRtCreateOpaqueOptions", status);
        }
        let status = (api.add_opaque_options)(options, opaque);
        if status != ffi::STATUS_OK {
            (api.destroy_opaque_options)(opaque);
            return check("LiteRtAddOpaqueOptions", status);
        }
    }
    Ok(())
}

unsafe extern "C" fn free_c_string(payload: *mut c_void) {
    drop(CString::from_raw(payload as *mut std::ffi::c_char));
}

impl Network {
    /// Compiles `bytes` (a .tflite flatbuffer). `input_dims` resizes named inputs before
    /// the buffers are made, for models whose graph was rewritten for another size.
    pub fn new(
        env: Arc<Environment>,
        bytes: Arc<[u8]>,
        accelerator: Accelerator,
        threads: usize,
        input_dims: &[(&str, &[i32])],
    ) -> Result<Network, LiteRtError> {
        let api = &env.rt.api;
        let mut model = ptr::null_mut();
        // SAFETY: `bytes` is kept alive in the Network for as long as the model exists.
        check("LiteRtCreateModelFromBuffer", unsafe {
            (api.create_model_from_buffer)(
                env.raw,
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                &mut model,
            )
        })?;
        let mut net = Network {
            env: env.clone(),
            _bytes: bytes,
            model,
            compiled: ptr::null_mut(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_buffers: Vec::new(),
            output_buffers: Vec::new(),
            accelerator,
        };
        net.read_signature()?;
        net.compile(accelerator, threads)?;
        for (name, dims) in input_dims {
            let index = net.input_index(name)?;
            // SAFETY: valid compiled model; dims points to dims.len() ints.
            check("LiteRtCompiledModelResizeInputTensorNonStrict", unsafe {
                (api.resize_input_tensor_non_strict)(
                    net.compiled,
                    0,
                    index,
                    dims.as_ptr(),
                    dims.len(),
                )
            })?;
            net.inputs[index].dims = dims.to_vec();
        }
        if !input_dims.is_empty() {
            let mut layouts = vec![ffi::Layout::default(); net.outputs.len()];
            // SAFETY: `layouts` has room for every output of signature 0.
            check("LiteRtGetCompiledModelOutputTensorLayouts", unsafe {
                (api.get_output_tensor_layouts)(
                    net.compiled,
                    0,
                    layouts.len(),
                    layouts.as_mut_ptr(),
                    true,
                )
            })?;
            for (info, layout) in net.outputs.iter_mut().zip(&layouts) {
                info.dims = layout.dims().to_vec();
            }
        }
        net.make_buffers()?;
        Ok(net)
    }

    fn read_signature(&mut self) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        let mut count = 0usize;
        // SAFETY: valid model handle, out-pointers to locals.
        unsafe {
            check(
                "LiteRtGetNumModelSignatures",
                (api.get_num_model_signatures)(self.model, &mut count),
            )?;
            if count == 0 {
                return Err(LiteRtError::Call {
                    call: "LiteRtGetNumModelSignatures",
                    status: 6,
                });
            }
            let mut sig = ptr::null_mut();
            check(
                "LiteRtGetModelSignature",
                (api.get_model_signature)(self.model, 0, &mut sig),
            )?;
            let mut n_in = 0usize;
            let mut n_out = 0usize;
            check(
                "LiteRtGetNumSignatureInputs",
                (api.get_num_signature_inputs)(sig, &mut n_in),
            )?;
            check(
                "LiteRtGetNumSignatureOutputs",
                (api.get_num_signature_outputs)(sig, &mut n_out),
            )?;
            for i in 0..n_in {
                let mut name = ptr::null();
                check(
                    "LiteRtGetSignatureInputName",
                    (api.get_signature_input_name)(sig, i, &mut name),
                )?;
                let mut tensor = ptr::null_mut();
                check(
                    "LiteRtGetSignatureInputTensorByIndex",
                    (api.get_signature_input_tensor_by_index)(sig, i, &mut tensor),
                )?;
                self.inputs.push(TensorInfo {
                    name: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    dims: self.tensor_dims(tensor)?,
                });
            }
            for i in 0..n_out {
                let mut name = ptr::null();
                check(
                    "LiteRtGetSignatureOutputName",
                    (api.get_signature_output_name)(sig, i, &mut name),
                )?;
                let mut tensor = ptr::null_mut();
                check(
                    "LiteRtGetSignatureOutputTensorByIndex",
                    (api.get_signature_output_tensor_by_index)(sig, i, &mut tensor),
                )?;
                self.outputs.push(TensorInfo {
                    name: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    dims: self.tensor_dims(tensor)?,
                });
            }
        }
        Ok(())
    }

    unsafe fn tensor_dims(&self, tensor: ffi::Tensor) -> Result<Vec<i32>, LiteRtError> {
        let mut ty = ffi::RankedTensorType::default();
        check(
            "LiteRtGetRankedTensorType",
            (self.env.rt.api.get_ranked_tensor_type)(tensor, &mut ty),
        )?;
        Ok(ty.layout.dims().to_vec())
    }

    fn compile(&mut self, accelerator: Accelerator, threads: usize) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        let mut options = ptr::null_mut();
        // SAFETY: options is created, configured and destroyed here; the compiled model
        // does not keep a reference to it.
        unsafe {
            check("LiteRtCreateOptions", (api.create_options)(&mut options))?;
            let result = (|| {
                let set = match accelerator {
                    Accelerator::Cpu => ffi::HW_CPU,
                    Accelerator::Gpu => ffi::HW_GPU,
                    // LiteRT picks among both.
                    Accelerator::Auto => ffi::HW_CPU | ffi::HW_GPU,
                };
                check(
                    "LiteRtSetOptionsHardwareAccelerators",
                    (api.set_options_hardware_accelerators)(options, set),
                )?;
                if accelerator == Accelerator::Cpu && threads > 0 {
                    // The CPU accelerator reads its settings as TOML text under two
                    // identifiers: "xnnpack" sizes XNNPACK's thread pool, "cpu_delegate"
                    // the builtin kernels XNNPACK does not take, which otherwise stay on
                    // one thread (the Python Interpreter gives them all its threads). In
                    // the stock transfer network those are 16 MIRROR_PADs; the engine's
                    // CPU graph (tflite::transfer_for_cpu) has none left.
                    // Extra XNNPACK settings in the same TOML form (`flags = 1`,
                    // `kernel_mode = "xnnpack"`) come from STYLIZE_XNNPACK_OPTIONS, for
                    // profiling the CPU path.
                    let extra = std::env::var("STYLIZE_XNNPACK_OPTIONS").unwrap_or_default();
                    add_toml_options(
                        api,
                        options,
                        c"xnnpack",
                        format!("num_threads = {threads}\n{extra}"),
                    )?;
                    add_toml_options(
                        api,
                        options,
                        c"cpu_delegate",
                        format!("num_threads = {threads}\n"),
                    )?;
                }
                if let (Accelerator::Gpu, Some(cache)) = (accelerator, &self.env.gpu_cache) {
                    add_toml_options(api, options, c"gpu_options", cache.toml())?;
                }
                check(
                    "LiteRtCreateCompiledModel",
                    (api.create_compiled_model)(
                        self.env.raw,
                        self.model,
                        options,
                        &mut self.compiled,
                    ),
                )
            })();
            (api.destroy_options)(options);
            result
        }
    }

    fn make_buffers(&mut self) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        for (is_input, infos) in [(true, self.inputs.clone()), (false, self.outputs.clone())] {
            for (i, info) in infos.iter().enumerate() {
                let mut reqs = ptr::null_mut();
                let ty = ffi::RankedTensorType {
                    element_type: ffi::ELEMENT_FLOAT32,
                    layout: ffi::Layout::new(&info.dims),
                };
                let mut buffer = ptr::null_mut();
                // SAFETY: requirements belong to the compiled model; the tensor type is a
                // local that outlives the call.
                unsafe {
                    if is_input {
                        check(
                            "LiteRtGetCompiledModelInputBufferRequirements",
                            (api.get_input_buffer_requirements)(self.compiled, 0, i, &mut reqs),
                        )?;
                    } else {
                        check(
                            "LiteRtGetCompiledModelOutputBufferRequirements",
                            (api.get_output_buffer_requirements)(self.compiled, 0, i, &mut reqs),
                        )?;
                    }
                    check(
                        "LiteRtCreateManagedTensorBufferFromRequirements",
                        (api.create_managed_tensor_buffer_from_requirements)(
                            self.env.raw,
                            &ty,
                            reqs,
                            &mut buffer,
                        ),
                    )?;
                }
                if is_input {
                    self.input_buffers.push(buffer);
                } else {
                    self.output_buffers.push(buffer);
                }
            }
        }
        Ok(())
    }

    pub fn accelerator(&self) -> Accelerator {
        self.accelerator
    }

    pub fn input_index(&self, name: &str) -> Result<usize, LiteRtError> {
        self.inputs
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| LiteRtError::NoSuchTensor(name.to_string()))
    }

    pub fn output_index(&self, name: &str) -> Result<usize, LiteRtError> {
        self.outputs
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| LiteRtError::NoSuchTensor(name.to_string()))
    }

    pub fn input_dims(&self, index: usize) -> &[i32] {
        &self.inputs[index].dims
    }

    pub fn output_dims(&self, index: usize) -> &[i32] {
        &self.outputs[index].dims
    }

    /// Lets `fill` write input `index` in place (float32, NHWC).
    pub fn write_input<R>(
        &mut self,
        index: usize,
        fill: impl FnOnce(&mut [f32]) -> R,
    ) -> Result<R, LiteRtError> {
        let buffer = self.input_buffers[index];
        let want = element_count(&self.inputs[index].dims);
        // SAFETY: the locked region is at least `want` floats (checked) and unlocked below.
        unsafe {
            let host = self.lock(buffer, ffi::LOCK_WRITE, &self.inputs[index].name, want)?;
            let r = fill(std::slice::from_raw_parts_mut(host as *mut f32, want));
            check(
                "LiteRtUnlockTensorBuffer",
                (self.env.rt.api.unlock_tensor_buffer)(buffer),
            )?;
            Ok(r)
        }
    }

    /// Lets `read` see output `index` (float32, NHWC).
    pub fn read_output<R>(
        &mut self,
        index: usize,
        read: impl FnOnce(&[f32]) -> R,
    ) -> Result<R, LiteRtError> {
        let buffer = self.output_buffers[index];
        let want = element_count(&self.outputs[index].dims);
        // SAFETY: as in `write_input`.
        unsafe {
            let host = self.lock(buffer, ffi::LOCK_READ, &self.outputs[index].name, want)?;
            let r = read(std::slice::from_raw_parts(host as *const f32, want));
            check(
                "LiteRtUnlockTensorBuffer",
                (self.env.rt.api.unlock_tensor_buffer)(buffer),
            )?;
            Ok(r)
        }
    }

    unsafe fn lock(
        &self,
        buffer: ffi::TensorBuffer,
        mode: ffi::LockMode,
        name: &str,
        want: usize,
    ) -> Result<*mut c_void, LiteRtError> {
        let api = &self.env.rt.api;
        let mut size = 0usize;
        check(
            "LiteRtGetTensorBufferSize",
            (api.get_tensor_buffer_size)(buffer, &mut size),
        )?;
        if size < want * 4 {
            return Err(LiteRtError::SizeMismatch {
                name: name.to_string(),
                have: size / 4,
                want,
            });
        }
        let mut host = ptr::null_mut();
        check(
            "LiteRtLockTensorBuffer",
            (api.lock_tensor_buffer)(buffer, &mut host, mode),
        )?;
        Ok(host)
    }

    pub fn run(&mut self) -> Result<(), LiteRtError> {
        // SAFETY: buffers were made from this model's requirements.
        check("LiteRtRunCompiledModel", unsafe {
            (self.env.rt.api.run_compiled_model)(
                self.compiled,
                0,
                self.input_buffers.len(),
                self.input_buffers.as_mut_ptr(),
                self.output_buffers.len(),
                self.output_buffers.as_mut_ptr(),
            )
        })
    }
}

fn element_count(dims: &[i32]) -> usize {
    dims.iter().map(|&d| d.max(0) as usize).product()
}

impl Drop for Network {
    fn drop(&mut self) {
        let api = &self.env.rt.api;
        // SAFETY: each handle was created by this Network and is destroyed once, buffers
        // and compiled model before the model they came from.
        unsafe {
            for b in self
                .input_buffers
                .drain(..)
                .chain(self.output_buffers.drain(..))
            {
                (api.destroy_tensor_buffer)(b);
            }
            if !self.compiled.is_null() {
                (api.destroy_compiled_model)(self.compiled);
            }
            (api.destroy_model)(self.model);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GpuCache;

    #[test]
    fn gpu_cache_options_are_toml_with_the_path_escaped() {
        let cache = GpuCache {
            dir: "/var/cache/a \"b\"\\c\td".into(),
            key: "stylize".into(),
        };
        assert_eq!(
            cache.toml(),
            "serialization_dir = \"/var/cache/a \\\"b\\\"\\\\c\\u0009d\"\n\
             model_cache_key = \"stylize\"\n\
             cache_only_compiled_programs = true\n"
        );
        assert_eq!(
            cache.file(),
            std::path::Path::new("/var/cache/a \"b\"\\c\td/stylize_mldrift_compiled_cache.bin")
        );
    }
}

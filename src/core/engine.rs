//! The style-transfer engine: the transfer network compiled per inference size, the
//! prediction network for style vectors, on the CPU or the GPU (`accelerator=auto` is
//! decided in [`crate::auto`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::accelerator::Accelerator;
use crate::litert::{Environment, GpuCache, LiteRtError, Network, Runtime};
use crate::resample::{centre_square, inference_size, Resizer};
use crate::store::VECTOR_LEN;
use crate::tflite::{self, ModelError};
use crate::{models, paths, vulkan};

pub const CONTENT_INPUT: &str = "content_image";
pub const VECTOR_INPUT: &str = "mobilenet_conv/Conv/BiasAdd";
pub const STYLE_INPUT: &str = "style_image";
pub const STYLE_IMAGE_SIZE: usize = 256;
/// Names the GPU cache file: one file, since the accelerator keeps one cache per process.
pub const GPU_CACHE_KEY: &str = "stylize";
/// The WebGPU accelerator crashed on inputs smaller than this in either dimension (on an
/// H200, with the stock graph and an input resize); `STYLIZE_GPU_MIN_SIDE` overrides it.
pub const GPU_MIN_SIDE: usize = 384;
pub const GPU_MIN_SIDE_ENV: &str = "STYLIZE_GPU_MIN_SIDE";
pub const GPU_MAX_SIDE: usize = 4096;

pub type StyleVector = [f32; VECTOR_LEN];

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    LiteRt(#[from] LiteRtError),
    #[error(
        "model file {path} is missing: {cause}. Fetch the models with \
         `cargo run --release --bin stylize-models -- fetch` (add --mirror DIR for a local copy)"
    )]
    ModelMissing {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("model file {path} cannot be used: {cause}")]
    BadModel { path: PathBuf, cause: ModelError },
    #[error("model file {path} cannot be used: {cause}")]
    BadModelRuntime { path: PathBuf, cause: LiteRtError },
    #[error("the GPU accelerator is not available: {0}")]
    GpuUnavailable(String),
    #[error(
        "accelerator=gpu needs a Vulkan device and there is none: {0}; \
         or use accelerator=auto or accelerator=cpu"
    )]
    NoVulkanDevice(String),
    #[error("frame of {width}x{height} is outside the supported sizes")]
    BadFrame { width: usize, height: usize },
    /// The network cannot be rewritten for this inference size (width, height).
    #[error("the network cannot run at {}x{}: {cause}", .infer.0, .infer.1)]
    InferenceSize {
        infer: (usize, usize),
        cause: ModelError,
    },
    #[error(
        "a {width}x{height} frame cannot be stylized: the network cannot run at its \
         inference size {}x{} ({cause}); change the frame's size or inference-size",
        .infer.0, .infer.1
    )]
    FrameSize {
        width: usize,
        height: usize,
        infer: (usize, usize),
        cause: ModelError,
    },
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub accelerator: Accelerator,
    /// CPU threads; 0 lets the runtime choose.
    pub threads: usize,
    /// Long side of the inference size.
    pub inference_size: usize,
    /// The transfer model; by default the int8 model on the CPU, fp16 on the GPU.
    pub transfer_model: Option<PathBuf>,
    pub prediction_model: Option<PathBuf>,
    pub model_dir: Option<PathBuf>,
    /// `libLiteRt.so` or its folder.
    pub library: Option<PathBuf>,
    /// Where the GPU accelerator caches compiled programs; None for no cache.
    pub gpu_cache_dir: Option<PathBuf>,
}

impl EngineConfig {
    /// The long side of the inference size in pixels: `inference_size` rounded down to a
    /// multiple of 4, at least 4.
    pub fn long_side(&self) -> usize {
        self.inference_size.max(4) / 4 * 4
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            accelerator: Accelerator::Auto,
            threads: default_threads(),
            inference_size: crate::defaults::INFERENCE_SIZE as usize,
            transfer_model: None,
            prediction_model: None,
            model_dir: None,
            library: None,
            gpu_cache_dir: paths::default_cache_dir(),
        }
    }
}

/// The GPU cache in `config`'s folder, created if needed, or why there is none. A folder
/// that cannot be made costs a warning, not the stream: the GPU then compiles from
/// scratch.
fn gpu_cache(config: &EngineConfig) -> (Option<GpuCache>, Option<String>) {
    let Some(dir) = config.gpu_cache_dir.as_ref() else {
        return (None, None);
    };
    // LiteRT 2.3.0 reads the folder from TOML without honouring escapes: a quote loses
    // the cache, a backslash moves it elsewhere.
    if dir.to_str().is_none_or(|d| d.contains(['"', '\\'])) {
        return (
            None,
            Some(format!(
                "no GPU program cache: the GPU accelerator cannot take the folder {} (quotes, \
                 backslashes or non-UTF-8); choose another cache-dir",
                dir.display()
            )),
        );
    }
    match std::fs::create_dir_all(dir) {
        Ok(()) => (
            Some(GpuCache {
                dir: dir.clone(),
                key: GPU_CACHE_KEY.to_string(),
            }),
            None,
        ),
        Err(error) => (
            None,
            Some(format!(
                "no GPU program cache in {}: {error}",
                dir.display()
            )),
        ),
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn read_model(path: &Path) -> Result<Arc<[u8]>, EngineError> {
    std::fs::read(path)
        .map(Arc::from)
        .map_err(|cause| EngineError::ModelMissing {
            path: path.to_path_buf(),
            cause,
        })
}

/// A model file: the configured one, else the manifest's file for `role` in the model
/// folder.
fn model_path(config: &EngineConfig, explicit: &Option<PathBuf>, role: &str) -> PathBuf {
    explicit.clone().unwrap_or_else(|| {
        config
            .model_dir
            .clone()
            .unwrap_or_else(paths::default_model_dir)
            .join(models::file_for(role).unwrap_or_else(|| role.to_string()))
    })
}

/// The transfer network an engine on `accelerator` loads: the configured model, else
/// int8 on the CPU and fp16 on the GPU (`auto` starts from the CPU's).
pub fn transfer_path(config: &EngineConfig, accelerator: Accelerator) -> PathBuf {
    let role = match accelerator {
        Accelerator::Cpu | Accelerator::Auto => "transfer-int8",
        Accelerator::Gpu => "transfer-fp16",
    };
    model_path(config, &config.transfer_model, role)
}

/// The smallest inference side on the GPU: [`GPU_MIN_SIDE`], or `STYLIZE_GPU_MIN_SIDE`
/// (for checking on a real GPU whether smaller sizes are safe).
pub fn gpu_min_side() -> usize {
    std::env::var(GPU_MIN_SIDE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GPU_MIN_SIDE)
}

/// Warns, once per value and process (an element starts several engines), when the
/// inference size is not a multiple of 4 and so runs smaller than asked.
fn warn_rounded_inference_size(config: &EngineConfig) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LAST_WARNED: AtomicUsize = AtomicUsize::new(0);
    let (asked, runs) = (config.inference_size, config.long_side());
    if asked != runs && LAST_WARNED.swap(asked, Ordering::Relaxed) != asked {
        tracing::warn!("inference size {asked} is not a multiple of 4: the network runs at {runs}");
    }
}

/// The transfer and prediction networks with the buffers and resizers around them.
pub struct Engine {
    env: Arc<Environment>,
    /// `Cpu` or `Gpu`.
    accelerator: Accelerator,
    threads: usize,
    long_side: usize,
    transfer_path: PathBuf,
    transfer_bytes: Arc<[u8]>,
    transfers: HashMap<(usize, usize), Network>,
    prediction_path: PathBuf,
    prediction: Option<Network>,
    /// Something the user should hear of: a forced GPU that is software, or a GPU that
    /// `auto` could not use.
    warning: Option<String>,
    /// The smallest inference side on the GPU.
    gpu_min_side: usize,
    frame: Option<FrameScratch>,
    square: Option<(usize, usize, Resizer)>,
    style_rgb: Vec<u8>,
}

/// The scratch buffers for one frame size: the resizers down to the inference size and
/// back, and the small input and output images between them.
struct FrameScratch {
    frame: (usize, usize),
    infer: (usize, usize),
    down: Resizer,
    up: Resizer,
    small_in: Vec<u8>,
    small_out: Vec<u8>,
}

impl Engine {
    /// An engine on the configured accelerator; `Accelerator::Auto` decides for a square
    /// frame of the inference size (the element decides per stream with
    /// [`crate::auto::choose`]).
    ///
    /// Errors: the runtime or a model missing or unusable; with `Accelerator::Gpu`, no
    /// Vulkan device ([`EngineError::NoVulkanDevice`]) or a GPU accelerator that fails.
    pub fn new(config: &EngineConfig) -> Result<Engine, EngineError> {
        match config.accelerator {
            Accelerator::Cpu => Self::on_cpu(config),
            Accelerator::Gpu => Self::on_gpu(config),
            Accelerator::Auto => {
                let side = config.long_side();
                Ok(crate::auto::choose(config, (side, side))?.0)
            }
        }
    }

    /// The int8 network (or the configured one) on XNNPACK. The GPU accelerator is never
    /// loaded.
    pub fn on_cpu(config: &EngineConfig) -> Result<Engine, EngineError> {
        let rt = Runtime::shared(config.library.as_deref())?;
        let env = Environment::cpu_only(rt)?;
        let path = transfer_path(config, Accelerator::Cpu);
        let bytes = read_model(&path)?;
        tflite::inspect_transfer(&bytes).map_err(|cause| EngineError::BadModel {
            path: path.clone(),
            cause,
        })?;
        Ok(Self::assemble(config, env, Accelerator::Cpu, path, bytes))
    }

    /// The fp16 network (or the configured one) on the WebGPU accelerator, whatever Vulkan
    /// device it finds, software included (with a warning, see [`Engine::warning`]).
    pub fn on_gpu(config: &EngineConfig) -> Result<Engine, EngineError> {
        let rt = Runtime::shared(config.library.as_deref())?;
        let path = transfer_path(config, Accelerator::Gpu);
        let bytes = read_model(&path)?;
        tflite::inspect_transfer(&bytes).map_err(|cause| EngineError::BadModel {
            path: path.clone(),
            cause,
        })?;
        if let Some(reason) = gpu_block_reason(&rt) {
            return Err(EngineError::GpuUnavailable(reason));
        }
        let devices = vulkan::devices().map_err(|e| EngineError::NoVulkanDevice(e.to_string()))?;
        if devices.is_empty() {
            return Err(EngineError::NoVulkanDevice(
                "the Vulkan loader lists no device".into(),
            ));
        }
        let warning = (!devices.iter().any(vulkan::Device::is_hardware)).then(|| {
            let names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
            format!(
                "the GPU is a software Vulkan device, {}: expect it to be far slower than \
                 accelerator=cpu",
                names.join(", ")
            )
        });
        if let Some(warning) = &warning {
            tracing::warn!("{warning}");
        }
        let (cache, cache_warning) = gpu_cache(config);
        if let Some(warning) = &cache_warning {
            tracing::warn!("{warning}");
        }
        let env = Environment::with_accelerators(rt.clone(), cache)?;
        let net =
            Network::new(env.clone(), bytes.clone(), Accelerator::Gpu, 0, &[]).map_err(|e| {
                let reason = e.to_string();
                rt.set_gpu_failure(&reason);
                EngineError::GpuUnavailable(reason)
            })?;
        let mut engine = Self::assemble(config, env, Accelerator::Gpu, path, bytes);
        for warning in [warning, cache_warning].into_iter().flatten() {
            engine.set_warning(warning);
        }
        let dims = net.input_dims(net.input_index(CONTENT_INPUT)?);
        engine
            .transfers
            .insert((dims[2] as usize, dims[1] as usize), net);
        Ok(engine)
    }

    fn assemble(
        config: &EngineConfig,
        env: Arc<Environment>,
        accelerator: Accelerator,
        transfer_path: PathBuf,
        transfer_bytes: Arc<[u8]>,
    ) -> Engine {
        warn_rounded_inference_size(config);
        Engine {
            env,
            accelerator,
            threads: config.threads,
            long_side: config.long_side(),
            transfer_path,
            transfer_bytes,
            transfers: HashMap::new(),
            prediction_path: model_path(config, &config.prediction_model, "prediction-int8"),
            prediction: None,
            warning: None,
            gpu_min_side: gpu_min_side(),
            frame: None,
            square: None,
            style_rgb: vec![0u8; STYLE_IMAGE_SIZE * STYLE_IMAGE_SIZE * 3],
        }
    }

    /// What the engine runs on: `Cpu` or `Gpu`, never `Auto`.
    pub fn accelerator(&self) -> Accelerator {
        self.accelerator
    }

    /// Something the user should hear of: `accelerator=gpu` on a software Vulkan device,
    /// or a GPU that `auto` could not use (set by [`crate::auto`]).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Adds to [`Engine::warning`].
    pub(crate) fn set_warning(&mut self, warning: String) {
        self.warning = Some(match self.warning.take() {
            Some(earlier) => format!("{earlier}; {warning}"),
            None => warning,
        });
    }

    pub fn prediction_path(&self) -> &Path {
        &self.prediction_path
    }

    pub fn transfer_path(&self) -> &Path {
        &self.transfer_path
    }

    /// The (width, height) the network runs at for a frame; see [`gpu_inference_size`]
    /// for the GPU.
    pub fn inference_size_for(&self, width: usize, height: usize) -> (usize, usize) {
        match self.accelerator {
            Accelerator::Cpu | Accelerator::Auto => inference_size(width, height, self.long_side),
            Accelerator::Gpu => {
                gpu_inference_size(width, height, self.long_side, self.gpu_min_side)
            }
        }
    }

    /// The transfer network for an inference size, compiled on first use and kept.
    fn transfer(&mut self, width: usize, height: usize) -> Result<&mut Network, EngineError> {
        if !self.transfers.contains_key(&(width, height)) {
            let graph = tflite::inspect_transfer(&self.transfer_bytes).map_err(|cause| {
                EngineError::BadModel {
                    path: self.transfer_path.clone(),
                    cause,
                }
            })?;
            let native = (graph.input.1 as usize, graph.input.0 as usize);
            let net = match self.accelerator {
                // Static shapes for this size, so no input resize.
                Accelerator::Cpu | Accelerator::Auto => Network::new(
                    self.env.clone(),
                    self.cpu_transfer(width, height, native)?,
                    self.accelerator,
                    self.threads,
                    &[],
                ),
                Accelerator::Gpu if native == (width, height) => Network::new(
                    self.env.clone(),
                    self.transfer_bytes.clone(),
                    self.accelerator,
                    self.threads,
                    &[],
                ),
                // Static shapes for this size, as on the CPU, so the GPU delegate plans
                // every buffer for the size it runs at. A model the rewrite does not
                // know gets only its decoder resized and an input resize.
                Accelerator::Gpu => match tflite::transfer_for_gpu(&self.transfer_bytes, height, width) {
                    Ok(sized) => Network::new(
                        self.env.clone(),
                        Arc::from(sized),
                        self.accelerator,
                        self.threads,
                        &[],
                    ),
                    Err(error) => {
                        tracing::debug!(%error, "no static shapes for the GPU; resizing the input");
                        let patched = tflite::transfer_for_size(&self.transfer_bytes, height, width)
                            .map_err(|cause| EngineError::InferenceSize {
                                infer: (width, height),
                                cause,
                            })?;
                        let dims = [1, height as i32, width as i32, 3];
                        Network::new(
                            self.env.clone(),
                            Arc::from(patched),
                            self.accelerator,
                            self.threads,
                            &[(CONTENT_INPUT, &dims)],
                        )
                    }
                },
            }
            .map_err(|cause| EngineError::BadModelRuntime {
                path: self.transfer_path.clone(),
                cause,
            })?;
            tracing::debug!(
                width,
                height,
                accelerator = self.accelerator.name(),
                "compiled transfer network"
            );
            self.transfers.insert((width, height), net);
        }
        Ok(self
            .transfers
            .get_mut(&(width, height))
            .expect("inserted above"))
    }

    /// The transfer network rewritten for the CPU at this size (see
    /// [`tflite::transfer_for_cpu`]). A model the rewrite does not know still runs at
    /// its own size, as it is.
    fn cpu_transfer(
        &self,
        width: usize,
        height: usize,
        native: (usize, usize),
    ) -> Result<Arc<[u8]>, EngineError> {
        match tflite::transfer_for_cpu(&self.transfer_bytes, height, width) {
            Ok(bytes) => Ok(Arc::from(bytes)),
            Err(error) if native == (width, height) => {
                tracing::debug!(%error, "no CPU graph rewrite; the model runs as it is");
                Ok(self.transfer_bytes.clone())
            }
            Err(cause) => Err(EngineError::InferenceSize {
                infer: (width, height),
                cause,
            }),
        }
    }

    /// Prepares resizers and the compiled network for frames of `width`x`height`.
    pub fn prepare(&mut self, width: usize, height: usize) -> Result<(usize, usize), EngineError> {
        if width == 0 || height == 0 {
            return Err(EngineError::BadFrame { width, height });
        }
        let infer = self.inference_size_for(width, height);
        self.transfer(infer.0, infer.1).map_err(|e| match e {
            EngineError::InferenceSize { cause, .. } => EngineError::FrameSize {
                width,
                height,
                infer,
                cause,
            },
            other => other,
        })?;
        if self.frame.as_ref().map(|f| (f.frame, f.infer)) != Some(((width, height), infer)) {
            self.frame = Some(FrameScratch {
                frame: (width, height),
                infer,
                down: Resizer::new((width, height), infer),
                up: Resizer::new(infer, (width, height)),
                small_in: vec![0u8; infer.0 * infer.1 * 3],
                small_out: vec![0u8; infer.0 * infer.1 * 3],
            });
        }
        Ok(infer)
    }

    /// Gets the engine ready for `width`x`height` frames before the first one comes:
    /// compiles the network for the size and runs it twice on a grey frame. Returns the
    /// second run's time, a frame's steady time (the first run also pays for the
    /// runtime's one-time work, such as packing the weights).
    ///
    /// Errors: as [`Engine::stylize`] for such a frame.
    pub fn warm_up(
        &mut self,
        width: usize,
        height: usize,
    ) -> Result<std::time::Duration, EngineError> {
        self.prepare(width, height)?;
        let mut grey = vec![128u8; width * height * 3];
        // A real style vector's range; the values do not change the work done.
        let vector: StyleVector = std::array::from_fn(|i| ((i % 7) as f32 - 3.0) / 3.0);
        self.stylize(&mut grey, width * 3, width, height, &vector)?;
        let start = std::time::Instant::now();
        self.stylize(&mut grey, width * 3, width, height, &vector)?;
        Ok(start.elapsed())
    }

    /// Stylizes a packed RGB frame in place (rows `stride` bytes apart).
    pub fn stylize(
        &mut self,
        frame: &mut [u8],
        stride: usize,
        width: usize,
        height: usize,
        vector: &StyleVector,
    ) -> Result<(), EngineError> {
        self.stylize_with(frame, stride, width, height, vector, |_, _, _| {})
    }

    /// As [`Engine::stylize`], and `between` sees the network's input and may change
    /// its output before it is scaled back to the frame: both packed RGB (rows
    /// `3 * width` bytes) at the inference size `(width, height)`. The deflicker runs
    /// here.
    pub fn stylize_with(
        &mut self,
        frame: &mut [u8],
        stride: usize,
        width: usize,
        height: usize,
        vector: &StyleVector,
        between: impl FnOnce(&[u8], &mut [u8], (usize, usize)),
    ) -> Result<(), EngineError> {
        let (iw, ih) = self.prepare(width, height)?;
        let mut path = self.frame.take().expect("prepared");
        let result = (|| {
            path.down.resize(frame, stride, &mut path.small_in, iw * 3);
            let net = self.transfer(iw, ih)?;
            let content = net.input_index(CONTENT_INPUT)?;
            let style = net.input_index(VECTOR_INPUT)?;
            net.write_input(content, |t| {
                for (o, &i) in t.iter_mut().zip(&path.small_in) {
                    *o = i as f32 / 255.0;
                }
            })?;
            net.write_input(style, |t| t.copy_from_slice(vector))?;
            net.run()?;
            net.read_output(0, |t| {
                for (o, &v) in path.small_out.iter_mut().zip(t) {
                    *o = to_u8(v);
                }
            })?;
            between(&path.small_in, &mut path.small_out, (iw, ih));
            path.up.resize(&path.small_out, iw * 3, frame, stride);
            Ok(())
        })();
        self.frame = Some(path);
        result
    }

    fn prediction(&mut self) -> Result<&mut Network, EngineError> {
        if self.prediction.is_none() {
            let bytes = read_model(&self.prediction_path)?;
            let net = Network::new(self.env.clone(), bytes, self.accelerator, self.threads, &[])
                .or_else(|e| {
                    if self.accelerator == Accelerator::Gpu {
                        Network::new(
                            self.env.clone(),
                            read_model(&self.prediction_path).map_err(|_| e)?,
                            Accelerator::Cpu,
                            self.threads,
                            &[],
                        )
                    } else {
                        Err(e)
                    }
                })
                .map_err(|cause| EngineError::BadModelRuntime {
                    path: self.prediction_path.clone(),
                    cause,
                })?;
            self.prediction = Some(net);
        }
        Ok(self.prediction.as_mut().expect("set above"))
    }

    /// The style vector of a packed RGB image: centre square, bilinear to 256x256, /255.
    pub fn style_vector(
        &mut self,
        rgb: &[u8],
        stride: usize,
        width: usize,
        height: usize,
    ) -> Result<StyleVector, EngineError> {
        if width == 0 || height == 0 {
            return Err(EngineError::BadFrame { width, height });
        }
        let (left, top, side) = centre_square(width, height);
        let fits = matches!(&self.square, Some((s, _, _)) if *s == side);
        if !fits {
            self.square = Some((
                side,
                side,
                Resizer::new((side, side), (STYLE_IMAGE_SIZE, STYLE_IMAGE_SIZE)),
            ));
        }
        let (_, _, resizer) = self.square.as_mut().expect("set above");
        let crop = &rgb[top * stride + left * 3..];
        resizer.resize(crop, stride, &mut self.style_rgb, STYLE_IMAGE_SIZE * 3);
        let style_rgb = std::mem::take(&mut self.style_rgb);
        let result = (|| {
            let net = self.prediction()?;
            let input = net.input_index(STYLE_INPUT)?;
            net.write_input(input, |t| {
                for (o, &i) in t.iter_mut().zip(&style_rgb) {
                    *o = i as f32 / 255.0;
                }
            })?;
            net.run()?;
            let mut v = [0f32; VECTOR_LEN];
            net.read_output(0, |t| v.copy_from_slice(&t[..VECTOR_LEN]))?;
            Ok(v)
        })();
        self.style_rgb = style_rgb;
        result
    }
}

/// A network output in [0, 1] as a byte: ×255, rounded half to even (as numpy's
/// `round` in the reference), clamped. Adding and taking away 2^23 rounds a float of
/// magnitude below 2^22 to an integer in the default rounding mode (half to even), and
/// unlike `round_ties_even` it needs no SSE4.1, so the loop vectorizes on baseline x86-64.
#[inline]
fn to_u8(v: f32) -> u8 {
    const MAGIC: f32 = 8_388_608.0; // 2^23
    let x = (v * 255.0).clamp(-1.0, 256.0);
    ((x + MAGIC) - MAGIC).clamp(0.0, 255.0) as u8
}

/// Why the GPU accelerator must not even be loaded here, if it must not: an earlier
/// failure in this process, the accelerator file missing, or a CPU without the features
/// it was compiled for.
pub(crate) fn gpu_block_reason(rt: &Runtime) -> Option<String> {
    if let Some(reason) = rt.gpu_failure() {
        return Some(reason);
    }
    let reason = if !rt.gpu_accelerator_present() {
        format!(
            "{} is not next to {}",
            crate::litert::GPU_ACCELERATOR_NAME,
            rt.path().display()
        )
    } else {
        let missing = crate::litert::gpu_accelerator_cpu_gap();
        if missing.is_empty() {
            return None;
        }
        format!(
            "this CPU lacks features that {} needs: {}",
            crate::litert::GPU_ACCELERATOR_NAME,
            missing.join(", ")
        )
    };
    rt.set_gpu_failure(&reason);
    Some(reason)
}

/// The inference size on the GPU: as on the CPU, but with both sides at least
/// `min_side` ([`GPU_MIN_SIDE`]: the WebGPU accelerator crashed below it), scaling the
/// long side up with the short one so the aspect ratio stays, up to [`GPU_MAX_SIDE`].
/// Frames wider than that (aspect ratios beyond about 10:1) are squeezed to
/// `GPU_MAX_SIDE` x `min_side`; the painting is scaled back to the frame's shape.
pub fn gpu_inference_size(
    width: usize,
    height: usize,
    long_side: usize,
    min_side: usize,
) -> (usize, usize) {
    let (w, h) = inference_size(width, height, long_side);
    if w.min(h) >= min_side {
        return (w, h);
    }
    let long = gpu_long_side(width, height, min_side).clamp(min_side, GPU_MAX_SIDE.max(min_side));
    let (w, h) = inference_size(width, height, long);
    let (w, h) = (w.max(min_side), h.max(min_side));
    (w.div_ceil(4) * 4, h.div_ceil(4) * 4)
}

/// True when the GPU cannot keep a `width`x`height` frame's aspect ratio (see
/// [`gpu_inference_size`]): `auto` does not race the GPU for such frames, since it would
/// run a much larger, squeezed image there.
pub fn gpu_squeezes(width: usize, height: usize, long_side: usize, min_side: usize) -> bool {
    let (w, h) = inference_size(width, height, long_side);
    if w.min(h) >= min_side {
        return false;
    }
    gpu_long_side(width, height, min_side) > GPU_MAX_SIDE
}

/// The long side (a multiple of 4) that brings the short side to `min_side` at the
/// frame's aspect ratio.
fn gpu_long_side(width: usize, height: usize, min_side: usize) -> usize {
    let short = width.min(height).max(1) as f64;
    let long = (min_side as f64 * width.max(height) as f64 / short).ceil() as usize;
    long.div_ceil(4) * 4
}

/// `blend * frame + (1 - blend) * style`, element-wise.
pub fn blend_vectors(style: &[f32], frame: &[f32], blend: f32) -> StyleVector {
    let mut out = [0f32; VECTOR_LEN];
    for ((o, &s), &f) in out.iter_mut().zip(style).zip(frame) {
        *o = blend * f + (1.0 - blend) * s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_u8_rounds_half_to_even_and_clamps() {
        for i in -3000..300_000 {
            let v = i as f32 / 1000.0 / 255.0 * 0.9;
            let want = (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
            assert_eq!(to_u8(v), want, "{v}");
        }
        for v in [
            0.5f32 / 255.0,
            1.5 / 255.0,
            2.5 / 255.0,
            254.5 / 255.0,
            -0.0,
            f32::NAN,
            1e30,
            -1e30,
        ] {
            let want = (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
            assert_eq!(to_u8(v), want, "{v}");
        }
    }

    #[test]
    fn gpu_sizes_never_go_below_384() {
        for ((w, h, long), want) in [
            ((384, 384, 384), (384, 384)),
            ((640, 480, 384), (512, 384)),
            ((1280, 720, 384), (684, 384)),
            ((720, 1280, 384), (384, 684)),
            ((1920, 1080, 1920), (1920, 1080)),
        ] {
            assert_eq!(gpu_inference_size(w, h, long, GPU_MIN_SIDE), want);
        }
        for (w, h) in [
            (16, 16),
            (33, 17),
            (641, 479),
            (3840, 2160),
            (4096, 400),
            (4096, 16),
            (16, 4096),
            (1920, 28),
        ] {
            let (iw, ih) = gpu_inference_size(w, h, 384, GPU_MIN_SIDE);
            assert!(
                iw >= GPU_MIN_SIDE && ih >= GPU_MIN_SIDE,
                "{w}x{h} -> {iw}x{ih}"
            );
            assert!(iw % 4 == 0 && ih % 4 == 0);
            assert!(iw.max(ih) <= GPU_MAX_SIDE, "{w}x{h} -> {iw}x{ih}");
        }
        assert_eq!(gpu_inference_size(4096, 16, 384, GPU_MIN_SIDE), (4096, 384));
        assert!(gpu_squeezes(4096, 16, 384, GPU_MIN_SIDE));
        assert!(gpu_squeezes(1280, 96, 384, GPU_MIN_SIDE));
        assert!(!gpu_squeezes(1280, 720, 384, GPU_MIN_SIDE));
        assert!(!gpu_squeezes(4096, 400, 384, GPU_MIN_SIDE));
    }
}

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use crate::engine::{blend_vectors, default_threads, Accelerator, Engine, EngineConfig};
use crate::store::{Store, VECTOR_LEN};
use crate::{paths, EngineError, StyleVector};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stylize",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

const FORMATS: &[gst_video::VideoFormat] = &[
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Yuy2,
];
const MIN_SIDE: i32 = 16;
const MAX_SIDE: i32 = 4096;

const DEFAULT_STYLE: &str = "monet";
const DEFAULT_INFERENCE_SIZE: u32 = 384;
const DEFAULT_BLEND: f64 = 0.0;
const DEFAULT_BLEND_INTERVAL: u32 = 30;

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstStylizeAccelerator")]
pub enum AcceleratorChoice {
    #[default]
    #[enum_value(name = "Auto: the GPU when it works, else the CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "CPU (XNNPACK), int8 model", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "GPU (WebGPU accelerator), fp16 model", nick = "gpu")]
    Gpu = 2,
}

impl From<AcceleratorChoice> for Accelerator {
    fn from(a: AcceleratorChoice) -> Self {
        match a {
            AcceleratorChoice::Auto => Accelerator::Auto,
            AcceleratorChoice::Cpu => Accelerator::Cpu,
            AcceleratorChoice::Gpu => Accelerator::Gpu,
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    style: String,
    store: Option<PathBuf>,
    model: Option<PathBuf>,
    litert_library: Option<PathBuf>,
    accelerator: AcceleratorChoice,
    threads: u32,
    inference_size: u32,
    blend: f64,
    blend_interval: u32,
    /// Set when `store` is assigned while running: the next frame re-reads it.
    store_changed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            style: DEFAULT_STYLE.to_string(),
            store: None,
            model: None,
            litert_library: None,
            accelerator: AcceleratorChoice::Auto,
            threads: default_threads() as u32,
            inference_size: DEFAULT_INFERENCE_SIZE,
            blend: DEFAULT_BLEND,
            blend_interval: DEFAULT_BLEND_INTERVAL,
            store_changed: false,
        }
    }
}

/// Frame-format plumbing: converters to and from packed RGB, and the RGB scratch frame.
struct Conversion {
    to_rgb: gst_video::VideoConverter,
    from_rgb: gst_video::VideoConverter,
    rgb_info: gst_video::VideoInfo,
    rgb: gst::Buffer,
}

struct State {
    engine: Engine,
    store: Store,
    conversion: Option<Conversion>,
    style_id: String,
    style_vector: StyleVector,
    frame_vector: Option<StyleVector>,
    frames_since_frame_vector: u32,
}

#[derive(Default)]
struct Stats {
    last_inference_ms: f64,
    max_frame_time: gst::ClockTime,
    active_accelerator: Option<&'static str>,
}

#[derive(Default)]
pub struct Stylize {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
}

#[glib::object_subclass]
impl ObjectSubclass for Stylize {
    const NAME: &'static str = "GstStylize";
    type Type = super::Stylize;
    type ParentType = gst_video::VideoFilter;
}

fn unknown_style_message(id: &str, store: &Store) -> String {
    format!(
        "unknown style {id:?}; known styles: {}",
        store.ids().join(", ")
    )
}

impl ObjectImpl for Stylize {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let default_store = paths::default_store();
            vec![
                glib::ParamSpecString::builder("style")
                    .nick("Style")
                    .blurb("Id of the style in the style store. Can be changed while playing; the next frame uses it")
                    .default_value(Some(DEFAULT_STYLE))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("store")
                    .nick("Style store")
                    .blurb("Path of the style store (JSON); STYLIZE_STORE overrides the default. Setting it while playing re-reads the store at the next frame")
                    .default_value(default_store.to_str())
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("model")
                    .nick("Transfer model")
                    .blurb("Path of a transfer network (.tflite) to use instead of the default: the int8 model on the CPU, the fp16 model on the GPU")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("litert-library")
                    .nick("LiteRT library")
                    .blurb("Path of libLiteRt.so or its folder; else STYLIZE_LITERT_LIB, the project's install location, then the system search path")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("accelerator", AcceleratorChoice::Auto)
                    .nick("Accelerator")
                    .blurb("Where the network runs. auto tries the GPU and falls back to the CPU with a warning; gpu fails when there is none")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("CPU threads")
                    .blurb("Threads for CPU inference (0: the runtime's choice). Default: the number of cores")
                    .minimum(0)
                    .maximum(256)
                    .default_value(default_threads() as u32)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("inference-size")
                    .nick("Inference size")
                    .blurb("Long side, in pixels, of the image the network sees; the short side keeps the aspect ratio (multiple of 4). On the GPU both sides stay at least 384")
                    .minimum(32)
                    .maximum(4096)
                    .default_value(DEFAULT_INFERENCE_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("blend")
                    .nick("Blend")
                    .blurb("How much of the frame's own style to mix in: 0 is the pure style, 1 the frame's own")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_BLEND)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("blend-interval")
                    .nick("Blend interval")
                    .blurb("With blend > 0, recompute the frame's style vector every this many frames")
                    .minimum(1)
                    .maximum(100_000)
                    .default_value(DEFAULT_BLEND_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("active-accelerator")
                    .nick("Active accelerator")
                    .blurb("Where the network runs now: cpu or gpu (empty before the element starts)")
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("inference-ms")
                    .nick("Inference time")
                    .blurb("Processing time of the last frame, in milliseconds")
                    .minimum(0.0)
                    .default_value(0.0)
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        match pspec.name() {
            "style" => {
                let style = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                gst::info!(CAT, imp = self, "style: {} -> {}", settings.style, style);
                settings.style = style;
            }
            "store" => {
                settings.store = path(value);
                settings.store_changed = true;
            }
            "model" => settings.model = path(value),
            "litert-library" => settings.litert_library = path(value),
            "accelerator" => settings.accelerator = value.get().expect("type checked upstream"),
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "inference-size" => {
                settings.inference_size = value.get().expect("type checked upstream")
            }
            "blend" => settings.blend = value.get().expect("type checked upstream"),
            "blend-interval" => {
                settings.blend_interval = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        match pspec.name() {
            "style" => settings.style.to_value(),
            "store" => settings
                .store
                .clone()
                .unwrap_or_else(paths::default_store)
                .display()
                .to_string()
                .to_value(),
            "model" => path(&settings.model).to_value(),
            "litert-library" => path(&settings.litert_library).to_value(),
            "accelerator" => settings.accelerator.to_value(),
            "threads" => settings.threads.to_value(),
            "inference-size" => settings.inference_size.to_value(),
            "blend" => settings.blend.to_value(),
            "blend-interval" => settings.blend_interval.to_value(),
            "active-accelerator" => {
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.active_accelerator.unwrap_or("").to_value()
            }
            "inference-ms" => {
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.last_inference_ms.to_value()
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Drop frames that would arrive late rather than fall further behind.
        self.obj().set_property("qos", true);
    }
}

impl GstObjectImpl for Stylize {}

impl ElementImpl for Stylize {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Neural style transfer",
                "Filter/Effect/Video",
                "Repaints video frames in the style of a painting (Magenta arbitrary style transfer on LiteRT)",
                "stylize developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .width_range(MIN_SIDE..=MAX_SIDE)
                .height_range(MIN_SIDE..=MAX_SIDE)
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Stylize {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let store_path = settings.store.clone().unwrap_or_else(paths::default_store);
        let store = Store::load(&store_path)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{}", e]))?;
        let style = store.get(&settings.style).ok_or_else(|| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ["{}", unknown_style_message(&settings.style, &store)]
            )
        })?;
        let style_id = style.id.clone();
        let mut style_vector = [0f32; VECTOR_LEN];
        style_vector.copy_from_slice(&style.vector);

        let config = EngineConfig {
            accelerator: settings.accelerator.into(),
            threads: settings.threads as usize,
            inference_size: settings.inference_size as usize,
            transfer_model: settings.model.clone(),
            library: settings.litert_library.clone(),
            ..Default::default()
        };
        let engine = Engine::new(&config)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ["{}", e]))?;
        if let Some(reason) = engine.fallback_reason() {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                [
                    "GPU accelerator unavailable, running on the CPU: {}",
                    reason
                ]
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "running on {} with {}",
            engine.hardware().name(),
            engine.transfer_path().display()
        );
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            *stats = Stats {
                active_accelerator: Some(engine.hardware().name()),
                ..Default::default()
            };
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
            engine,
            store,
            conversion: None,
            style_id,
            style_vector,
            frame_vector: None,
            frames_since_frame_vector: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src {
            if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                let mut upstream = gst::query::Latency::new();
                if !self.obj().sink_pad().peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                let ours = self
                    .stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .max_frame_time;
                gst::debug!(CAT, imp = self, "reporting latency {} + {}", min, ours);
                q.set(live, min + ours, max.opt_add(ours));
                return true;
            }
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }
}

impl VideoFilterImpl for Stylize {
    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        let (w, h) = (in_info.width() as usize, in_info.height() as usize);
        state
            .engine
            .prepare(w, h)
            .map_err(|e| gst::loggable_error!(CAT, "cannot prepare for {w}x{h}: {e}"))?;
        state.conversion = if in_info.format() == gst_video::VideoFormat::Rgb {
            None
        } else {
            let rgb_info =
                gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32)
                    .fps(in_info.fps())
                    .par(in_info.par())
                    .build()
                    .map_err(|e| gst::loggable_error!(CAT, "RGB info: {e}"))?;
            let config = gst_video::VideoConverterConfig::new();
            let to_rgb = gst_video::VideoConverter::new(in_info, &rgb_info, Some(config.clone()))
                .map_err(|e| gst::loggable_error!(CAT, "converter to RGB: {e}"))?;
            let from_rgb = gst_video::VideoConverter::new(&rgb_info, in_info, Some(config))
                .map_err(|e| gst::loggable_error!(CAT, "converter from RGB: {e}"))?;
            let rgb = gst::Buffer::with_size(rgb_info.size())
                .map_err(|e| gst::loggable_error!(CAT, "RGB buffer: {e}"))?;
            Some(Conversion {
                to_rgb,
                from_rgb,
                rgb_info,
                rgb,
            })
        };
        gst::info!(
            CAT,
            imp = self,
            "{}x{} {:?}, inference at {:?}",
            w,
            h,
            in_info.format(),
            state.engine.inference_size_for(w, h)
        );
        Ok(())
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let (switch_to, blend, blend_interval) = {
            let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
            if std::mem::take(&mut s.store_changed) {
                let path = s.store.clone().unwrap_or_else(paths::default_store);
                match Store::load(&path) {
                    Ok(store) => {
                        gst::info!(CAT, imp = self, "reloaded {}", path.display());
                        state.store = store;
                        // Look the current style up again in the new store.
                        state.style_id.clear();
                    }
                    Err(e) => gst::element_imp_warning!(
                        self,
                        gst::ResourceError::OpenRead,
                        ["keeping the previous style store: {}", e]
                    ),
                }
            }
            // Clone the id only when it changed, so the streaming path stays allocation-free.
            let switch_to = (s.style != state.style_id).then(|| s.style.clone());
            (switch_to, s.blend as f32, s.blend_interval)
        };
        if let Some(style) = switch_to {
            let Some(found) = state.store.get(&style) else {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    ["{}", unknown_style_message(&style, &state.store)]
                );
                return Err(gst::FlowError::Error);
            };
            state.style_vector.copy_from_slice(&found.vector);
            state.style_id = style;
            gst::debug!(CAT, imp = self, "switched to style {}", state.style_id);
        }

        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let result = match state.conversion.as_mut() {
            None => {
                let stride = frame.plane_stride()[0] as usize;
                let data = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
                stylize_rgb(
                    state_parts(state),
                    data,
                    stride,
                    w,
                    h,
                    blend,
                    blend_interval,
                )
            }
            Some(conv) => {
                let rgb = conv.rgb.get_mut().ok_or(gst::FlowError::Error)?;
                let mut rgb_frame =
                    gst_video::VideoFrameRef::from_buffer_ref_writable(rgb, &conv.rgb_info)
                        .map_err(|_| gst::FlowError::Error)?;
                conv.to_rgb.frame_ref(&*frame, &mut rgb_frame);
                let stride = rgb_frame.plane_stride()[0] as usize;
                let data = rgb_frame
                    .plane_data_mut(0)
                    .map_err(|_| gst::FlowError::Error)?;
                let parts = StateParts {
                    engine: &mut state.engine,
                    style_vector: &state.style_vector,
                    frame_vector: &mut state.frame_vector,
                    frames_since: &mut state.frames_since_frame_vector,
                };
                let r = stylize_rgb(parts, data, stride, w, h, blend, blend_interval);
                if r.is_ok() {
                    conv.from_rgb.frame_ref(&rgb_frame, frame);
                }
                r
            }
        };
        drop(guard);
        if let Err(e) = result {
            gst::element_imp_error!(self, gst::LibraryError::Failed, ["stylizing failed: {}", e]);
            return Err(gst::FlowError::Error);
        }

        let elapsed = started.elapsed();
        let took = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
        gst::trace!(
            CAT,
            imp = self,
            "frame {}x{} took {:.2} ms",
            w,
            h,
            elapsed.as_secs_f64() * 1e3
        );
        let latency_grew = {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.last_inference_ms = elapsed.as_secs_f64() * 1e3;
            // Report a new latency only when it grows by a fifth, so the pipeline does not
            // recompute it for every frame.
            let grew = took > stats.max_frame_time + stats.max_frame_time / 5;
            if took > stats.max_frame_time {
                stats.max_frame_time = took;
            }
            grew
        };
        if latency_grew {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

struct StateParts<'a> {
    engine: &'a mut Engine,
    style_vector: &'a StyleVector,
    frame_vector: &'a mut Option<StyleVector>,
    frames_since: &'a mut u32,
}

fn state_parts(state: &mut State) -> StateParts<'_> {
    StateParts {
        engine: &mut state.engine,
        style_vector: &state.style_vector,
        frame_vector: &mut state.frame_vector,
        frames_since: &mut state.frames_since_frame_vector,
    }
}

fn stylize_rgb(
    parts: StateParts<'_>,
    data: &mut [u8],
    stride: usize,
    w: usize,
    h: usize,
    blend: f32,
    blend_interval: u32,
) -> Result<(), EngineError> {
    let vector = if blend > 0.0 {
        if parts.frame_vector.is_none() || *parts.frames_since >= blend_interval {
            *parts.frame_vector = Some(parts.engine.style_vector(data, stride, w, h)?);
            *parts.frames_since = 0;
        }
        *parts.frames_since += 1;
        let frame_vector = parts.frame_vector.as_ref().expect("set above");
        blend_vectors(parts.style_vector, frame_vector, blend)
    } else {
        *parts.style_vector
    };
    parts.engine.stylize(data, stride, w, h, &vector)
}

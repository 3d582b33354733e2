//! The `stylize` element's implementation: properties, caps, events and the hand-over
//! of frames to the worker pool.
//!
//! Its design is unusual for a `BaseTransform`. Frames are stylized by several engines
//! at once ([`super::frame_work::FramePool`]), so `generate_output` never outputs: it
//! takes the queued input buffer, fixes what the frame is painted with (style vector,
//! fade, blend, deflicker), submits it and returns `NoOutput`. The pool's output thread
//! pushes the finished frames on the src pad in input order. Therefore every serialized
//! event (caps, segment, EOS) first drains the pool, a flush stops and empties it, and
//! the latency the element reports is how long frames stay inside it
//! ([`super::latency`]), first measured by a warm-up at the first caps. The element
//! does its own QoS ([`Qos`]), since BaseTransform's counts only see its own
//! `generate_output`.
//! `accelerator=auto` may race the GPU against the CPU at the first caps (`set_info`).

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use super::deinterlace::field_to_keep;
use super::fade::Fade;
use super::frame_work::{FrameError, FrameHandle, FrameParams, FramePool, Job};
use super::latency::LatencyEstimate;
use super::ordered_pool::{Delivery, JobError, Timing};
use crate::logging::CAT;
use stylize::auto::{self, AutoChoice};
use stylize::engine::{default_threads, Engine, EngineConfig};
use stylize::store::{Store, VECTOR_LEN};
use stylize::vulkan;
use stylize::{defaults, Accelerator};
use stylize::{paths, StyleVector};

const FORMATS: &[gst_video::VideoFormat] = &[
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Nv21,
    gst_video::VideoFormat::Nv16,
    gst_video::VideoFormat::Y41b,
    gst_video::VideoFormat::Y42b,
    gst_video::VideoFormat::Y444,
    gst_video::VideoFormat::Yuy2,
    gst_video::VideoFormat::Uyvy,
    gst_video::VideoFormat::Yvyu,
    // Monochrome and IR cameras: painted in colour, then back to grey.
    gst_video::VideoFormat::Gray8,
    gst_video::VideoFormat::Gray16Le,
];
const MIN_SIDE: i32 = 16;
const MAX_SIDE: i32 = 4096;

const DEFAULT_STYLE: &str = defaults::STYLE;
const DEFAULT_INFERENCE_SIZE: u32 = defaults::INFERENCE_SIZE;
const DEFAULT_BLEND: f64 = defaults::BLEND;
const DEFAULT_BLEND_INTERVAL: u32 = defaults::BLEND_INTERVAL;
const DEFAULT_DEFLICKER: f64 = defaults::DEFLICKER;
/// A switch is a cut unless asked otherwise (the daemon asks for a fade).
const DEFAULT_TRANSITION_MS: u32 = 0;

#[derive(Debug, Clone)]
struct Settings {
    style: String,
    store: Option<PathBuf>,
    model: Option<PathBuf>,
    litert_library: Option<PathBuf>,
    /// None: no GPU program cache.
    cache_dir: Option<PathBuf>,
    accelerator: Accelerator,
    threads: u32,
    inference_size: u32,
    blend: f64,
    blend_interval: u32,
    deflicker: f64,
    transition_ms: u32,
    parallel_frames: u32,
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
            cache_dir: paths::default_cache_dir(),
            accelerator: Accelerator::Auto,
            threads: default_threads() as u32,
            inference_size: DEFAULT_INFERENCE_SIZE,
            blend: DEFAULT_BLEND,
            blend_interval: DEFAULT_BLEND_INTERVAL,
            deflicker: DEFAULT_DEFLICKER,
            transition_ms: DEFAULT_TRANSITION_MS,
            parallel_frames: 0,
            store_changed: false,
        }
    }
}

struct State {
    store: Store,
    style_id: String,
    style_vector: StyleVector,
    /// The style vector over stream time: a fade after a switch with `transition-ms`.
    fade: Option<Fade>,
    /// The last frame's PTS: fades run only on timestamps that move forward.
    last_pts: Option<gst::ClockTime>,
    info: Option<Arc<gst_video::VideoInfo>>,
    /// The output caps: `info`, progressive.
    out_info: Option<Arc<gst_video::VideoInfo>>,
    /// The engines made at start, until the first caps warm them up and start the pool.
    engines: Option<Vec<Engine>>,
    /// None until the first caps.
    pool: Option<FramePool>,
    /// What `auto` races at the first caps, when there is a hardware GPU: the CPU engine
    /// (made at start, so a bad model or library fails the state change) and the device.
    race: Option<(EngineConfig, vulkan::Device, Engine)>,
}

#[derive(Default)]
struct Stats {
    last_inference_ms: f64,
    /// How long frames stay in the element: the latency we add.
    latency: LatencyEstimate,
    active_accelerator: Option<&'static str>,
    accelerator_reason: String,
}

/// Our own QoS bookkeeping. BaseTransform counts processed frames only in its own
/// `generate_output`, which this element replaces, so its QoS messages would always
/// say `processed=0`; the element therefore keeps the QoS values and drops late frames
/// itself.
#[derive(Default)]
struct Qos {
    /// Frames whose running time is not after this are late: drop them.
    earliest: Option<gst::ClockTime>,
    proportion: f64,
    processed: u64,
    dropped: u64,
    /// A frame was dropped: the next frame out is DISCONT.
    discont: bool,
}

#[derive(Default)]
pub struct Stylize {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
    qos: Mutex<Qos>,
    /// Kept apart from `state` so a flush from another thread never waits for the
    /// streaming thread.
    pool: Mutex<Option<FrameHandle>>,
}

/// Where the pool's output thread hands the stylized frames: the src pad, in order.
struct SrcPadDelivery {
    element: glib::WeakRef<super::Stylize>,
}

impl Delivery<gst::Buffer, FrameError> for SrcPadDelivery {
    fn deliver(
        &self,
        buffer: gst::Buffer,
        timing: Timing,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(element) = self.element.upgrade() else {
            return Err(gst::FlowError::Flushing);
        };
        element.imp().frame_done(timing.in_pool, timing.running);
        element.src_pad().push(buffer)
    }

    fn fail(&self, error: JobError<FrameError>) {
        if let Some(element) = self.element.upgrade() {
            gst::element_error!(
                element,
                gst::LibraryError::Failed,
                ("stylizing failed: {}", error)
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Stylize {
    const NAME: &'static str = "GstStylize";
    type Type = super::Stylize;
    type ParentType = gst_video::VideoFilter;
}

/// The buffer's duration, else one frame at the caps' rate, else zero.
fn frame_duration(buffer: &gst::Buffer, info: &gst_video::VideoInfo) -> Duration {
    if let Some(d) = buffer.duration() {
        return Duration::from_nanos(d.nseconds());
    }
    let fps = info.fps();
    if fps.numer() > 0 && fps.denom() > 0 {
        Duration::from_secs_f64(fps.denom() as f64 / fps.numer() as f64)
    } else {
        Duration::ZERO
    }
}

fn unknown_style_message(id: &str, store: &Store) -> String {
    format!(
        "unknown style {id:?}; known styles: {}. Set style to one of them",
        store.ids().join(", ")
    )
}

impl ObjectImpl for Stylize {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let default_store = paths::default_store();
            let default_cache_dir = paths::default_cache_dir();
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
                glib::ParamSpecString::builder("cache-dir")
                    .nick("Cache folder")
                    .blurb("Folder where the GPU accelerator keeps compiled shader programs (stylize_mldrift_compiled_cache.bin), so later starts compile faster; created when the GPU is tried, empty for no cache. Default: STYLIZE_CACHE_DIR, systemd's CACHE_DIRECTORY, else XDG_CACHE_HOME/stylize or ~/.cache/stylize. Also holds accelerator-choice.json, the decisions of accelerator=auto")
                    .default_value(default_cache_dir.as_deref().and_then(|p| p.to_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("accelerator", Accelerator::Auto)
                    .nick("Accelerator")
                    .blurb("Where the network runs. auto: the CPU when there is no hardware Vulkan GPU (a software one such as lavapipe never counts); else one frame is timed on each at the first caps and the faster wins, a decision kept in cache-dir for later starts. gpu: the GPU even when it is software (with a warning); fails when there is no Vulkan device")
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
                    .blurb("Long side, in pixels, of the image the network sees, rounded down to a multiple of 4 (with a warning); the short side keeps the aspect ratio (multiple of 4, at least 8, the least the network takes). On the GPU both sides stay at least 384 (STYLIZE_GPU_MIN_SIDE) and at most 4096. Frames too wide for that are squeezed to fit, and the painting is scaled back to the frame's shape")
                    .minimum(*defaults::INFERENCE_SIZE_RANGE.start())
                    .maximum(*defaults::INFERENCE_SIZE_RANGE.end())
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
                glib::ParamSpecDouble::builder("deflicker")
                    .nick("Deflicker")
                    .blurb("Temporal stability: where the camera image did not change (by less than about 2 x deflicker luma levels, blurred), keep the previous painting instead of a freshly painted one, so a fixed camera's picture does not shimmer. 0 paints every frame on its own. A pan or tilt moves the kept painting with the camera; moving parts, scene cuts, style switches, caps changes and flushes are painted afresh")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_DEFLICKER)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("transition-ms")
                    .nick("Transition")
                    .blurb("A style switch cross-fades the style vector over this many milliseconds of stream time (buffer timestamps); with blend > 0, a recomputed frame vector fades in the same way (with 0, over the blend interval). 0 switches at the next frame")
                    .maximum(defaults::MAX_TRANSITION_MS)
                    .default_value(DEFAULT_TRANSITION_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("parallel-frames")
                    .nick("Parallel frames")
                    .blurb("Frames stylized at once, each by its own engine, output in order (0: one per core on the CPU, up to 4; one on the GPU). More raise throughput and latency")
                    .minimum(0)
                    .maximum(16)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-accelerator")
                    .nick("Active accelerator")
                    .blurb("Where the network runs now: cpu or gpu (empty before the element starts and after it stops; with auto racing a GPU, until the first caps)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("accelerator-reason")
                    .nick("Accelerator reason")
                    .blurb("Why active-accelerator is what it is: the setting, why auto found no GPU to race, or the frame times that decided (measured now or kept in cache-dir)")
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
            "cache-dir" => settings.cache_dir = path(value),
            "accelerator" => settings.accelerator = value.get().expect("type checked upstream"),
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "inference-size" => {
                settings.inference_size = value.get().expect("type checked upstream")
            }
            "blend" => settings.blend = value.get().expect("type checked upstream"),
            "blend-interval" => {
                settings.blend_interval = value.get().expect("type checked upstream")
            }
            "deflicker" => settings.deflicker = value.get().expect("type checked upstream"),
            "transition-ms" => settings.transition_ms = value.get().expect("type checked upstream"),
            "parallel-frames" => {
                settings.parallel_frames = value.get().expect("type checked upstream")
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
            "cache-dir" => path(&settings.cache_dir).to_value(),
            "accelerator" => settings.accelerator.to_value(),
            "threads" => settings.threads.to_value(),
            "inference-size" => settings.inference_size.to_value(),
            "blend" => settings.blend.to_value(),
            "blend-interval" => settings.blend_interval.to_value(),
            "deflicker" => settings.deflicker.to_value(),
            "transition-ms" => settings.transition_ms.to_value(),
            "parallel-frames" => settings.parallel_frames.to_value(),
            "active-accelerator" => {
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.active_accelerator.unwrap_or("").to_value()
            }
            "accelerator-reason" => {
                let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.accelerator_reason.to_value()
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
            // The frame leaves in the format and size it came in, progressive: an
            // interlaced frame is deinterlaced before the network sees it
            // (`transform_caps`). The src template leaves interlace-mode out, so that
            // caps without the field (progressive) come out exactly as they came in.
            let caps = || {
                gst_video::VideoCapsBuilder::new()
                    .format_list(FORMATS.iter().copied())
                    .width_range(MIN_SIDE..=MAX_SIDE)
                    .height_range(MIN_SIDE..=MAX_SIDE)
            };
            let src = caps().build();
            let sink = caps()
                .field(
                    "interlace-mode",
                    gst::List::new(["progressive", "interleaved", "mixed"]),
                )
                .build();
            [
                ("src", gst::PadDirection::Src, src),
                ("sink", gst::PadDirection::Sink, sink),
            ]
            .into_iter()
            .map(|(name, direction, caps)| {
                gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
                    .expect("valid template")
            })
            .collect()
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
        crate::logging::scoped(|| self.start_engines())
    }

    /// The same caps on the other side, except the interlacing: what comes in
    /// interleaved or mixed goes out progressive, and progressive output can come from
    /// any of the three.
    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let mut other = caps.clone();
        for s in other.make_mut().iter_mut() {
            s.remove_field("field-order");
            match direction {
                // Caps without the field are progressive already, and stay as they are.
                gst::PadDirection::Sink if s.has_field("interlace-mode") => {
                    s.set("interlace-mode", "progressive")
                }
                gst::PadDirection::Sink => {}
                _ => s.remove_field("interlace-mode"),
            }
        }
        let other = match direction {
            gst::PadDirection::Sink => other,
            _ => other.intersect(&self.obj().sink_pad().pad_template_caps()),
        };
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(handle) = self.pool_handle() {
            handle.set_flushing(true);
        }
        // Dropping the pool joins its threads.
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // Nothing runs now; the last frame's time and the latency stay readable.
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.active_accelerator = None;
            stats.accelerator_reason.clear();
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let Some(handle) = self.pool_handle() {
            match event.type_() {
                gst::EventType::FlushStart => handle.set_flushing(true),
                gst::EventType::FlushStop => {
                    handle.drain();
                    handle.set_flushing(false);
                    self.qos.lock().unwrap_or_else(|e| e.into_inner()).earliest = None;
                }
                // Frames still in the workers go out before any serialized event
                // (caps, segment, EOS), so downstream sees them in order.
                // A new segment (a non-flushing seek, a segment loop, concat) starts
                // the deflicker afresh, like a flush.
                gst::EventType::Segment => {
                    handle.drain();
                    handle.reset_temporal();
                }
                _ if event.is_serialized() => handle.drain(),
                _ => {}
            }
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(qos_event) = event.view() {
            let (_, proportion, diff, timestamp) = qos_event.get();
            {
                let mut qos = self.qos.lock().unwrap_or_else(|e| e.into_inner());
                qos.proportion = proportion;
                qos.earliest = timestamp.map(|t| {
                    if diff >= 0 {
                        t + gst::ClockTime::from_nseconds(diff as u64)
                    } else {
                        t.saturating_sub(gst::ClockTime::from_nseconds(diff.unsigned_abs()))
                    }
                });
            }
            // Passed upstream without the parent's QoS handling: its drops would post
            // QoS messages without our counts (see `Qos`).
            return self.obj().sink_pad().push_event(event);
        }
        self.parent_src_event(event)
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.obj().is_qos() {
            if let Some(message) = self.late(&inbuf) {
                gst::debug!(CAT, imp = self, "dropping a late frame: {:?}", inbuf.pts());
                let _ = self.obj().post_message(message);
                return Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED);
            }
        }
        self.parent_submit_input_buffer(is_discont, inbuf)
    }

    fn generate_output(
        &self,
    ) -> Result<gst_base::subclass::base_transform::GenerateOutputSuccess, gst::FlowError> {
        use gst_base::subclass::base_transform::GenerateOutputSuccess;
        let Some(buffer) = self.take_queued_buffer() else {
            return Ok(GenerateOutputSuccess::NoOutput);
        };
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let (switch_to, blend, blend_interval, deflicker, transition) = {
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
                        ("keeping the previous style store: {}", e)
                    ),
                }
            }
            // Clone the id only when it changed, so the streaming path stays allocation-free.
            let switch_to = (s.style != state.style_id).then(|| s.style.clone());
            (
                switch_to,
                s.blend as f32,
                s.blend_interval,
                s.deflicker as f32,
                Duration::from_millis(s.transition_ms as u64),
            )
        };
        // Fades follow PTS; a timestamp that does not move forward (none, repeated, or
        // back after a seek) ends them, so a switch never stalls.
        let pts = buffer
            .pts()
            .filter(|&p| state.last_pts.is_none_or(|last| p > last));
        state.last_pts = buffer.pts().or(state.last_pts);
        if let Some(style) = switch_to {
            let Some(found) = state.store.get(&style) else {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    ("{}", unknown_style_message(&style, &state.store))
                );
                return Err(gst::FlowError::Error);
            };
            state.style_vector.copy_from_slice(&found.vector);
            state.style_id = style;
            // A fade starts from where the picture is now, at this frame.
            state.fade = match &state.fade {
                Some(fade) if !transition.is_zero() => Some(Fade {
                    from: fade.at(pts),
                    to: state.style_vector,
                    start: pts,
                    duration: transition,
                }),
                _ => None,
            };
            gst::debug!(CAT, imp = self, "switched to style {}", state.style_id);
        }
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let out_info = state
            .out_info
            .clone()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let deinterlace = field_to_keep(&info, &buffer);
        let fade = state
            .fade
            .get_or_insert_with(|| Fade::settled(state.style_vector));
        let vector = fade.at(pts);
        if fade.done(pts) {
            *fade = Fade::settled(vector);
        }
        // A recomputed own vector fades in over the transition, or, without one, over
        // the frames until the next refresh: its path never jumps.
        let own_vector_fade = if transition.is_zero() {
            frame_duration(&buffer, &info) * blend_interval.max(1)
        } else {
            transition
        };
        let discont = buffer.flags().contains(gst::BufferFlags::DISCONT);
        let mut buffer = buffer;
        if std::mem::take(&mut self.qos.lock().unwrap_or_else(|e| e.into_inner()).discont) {
            // Frames were dropped before this one: downstream sees the gap. The
            // deflicker goes on, since the scene did not change.
            buffer.make_mut().set_flags(gst::BufferFlags::DISCONT);
        }
        let pool = state.pool.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        pool.submit(|seq| Job {
            buffer,
            info,
            out_info,
            params: FrameParams {
                seq,
                discont,
                vector,
                blend,
                blend_interval,
                deflicker,
                own_vector_fade,
                pts,
                deinterlace,
            },
        })?;
        Ok(GenerateOutputSuccess::NoOutput)
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
                    .latency
                    .reported();
                let ours = gst::ClockTime::from_nseconds(ours.as_nanos() as u64);
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
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        gst::info!(
            CAT,
            imp = self,
            "{}x{} {:?} {:?}",
            in_info.width(),
            in_info.height(),
            in_info.format(),
            in_info.interlace_mode()
        );
        state.info = Some(Arc::new(in_info.clone()));
        state.out_info = Some(Arc::new(out_info.clone()));
        // New caps start the temporal state afresh (frames in flight were drained
        // before the caps event).
        if let Some(pool) = &state.pool {
            pool.handle().reset_temporal();
            return Ok(());
        }
        let (ready, race) = (state.engines.take(), state.race.take());
        // The race and the warm-up take a while: run them without the state lock, so
        // that stop() is not held up behind them any longer than the stream lock
        // already holds it.
        drop(guard);
        let frame = (in_info.width() as usize, in_info.height() as usize);
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let started = crate::logging::scoped(|| {
            let engines = match (ready, race) {
                (Some(engines), _) => engines,
                (None, Some((config, device, cpu))) => {
                    auto::choose_between(&config, &device, frame, cpu)
                        .map_err(init_error)
                        .and_then(|(engine, choice)| {
                            self.make_workers(engine, &config, &settings, &choice)
                        })?
                }
                (None, None) => {
                    return Err(gst::error_msg!(
                        gst::CoreError::Negotiation,
                        ("caps came before the element started its engines")
                    ))
                }
            };
            self.start_pool(engines, frame)
        });
        let pool = match started {
            Ok(pool) => pool,
            Err(message) => {
                self.post_error_message(message);
                return Err(gst::loggable_error!(CAT, "no engine for the stream"));
            }
        };
        match self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(state) => state.pool = Some(pool),
            None => return Err(gst::loggable_error!(CAT, "stopped while starting")),
        }
        Ok(())
    }
}

fn init_error(error: stylize::EngineError) -> gst::ErrorMessage {
    gst::error_msg!(gst::LibraryError::Init, ("{}", error))
}

impl Stylize {
    /// Loads the store and starts the engines (or plans the race for `auto`).
    fn start_engines(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let store_path = settings.store.clone().unwrap_or_else(paths::default_store);
        let store = Store::load(&store_path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                (
                    "{}; set the store property or STYLIZE_STORE to a style store \
                         (stylize-store builds one)",
                    e
                )
            )
        })?;
        let style = store.get(&settings.style).ok_or_else(|| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("{}", unknown_style_message(&settings.style, &store))
            )
        })?;
        let style_id = style.id.clone();
        let mut style_vector = [0f32; VECTOR_LEN];
        style_vector.copy_from_slice(&style.vector);

        let config = EngineConfig {
            accelerator: settings.accelerator,
            threads: settings.threads as usize,
            inference_size: settings.inference_size as usize,
            transfer_model: settings.model.clone(),
            library: settings.litert_library.clone(),
            gpu_cache_dir: settings.cache_dir.clone(),
            ..Default::default()
        };
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Stats::default();
        let mut race = None;
        let mut engines = None;
        match settings.accelerator {
            Accelerator::Auto => match auto::plan(&config).map_err(init_error)? {
                auto::Plan::Race { device, cpu } => {
                    gst::info!(
                        CAT,
                        imp = self,
                        "{device} to race against the CPU at the first caps"
                    );
                    race = Some((config, device, cpu));
                }
                auto::Plan::Decided(engine, choice) => {
                    engines = Some(self.make_workers(engine, &config, &settings, &choice)?);
                }
            },
            Accelerator::Cpu | Accelerator::Gpu => {
                let engine = Engine::new(&config).map_err(init_error)?;
                let choice = AutoChoice {
                    accelerator: engine.accelerator(),
                    reason: format!("{}: set by the accelerator property", engine.accelerator()),
                };
                engines = Some(self.make_workers(engine, &config, &settings, &choice)?);
            }
        }
        *self.qos.lock().unwrap_or_else(|e| e.into_inner()) = Qos::default();
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
            store,
            style_id,
            style_vector,
            fade: None,
            last_pts: None,
            info: None,
            out_info: None,
            engines,
            pool: None,
            race,
        });
        Ok(())
    }

    /// Makes the workers' engines: `first` and as many more on the same hardware as
    /// `parallel-frames` asks, and records what runs where.
    fn make_workers(
        &self,
        first: Engine,
        config: &EngineConfig,
        settings: &Settings,
        choice: &AutoChoice,
    ) -> Result<Vec<Engine>, gst::ErrorMessage> {
        if let Some(warning) = first.warning() {
            gst::element_imp_warning!(self, gst::LibraryError::Init, ("{}", warning));
        }
        gst::info!(CAT, imp = self, "accelerator {}", choice.reason);
        let accelerator = first.accelerator();
        let workers = match (settings.parallel_frames, accelerator) {
            (0, Accelerator::Gpu) => 1,
            (0, _) => default_threads().clamp(1, 4),
            (n, _) => n as usize,
        };
        // The workers share the cores: each engine gets its part of the threads.
        let mut config = EngineConfig {
            accelerator,
            ..config.clone()
        };
        if settings.threads > 0 {
            config.threads = (settings.threads as usize / workers).max(1);
        }
        // The first engine can serve as a worker when its thread count is already right.
        let mut engines = Vec::with_capacity(workers);
        if workers == 1 || settings.threads == 0 {
            engines.push(first);
        }
        while engines.len() < workers {
            engines.push(Engine::new(&config).map_err(init_error)?);
        }
        gst::info!(
            CAT,
            imp = self,
            "running on {} with {}, {} frames at once, {} threads each",
            accelerator.name(),
            engines[0].transfer_path().display(),
            workers,
            config.threads
        );
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.active_accelerator = Some(accelerator.name());
            stats.accelerator_reason = choice.reason.clone();
        }
        // `gst-launch-1.0 -v` prints these.
        self.obj().notify("active-accelerator");
        self.obj().notify("accelerator-reason");
        Ok(engines)
    }

    /// Warms the engines up for `width`x`height` frames, all at once as they will run,
    /// reports the latency that takes, and starts the pool with them. Errors: a frame of
    /// that size cannot be stylized.
    fn start_pool(
        &self,
        mut engines: Vec<Engine>,
        (width, height): (usize, usize),
    ) -> Result<FramePool, gst::ErrorMessage> {
        let times: Vec<Result<Duration, String>> = std::thread::scope(|scope| {
            let runs: Vec<_> = engines
                .iter_mut()
                .map(|engine| {
                    scope.spawn(move || {
                        crate::logging::scoped(|| engine.warm_up(width, height))
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            runs.into_iter()
                .map(|run| {
                    run.join()
                        .unwrap_or_else(|_| Err("the engine panicked; see the log".into()))
                })
                .collect()
        });
        let slowest = times
            .into_iter()
            .try_fold(Duration::ZERO, |slowest, time| time.map(|t| slowest.max(t)))
            .map_err(|e| gst::error_msg!(gst::StreamError::Format, ("{}", e)))?;
        let latency = self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latency
            .seed(slowest);
        gst::info!(
            CAT,
            imp = self,
            "warmed up for {width}x{height}: {:.1} ms a frame, reporting {:.1} ms latency",
            slowest.as_secs_f64() * 1e3,
            latency.as_secs_f64() * 1e3
        );
        self.post_latency();
        let delivery = Arc::new(SrcPadDelivery {
            element: self.obj().downgrade(),
        });
        let pool = FramePool::start(engines, delivery);
        *self.pool.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool.handle());
        Ok(pool)
    }

    fn post_latency(&self) {
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    fn pool_handle(&self) -> Option<FrameHandle> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Called by the output thread for every frame pushed.
    fn frame_done(&self, in_element: Duration, processing: Duration) {
        gst::trace!(
            CAT,
            imp = self,
            "frame: {:.2} ms processing, {:.2} ms in the element",
            processing.as_secs_f64() * 1e3,
            in_element.as_secs_f64() * 1e3
        );
        self.qos.lock().unwrap_or_else(|e| e.into_inner()).processed += 1;
        let new_latency = {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.last_inference_ms = processing.as_secs_f64() * 1e3;
            stats.latency.observe(in_element)
        };
        if let Some(latency) = new_latency {
            gst::debug!(
                CAT,
                imp = self,
                "latency now {:.1} ms",
                latency.as_secs_f64() * 1e3
            );
            self.post_latency();
        }
    }

    /// The QoS message for `buffer` when it is late (and counts it as dropped), else None.
    fn late(&self, buffer: &gst::Buffer) -> Option<gst::Message> {
        let pts = buffer.pts()?;
        let segment = self.obj().segment();
        let segment = segment.downcast_ref::<gst::ClockTime>()?;
        let running_time = segment.to_running_time(pts)?;
        let mut qos = self.qos.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = qos.earliest?;
        if running_time > earliest {
            return None;
        }
        qos.dropped += 1;
        qos.discont = true;
        let jitter = earliest.nseconds() as i64 - running_time.nseconds() as i64;
        Some(
            gst::message::Qos::builder(false)
                .running_time(running_time)
                .stream_time(segment.to_stream_time(pts))
                .timestamp(pts)
                .duration(buffer.duration())
                .values(jitter, qos.proportion, 1_000_000)
                .stats(
                    gst::format::Buffers::from_u64(qos.processed),
                    gst::format::Buffers::from_u64(qos.dropped),
                )
                .src(&*self.obj())
                .build(),
        )
    }
}

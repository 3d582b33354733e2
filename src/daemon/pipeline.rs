//! The task that owns the camera pipeline: builds it, recovers it, applies commands and
//! publishes the status. Nothing else touches GStreamer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tokio::sync::{broadcast, mpsc, watch};

use super::config::{Config, Input};
use super::control::{check_name, Command, ControlError, Event, RunState, Status};
use super::health::Health;
use super::recording::{FeedSlot, Recorder};
use stylize::store::Store;

const TICK: Duration = Duration::from_millis(100);
const FINISH_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Live {
    pipeline: gst::Pipeline,
    stylize: gst::Element,
}

pub struct PipelineTask {
    config: Config,
    store_path: PathBuf,
    store: Store,
    status: watch::Sender<Status>,
    events: broadcast::Sender<Event>,
    health: Arc<Health>,
    live: Option<Live>,
    frames: Arc<AtomicU64>,
    last_sample: Arc<Mutex<Option<gst::Sample>>>,
    feed: FeedSlot,
    recorder: Option<Recorder>,
    recording_name: Option<String>,
    segment: u32,
    backoff: Duration,
    retry_at: Option<Instant>,
    last_rate: (Instant, u64),
}

impl PipelineTask {
    pub fn new(
        config: Config,
        store_path: PathBuf,
        store: Store,
        status: watch::Sender<Status>,
        events: broadcast::Sender<Event>,
        health: Arc<Health>,
    ) -> PipelineTask {
        status.send_modify(|s| {
            s.style = config.stylize.style.clone();
            s.blend = config.stylize.blend;
            s.accelerator = config.stylize.accelerator.clone();
        });
        PipelineTask {
            config,
            store_path,
            store,
            status,
            events,
            health,
            live: None,
            frames: Arc::new(AtomicU64::new(0)),
            last_sample: Default::default(),
            feed: Default::default(),
            recorder: None,
            recording_name: None,
            segment: 0,
            backoff: Duration::from_secs(1),
            retry_at: None,
            last_rate: (Instant::now(), 0),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.start();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
                _ = shutdown.changed() => break,
            }
        }
        tokio::task::block_in_place(|| self.stop_all());
    }

    fn set_state(&self, state: RunState, fault: &str) {
        self.status.send_if_modified(|s| {
            let changed = s.state != state || s.fault != fault;
            s.state = state;
            s.fault = fault.to_string();
            changed
        });
    }

    fn description(&self) -> String {
        let c = &self.config;
        let caps = format!(
            "video/x-raw,width={},height={},framerate={}/1",
            c.source.width, c.source.height, c.source.framerate
        );
        let source = match Input::parse(&c.source.input) {
            Ok(Input::Test) => format!("videotestsrc is-live=true pattern=smpte75 ! {caps}"),
            Ok(Input::V4l2(dev)) => format!(
                "v4l2src device=\"{}\" ! decodebin ! videoconvert ! videoscale ! videorate ! {caps}",
                dev.display()
            ),
            Ok(Input::Uri(uri)) => format!(
                "uridecodebin uri=\"{uri}\" ! videoconvert ! videoscale ! videorate ! {caps}"
            ),
            Err(_) => "videotestsrc is-live=true".into(),
        };
        let display = if c.display.enabled {
            "videoconvert ! autovideosink"
        } else {
            "fakesink sync=false"
        };
        format!(
            "{source} ! stylize name=stylize ! tee name=t \
             t. ! queue leaky=downstream max-size-buffers=3 ! {display} \
             t. ! queue leaky=downstream max-size-buffers=3 ! \
             appsink name=frames sync=false max-buffers=2 drop=true"
        )
    }

    fn build(&self) -> Result<Live, String> {
        let description = self.description();
        tracing::debug!(%description, "building pipeline");
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("cannot build the pipeline: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let stylize = pipeline.by_name("stylize").ok_or("no stylize element")?;
        let s = &self.config.stylize;
        let style = self.status.borrow().style.clone();
        let blend = self.status.borrow().blend;
        stylize.set_property("style", style);
        stylize.set_property("blend", blend);
        stylize.set_property("deflicker", s.deflicker);
        stylize.set_property("transition-ms", s.transition_ms);
        stylize.set_property_from_str("accelerator", &s.accelerator);
        stylize.set_property("inference-size", s.inference_size);
        if s.threads > 0 {
            stylize.set_property("threads", s.threads);
        }
        stylize.set_property("store", self.store_path.to_string_lossy().to_string());
        if let Some(dir) = &s.cache_dir {
            stylize.set_property("cache-dir", dir.to_string_lossy().to_string());
        }

        let frames = self.frames.clone();
        stylize
            .static_pad("src")
            .ok_or("stylize has no src pad")?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });

        let appsink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("no frames appsink")?;
        let last_sample = self.last_sample.clone();
        let feed = self.feed.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(feed) = feed.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        feed.push(&sample);
                    }
                    *last_sample.lock().unwrap_or_else(|e| e.into_inner()) = Some(sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(Live { pipeline, stylize })
    }

    fn start(&mut self) {
        self.set_state(RunState::Starting, "");
        match self.build().and_then(|live| {
            live.pipeline
                .set_state(gst::State::Playing)
                .map(|_| live)
                .map_err(|_| {
                    self.first_error()
                        .unwrap_or_else(|| "cannot start the pipeline".into())
                })
        }) {
            Ok(live) => {
                self.live = Some(live);
                self.retry_at = None;
            }
            Err(fault) => self.recover(fault),
        }
    }

    fn first_error(&self) -> Option<String> {
        let live = self.live.as_ref()?;
        let bus = live.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        }
    }

    /// Tears the pipeline down and schedules a rebuild with exponential backoff.
    fn recover(&mut self, fault: String) {
        tracing::error!(%fault, retry_in = ?self.backoff, "pipeline fault");
        self.stop_recording_after_fault(&fault);
        if let Some(live) = self.live.take() {
            let _ = live.pipeline.set_state(gst::State::Null);
        }
        self.set_state(RunState::Recovering, &fault);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.health.beat();
    }

    fn on_tick(&mut self) {
        self.poll_bus();
        self.poll_recording();
        if self.live.is_none() {
            self.health.beat(); // alive and retrying
            if self.retry_at.is_some_and(|t| Instant::now() >= t) {
                self.start();
            }
        }
        self.update_rates();
    }

    fn poll_bus(&mut self) {
        let Some(live) = self.live.as_ref() else {
            return;
        };
        let Some(bus) = live.pipeline.bus() else {
            return;
        };
        let mut fault = None;
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let source = msg
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default();
                    fault = Some(format!("{} ({source})", e.error()));
                    break;
                }
                gst::MessageView::Warning(w) => {
                    tracing::warn!(warning = %w.error(), debug = ?w.debug(), "pipeline warning")
                }
                gst::MessageView::Eos(_) => {
                    // A file source loops.
                    let _ = live.pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::ZERO,
                    );
                }
                gst::MessageView::Latency(_) => {
                    let _ = live.pipeline.recalculate_latency();
                }
                _ => {}
            }
        }
        if let Some(fault) = fault {
            self.recover(fault);
        }
    }

    fn update_rates(&mut self) {
        let now = Instant::now();
        let frames = self.frames.load(Ordering::Relaxed);
        let (since, before) = self.last_rate;
        let elapsed = now.duration_since(since);
        if frames != before {
            self.health.beat();
            if self.status.borrow().state != RunState::Running {
                if let Some(live) = &self.live {
                    let active = live.stylize.property::<String>("active-accelerator");
                    self.status.send_modify(|s| s.accelerator = active);
                    self.backoff = Duration::from_secs(1);
                    self.set_state(RunState::Running, "");
                }
            }
        }
        if elapsed < Duration::from_secs(1) {
            // The frame counter is fresh every tick; rates once a second.
            self.status.send_if_modified(|s| {
                let changed = s.frames != frames;
                s.frames = frames;
                changed
            });
            return;
        }
        self.last_rate = (now, frames);
        let fps = (frames - before) as f64 / elapsed.as_secs_f64();
        let (inference_ms, accelerator) = match &self.live {
            Some(live) => (
                live.stylize.property::<f64>("inference-ms"),
                live.stylize.property::<String>("active-accelerator"),
            ),
            None => (0.0, String::new()),
        };
        self.status.send_if_modified(|s| {
            let fps = (fps * 10.0).round() / 10.0;
            let inference_ms = (inference_ms * 10.0).round() / 10.0;
            let changed = s.fps != fps
                || s.inference_ms != inference_ms
                || s.frames != frames
                || (!accelerator.is_empty() && s.accelerator != accelerator);
            s.fps = fps;
            s.inference_ms = inference_ms;
            s.frames = frames;
            if !accelerator.is_empty() {
                s.accelerator = accelerator;
            }
            changed
        });
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::ListStyles(reply) => {
                let styles = self
                    .store
                    .styles
                    .iter()
                    .map(|s| (s.id.clone(), s.name.clone()))
                    .collect();
                let _ = reply.send(Ok(styles));
            }
            Command::SetStyle(id, reply) => {
                let _ = reply.send(self.set_style(id));
            }
            Command::SetBlend(blend, reply) => {
                let _ = reply.send(self.set_blend(blend));
            }
            Command::StartRecording(name, reply) => {
                let _ = reply.send(self.start_recording(name));
            }
            Command::StopRecording(reply) => {
                let result = tokio::task::block_in_place(|| self.stop_recording());
                let _ = reply.send(result);
            }
            Command::Reload(reply) => {
                let _ = reply.send(self.reload());
            }
            Command::Snapshot(name, reply) => {
                let _ = reply.send(self.snapshot(name));
            }
        }
    }

    fn set_style(&mut self, id: String) -> Result<(), ControlError> {
        if self.store.get(&id).is_none() {
            return Err(ControlError::UnknownStyle {
                id,
                known: self.store.ids().join(", "),
            });
        }
        if let Some(live) = &self.live {
            live.stylize.set_property("style", &id);
        }
        tracing::info!(style = %id, "style set");
        self.status.send_modify(|s| s.style = id);
        Ok(())
    }

    fn set_blend(&mut self, blend: f64) -> Result<(), ControlError> {
        if !(0.0..=1.0).contains(&blend) || blend.is_nan() {
            return Err(ControlError::InvalidBlend(blend));
        }
        if let Some(live) = &self.live {
            live.stylize.set_property("blend", blend);
        }
        self.status.send_modify(|s| s.blend = blend);
        Ok(())
    }

    fn reload(&mut self) -> Result<(), ControlError> {
        let store =
            Store::load(&self.store_path).map_err(|e| ControlError::Store(e.to_string()))?;
        let current = self.status.borrow().style.clone();
        if store.get(&current).is_none() {
            return Err(ControlError::Store(format!(
                "the new store has no style {current:?}, which is in use"
            )));
        }
        if let Some(live) = &self.live {
            live.stylize
                .set_property("store", self.store_path.to_string_lossy().to_string());
        }
        tracing::info!(styles = store.styles.len(), "style store reloaded");
        self.store = store;
        Ok(())
    }

    fn extension(&self) -> &'static str {
        match self.config.recording.container.as_str() {
            "mp4" => "mp4",
            _ => "mkv",
        }
    }

    fn recording_path(&self, name: &str, segment: u32) -> PathBuf {
        let file = if segment == 0 {
            format!("{name}.{}", self.extension())
        } else {
            format!("{name}-{segment:03}.{}", self.extension())
        };
        self.config.recording.directory.join(file)
    }

    fn start_recording(&mut self, name: String) -> Result<PathBuf, ControlError> {
        if let Some(r) = &self.recorder {
            return Err(ControlError::AlreadyRecording(
                r.path().display().to_string(),
            ));
        }
        check_name(&name)?;
        if self.live.is_none() {
            return Err(ControlError::NotRunning(self.status.borrow().fault.clone()));
        }
        let path = self.recording_path(&name, 0);
        if path.exists() {
            return Err(ControlError::NameTaken(path.display().to_string()));
        }
        self.open_segment(&name, 0)?;
        Ok(path)
    }

    fn open_segment(&mut self, name: &str, segment: u32) -> Result<(), ControlError> {
        let dir = &self.config.recording.directory;
        std::fs::create_dir_all(dir)
            .map_err(|e| ControlError::RecordingFailed(format!("{}: {e}", dir.display())))?;
        let path = self.recording_path(name, segment);
        let recorder = Recorder::start(
            &self.config.recording,
            self.config.source.framerate,
            &path,
            &self.feed,
        )
        .map_err(ControlError::RecordingFailed)?;
        tracing::info!(path = %path.display(), "recording started");
        self.recorder = Some(recorder);
        self.recording_name = Some(name.to_string());
        self.segment = segment;
        let shown = path.display().to_string();
        self.status.send_modify(|s| {
            s.recording = true;
            s.recording_path = shown;
        });
        Ok(())
    }

    fn stop_recording(&mut self) -> Result<PathBuf, ControlError> {
        let recorder = self.recorder.take().ok_or(ControlError::NotRecording)?;
        self.recording_name = None;
        let result = recorder.finish(FINISH_TIMEOUT);
        self.status.send_modify(|s| s.recording = false);
        match &result {
            Ok(path) => tracing::info!(path = %path.display(), "recording finished"),
            Err(e) => tracing::error!(error = %e, "recording did not finish cleanly"),
        }
        result.map_err(ControlError::RecordingFailed)
    }

    fn poll_recording(&mut self) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        if let Some(error) = recorder.error() {
            let path = recorder.path().display().to_string();
            tracing::error!(%path, %error, "recording failed; the stream goes on");
            if let Some(r) = self.recorder.take() {
                r.abort();
            }
            self.recording_name = None;
            self.status.send_modify(|s| s.recording = false);
            let _ = self.events.send(Event::RecordingFailed {
                path,
                message: error,
            });
            return;
        }
        let limit = gst::ClockTime::from_seconds(self.config.recording.max_file_seconds);
        if recorder.recorded() >= limit {
            let name = self.recording_name.clone().unwrap_or_default();
            let next = self.segment + 1;
            if let Some(r) = self.recorder.take() {
                if let Err(e) = tokio::task::block_in_place(|| r.finish(FINISH_TIMEOUT)) {
                    tracing::error!(error = %e, "closing a full segment failed");
                }
            }
            if let Err(e) = self.open_segment(&name, next) {
                tracing::error!(error = %e, "could not continue the recording in a new file");
                self.status.send_modify(|s| s.recording = false);
            }
        }
    }

    fn stop_recording_after_fault(&mut self, fault: &str) {
        if self.recorder.is_some() {
            tracing::warn!(%fault, "finishing the recording because the pipeline failed");
            let _ = tokio::task::block_in_place(|| self.stop_recording());
        }
    }

    fn snapshot(&mut self, name: String) -> Result<PathBuf, ControlError> {
        check_name(&name)?;
        let sample = self
            .last_sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ControlError::NotRunning("no frame yet".into()))?;
        let path = self.config.recording.directory.join(format!("{name}.png"));
        write_png(&sample, &path).map_err(ControlError::SnapshotFailed)?;
        Ok(path)
    }

    fn stop_all(&mut self) {
        if self.recorder.is_some() {
            match self.stop_recording() {
                Ok(path) => tracing::info!(path = %path.display(), "recording saved on shutdown"),
                Err(e) => tracing::error!(error = %e, "recording not saved cleanly on shutdown"),
            }
        }
        if let Some(live) = self.live.take() {
            let _ = live.pipeline.set_state(gst::State::Null);
        }
    }
}

/// Converts a sample to RGB and writes it as PNG (temp file, then rename).
fn write_png(sample: &gst::Sample, path: &Path) -> Result<(), String> {
    let caps = sample.caps().ok_or("frame without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let buffer = sample.buffer().ok_or("frame without data")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| e.to_string())?;
    let (w, h) = (info.width(), info.height());
    let rgb_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| e.to_string())?;
    let mut rgb = gst::Buffer::with_size(rgb_info.size()).map_err(|e| e.to_string())?;
    {
        let rgb_ref = rgb.get_mut().ok_or("buffer not writable")?;
        let mut out = gst_video::VideoFrameRef::from_buffer_ref_writable(rgb_ref, &rgb_info)
            .map_err(|e| e.to_string())?;
        let converter =
            gst_video::VideoConverter::new(&info, &rgb_info, None).map_err(|e| e.to_string())?;
        converter.frame_ref(&frame, &mut out);
    }
    let map = rgb.map_readable().map_err(|e| e.to_string())?;
    let stride = rgb_info.stride()[0] as usize;
    let mut packed = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        packed.extend_from_slice(&map[y * stride..y * stride + w as usize * 3]);
    }
    let dir = path.parent().ok_or("no folder")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tmp = tempfile::Builder::new()
        .prefix(".snapshot.")
        .suffix(".png")
        .tempfile_in(dir)
        .map_err(|e| e.to_string())?;
    image::save_buffer_with_format(
        tmp.path(),
        &packed,
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| e.to_string())?;
    tmp.persist(path).map_err(|e| e.error.to_string())?;
    Ok(())
}

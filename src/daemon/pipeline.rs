//! The task that owns the camera pipeline: builds it, recovers it, applies commands and
//! publishes the status. Nothing else touches GStreamer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tokio::sync::{broadcast, mpsc, watch};

use crate::camera::{self, CameraError};
use crate::config::{Config, Input};
use crate::control::{check_name, Command, ControlError, Event, RunState, Status};
use crate::display::{self, Display, DisplaySlot, KmsOutput, Session};
use crate::health::Health;
use crate::recording::{existing_file_of, segment_path, FeedSlot, Progress, Recording};
use crate::snapshot;
use crate::stream::{Stream, StreamFeed};
use stylize::store::Store;

const TICK: Duration = Duration::from_millis(100);
const FINISH_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a display that did not open (or failed) is tried again: a screen may be
/// plugged in later.
const DISPLAY_RETRY: Duration = Duration::from_secs(30);

/// Why the camera pipeline could not be built; the fault shown over D-Bus. The text
/// carries the cause, so it is not also the `source()` (a chain would print it twice).
#[derive(Debug, thiserror::Error)]
enum BuildError {
    #[error("cannot build the pipeline: {0}")]
    Parse(gst::glib::Error),
    #[error("the pipeline has no {0}")]
    Missing(&'static str),
    #[error("the pipeline description does not make a pipeline")]
    NotAPipeline,
    #[error("{0}")]
    Camera(CameraError),
}

impl From<CameraError> for BuildError {
    fn from(e: CameraError) -> Self {
        BuildError::Camera(e)
    }
}

impl From<gst::glib::Error> for BuildError {
    fn from(e: gst::glib::Error) -> Self {
        BuildError::Parse(e)
    }
}

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
    recording: Option<Recording>,
    backoff: Duration,
    retry_at: Option<Instant>,
    last_rate: (Instant, u64),
    /// The display, a pipeline of its own fed through `display_slot` (display.rs says
    /// why); `display_fault` is why it is not showing, shown as the Fault while running.
    display: Option<Display>,
    display_slot: DisplaySlot,
    display_fault: String,
    display_retry_at: Option<Instant>,
    stream: Option<Stream>,
    stream_feed: StreamFeed,
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
            s.accelerator = config.stylize.accelerator.to_string();
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
            recording: None,
            backoff: Duration::from_secs(1),
            retry_at: None,
            last_rate: (Instant::now(), 0),
            display: None,
            display_slot: Default::default(),
            display_fault: String::new(),
            display_retry_at: None,
            stream: None,
            stream_feed: StreamFeed::default(),
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.open_display();
        self.start_stream();
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
        // A camera fault says more than a display fault; without one, the display's.
        let fault = if fault.is_empty() {
            self.display_fault.as_str()
        } else {
            fault
        };
        self.status.send_if_modified(|s| {
            let changed = s.state != state || s.fault != fault;
            s.state = state;
            s.fault = fault.to_string();
            changed
        });
    }

    fn description(&self) -> Result<String, BuildError> {
        let c = &self.config;
        let caps = format!(
            "video/x-raw,width={},height={},framerate={}/1",
            c.source.width, c.source.height, c.source.framerate
        );
        let want = camera::Want {
            width: c.source.width,
            height: c.source.height,
            framerate: c.source.framerate,
        };
        // The source element is named `camera`: its negotiated caps are the CameraMode.
        let source = match &c.source.input {
            Input::Test => {
                format!("videotestsrc name=camera is-live=true pattern=smpte75 ! {caps}")
            }
            Input::V4l2(dev) => format!(
                "{} ! videoconvert ! videoscale ! videorate ! {caps}",
                camera::v4l2_source(dev, want)?
            ),
            Input::Libcamera(name) => format!(
                "{} ! videoconvert ! videoscale ! videorate ! {caps}",
                camera::libcamera_source(name.as_deref(), want)?
            ),
            Input::Uri(uri) => format!(
                "uridecodebin name=camera uri=\"{uri}\" ! videoconvert ! videoscale ! videorate ! {caps}"
            ),
        };
        // The display is not a branch here but a pipeline of its own (display.rs), fed
        // from the appsink.
        Ok(format!(
            "{source} ! stylize name=stylize ! tee name=t \
             t. ! queue leaky=downstream max-size-buffers=3 ! \
             appsink name=frames sync=false max-buffers=2 drop=true"
        ))
    }

    fn build(&self) -> Result<Live, BuildError> {
        let description = self.description()?;
        tracing::debug!(%description, "building pipeline");
        let pipeline = gst::parse::launch(&description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| BuildError::NotAPipeline)?;
        let stylize = pipeline
            .by_name("stylize")
            .ok_or(BuildError::Missing("stylize element"))?;
        let s = &self.config.stylize;
        let style = self.status.borrow().style.clone();
        let blend = self.status.borrow().blend;
        stylize.set_property("style", style);
        stylize.set_property("blend", blend);
        stylize.set_property("deflicker", s.deflicker);
        stylize.set_property("transition-ms", s.transition_ms);
        stylize.set_property("accelerator", s.accelerator);
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
            .ok_or(BuildError::Missing("stylize src pad"))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });

        let appsink = pipeline
            .by_name("frames")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or(BuildError::Missing("frames appsink"))?;
        let last_sample = self.last_sample.clone();
        let feed = self.feed.clone();
        let display_slot = self.display_slot.clone();
        let stream_feed = self.stream_feed.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(feed) = feed.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        feed.push(&sample);
                    }
                    display::feed(&display_slot, &sample);
                    stream_feed.push(&sample);
                    *last_sample.lock().unwrap_or_else(|e| e.into_inner()) = Some(sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(Live { pipeline, stylize })
    }

    fn start(&mut self) {
        self.set_state(RunState::Starting, "");
        let built = match self.build() {
            // A missing element does not come back by retrying: install the package.
            Err(BuildError::Camera(e @ CameraError::NotInstalled { .. })) => {
                let fault = e.to_string();
                tracing::error!(%fault, "the camera cannot be used");
                self.set_state(RunState::Error, &fault);
                self.retry_at = None;
                return;
            }
            other => other,
        };
        match built.map_err(|e| e.to_string()).and_then(|live| {
            live.pipeline
                .set_state(gst::State::Playing)
                .map_err(|_| {
                    // The reason is on the bus of the pipeline that failed to start (a
                    // libcamera source without a camera fails here, not at the build).
                    let fault = first_error(&live.pipeline)
                        .unwrap_or_else(|| "cannot start the pipeline".into());
                    let _ = live.pipeline.set_state(gst::State::Null);
                    fault
                })
                .map(|_| live)
        }) {
            Ok(live) => {
                self.live = Some(live);
                self.retry_at = None;
            }
            Err(fault) => self.recover(fault),
        }
    }

    /// Tears the pipeline down and schedules a rebuild with exponential backoff.
    fn recover(&mut self, fault: String) {
        tracing::error!(%fault, retry_in = ?self.backoff, "pipeline fault");
        self.stop_recording_after_fault(&fault);
        if let Some(live) = self.live.take() {
            let _ = live.pipeline.set_state(gst::State::Null);
        }
        self.status.send_if_modified(|s| {
            let changed = !s.camera_mode.is_empty();
            s.camera_mode.clear();
            changed
        });
        self.set_state(RunState::Recovering, &fault);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.health.beat();
    }

    fn on_tick(&mut self) {
        self.poll_display();
        self.poll_bus();
        self.poll_recording();
        if self.live.is_none() {
            self.health.beat(); // alive and retrying
            if self.retry_at.is_some_and(|t| Instant::now() >= t) {
                self.start();
            }
        }
        self.update_rates();
        self.update_stream_clients();
    }

    /// The RTSP stream, when enabled. It outlives camera pipeline rebuilds (its clients
    /// just get no frames meanwhile). One that cannot listen is logged, and the camera,
    /// the display and recordings go on without it; StreamUrl stays empty.
    fn start_stream(&mut self) {
        let c = &self.config;
        if !c.stream.enabled {
            return;
        }
        match Stream::start(
            &c.stream,
            &c.recording,
            c.source.framerate,
            &self.stream_feed,
        ) {
            Ok(stream) => {
                let url = stream.url().to_string();
                self.status.send_modify(|s| s.stream_url = url);
                self.stream = Some(stream);
            }
            Err(e) => tracing::error!(error = %e, "no RTSP stream"),
        }
    }

    fn update_stream_clients(&mut self) {
        let clients = self.stream.as_ref().map_or(0, Stream::clients);
        self.status.send_if_modified(|s| {
            let changed = s.stream_clients != clients;
            s.stream_clients = clients;
            changed
        });
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
                    let mode = live
                        .pipeline
                        .by_name("camera")
                        .and_then(|c| camera::negotiated(&c))
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    if !mode.is_empty() {
                        tracing::info!(camera_mode = %mode, "frames flowing");
                    }
                    self.status.send_modify(|s| {
                        s.accelerator = active;
                        s.camera_mode = mode;
                    });
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
            return Err(ControlError::unknown_style(&id, &self.store.ids()));
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
            return Err(ControlError::invalid_blend(blend));
        }
        if let Some(live) = &self.live {
            live.stylize.set_property("blend", blend);
        }
        self.status.send_modify(|s| s.blend = blend);
        Ok(())
    }

    fn reload(&mut self) -> Result<(), ControlError> {
        let store = Store::load(&self.store_path).map_err(ControlError::store)?;
        let current = self.status.borrow().style.clone();
        if store.get(&current).is_none() {
            return Err(ControlError::store(format_args!(
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

    fn start_recording(&mut self, name: String) -> Result<PathBuf, ControlError> {
        if let Some(r) = &self.recording {
            return Err(ControlError::already_recording(r.path()));
        }
        check_name(&name)?;
        if self.live.is_none() {
            return Err(ControlError::not_running(&self.status.borrow().fault));
        }
        if let Some(existing) = existing_file_of(&self.config.recording, &name) {
            return Err(ControlError::name_taken(&existing));
        }
        let path = segment_path(&self.config.recording, &name, 0);
        let recording = Recording::start(
            &self.config.recording,
            self.config.source.framerate,
            &name,
            &self.feed,
        )
        .map_err(ControlError::recording_failed)?;
        tracing::info!(path = %path.display(), "recording started");
        self.recording = Some(recording);
        self.show_recording(Some(&path));
        Ok(path)
    }

    /// Publishes whether a recording runs, and its current file.
    fn show_recording(&self, path: Option<&Path>) {
        let shown = path.map(|p| p.display().to_string());
        self.status.send_modify(|s| {
            s.recording = shown.is_some();
            if let Some(shown) = shown {
                s.recording_path = shown;
            }
        });
    }

    fn stop_recording(&mut self) -> Result<PathBuf, ControlError> {
        let recording = self
            .recording
            .take()
            .ok_or_else(ControlError::not_recording)?;
        let result = recording.finish(FINISH_TIMEOUT);
        self.show_recording(None);
        match &result {
            Ok(path) => tracing::info!(path = %path.display(), "recording finished"),
            Err(e) => tracing::error!(error = %e, "recording did not finish cleanly"),
        }
        result.map_err(ControlError::recording_failed)
    }

    fn poll_recording(&mut self) {
        let Some(recording) = self.recording.as_mut() else {
            return;
        };
        let failed = match recording.poll() {
            Progress::Writing => return,
            Progress::Full => {
                match tokio::task::block_in_place(|| recording.rotate(FINISH_TIMEOUT)) {
                    Ok(path) => {
                        tracing::info!(path = %path.display(), "recording continues in a new file");
                        self.show_recording(Some(&path));
                        return;
                    }
                    // The next file could not start: like a write error, the recording
                    // ends and RecordingFailed says so.
                    Err(error) => (recording.path().to_path_buf(), error),
                }
            }
            Progress::Failed { path, error } => (path, error),
        };
        let (path, error) = failed;
        let path = path.display().to_string();
        tracing::error!(%path, %error, "recording failed; the stream goes on");
        if let Some(r) = self.recording.take() {
            r.abort();
        }
        self.show_recording(None);
        let _ = self.events.send(Event::RecordingFailed {
            path,
            message: error.to_string(),
        });
    }

    fn stop_recording_after_fault(&mut self, fault: &str) {
        if self.recording.is_some() {
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
            .ok_or_else(|| ControlError::not_running("no frame yet"))?;
        let path = self.config.recording.directory.join(format!("{name}.png"));
        snapshot::write_png(&sample, &path).map_err(ControlError::snapshot_failed)?;
        Ok(path)
    }

    fn stop_all(&mut self) {
        if self.recording.is_some() {
            match self.stop_recording() {
                Ok(path) => tracing::info!(path = %path.display(), "recording saved on shutdown"),
                Err(e) => tracing::error!(error = %e, "recording not saved cleanly on shutdown"),
            }
        }
        if let Some(live) = self.live.take() {
            let _ = live.pipeline.set_state(gst::State::Null);
        }
        if let Some(display) = self.display.take() {
            display.close(&self.display_slot);
        }
        self.stream = None;
    }

    /// Opens the configured display, if any. A display that does not open is a fault
    /// (shown while the camera runs) and is tried again after [`DISPLAY_RETRY`]; the
    /// camera pipeline never depends on it.
    fn open_display(&mut self) {
        let d = &self.config.display;
        let candidates = if d.enabled {
            display::candidates(d.sink, Session::from_env())
        } else {
            Vec::new()
        };
        if candidates.is_empty() {
            return;
        }
        let kms = KmsOutput {
            connector_id: d.connector_id,
            plane_id: d.plane_id,
        };
        self.display_retry_at = None;
        match Display::open(&candidates, kms, &self.display_slot) {
            Ok(opened) => {
                tracing::info!(sink = opened.sink, "display open");
                self.display = Some(opened);
                self.set_display_fault(String::new());
            }
            Err(e) => self.display_failed(e.to_string()),
        }
    }

    fn display_failed(&mut self, fault: String) {
        if fault != self.display_fault {
            tracing::error!(%fault, retry_in = ?DISPLAY_RETRY,
                "no display; the camera and the recording go on");
        } else {
            tracing::debug!(%fault, "the display still does not open");
        }
        self.display_retry_at = Some(Instant::now() + DISPLAY_RETRY);
        self.set_display_fault(fault);
    }

    fn set_display_fault(&mut self, fault: String) {
        self.display_fault = fault;
        let state = self.status.borrow().state;
        if matches!(state, RunState::Starting | RunState::Running) {
            self.set_state(state, "");
        }
    }

    fn poll_display(&mut self) {
        if let Some(cause) = self.display.as_ref().and_then(Display::poll) {
            if let Some(display) = self.display.take() {
                display.close(&self.display_slot);
            }
            self.display_failed(format!("display: {cause}"));
        }
        if self.display_retry_at.is_some_and(|t| Instant::now() >= t) {
            self.open_display();
        }
    }
}

/// The first error on a pipeline's bus.
fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

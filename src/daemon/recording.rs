//! Recordings. A recording is its own pipeline (appsrc → 4:2:0 → encoder → muxer → file), fed
//! with the stylized frames, so a write error or a full disk stops the recording without
//! touching the live stream. A long recording continues in numbered files
//! (`NAME.mkv`, `NAME-001.mkv`, ...): the rotation is [`Recording`]'s job.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde::Deserialize;

use crate::config::RecordingConfig;

/// The file format of a recording, `[recording] container` in the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Container {
    /// Matroska (`.mkv`): readable up to the last cluster after a crash.
    #[default]
    Matroska,
    /// Fragmented MP4 (`.mp4`): readable up to the last fragment after a crash.
    Mp4,
}

/// A `[recording] container` that is neither `matroska` nor `mp4`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown container {0:?}: use matroska or mp4")]
pub struct UnknownContainer(pub String);

impl TryFrom<String> for Container {
    type Error = UnknownContainer;

    fn try_from(name: String) -> Result<Self, UnknownContainer> {
        match name.as_str() {
            "matroska" => Ok(Container::Matroska),
            "mp4" => Ok(Container::Mp4),
            _ => Err(UnknownContainer(name)),
        }
    }
}

impl Container {
    pub fn extension(self) -> &'static str {
        match self {
            Container::Matroska => "mkv",
            Container::Mp4 => "mp4",
        }
    }
}

/// Why a recording could not start, or did not end cleanly. The text carries any cause,
/// so none is also the `source()` (a chain would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("GStreamer element {0} is not installed")]
    MissingElement(String),
    #[error("building the recording: {0}")]
    Build(String),
    #[error("cannot start writing {}", .0.display())]
    Start(PathBuf),
    #[error("cannot create the recordings folder {}: {cause}", path.display())]
    Folder {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// What the recording pipeline reported (a full disk, a write error).
    #[error("{0}")]
    Write(String),
    #[error("the file was not finalized within {0:?}")]
    NotFinalized(Duration),
    #[error(
        "nothing was recorded: no frame arrived within {0:?} of the start, so no file was kept"
    )]
    Empty(Duration),
}

/// The most of a recording a crash (SIGKILL, power loss after the page cache) may cost,
/// in milliseconds.
pub const MAX_LOSS_MS: u32 = 500;

/// How long stopping a recording that has no frame yet waits for one: a frame at the
/// slowest framerate the config allows (1/s).
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(1);

/// The part the streaming thread uses to hand frames over.
pub struct Feed {
    appsrc: gst_app::AppSrc,
    base: Option<gst::ClockTime>,
    last: Option<gst::ClockTime>,
}

pub type FeedSlot = Arc<Mutex<Option<Feed>>>;

impl Feed {
    /// Queues one frame, its timestamp rebased so the file starts at zero.
    pub fn push(&mut self, sample: &gst::Sample) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Some(pts) = buffer.pts() else {
            return;
        };
        if self.appsrc.caps().is_none() {
            if let Some(caps) = sample.caps() {
                self.appsrc.set_caps(Some(&caps.to_owned()));
            }
        }
        let base = *self.base.get_or_insert(pts);
        let mut copy = buffer.copy();
        {
            let b = copy.make_mut();
            b.set_pts(pts.saturating_sub(base));
            b.set_dts(gst::ClockTime::NONE);
        }
        self.last = Some(pts.saturating_sub(base));
        // Errors surface on the recording's bus; a full queue drops the oldest frame.
        let _ = self.appsrc.push_buffer(copy);
    }
}

/// One file being written.
pub struct Recorder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    path: PathBuf,
    feed: FeedSlot,
}

fn make(factory: &str) -> Result<gst::Element, RecordingError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| RecordingError::MissingElement(factory.to_string()))
}

/// The encoding part every H.264 output shares (a recording, the RTSP stream):
/// `videoconvert → 4:2:0 capsfilter → encoder`, set up from `[recording]`, unlinked.
pub fn h264_encoder(
    config: &RecordingConfig,
    framerate: u32,
) -> Result<[gst::Element; 3], RecordingError> {
    let convert = make("videoconvert")?;
    // 4:2:0, whatever the frames are: left alone, videoconvert hands x264enc its
    // first format, Y444, and the file becomes H.264 High 4:4:4, which phones,
    // browsers and most hardware decoders refuse. The list lets any encoder pick.
    let chroma_420 = make("capsfilter")?;
    chroma_420.set_property(
        "caps",
        gst_video::VideoCapsBuilder::new()
            .format_list([
                gst_video::VideoFormat::I420,
                gst_video::VideoFormat::Nv12,
                gst_video::VideoFormat::Yv12,
                gst_video::VideoFormat::Nv21,
            ])
            .build(),
    );
    let encoder = make(&config.encoder)?;
    if config.encoder == "x264enc" {
        encoder.set_property_from_str("tune", "zerolatency");
        encoder.set_property_from_str("speed-preset", "ultrafast");
        encoder.set_property("bitrate", config.bitrate_kbps);
        // A keyframe every half second, so every fragment decodes on its own soon and
        // a stream client joining late gets a picture soon.
        encoder.set_property("key-int-max", (framerate / 2).max(1));
    } else if encoder.has_property("bitrate") {
        tracing::info!(
            encoder = config.encoder,
            "not setting a bitrate: its unit differs between encoders"
        );
    }
    Ok([convert, chroma_420, encoder])
}

impl Recorder {
    /// Starts a file at `path` and plugs it into `feed`.
    pub fn start(
        config: &RecordingConfig,
        framerate: u32,
        path: &Path,
        feed: &FeedSlot,
    ) -> Result<Recorder, RecordingError> {
        let pipeline = gst::Pipeline::with_name("recording");
        let appsrc = gst_app::AppSrc::builder()
            .name("frames")
            .is_live(true)
            .format(gst::Format::Time)
            .build();
        // Keep at most two seconds queued; drop the oldest frames if the encoder lags.
        appsrc.set_property("max-time", gst::ClockTime::from_seconds(2).nseconds());
        appsrc.set_property_from_str("leaky-type", "downstream");
        let queue = make("queue")?;
        let [convert, chroma_420, encoder] = h264_encoder(config, framerate)?;
        let parse = make("h264parse")?;
        // A crash keeps everything older than about half a second: fragments and
        // clusters of a quarter second, each written out at once (below).
        let mux = match config.container {
            Container::Mp4 => {
                let mux = make("mp4mux")?;
                mux.set_property("fragment-duration", MAX_LOSS_MS / 2);
                mux
            }
            Container::Matroska => {
                let mux = make("matroskamux")?;
                let quarter =
                    gst::ClockTime::from_mseconds(MAX_LOSS_MS as u64 / 2).nseconds() as i64;
                mux.set_property("min-cluster-duration", quarter);
                mux.set_property("max-cluster-duration", quarter);
                mux
            }
        };
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().to_string());
        // No user-space buffer: filesink would otherwise keep up to 64 KiB back.
        sink.set_property_from_str("buffer-mode", "unbuffered");
        sink.set_property("async", false);
        let elements = [
            appsrc.upcast_ref::<gst::Element>(),
            &queue,
            &convert,
            &chroma_420,
            &encoder,
            &parse,
            &mux,
            &sink,
        ];
        pipeline
            .add_many(elements)
            .map_err(|e| RecordingError::Build(e.to_string()))?;
        gst::Element::link_many(elements)
            .map_err(|e| RecordingError::Build(format!("linking: {e}")))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| RecordingError::Start(path.to_path_buf()))?;
        *feed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Feed {
            appsrc: appsrc.clone(),
            base: None,
            last: None,
        });
        Ok(Recorder {
            pipeline,
            appsrc,
            path: path.to_path_buf(),
            feed: feed.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The timestamp of the last frame handed to the file, if any.
    fn last_frame(&self) -> Option<gst::ClockTime> {
        self.feed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|f| f.last)
    }

    /// Media time written so far.
    pub fn recorded(&self) -> gst::ClockTime {
        self.last_frame().unwrap_or(gst::ClockTime::ZERO)
    }

    /// The first error the recording reported, if any.
    pub fn error(&self) -> Option<RecordingError> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Some(RecordingError::Write(e.error().to_string()));
            }
        }
        None
    }

    fn unplug(&self) {
        self.feed.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Ends the file cleanly: end of stream through the muxer, then closed. A stop right
    /// after the start waits up to [`FIRST_FRAME_WAIT`] for a first frame; without one,
    /// the empty file is removed and the answer says nothing was recorded.
    pub fn finish(self, timeout: Duration) -> Result<PathBuf, RecordingError> {
        let deadline = Instant::now() + FIRST_FRAME_WAIT;
        while self.last_frame().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.last_frame().is_none() {
            self.unplug();
            let _ = self.pipeline.set_state(gst::State::Null);
            let _ = std::fs::remove_file(&self.path);
            return Err(RecordingError::Empty(FIRST_FRAME_WAIT));
        }
        self.unplug();
        let _ = self.appsrc.end_of_stream();
        let outcome = match self.pipeline.bus().and_then(|bus| {
            bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
        }) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => Err(RecordingError::Write(e.error().to_string())),
                _ => Ok(()),
            },
            None => Err(RecordingError::NotFinalized(timeout)),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        outcome.map(|()| self.path.clone())
    }

    /// Drops the recording after an error; what was written stays.
    pub fn abort(self) {
        self.unplug();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The file of part `segment` of recording `name`: `NAME.EXT`, then `NAME-001.EXT`, ...
pub fn segment_path(config: &RecordingConfig, name: &str, segment: u32) -> PathBuf {
    let ext = config.container.extension();
    let file = if segment == 0 {
        format!("{name}.{ext}")
    } else {
        format!("{name}-{segment:03}.{ext}")
    };
    config.directory.join(file)
}

/// A file of recording `name`'s set that already exists (`NAME.EXT` or `NAME-NNN.EXT`),
/// if any: a new recording of that name would overwrite it at some split.
pub fn existing_file_of(config: &RecordingConfig, name: &str) -> Option<PathBuf> {
    let first = segment_path(config, name, 0);
    if first.exists() {
        return Some(first);
    }
    let ext = format!(".{}", config.container.extension());
    let prefix = format!("{name}-");
    std::fs::read_dir(&config.directory)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|path| {
            path.file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_prefix(&prefix))
                .and_then(|rest| rest.strip_suffix(&ext))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// What [`Recording::poll`] found.
pub enum Progress {
    Writing,
    /// The file reached `max_file_seconds`: call [`Recording::rotate`].
    Full,
    /// The recording stopped: a write error, or the next file could not start. What
    /// was written stays.
    Failed {
        path: PathBuf,
        error: RecordingError,
    },
}

/// A named recording, across the files it rotates through.
pub struct Recording {
    name: String,
    segment: u32,
    /// None only after a failed rotation.
    file: Option<Recorder>,
    path: PathBuf,
    config: RecordingConfig,
    framerate: u32,
    feed: FeedSlot,
}

impl Recording {
    /// Starts file 0 of recording `name`. The caller checked the name.
    pub fn start(
        config: &RecordingConfig,
        framerate: u32,
        name: &str,
        feed: &FeedSlot,
    ) -> Result<Recording, RecordingError> {
        std::fs::create_dir_all(&config.directory).map_err(|cause| RecordingError::Folder {
            path: config.directory.clone(),
            cause,
        })?;
        let path = segment_path(config, name, 0);
        let file = Recorder::start(config, framerate, &path, feed)?;
        Ok(Recording {
            name: name.to_string(),
            segment: 0,
            file: Some(file),
            path,
            config: config.clone(),
            framerate,
            feed: feed.clone(),
        })
    }

    /// The file being written now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks for a write error, and whether this file is full. After `Failed` the
    /// recording is over: drop it.
    pub fn poll(&self) -> Progress {
        let Some(file) = &self.file else {
            return Progress::Failed {
                path: self.path.clone(),
                error: RecordingError::Build("no open file".into()),
            };
        };
        if let Some(error) = file.error() {
            return Progress::Failed {
                path: self.path.clone(),
                error,
            };
        }
        let limit = gst::ClockTime::from_seconds(self.config.max_file_seconds);
        if file.recorded() < limit {
            Progress::Writing
        } else {
            Progress::Full
        }
    }

    /// Closes the full file and goes on in the next: the new file's path, or why the
    /// recording is over (drop it then). Blocks up to `finish_timeout`.
    pub fn rotate(&mut self, finish_timeout: Duration) -> Result<PathBuf, RecordingError> {
        // The full file is closed before the next opens: both would share the feed.
        if let Some(full) = self.file.take() {
            if let Err(e) = full.finish(finish_timeout) {
                tracing::error!(error = %e, "closing a full file of the recording failed");
            }
        }
        // Never over a file that appeared meanwhile: the next free number.
        loop {
            self.segment += 1;
            self.path = segment_path(&self.config, &self.name, self.segment);
            if !self.path.exists() {
                break;
            }
        }
        // The folder may have been removed meanwhile.
        std::fs::create_dir_all(&self.config.directory).map_err(|cause| {
            RecordingError::Folder {
                path: self.config.directory.clone(),
                cause,
            }
        })?;
        let file = Recorder::start(&self.config, self.framerate, &self.path, &self.feed)?;
        self.file = Some(file);
        Ok(self.path.clone())
    }

    /// Ends the current file cleanly; returns its path.
    pub fn finish(self, timeout: Duration) -> Result<PathBuf, RecordingError> {
        match self.file {
            Some(file) => file.finish(timeout),
            None => Ok(self.path),
        }
    }

    /// Stops after an error; what was written stays.
    pub fn abort(self) {
        if let Some(file) = self.file {
            file.abort();
        }
    }
}

//! A recording: its own pipeline (appsrc → encoder → muxer → file), fed with the
//! stylized frames. Being separate, a write error or a full disk stops the recording
//! without touching the live stream.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use super::config::RecordingConfig;

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

pub struct Recorder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    path: PathBuf,
    feed: FeedSlot,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element {factory} is not installed"))
}

impl Recorder {
    /// Starts a file at `path` and plugs it into `feed`.
    pub fn start(
        config: &RecordingConfig,
        framerate: u32,
        path: &Path,
        feed: &FeedSlot,
    ) -> Result<Recorder, String> {
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
        let convert = make("videoconvert")?;
        let encoder = make(&config.encoder)?;
        if config.encoder == "x264enc" {
            encoder.set_property_from_str("tune", "zerolatency");
            encoder.set_property_from_str("speed-preset", "ultrafast");
            encoder.set_property("bitrate", config.bitrate_kbps);
            // A keyframe a second bounds what a crash can lose to the last fragment.
            encoder.set_property("key-int-max", framerate.max(1));
        } else if encoder.has_property("bitrate") {
            tracing::info!(
                encoder = config.encoder,
                "not setting a bitrate: its unit differs between encoders"
            );
        }
        let parse = make("h264parse")?;
        let mux = match config.container.as_str() {
            "mp4" => {
                let mux = make("mp4mux")?;
                mux.set_property("fragment-duration", 1000u32);
                mux
            }
            _ => make("matroskamux")?,
        };
        let sink = make("filesink")?;
        sink.set_property("location", path.to_string_lossy().to_string());
        sink.set_property("async", false);
        let elements = [
            appsrc.upcast_ref::<gst::Element>(),
            &queue,
            &convert,
            &encoder,
            &parse,
            &mux,
            &sink,
        ];
        pipeline
            .add_many(elements)
            .map_err(|e| format!("building the recording: {e}"))?;
        gst::Element::link_many(elements).map_err(|e| format!("linking the recording: {e}"))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| format!("cannot start writing {}", path.display()))?;
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

    /// Media time written so far.
    pub fn recorded(&self) -> gst::ClockTime {
        self.feed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|f| f.last)
            .unwrap_or(gst::ClockTime::ZERO)
    }

    /// The first error the recording reported, if any.
    pub fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Some(e.error().to_string());
            }
        }
        None
    }

    fn unplug(&self) {
        self.feed.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Ends the file cleanly: end of stream through the muxer, then closed.
    pub fn finish(self, timeout: Duration) -> Result<PathBuf, String> {
        self.unplug();
        let _ = self.appsrc.end_of_stream();
        let bus = self.pipeline.bus().ok_or("recording has no bus")?;
        let outcome = match bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => Err(e.error().to_string()),
                _ => Ok(()),
            },
            None => Err(format!("the file was not finalized within {timeout:?}")),
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

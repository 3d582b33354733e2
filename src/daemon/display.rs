//! The display, kept apart from the camera so that a display that cannot open, or that
//! fails later, never takes the camera, the recording or the stream down (on a machine
//! with no display at all, `autovideosink` can even crash the process).
//!
//! Why a pipeline of its own rather than a branch of the camera pipeline: a display
//! sink fails in ways a branch cannot contain. Its state change fails the whole
//! pipeline's; its flow error travels back through the tee to the camera; a sink that
//! blocks stalls a shared pipeline. So the display is `appsrc ! videoconvert ! SINK`,
//! fed with the stylized samples the camera pipeline's appsink already hands out (the
//! same buffers, no copy), through an appsrc that drops old frames rather than block.
//! Its errors arrive on its own bus; the pipeline task shows them as the `Fault`,
//! closes the display, tries again later, and the camera never notices.
//!
//! Which sink: [`candidates`] is a pure function of the configured kind and of
//! `WAYLAND_DISPLAY`/`DISPLAY`; [`Display::open`] takes the first candidate that opens.

use std::sync::{Arc, Mutex};

use gst::prelude::*;
use serde::Deserialize;

/// `[display] sink`: which kind of video sink shows the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Wayland when `WAYLAND_DISPLAY` is set, X when `DISPLAY` is, else KMS.
    #[default]
    Auto,
    /// `kmssink`: straight to a screen, no desktop needed.
    Kms,
    /// `waylandsink`.
    Wayland,
    /// `xvimagesink`, else `ximagesink`.
    X,
    /// No display, whatever `enabled` says.
    None,
}

/// Which desktop sessions the environment names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Session {
    pub wayland: bool,
    pub x: bool,
}

impl Session {
    /// From `WAYLAND_DISPLAY` and `DISPLAY`; set but empty counts as unset.
    pub fn from_env() -> Session {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        Session {
            wayland: set("WAYLAND_DISPLAY"),
            x: set("DISPLAY"),
        }
    }
}

const X_SINKS: [&str; 2] = ["xvimagesink", "ximagesink"];

/// The sink elements to try, in order. `auto` never falls back to KMS from a desktop
/// session (a desktop owns the screen, so KMS could not open it) and never tries a
/// desktop sink without a session (that is what crashed `autovideosink`). Under
/// Wayland, X sinks follow for XWayland. X tries `xvimagesink` (scaled by the X server)
/// before `ximagesink`, which works everywhere, Xvfb included.
pub fn candidates(kind: SinkKind, session: Session) -> Vec<&'static str> {
    match kind {
        SinkKind::None => Vec::new(),
        SinkKind::Kms => vec!["kmssink"],
        SinkKind::Wayland => vec!["waylandsink"],
        SinkKind::X => X_SINKS.to_vec(),
        SinkKind::Auto => {
            let mut out = Vec::new();
            if session.wayland {
                out.push("waylandsink");
            }
            if session.x {
                out.extend(X_SINKS);
            }
            if out.is_empty() {
                out.push("kmssink");
            }
            out
        }
    }
}

/// The KMS output, `kmssink`'s `connector-id` and `plane-id`; None leaves the choice to
/// `kmssink` (the first connected connector, its primary plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KmsOutput {
    pub connector_id: Option<u32>,
    pub plane_id: Option<u32>,
}

/// Why no display opened; shown as the `Fault` (the text carries every cause).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("display: {0}")]
pub struct DisplayError(pub String);

/// Where the camera pipeline hands the stylized samples to the display, if one is open.
pub type DisplaySlot = Arc<Mutex<Option<gst_app::AppSrc>>>;

/// An open display: its pipeline, and the sink that opened.
pub struct Display {
    pipeline: gst::Pipeline,
    pub sink: &'static str,
}

impl Display {
    /// Opens the first of `candidates` that opens, and hands its appsrc to `slot`.
    pub fn open(
        candidates: &[&'static str],
        kms: KmsOutput,
        slot: &DisplaySlot,
    ) -> Result<Display, DisplayError> {
        if candidates.is_empty() {
            return Err(DisplayError("no video sink to try".into()));
        }
        let mut causes = Vec::new();
        for &sink in candidates {
            match Self::open_one(sink, kms) {
                Ok((pipeline, appsrc)) => {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(appsrc);
                    return Ok(Display { pipeline, sink });
                }
                Err(cause) => causes.push(format!("{sink}: {cause}")),
            }
        }
        Err(DisplayError(format!("cannot open {}", causes.join("; "))))
    }

    fn open_one(sink: &str, kms: KmsOutput) -> Result<(gst::Pipeline, gst_app::AppSrc), String> {
        let element = gst::ElementFactory::make(sink)
            .name("sink")
            .build()
            .map_err(|_| "not installed".to_string())?;
        // Frames are shown as they come: the camera already paces them.
        element.set_property("sync", false);
        if sink == "kmssink" {
            if let Some(id) = kms.connector_id {
                element.set_property("connector-id", id as i32);
            }
            if let Some(id) = kms.plane_id {
                element.set_property("plane-id", id as i32);
            }
        }
        let appsrc = gst_app::AppSrc::builder()
            .name("display")
            .is_live(true)
            .format(gst::Format::Time)
            .build();
        // At most two frames wait; an older one is dropped rather than the camera
        // pipeline's thread blocked. (Both properties came in GStreamer 1.20; without
        // them appsrc queues without blocking, bounded by its max-bytes.)
        appsrc.set_property("block", false);
        if appsrc.has_property("leaky-type") && appsrc.has_property("max-buffers") {
            appsrc.set_property("max-buffers", 2u64);
            appsrc.set_property_from_str("leaky-type", "downstream");
        }
        let convert = gst::ElementFactory::make("videoconvert")
            .build()
            .map_err(|e| e.to_string())?;
        let pipeline = gst::Pipeline::with_name("display");
        pipeline
            .add_many([appsrc.upcast_ref(), &convert, &element])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([appsrc.upcast_ref(), &convert, &element])
            .map_err(|e| e.to_string())?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let cause = first_error(&pipeline).unwrap_or_else(|| "does not start".into());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(cause);
        }
        Ok((pipeline, appsrc))
    }

    /// The first error the display reported since the last call, if any.
    pub fn poll(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => return Some(format!("{}: {}", self.sink, e.error())),
                gst::MessageView::Warning(w) => {
                    tracing::warn!(sink = self.sink, warning = %w.error(), "display warning")
                }
                _ => {}
            }
        }
        None
    }

    /// Stops the display; `slot` no longer feeds it.
    pub fn close(self, slot: &DisplaySlot) {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Hands a stylized sample to the open display, if any. Called on the camera
/// pipeline's streaming thread; never blocks (the appsrc drops old frames).
pub fn feed(slot: &DisplaySlot, sample: &gst::Sample) {
    if let Some(appsrc) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        // A display that failed says so on its own bus; its flow errors stay here.
        let _ = appsrc.push_sample(sample);
    }
}

fn first_error(pipeline: &gst::Pipeline) -> Option<String> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Session = Session {
        wayland: false,
        x: false,
    };
    const X: Session = Session {
        wayland: false,
        x: true,
    };
    const WAYLAND: Session = Session {
        wayland: true,
        x: false,
    };
    const BOTH: Session = Session {
        wayland: true,
        x: true,
    };

    #[test]
    fn auto_takes_kms_only_without_a_desktop_session() {
        assert_eq!(candidates(SinkKind::Auto, NONE), ["kmssink"]);
        assert_eq!(candidates(SinkKind::Auto, X), ["xvimagesink", "ximagesink"]);
        assert_eq!(candidates(SinkKind::Auto, WAYLAND), ["waylandsink"]);
        assert_eq!(
            candidates(SinkKind::Auto, BOTH),
            ["waylandsink", "xvimagesink", "ximagesink"]
        );
    }

    #[test]
    fn a_named_kind_is_that_sink_whatever_the_session() {
        for session in [NONE, X, WAYLAND, BOTH] {
            assert_eq!(candidates(SinkKind::Kms, session), ["kmssink"]);
            assert_eq!(candidates(SinkKind::Wayland, session), ["waylandsink"]);
            assert_eq!(
                candidates(SinkKind::X, session),
                ["xvimagesink", "ximagesink"]
            );
            assert!(candidates(SinkKind::None, session).is_empty());
        }
    }

    #[test]
    fn a_sink_that_cannot_open_is_an_error_naming_it_not_a_crash() {
        gst::init().expect("GStreamer initialises");
        let slot = DisplaySlot::default();
        // No such element, and an X sink pointed at a display that does not exist.
        let e = Display::open(&["nosuchsink"], KmsOutput::default(), &slot)
            .err()
            .expect("no display");
        assert_eq!(
            e.to_string(),
            "display: cannot open nosuchsink: not installed"
        );
        assert!(slot.lock().unwrap().is_none());
        let e = Display::open(&[], KmsOutput::default(), &slot)
            .err()
            .expect("no display");
        assert!(e.to_string().contains("no video sink"), "{e}");
    }
}

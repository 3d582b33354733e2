//! One logging path. The element logs to the GStreamer debug category `stylize`; the
//! core logs with `tracing`. When the plugin file is loaded into a program that has no
//! global `tracing` subscriber (`gst-launch-1.0`, most apps), the element runs its calls
//! into the core under a scoped subscriber ([`scoped`]) that forwards the core's events
//! to the same category, so `GST_DEBUG=stylize:5` shows both. Scoped, not global: the
//! program stays free to set its own subscriber later, and one that has set it (the
//! daemon: journald or stderr) gets the core's logs instead. What LiteRT prints on
//! stderr during the core's calls comes the same way (`stylize::native_log`, target
//! `litert`, at debug but for LiteRT's errors).

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// The element's debug category, `stylize`.
pub static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stylize",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

static FORWARD: AtomicBool = AtomicBool::new(false);
static TO_GSTREAMER: LazyLock<tracing::Dispatch> =
    LazyLock::new(|| tracing::Dispatch::new(ToGstreamer));

/// From now on, [`scoped`] forwards the core's events to [`CAT`], unless the program
/// already has a `tracing` subscriber. Called when the plugin file is loaded (not when a
/// program registers the element statically: it has its own logging).
pub fn forward_core_logs() {
    // Checked once, here: after the first scoped call, `has_been_set` is true anyway.
    if !tracing::dispatcher::has_been_set() {
        FORWARD.store(true, Ordering::Relaxed);
        // What LiteRT prints during the core's calls goes to the same category, also
        // from calls outside `scoped` (an engine dropped when the element stops).
        stylize::native_log::set_dispatch(TO_GSTREAMER.clone());
    }
}

/// Runs `f`, a call into the core, with its `tracing` events going to [`CAT`] when
/// [`forward_core_logs`] turned forwarding on.
pub fn scoped<R>(f: impl FnOnce() -> R) -> R {
    if FORWARD.load(Ordering::Relaxed) {
        tracing::dispatcher::with_default(&TO_GSTREAMER, f)
    } else {
        f()
    }
}

fn gst_level(level: &Level) -> gst::DebugLevel {
    match *level {
        Level::ERROR => gst::DebugLevel::Error,
        Level::WARN => gst::DebugLevel::Warning,
        Level::INFO => gst::DebugLevel::Info,
        Level::DEBUG => gst::DebugLevel::Debug,
        _ => gst::DebugLevel::Log,
    }
}

/// A `tracing` subscriber that writes events as GStreamer debug messages. Spans are not
/// kept: the core's log lines carry their context in their fields.
struct ToGstreamer;

impl Subscriber for ToGstreamer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_event() {
            // The category's threshold can change while running (gst_debug_set_threshold).
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && CAT.above_threshold(gst_level(metadata.level()))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = Line::default();
        event.record(&mut line);
        let file = glib::GString::from(metadata.file().unwrap_or("stylize"));
        CAT.log(
            None::<&gst::Object>,
            gst_level(metadata.level()),
            file.as_gstr(),
            metadata.module_path().unwrap_or_else(|| metadata.target()),
            metadata.line().unwrap_or(0),
            format_args!("{}", line.0),
        );
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// The message, then the other fields as `name=value`.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !fields.is_empty() {
                self.0.push_str(&fields);
            }
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

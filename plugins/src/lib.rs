//! GStreamer plugin `stylize`: neural style transfer on video frames with LiteRT.
#![allow(clippy::non_send_fields_in_send_ty)]

use gst::glib;

pub mod stylize;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    stylize::register(plugin)
}

gst::plugin_define!(
    stylize,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "Apache 2.0",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "stylize project",
    env!("BUILD_REL_DATE")
);

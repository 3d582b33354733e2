//! GStreamer plugin `stylize`: neural style transfer on video frames with LiteRT.
//!
//! The element and its worker pool live here; the network, the resampler, the deflicker
//! and the style store are the GStreamer-free `stylize` core crate. The daemon links this
//! crate and registers the element statically ([`register_static`]).
//!
//! Logs: the element's and, when the plugin file is loaded, the core's go to the
//! GStreamer debug category `stylize` (see `logging`).

use gst::glib;

mod element;
mod logging;

pub use element::{register_static, Stylize};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    logging::forward_core_logs();
    if let Some(file) = plugin.filename() {
        stylize::paths::set_module_file(file);
    }
    element::register(plugin)
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

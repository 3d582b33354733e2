//! GStreamer plugin `stylize`: neural style transfer on video frames with LiteRT.
//! The element itself lives in the `stylize` library (`stylize::element`), so the
//! daemon can register it statically; this crate makes it a loadable plugin.

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    if let Some(file) = plugin.filename() {
        stylize::paths::set_module_file(file);
    }
    stylize::element::register(plugin)
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

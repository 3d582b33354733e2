//! The `stylize` element: applies a style from the style store to every frame.

use gst::glib;
use gst::prelude::*;

mod colour;
mod deinterlace;
mod fade;
mod frame_work;
mod imp;
mod latency;
mod ordered_pool;
mod own_vector;

glib::wrapper! {
    pub struct Stylize(ObjectSubclass<imp::Stylize>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "stylize",
        gst::Rank::NONE,
        Stylize::static_type(),
    )
}

/// Registers the element in this process without a plugin file, for programs that link
/// the plugin statically (the daemon, tests).
pub fn register_static() -> Result<(), glib::BoolError> {
    gst::Element::register(None, "stylize", gst::Rank::NONE, Stylize::static_type())
}

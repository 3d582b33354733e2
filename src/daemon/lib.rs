//! `stylized`: the camera daemon, and what its command-line tools share.
//!
//! The pipeline task ([`pipeline`]) is the only code that touches GStreamer; it links
//! the `stylize` element statically from the plugin crate. The D-Bus interface
//! ([`dbus`]) turns calls into [`control::Command`]s sent to that task over a channel,
//! and shows the [`control::Status`] it publishes.

pub mod camera;
pub mod config;
pub mod control;
pub mod dbus;
pub mod display;
pub mod health;
pub mod pipeline;
pub mod recording;
pub mod report;
pub mod snapshot;
pub mod stream;

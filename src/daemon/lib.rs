//! `stylized`: the camera daemon. A pipeline task owns GStreamer; the D-Bus interface
//! talks to it over channels.

pub mod client;
pub mod config;
pub mod control;
pub mod dbus;
pub mod health;
pub mod pipeline;
pub mod recording;

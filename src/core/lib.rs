//! stylize: live neural style transfer on the LiteRT runtime, without GStreamer. The
//! element (`plugins/`) and the daemon (`src/daemon/`) are built on it.
//!
//! - [`litert`]: our FFI over `libLiteRt.so`, loaded at run time;
//! - [`tflite`]: the flatbuffer patch that gives the transfer network other sizes;
//! - [`engine`]: the transfer and prediction networks around a frame;
//! - [`deflicker`]: the temporal hold that keeps a fixed camera's painting still;
//! - [`motion`]: the camera's global motion, so the hold follows pans;
//! - [`auto`]: what `accelerator=auto` picks, by measurement;
//! - [`vulkan`]: the machine's Vulkan devices, so `auto` never picks a software one;
//! - [`resample`]: Pillow-compatible bilinear resizing;
//! - [`store`]: the style store;
//! - [`models`]: the model manifest and fetch step;

pub mod auto;
pub mod deflicker;
pub mod engine;
pub mod litert;
pub mod models;
pub mod motion;
pub mod paths;
pub mod resample;
pub mod store;
pub mod tflite;
pub mod vulkan;

pub use engine::{Accelerator, Engine, EngineConfig, EngineError, StyleVector};

//! stylize: live neural style transfer on the LiteRT runtime, without GStreamer. The
//! element (`plugins/`) and the daemon (`src/daemon/`) are built on it.
//!
//! - [`accelerator`]: the one CPU-or-GPU choice, for the element, the config and the engine;
//! - [`defaults`]: the defaults the element and the daemon share;
//! - [`litert`]: our FFI over `libLiteRt.so`, loaded at run time;
//! - [`tflite`]: the flatbuffer patch that gives the transfer network other sizes;
//! - [`engine`]: the transfer and prediction networks around a frame;
//! - [`deflicker`]: the temporal hold that keeps a fixed camera's painting still;
//! - [`motion`]: the camera's global motion, so the hold follows pans;
//! - [`auto`]: what `accelerator=auto` picks, by measurement;
//! - [`vulkan`]: the machine's Vulkan devices, so `auto` never picks a software one;
//! - [`native_log`]: what LiteRT prints on stderr, routed to `tracing` during our calls;
//! - [`resample`]: Pillow-compatible bilinear resizing;
//! - [`store`]: the style store;
//! - [`models`]: the model manifest and fetch step;

pub mod accelerator;
pub mod auto;
pub mod defaults;
pub mod deflicker;
pub mod engine;
pub mod litert;
pub mod models;
pub mod motion;
pub mod native_log;
pub mod paths;
pub mod resample;
pub mod store;
pub mod tflite;
pub mod vulkan;

pub use accelerator::Accelerator;
pub use engine::{Engine, EngineConfig, EngineError, StyleVector};

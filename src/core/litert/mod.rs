//! A small safe layer over the LiteRT C API, loaded at run time with `libloading`.
//!
//! It is our own FFI (declared in [`ffi`]): `libLiteRt.so` comes from a pip wheel, not a
//! system package, so it is opened at run time and a missing library is a clear error
//! rather than a link failure.

pub mod ffi;

mod environment;
mod error;
mod network;
mod options;
mod runtime;

pub use environment::Environment;
pub use error::{status_name, LiteRtError};
pub use network::Network;
pub use options::GpuCache;
pub use runtime::{
    candidates, gpu_accelerator_cpu_gap, Runtime, GPU_ACCELERATOR_NAME, LIBRARY_ENV, LIBRARY_NAME,
    WHEEL,
};

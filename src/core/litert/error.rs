//! The one error type of the LiteRT layer, and the mapping of LiteRT status codes to it,
//! so every C call reports failure the same way.

use super::ffi;
use super::runtime::{LIBRARY_ENV, LIBRARY_NAME, WHEEL};

#[derive(Debug, thiserror::Error)]
pub enum LiteRtError {
    #[error(
        "the LiteRT runtime ({LIBRARY_NAME}) could not be loaded; tried: {tried}. \
         Install it with `scripts/setup-litert.sh` (it fetches {WHEEL}), \
         or point {LIBRARY_ENV} or the element's `litert-library` property at it"
    )]
    LibraryNotFound { tried: String },
    #[error("{path} is not a usable LiteRT runtime: missing symbol {symbol} ({cause})")]
    MissingSymbol {
        path: String,
        symbol: &'static str,
        cause: libloading::Error,
    },
    #[error("LiteRT call {call} failed with status {status} ({})", status_name(*.status))]
    Call { call: &'static str, status: i32 },
    #[error("model has no input or output named {0:?}")]
    NoSuchTensor(String),
    #[error("tensor {name:?} holds {have} floats, {want} were given")]
    SizeMismatch {
        name: String,
        have: usize,
        want: usize,
    },
}

pub fn status_name(status: i32) -> &'static str {
    match status {
        0 => "ok",
        1 => "invalid argument",
        2 => "memory allocation failure",
        3 => "runtime failure",
        4 => "missing input tensor",
        5 => "unsupported",
        6 => "not found",
        7 => "timeout expired",
        8 => "wrong version",
        _ => "error",
    }
}

pub(super) fn check(call: &'static str, status: ffi::Status) -> Result<(), LiteRtError> {
    if status == ffi::STATUS_OK {
        Ok(())
    } else {
        Err(LiteRtError::Call { call, status })
    }
}

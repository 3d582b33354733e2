//! What the D-Bus side and the pipeline task say to each other: commands one way, the
//! published status the other.

use std::path::PathBuf;

use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunState {
    #[default]
    Starting,
    Running,
    Recovering,
    Error,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Running => "running",
            RunState::Recovering => "recovering",
            RunState::Error => "error",
        }
    }
}

/// Everything the D-Bus properties show, published by the pipeline task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub state: RunState,
    /// Why the state is `recovering` or `error`.
    pub fault: String,
    pub style: String,
    pub blend: f64,
    pub accelerator: String,
    pub fps: f64,
    pub inference_ms: f64,
    pub frames: u64,
    pub recording: bool,
    pub recording_path: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown style {id:?}; known styles: {known}")]
    UnknownStyle { id: String, known: String },
    #[error("blend {0} is outside 0..1")]
    InvalidBlend(f64),
    #[error("already recording to {0}")]
    AlreadyRecording(String),
    #[error("not recording")]
    NotRecording,
    #[error("invalid recording name {0:?}: use a plain file name without '/', '..' or control characters")]
    InvalidName(String),
    #[error("{0} already exists; pick another name")]
    NameTaken(String),
    #[error("recording failed: {0}")]
    RecordingFailed(String),
    #[error("snapshot failed: {0}")]
    SnapshotFailed(String),
    #[error("style store: {0}")]
    Store(String),
    #[error("the pipeline is not running: {0}")]
    NotRunning(String),
}

pub type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

#[derive(Debug)]
pub enum Command {
    ListStyles(Reply<Vec<(String, String)>>),
    SetStyle(String, Reply<()>),
    SetBlend(f64, Reply<()>),
    StartRecording(String, Reply<PathBuf>),
    StopRecording(Reply<PathBuf>),
    Reload(Reply<()>),
    Snapshot(String, Reply<PathBuf>),
}

/// Events the D-Bus side turns into signals.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    RecordingFailed { path: String, message: String },
}

/// Checks a recording or snapshot name: a plain file name, so the file stays inside
/// the configured folder.
pub fn check_name(name: &str) -> Result<(), ControlError> {
    let bad = name.is_empty()
        || name.len() > 200
        || name == "."
        || name.contains("..")
        || name.contains('/')
        || name.contains('\\')
        || name.starts_with('.')
        || name.chars().any(|c| c.is_control());
    if bad {
        Err(ControlError::InvalidName(name.to_string()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["clip", "garden 2026-11-28", "a.b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "..", "x\ny", "a\u{7}", ".hidden", "a\\b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}

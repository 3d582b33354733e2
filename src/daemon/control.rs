//! What the D-Bus side and the pipeline task say to each other: commands one way, the
//! published status the other.

use std::path::{Path, PathBuf};

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
    /// Why the state is `recovering` or `error`; while `running`, why the display is
    /// not showing.
    pub fault: String,
    /// What the camera sends, as negotiated: `1280x720 MJPEG 30/1`; empty until frames
    /// flow.
    pub camera_mode: String,
    pub style: String,
    pub blend: f64,
    pub accelerator: String,
    pub fps: f64,
    pub inference_ms: f64,
    pub frames: u64,
    pub recording: bool,
    pub recording_path: String,
    /// `rtsp://HOST:PORT/path` while the RTSP stream is served; empty otherwise.
    pub stream_url: String,
    /// RTSP clients with a session open.
    pub stream_clients: u32,
}

/// Why a control request failed. This is the one error type of the D-Bus interface:
/// each variant is the named error `io.github.stylize.Stylized1.Error.<Variant>`, whose
/// description is the variant's message, and the generated proxy returns it to clients.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.github.stylize.Stylized1.Error", impl_display = false)]
pub enum ControlError {
    /// Not an answer from the daemon: the bus or the connection failed.
    #[zbus(error)]
    ZBus(zbus::Error),
    UnknownStyle(String),
    InvalidBlend(String),
    AlreadyRecording(String),
    NotRecording(String),
    InvalidName(String),
    NameTaken(String),
    RecordingFailed(String),
    SnapshotFailed(String),
    Store(String),
    NotRunning(String),
    Internal(String),
}

/// The message alone, as the D-Bus description carries it.
impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::ZBus(e) => e.fmt(f),
            other => f.write_str(zbus::DBusError::description(other).unwrap_or_default()),
        }
    }
}

/// The messages, written once; each names the cause and what to do.
impl ControlError {
    pub fn unknown_style(id: &str, known: &[&str]) -> Self {
        Self::UnknownStyle(format!(
            "unknown style {id:?}; known styles: {}",
            known.join(", ")
        ))
    }

    pub fn invalid_blend(blend: f64) -> Self {
        Self::InvalidBlend(format!("blend {blend} is outside 0..1"))
    }

    pub fn already_recording(path: &Path) -> Self {
        Self::AlreadyRecording(format!("already recording to {}", path.display()))
    }

    pub fn not_recording() -> Self {
        Self::NotRecording("not recording".into())
    }

    pub fn invalid_name(name: &str) -> Self {
        Self::InvalidName(format!(
            "invalid recording name {name:?}: use a plain file name without '/', '..' or \
             control characters"
        ))
    }

    pub fn name_taken(path: &Path) -> Self {
        Self::NameTaken(format!(
            "{} already exists; pick another name",
            path.display()
        ))
    }

    pub fn recording_failed(cause: impl std::fmt::Display) -> Self {
        Self::RecordingFailed(format!("recording failed: {cause}"))
    }

    pub fn snapshot_failed(cause: impl std::fmt::Display) -> Self {
        Self::SnapshotFailed(format!("snapshot failed: {cause}"))
    }

    pub fn store(cause: impl std::fmt::Display) -> Self {
        Self::Store(format!("style store: {cause}"))
    }

    pub fn not_running(fault: &str) -> Self {
        Self::NotRunning(format!("the pipeline is not running: {fault}"))
    }
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
        Err(ControlError::invalid_name(name))
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

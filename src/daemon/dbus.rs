//! The D-Bus control interface. It only turns calls into [`Command`]s for the pipeline
//! task and shows the published [`Status`]; it never touches GStreamer. The client proxy
//! (`StylizedProxy`, `StylizedProxyBlocking`) is generated from this interface, so the
//! two cannot drift apart.

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use zbus::object_server::SignalEmitter;
use zbus::{fdo, interface};

use crate::control::{Command, ControlError, Event, Reply, Status};

pub const BUS_NAME: &str = "io.github.stylize.Stylized1";
pub const OBJECT_PATH: &str = "/io/github/stylize/Stylized1";
pub const INTERFACE: &str = "io.github.stylize.Stylized1";

/// The object at [`OBJECT_PATH`].
pub struct Stylized {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
}

impl Stylized {
    pub fn new(commands: mpsc::Sender<Command>, status: watch::Receiver<Status>) -> Self {
        Stylized { commands, status }
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ControlError::Internal("the pipeline task has stopped".into()))?;
        rx.await
            .map_err(|_| ControlError::Internal("the pipeline task dropped the request".into()))?
    }

    fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}

/// Property setters must answer with a standard error; the message stays ours.
fn invalid_args(e: ControlError) -> fdo::Error {
    fdo::Error::InvalidArgs(e.to_string())
}

#[interface(
    name = "io.github.stylize.Stylized1",
    proxy(
        default_service = "io.github.stylize.Stylized1",
        default_path = "/io/github/stylize/Stylized1",
        gen_blocking = true
    )
)]
impl Stylized {
    /// (id, name) of every style in the store.
    async fn list_styles(&self) -> Result<Vec<(String, String)>, ControlError> {
        self.ask(Command::ListStyles).await
    }

    async fn set_style(&self, id: &str) -> Result<(), ControlError> {
        self.ask(|r| Command::SetStyle(id.to_string(), r)).await
    }

    async fn set_blend(&self, blend: f64) -> Result<(), ControlError> {
        self.ask(|r| Command::SetBlend(blend, r)).await
    }

    /// Starts recording to NAME.mkv (or .mp4) in the recordings folder; returns the path.
    async fn start_recording(&self, name: &str) -> Result<String, ControlError> {
        let path = self
            .ask(|r| Command::StartRecording(name.to_string(), r))
            .await?;
        Ok(path.display().to_string())
    }

    /// Finishes the file; returns its path.
    async fn stop_recording(&self) -> Result<String, ControlError> {
        let path = self.ask(Command::StopRecording).await?;
        Ok(path.display().to_string())
    }

    /// Re-reads the style store.
    async fn reload(&self) -> Result<(), ControlError> {
        self.ask(Command::Reload).await
    }

    /// Saves the current stylized frame as NAME.png in the recordings folder.
    async fn snapshot(&self, name: &str) -> Result<String, ControlError> {
        let path = self.ask(|r| Command::Snapshot(name.to_string(), r)).await?;
        Ok(path.display().to_string())
    }

    /// A recording stopped because of an error (a full disk, a write error).
    #[zbus(signal)]
    async fn recording_failed(
        emitter: &SignalEmitter<'_>,
        path: &str,
        message: &str,
    ) -> zbus::Result<()>;

    #[zbus(property, name = "Style")]
    async fn style(&self) -> String {
        self.status().style
    }

    #[zbus(property, name = "Style")]
    async fn set_style_property(&self, id: &str) -> fdo::Result<()> {
        self.ask(|r| Command::SetStyle(id.to_string(), r))
            .await
            .map_err(invalid_args)
    }

    #[zbus(property, name = "Blend")]
    async fn blend(&self) -> f64 {
        self.status().blend
    }

    #[zbus(property, name = "Blend")]
    async fn set_blend_property(&self, blend: f64) -> fdo::Result<()> {
        self.ask(|r| Command::SetBlend(blend, r))
            .await
            .map_err(invalid_args)
    }

    #[zbus(property)]
    async fn accelerator(&self) -> String {
        self.status().accelerator
    }

    /// starting, running, recovering or error.
    #[zbus(property)]
    async fn state(&self) -> String {
        self.status().state.as_str().to_string()
    }

    /// Why the state is recovering or error; while running, why the display does not
    /// show (the camera and the recording go on); empty otherwise.
    #[zbus(property)]
    async fn fault(&self) -> String {
        self.status().fault
    }

    /// The mode the camera sends, `1280x720 MJPEG 30/1`; empty until frames flow.
    #[zbus(property)]
    async fn camera_mode(&self) -> String {
        self.status().camera_mode
    }

    #[zbus(property)]
    async fn fps(&self) -> f64 {
        self.status().fps
    }

    #[zbus(property)]
    async fn inference_ms(&self) -> f64 {
        self.status().inference_ms
    }

    /// Frames stylized since the daemon started. Updated ten times a second, without
    /// change signals: poll it.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn frames(&self) -> u64 {
        self.status().frames
    }

    #[zbus(property)]
    async fn recording(&self) -> bool {
        self.status().recording
    }

    #[zbus(property)]
    async fn recording_path(&self) -> String {
        self.status().recording_path
    }

    /// `rtsp://HOST:PORT/path` (without credentials) while the RTSP stream is served;
    /// empty when it is off or could not start.
    #[zbus(property)]
    async fn stream_url(&self) -> String {
        self.status().stream_url
    }

    /// RTSP clients with a session open.
    #[zbus(property)]
    async fn stream_clients(&self) -> u32 {
        self.status().stream_clients
    }
}

/// Emits PropertiesChanged for whatever the pipeline task changed, and the
/// RecordingFailed signal for its events.
pub async fn forward_changes(
    connection: zbus::Connection,
    mut status: watch::Receiver<Status>,
    mut events: broadcast::Receiver<Event>,
) -> zbus::Result<()> {
    let iface = connection
        .object_server()
        .interface::<_, Stylized>(OBJECT_PATH)
        .await?;
    let mut previous = status.borrow().clone();
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = status.borrow_and_update().clone();
                let ctl = iface.get().await;
                let e = iface.signal_emitter();
                if now.style != previous.style { ctl.style_changed(e).await?; }
                if now.blend != previous.blend { ctl.blend_changed(e).await?; }
                if now.accelerator != previous.accelerator { ctl.accelerator_changed(e).await?; }
                if now.state != previous.state { ctl.state_changed(e).await?; }
                if now.fault != previous.fault { ctl.fault_changed(e).await?; }
                if now.camera_mode != previous.camera_mode { ctl.camera_mode_changed(e).await?; }
                if now.fps != previous.fps { ctl.fps_changed(e).await?; }
                if now.inference_ms != previous.inference_ms { ctl.inference_ms_changed(e).await?; }
                if now.recording != previous.recording { ctl.recording_changed(e).await?; }
                if now.recording_path != previous.recording_path { ctl.recording_path_changed(e).await?; }
                if now.stream_url != previous.stream_url { ctl.stream_url_changed(e).await?; }
                if now.stream_clients != previous.stream_clients { ctl.stream_clients_changed(e).await?; }
                previous = now;
            }
            event = events.recv() => match event {
                Ok(Event::RecordingFailed { path, message }) => {
                    Stylized::recording_failed(iface.signal_emitter(), &path, &message).await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

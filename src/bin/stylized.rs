//! `stylized`: the live style-transfer daemon. It runs camera → stylize → display and
//! recordings, controlled over D-Bus (`stylizectl`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use stylize::store::Store;
use stylized::config::{self, Config, Input};
use stylized::control::Status;
use stylized::dbus::{self, Stylized};
use stylized::health::Health;
use stylized::pipeline::PipelineTask;
use tokio::sync::{broadcast, mpsc, watch};

#[derive(Parser)]
#[command(
    version,
    about = "Live neural style transfer daemon with D-Bus control"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Use the session bus (DBUS_SESSION_BUS_ADDRESS) instead of the system bus.
    #[arg(long)]
    session: bool,
    /// Overrides source.input: test, v4l2:/dev/videoN, libcamera[:NAME], or a file/URI.
    #[arg(long)]
    source: Option<String>,
    /// Overrides display.enabled.
    #[arg(long, value_parser = ["on", "off"])]
    display: Option<String>,
    /// Overrides recording.directory.
    #[arg(long)]
    recordings: Option<PathBuf>,
    /// Overrides stream.enabled (the RTSP stream).
    #[arg(long, value_parser = ["on", "off"])]
    stream: Option<String>,
    /// Overrides stream.port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    stream_port: Option<u16>,
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STYLIZED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd, JOURNAL_STREAM is set: log to journald with structured fields.
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(&cli.config)?;
    if let Some(source) = &cli.source {
        config.source.input = source
            .parse::<Input>()
            .map_err(|e| anyhow::anyhow!("--source {e}"))?;
    }
    if let Some(display) = &cli.display {
        config.display.enabled = display == "on";
    }
    if let Some(dir) = &cli.recordings {
        config.recording.directory =
            std::path::absolute(dir).with_context(|| format!("--recordings {}", dir.display()))?;
    }
    if let Some(stream) = &cli.stream {
        config.stream.enabled = stream == "on";
    }
    if let Some(port) = cli.stream_port {
        config.stream.port = port;
    }
    Ok(config)
}

#[tokio::main]
async fn main() {
    init_logging();
    let cli = Cli::parse();
    match run(cli).await {
        // Exit at once: everything that needed a clean stop has stopped.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let line = stylized::report::one_line(e.chain());
            tracing::error!("{line}");
            eprintln!("stylized: {line}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = load_config(&cli)?;
    let store_path = config
        .stylize
        .store
        .clone()
        .unwrap_or_else(stylize::paths::default_store);
    let store = Store::load(&store_path)?;
    if store.get(&config.stylize.style).is_none() {
        anyhow::bail!(
            "config {}: stylize.style {:?} is not in the style store; known styles: {}",
            cli.config.display(),
            config.stylize.style,
            store.ids().join(", ")
        );
    }
    gst::init().context("GStreamer does not initialise")?;
    gststylize::register_static().context("registering the stylize element")?;
    // What would otherwise show only at the first StartRecording (the folder, perhaps
    // from --recordings, and the encoder element) is said now; the camera still runs.
    for warning in config.check_system(&cli.config)? {
        tracing::warn!("{warning}");
    }

    let (status_tx, status_rx) = watch::channel(Status::default());
    let (events_tx, events_rx) = broadcast::channel(16);
    let (commands_tx, commands_rx) = mpsc::channel(32);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let health = Arc::new(Health::default());

    let task = PipelineTask::new(
        config,
        store_path,
        store,
        status_tx,
        events_tx,
        health.clone(),
    );
    let pipeline = tokio::spawn(task.run(commands_rx, shutdown_rx));

    let builder = if cli.session {
        zbus::connection::Builder::session()?
    } else {
        zbus::connection::Builder::system()?
    };
    let connection = builder
        .name(dbus::BUS_NAME)?
        .serve_at(
            dbus::OBJECT_PATH,
            Stylized::new(commands_tx, status_rx.clone()),
        )?
        .build()
        .await
        .with_context(|| format!("cannot own {} on the D-Bus", dbus::BUS_NAME))?;
    tokio::spawn(dbus::forward_changes(
        connection.clone(),
        status_rx,
        events_rx,
    ));
    tracing::info!(
        bus = dbus::BUS_NAME,
        path = dbus::OBJECT_PATH,
        "serving D-Bus"
    );

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut watchdog_usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut watchdog_usec) && watchdog_usec > 0 {
        let period = Duration::from_micros(watchdog_usec);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 3);
            loop {
                tick.tick().await;
                // Ping only while the pipeline task shows progress; a hung pipeline
                // lets systemd restart us.
                if health.fresh(period / 2) {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
        });
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(4), pipeline).await {
        Ok(_) => tracing::info!("stopped"),
        Err(_) => tracing::warn!("the pipeline did not stop within 4 s"),
    }
    Ok(())
}

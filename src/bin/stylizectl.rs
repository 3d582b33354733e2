//! `stylizectl`: controls a running `stylized` over D-Bus.
//!
//!   stylizectl [--session] [--json] styles | set ID | blend X | status
//!                                   | record start NAME | record stop | reload | snapshot NAME

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::json;
use stylized::control::ControlError;
use stylized::dbus::StylizedProxy;

#[derive(Parser)]
#[command(version, about = "Control the stylized daemon")]
struct Cli {
    /// Use the session bus instead of the system bus (before or after the command).
    #[arg(long, global = true)]
    session: bool,
    /// Machine-readable output (before or after the command).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the styles in the store.
    Styles,
    /// Switch to a style.
    Set { id: String },
    /// Mix in the frame's own style: 0 (pure style) to 1.
    Blend { value: f64 },
    /// Show the daemon's state.
    Status,
    /// Start or stop a recording.
    Record {
        #[command(subcommand)]
        action: RecordCmd,
    },
    /// Re-read the style store.
    Reload,
    /// Save the current frame as NAME.png in the recordings folder.
    Snapshot { name: String },
}

#[derive(Subcommand)]
enum RecordCmd {
    Start { name: String },
    Stop,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli).await {
        // A named error says its message and name; a bus failure is shown as zbus has it.
        let bus_error = match e.downcast_ref::<ControlError>() {
            Some(ControlError::ZBus(bus)) => Some(bus),
            Some(named) => {
                eprintln!(
                    "stylizectl: {named} ({})",
                    zbus::DBusError::name(named).as_str()
                );
                std::process::exit(1);
            }
            None => e.downcast_ref::<zbus::Error>(),
        };
        match bus_error {
            Some(zbus::Error::MethodError(name, message, _)) => eprintln!(
                "stylizectl: {} ({})",
                message.as_deref().unwrap_or("failed"),
                name.as_str()
            ),
            Some(zbus::Error::FDO(fdo)) => eprintln!("stylizectl: {fdo}"),
            Some(bus) => eprintln!("stylizectl: {bus}"),
            None => eprintln!("stylizectl: {}", stylized::report::one_line(e.chain())),
        }
        std::process::exit(1);
    }
}

async fn run(cli: &Cli) -> Result<()> {
    let builder = if cli.session {
        zbus::connection::Builder::session()?
    } else {
        zbus::connection::Builder::system()?
    };
    // A daemon that does not answer (or a bus that drops the reply) is an error, not a hang.
    let connection = builder
        .method_timeout(std::time::Duration::from_secs(15))
        .build()
        .await?;
    let proxy = StylizedProxy::new(&connection).await?;
    // A closed stdout (`stylizectl styles | head -1`) is not an error worth a panic.
    let print = |human: String, machine: serde_json::Value| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = if cli.json {
            writeln!(out, "{machine}")
        } else if !human.is_empty() {
            writeln!(out, "{human}")
        } else {
            Ok(())
        };
    };
    match &cli.command {
        Cmd::Styles => {
            let styles = proxy.list_styles().await?;
            let current = proxy.style().await.unwrap_or_default();
            let human = styles
                .iter()
                .map(|(id, name)| {
                    let mark = if *id == current { '*' } else { ' ' };
                    format!("{mark} {id:<22} {name}")
                })
                .collect::<Vec<_>>()
                .join("\n");
            let machine = styles
                .iter()
                .map(|(id, name)| json!({"id": id, "name": name}))
                .collect::<Vec<_>>();
            print(human, json!(machine));
        }
        Cmd::Set { id } => {
            proxy.set_style(id).await?;
            print(format!("style: {id}"), json!({"style": id}));
        }
        Cmd::Blend { value } => {
            proxy.set_blend(*value).await?;
            print(format!("blend: {value}"), json!({"blend": value}));
        }
        Cmd::Status => {
            let status = json!({
                "state": proxy.state().await?,
                "fault": proxy.fault().await?,
                "camera_mode": proxy.camera_mode().await?,
                "style": proxy.style().await?,
                "blend": proxy.blend().await?,
                "accelerator": proxy.accelerator().await?,
                "fps": proxy.fps().await?,
                "inference_ms": proxy.inference_ms().await?,
                "frames": proxy.frames().await?,
                "recording": proxy.recording().await?,
                "recording_path": proxy.recording_path().await?,
                "stream_url": proxy.stream_url().await?,
                "stream_clients": proxy.stream_clients().await?,
            });
            let mut human = String::new();
            if let Some(map) = status.as_object() {
                for (k, v) in map {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    human.push_str(&format!("{k:<15} {v}\n"));
                }
            }
            print(human.trim_end().to_string(), status);
        }
        Cmd::Record { action } => match action {
            RecordCmd::Start { name } => {
                let path = proxy.start_recording(name).await?;
                print(
                    format!("recording to {path}"),
                    json!({"recording": true, "path": path}),
                );
            }
            RecordCmd::Stop => {
                let path = proxy.stop_recording().await?;
                print(
                    format!("saved {path}"),
                    json!({"recording": false, "path": path}),
                );
            }
        },
        Cmd::Reload => {
            proxy.reload().await?;
            print("style store reloaded".into(), json!({"reloaded": true}));
        }
        Cmd::Snapshot { name } => {
            let path = proxy.snapshot(name).await?;
            print(format!("saved {path}"), json!({"path": path}));
        }
    }
    Ok(())
}

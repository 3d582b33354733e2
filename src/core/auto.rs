//! `accelerator=auto`: the faster of the GPU and the CPU on this machine, measured, and
//! never a software GPU.
//!
//! "A GPU if there is one" is wrong twice over: Mesa's software Vulkan driver (lavapipe)
//! is a "GPU" to the WebGPU accelerator and runs some 90 times slower than XNNPACK, and a
//! board's integrated GPU can lose to XNNPACK on 4–8 cores. So:
//! 1. Without a hardware Vulkan device (see [`crate::vulkan`]), or when the GPU
//!    accelerator cannot run here, the CPU is chosen at once and the GPU accelerator is
//!    never loaded.
//! 2. With one, each side stylizes one warm-up frame and one timed frame at the stream's
//!    size, and the faster wins. Both times are logged.
//! 3. The outcome is kept in `<cache-dir>/accelerator-choice.json`, keyed by the device
//!    and its driver, both model files, the inference size and the thread count, so later
//!    starts skip the race.

use std::path::{Path, PathBuf};

use crate::accelerator::Accelerator;
use crate::engine::{transfer_path, Engine, EngineConfig, EngineError};
use crate::litert::Runtime;
use crate::resample::inference_size;
use crate::vulkan::{self, Device};

/// The file in the cache folder that keeps the decisions.
pub const CHOICE_FILE: &str = "accelerator-choice.json";
/// Set to 1 to let `auto` race a software Vulkan device too. For tests only: it shows
/// the race and its cache on a machine whose only Vulkan device is lavapipe.
pub const RACE_SOFTWARE_ENV: &str = "STYLIZE_AUTO_RACE_SOFTWARE_GPU";

/// What `auto` chose and why, in words for a log line or a property.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoChoice {
    /// `Cpu` or `Gpu`.
    pub accelerator: Accelerator,
    pub reason: String,
}

/// Starts in a row whose race never finished (the entry is written before the GPU is
/// tried) after which the GPU is left alone: two, so that one interrupted start (a stop
/// during the race) does not rule the GPU out, while a GPU that takes the process down
/// does so at most twice.
pub const UNFINISHED_RACES: u32 = 2;

/// One decision as kept in [`CHOICE_FILE`]; times in milliseconds a frame. `gpu_ms` is
/// None while the race has not finished; `unfinished` counts the starts in a row that
/// left it so.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Measured {
    gpu: bool,
    cpu_ms: f64,
    gpu_ms: Option<f64>,
    #[serde(default)]
    unfinished: u32,
}

/// The hardware Vulkan device `auto` would race against the CPU, or why there is none:
/// the GPU accelerator missing or unable to run on this CPU, no Vulkan, or only software
/// devices. Errors: the LiteRT runtime cannot be loaded.
fn gpu_to_race(config: &EngineConfig) -> Result<Result<Device, String>, EngineError> {
    let rt = Runtime::shared(config.library.as_deref())?;
    if let Some(reason) = crate::engine::gpu_block_reason(&rt) {
        return Ok(Err(reason));
    }
    let race_software = std::env::var(RACE_SOFTWARE_ENV).is_ok_and(|v| v == "1");
    if race_software {
        if let Some(device) = vulkan::devices().ok().and_then(|d| d.into_iter().next()) {
            return Ok(Ok(device));
        }
    }
    Ok(vulkan::hardware_device())
}

/// What `auto` does before any frame size is known: decided for the CPU already, or a
/// race to run once it is (with [`choose_between`]).
pub enum Plan {
    Decided(Engine, AutoChoice),
    /// The CPU engine is made already, so a bad model or library shows at once.
    Race {
        device: Device,
        cpu: Engine,
    },
}

/// The CPU engine, and whether there is a GPU to race it against. Without one, one
/// warning is logged that says so and why: the one line a CPU-only machine shows (in the
/// daemon's log; `GST_DEBUG=stylize:2` in a GStreamer program). It is a log line, not an
/// engine warning ([`Engine::warning`]), which the element would post on the bus as a
/// fault: choosing the CPU is none.
pub fn plan(config: &EngineConfig) -> Result<Plan, EngineError> {
    let cpu = Engine::on_cpu(&on(config, Accelerator::Cpu))?;
    Ok(match gpu_to_race(config)? {
        Ok(device) => Plan::Race { device, cpu },
        Err(why) => {
            tracing::warn!("no GPU, running on the CPU: {why}");
            Plan::Decided(cpu, cpu_choice(format!("cpu: no GPU to race ({why})")))
        }
    })
}

/// An engine on the faster accelerator for frames of `frame` (width, height).
pub fn choose(
    config: &EngineConfig,
    frame: (usize, usize),
) -> Result<(Engine, AutoChoice), EngineError> {
    match plan(config)? {
        Plan::Decided(engine, choice) => Ok((engine, choice)),
        Plan::Race { device, cpu } => choose_between(config, &device, frame, cpu),
    }
}

/// The faster of `device` and `cpu` (an engine from [`Engine::on_cpu`] with `config`)
/// for frames of `frame`: from the decision kept in the cache folder when there is one,
/// else by racing them (and keeping the outcome). A GPU that fails costs a warning on the
/// engine ([`Engine::warning`]), not the stream.
pub fn choose_between(
    config: &EngineConfig,
    device: &Device,
    frame: (usize, usize),
    mut cpu: Engine,
) -> Result<(Engine, AutoChoice), EngineError> {
    let (w, h) = frame;
    if crate::engine::gpu_squeezes(w, h, config.long_side(), crate::engine::gpu_min_side()) {
        return Ok((
            cpu,
            AutoChoice {
                accelerator: Accelerator::Cpu,
                reason: format!("cpu: the GPU cannot take {w}x{h} frames (aspect ratio)"),
            },
        ));
    }
    let gpu_config = on(config, Accelerator::Gpu);
    let key = decision_key(config, device, frame);
    let file = config.gpu_cache_dir.as_ref().map(|d| d.join(CHOICE_FILE));
    let mut not_kept = None;
    let mut keep = |m: Option<Measured>| {
        if let Some(file) = &file {
            if let Err(error) = write_choice(file, &key, m) {
                not_kept = Some(format!(
                    "the accelerator decision cannot be kept in {}: {error}; auto races at \
                     every start",
                    file.display()
                ));
            }
        }
    };
    let kept = file.as_deref().and_then(|f| read_choice(f, &key));
    let kept_in = || file.as_deref().map(Path::display).expect("read from it");
    match kept {
        Some(m) if m.gpu_ms.is_some() => {
            let reason = format!(
                "{} by the measurement kept in {}: {:.1} ms a frame on the CPU, {:.1} ms on \
                 the GPU, {device}",
                if m.gpu { "gpu" } else { "cpu" },
                kept_in(),
                m.cpu_ms,
                m.gpu_ms.unwrap_or_default(),
            );
            tracing::info!("accelerator {reason}");
            if !m.gpu {
                return Ok((cpu, cpu_choice(reason)));
            }
            return match Engine::on_gpu(&gpu_config) {
                Ok(gpu) => Ok((
                    gpu,
                    AutoChoice {
                        accelerator: Accelerator::Gpu,
                        reason,
                    },
                )),
                // Race again at the next start: the fault may be fixed by then.
                Err(error) => {
                    keep(None);
                    Ok(gpu_failed(cpu, device, &error))
                }
            };
        }
        Some(m) if m.unfinished >= UNFINISHED_RACES => {
            let reason = format!(
                "cpu: the GPU ({device}) did not finish its frame at the last {} starts \
                 (the process crashed or was stopped during the race); delete {} to race \
                 it again",
                m.unfinished,
                kept_in()
            );
            tracing::info!("accelerator {reason}");
            return Ok((cpu, cpu_choice(reason)));
        }
        _ => {}
    }

    let cpu_time = cpu.warm_up(frame.0, frame.1)?;
    let mut m = Measured {
        gpu: false,
        cpu_ms: cpu_time.as_secs_f64() * 1e3,
        gpu_ms: None,
        unfinished: kept.map_or(0, |k| k.unfinished) + 1,
    };
    // Kept before the GPU is tried: if it takes the process down, the next starts know.
    keep(Some(m));
    let raced = Engine::on_gpu(&gpu_config).and_then(|mut gpu| {
        let time = gpu.warm_up(frame.0, frame.1)?;
        Ok((gpu, time))
    });
    let (gpu, gpu_time) = match raced {
        Ok(raced) => raced,
        Err(error) => {
            keep(None);
            let (mut engine, choice) = gpu_failed(cpu, device, &error);
            if let Some(warning) = not_kept {
                engine.set_warning(warning);
            }
            return Ok((engine, choice));
        }
    };
    m.gpu = gpu_time < cpu_time;
    m.gpu_ms = Some(gpu_time.as_secs_f64() * 1e3);
    m.unfinished = 0;
    keep(Some(m));
    let reason = format!(
        "{} by measurement at {w}x{h}: {:.1} ms a frame on the CPU, {:.1} ms on the GPU, \
         {device}",
        if m.gpu { "gpu" } else { "cpu" },
        m.cpu_ms,
        gpu_time.as_secs_f64() * 1e3,
    );
    tracing::info!("accelerator {reason}");
    let mut engine = if m.gpu { gpu } else { cpu };
    if let Some(warning) = not_kept {
        tracing::warn!("{warning}");
        engine.set_warning(warning);
    }
    let accelerator = engine.accelerator();
    Ok((
        engine,
        AutoChoice {
            accelerator,
            reason,
        },
    ))
}

fn cpu_choice(reason: String) -> AutoChoice {
    AutoChoice {
        accelerator: Accelerator::Cpu,
        reason,
    }
}

fn on(config: &EngineConfig, accelerator: Accelerator) -> EngineConfig {
    EngineConfig {
        accelerator,
        ..config.clone()
    }
}

fn gpu_failed(mut cpu: Engine, device: &Device, error: &EngineError) -> (Engine, AutoChoice) {
    let warning = format!("the GPU ({device}) failed, running on the CPU: {error}");
    tracing::warn!("{warning}");
    cpu.set_warning(warning);
    (
        cpu,
        AutoChoice {
            accelerator: Accelerator::Cpu,
            reason: format!("cpu: the GPU ({device}) failed: {error}"),
        },
    )
}

/// What a decision depends on: the device and driver, both networks (path, size and
/// modification time), the CPU's inference size and the thread count.
fn decision_key(config: &EngineConfig, device: &Device, frame: (usize, usize)) -> String {
    let (w, h) = inference_size(frame.0, frame.1, config.long_side());
    let accelerator = Runtime::shared(config.library.as_deref())
        .ok()
        .and_then(|rt| {
            rt.dir()
                .map(|d| d.join(crate::litert::GPU_ACCELERATOR_NAME))
        })
        .map_or_else(|| "none".to_string(), |p| file_identity(&p));
    format!(
        "{} | {accelerator} | gpu {} | cpu {} | {w}x{h} | {} threads | gpu sides >= {}",
        device.identity(),
        file_identity(&transfer_path(config, Accelerator::Gpu)),
        file_identity(&transfer_path(config, Accelerator::Cpu)),
        config.threads,
        crate::engine::gpu_min_side()
    )
}

/// A file's path, size and modification time: it changes when the file is replaced.
fn file_identity(path: &Path) -> String {
    let (len, modified) = std::fs::metadata(path)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (m.len(), modified)
        })
        .unwrap_or_default();
    format!("{} {len} {modified}", path.display())
}

/// All entries of the file as JSON values; an unreadable or malformed file is as good as
/// none.
fn read_all(file: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read(file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The decision kept for `key`; an entry of another shape is as good as none.
fn read_choice(file: &Path, key: &str) -> Option<Measured> {
    serde_json::from_value(read_all(file).remove(key)?).ok()
}

/// Sets (or with None removes) the decision for `key`, leaving the other entries as they
/// are, and replaces the file whole (a temporary file renamed over it, readable by all
/// like the rest of the cache).
fn write_choice(file: &Path, key: &str, m: Option<Measured>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir)?;
    let mut all = read_all(file);
    match m {
        Some(m) => {
            all.insert(key.to_string(), serde_json::to_value(m)?);
        }
        None => {
            all.remove(key);
        }
    }
    let text = serde_json::to_vec_pretty(&all)?;
    let tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::fs::write(tmp.path(), text)?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_kept_per_key_and_a_bad_entry_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join(CHOICE_FILE);
        assert_eq!(read_choice(&file, "a"), None);
        let a = Measured {
            gpu: true,
            cpu_ms: 60.0,
            gpu_ms: Some(3.5),
            unfinished: 0,
        };
        let b = Measured {
            gpu: false,
            cpu_ms: 60.0,
            gpu_ms: None,
            unfinished: 1,
        };
        write_choice(&file, "a", Some(a)).unwrap();
        write_choice(&file, "b", Some(b)).unwrap();
        assert_eq!(read_choice(&file, "a"), Some(a));
        assert_eq!(read_choice(&file, "b"), Some(b));
        write_choice(&file, "b", None).unwrap();
        assert_eq!(read_choice(&file, "b"), None);
        assert_eq!(read_choice(&file, "a"), Some(a));

        // One entry of another shape is ignored and left alone; the others stay.
        let mut all = read_all(&file);
        all.insert("odd".into(), serde_json::json!({"gpu": "maybe"}));
        std::fs::write(&file, serde_json::to_vec(&all).unwrap()).unwrap();
        assert_eq!(read_choice(&file, "odd"), None);
        write_choice(&file, "b", Some(b)).unwrap();
        assert_eq!(read_choice(&file, "a"), Some(a));
        assert!(read_all(&file).contains_key("odd"));

        std::fs::write(&file, b"{ not json").unwrap();
        assert_eq!(read_choice(&file, "a"), None);
        write_choice(&file, "a", Some(a)).unwrap();
        assert_eq!(read_all(&file).len(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn the_key_follows_device_driver_size_and_threads() {
        let device = Device {
            name: "Mali-G610".into(),
            kind: vulkan::DeviceKind::Integrated,
            vendor_id: 0x13b5,
            device_id: 0xa8670000,
            driver_version: 1,
        };
        let config = EngineConfig {
            threads: 4,
            ..Default::default()
        };
        let key = decision_key(&config, &device, (640, 480));
        assert!(
            key.contains("384x288") && key.contains("4 threads"),
            "{key}"
        );
        assert_eq!(key, decision_key(&config, &device, (1280, 960)));
        assert_ne!(key, decision_key(&config, &device, (1280, 720)));
        let newer = Device {
            driver_version: 2,
            ..device.clone()
        };
        assert_ne!(key, decision_key(&config, &newer, (640, 480)));
        let fewer = EngineConfig {
            threads: 2,
            ..config.clone()
        };
        assert_ne!(key, decision_key(&fewer, &device, (640, 480)));
    }
}

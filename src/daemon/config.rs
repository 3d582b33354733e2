//! The daemon's TOML configuration: what it reads, its defaults (shared with the element
//! through [`stylize::defaults`]) and the checks that name the bad key and its line.
//! The enums (accelerator, container, input) are parsed by serde from their lowercase
//! names, not by hand.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use stylize::{defaults, Accelerator};

use crate::recording::Container;

pub const DEFAULT_PATH: &str = "/etc/stylized/config.toml";
/// A daemon's style switches fade by default; the element's own default is a cut.
const DEFAULT_TRANSITION_MS: u32 = 500;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub stylize: StylizeConfig,
    pub display: DisplayConfig,
    pub recording: RecordingConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `test`, `v4l2:/dev/videoN` (or a bare `/dev/videoN`), or a file path or URI that
    /// plays in a loop.
    pub input: Input,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StylizeConfig {
    pub style: String,
    pub blend: f64,
    /// The element's `deflicker`: 0 paints every frame on its own.
    pub deflicker: f64,
    /// A style switch (SetStyle) cross-fades over this much stream time.
    pub transition_ms: u32,
    pub accelerator: Accelerator,
    pub inference_size: u32,
    /// CPU threads; 0 means one per core.
    pub threads: u32,
    /// The style store; empty means the installed default.
    pub store: Option<PathBuf>,
    /// Where the GPU accelerator caches compiled programs; unset means the element's
    /// default (systemd's CacheDirectory for the service).
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub directory: PathBuf,
    /// A GStreamer H.264 encoder element: `x264enc`, `v4l2h264enc`, ...
    pub encoder: String,
    /// `matroska` or `mp4` (fragmented); a crash loses at most the last half second.
    pub container: Container,
    pub bitrate_kbps: u32,
    /// Longest file, in seconds; a longer recording continues in a new file.
    pub max_file_seconds: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            input: Input::V4l2(PathBuf::from("/dev/video0")),
            width: 640,
            height: 480,
            framerate: 30,
        }
    }
}

impl Default for StylizeConfig {
    fn default() -> Self {
        StylizeConfig {
            style: defaults::STYLE.into(),
            blend: defaults::BLEND,
            deflicker: defaults::DEFLICKER,
            transition_ms: DEFAULT_TRANSITION_MS,
            accelerator: Accelerator::default(),
            inference_size: defaults::INFERENCE_SIZE,
            threads: 0,
            store: None,
            cache_dir: None,
        }
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            directory: PathBuf::from("/var/lib/stylized/recordings"),
            encoder: "x264enc".into(),
            container: Container::default(),
            bitrate_kbps: 4000,
            max_file_seconds: 600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config {path}, line {line}: `{field}` {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        problem: String,
    },
}

/// Where a source comes from, parsed from `source.input` or `--source`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum Input {
    Test,
    V4l2(PathBuf),
    Uri(String),
}

/// A `source.input` or `--source` that names no source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInput {
    #[error("is empty: use test, v4l2:/dev/videoN, a file or a URI")]
    Empty,
    #[error("names no device after v4l2: (for example v4l2:/dev/video0)")]
    NoDevice,
}

impl FromStr for Input {
    type Err = BadInput;

    fn from_str(text: &str) -> Result<Input, BadInput> {
        let text = text.trim();
        if text.is_empty() {
            return Err(BadInput::Empty);
        }
        if text == "test" {
            return Ok(Input::Test);
        }
        if let Some(dev) = text.strip_prefix("v4l2:") {
            let dev = dev.trim();
            if dev.is_empty() {
                return Err(BadInput::NoDevice);
            }
            return Ok(Input::V4l2(PathBuf::from(dev)));
        }
        if text.starts_with("/dev/video") {
            return Ok(Input::V4l2(PathBuf::from(text)));
        }
        if text.contains("://") {
            return Ok(Input::Uri(text.to_string()));
        }
        let path = Path::new(text);
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        Ok(Input::Uri(format!("file://{}", absolute.display())))
    }
}

impl TryFrom<String> for Input {
    type Error = BadInput;

    fn try_from(text: String) -> Result<Input, BadInput> {
        text.parse()
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, problem: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, section, key),
            field: format!("{section}.{key}"),
            problem,
        };
        let sizes = defaults::INFERENCE_SIZE_RANGE;
        // Every integer with a range, in one table. The element's `threads` maximum;
        // x264enc's `bitrate` range; a file of at most a week (GStreamer's clock time
        // ends near 584 years, and a larger value crashed).
        for (section, key, value, lo, hi) in [
            ("source", "width", self.source.width as u64, 16, 4096),
            ("source", "height", self.source.height as u64, 16, 4096),
            ("source", "framerate", self.source.framerate as u64, 1, 240),
            ("stylize", "threads", self.stylize.threads as u64, 0, 256),
            (
                "stylize",
                "inference_size",
                self.stylize.inference_size as u64,
                *sizes.start() as u64,
                *sizes.end() as u64,
            ),
            (
                "stylize",
                "transition_ms",
                self.stylize.transition_ms as u64,
                0,
                defaults::MAX_TRANSITION_MS as u64,
            ),
            (
                "recording",
                "bitrate_kbps",
                self.recording.bitrate_kbps as u64,
                1,
                2_048_000,
            ),
            (
                "recording",
                "max_file_seconds",
                self.recording.max_file_seconds,
                1,
                604_800,
            ),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(
                    section,
                    key,
                    format!("is {value}, must be {lo}..={hi}"),
                ));
            }
        }
        for (key, value) in [
            ("blend", self.stylize.blend),
            ("deflicker", self.stylize.deflicker),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(
                    "stylize",
                    key,
                    format!("is {value}, must be between 0 and 1"),
                ));
            }
        }
        if !stylize::store::valid_id(&self.stylize.style) {
            return Err(invalid(
                "stylize",
                "style",
                "is not a valid style id".into(),
            ));
        }
        if self.recording.encoder.trim().is_empty() {
            return Err(invalid("recording", "encoder", "is empty".into()));
        }
        if !self.recording.directory.is_absolute() {
            return Err(invalid(
                "recording",
                "directory",
                "must be an absolute path".into(),
            ));
        }
        Ok(())
    }
}

/// The toml error with its line made explicit, and the field it is about when the line
/// sets one: "line 2, column 16: `recording.bitrate_kbps`: invalid type ...".
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let column = start - text[..start].rfind('\n').map_or(0, |i| i + 1) + 1;
    match field_at(text, line) {
        Some(field) if !message.contains(&field) => {
            format!("line {line}, column {column}: `{field}`: {message}")
        }
        _ => format!("line {line}, column {column}: {message}"),
    }
}

/// "section.key" for a `key = value` line, from the nearest table header above it.
fn field_at(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.trim().to_string();
        }
        if i + 1 == line {
            let key = t.split_once('=')?.0.trim();
            return Some(if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// The line where `key` is set inside `[section]`, or 0 when it is not in the file.
fn line_of(text: &str, section: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        if current == section && k.trim() == key {
            return i + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../config/stylized.toml");
        let c = Config::parse(text, Path::new("stylized.toml")).unwrap();
        assert_eq!(c.stylize.style, "monet");
        assert_eq!(
            c.stylize,
            StylizeConfig::default(),
            "the example shows the defaults"
        );
    }

    #[test]
    fn deflicker_and_transition_default_on_and_are_range_checked() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.stylize.transition_ms, 500);
        assert!(c.stylize.deflicker > 0.0);
        for (text, key) in [
            ("[stylize]\ndeflicker = 1.5\n", "stylize.deflicker"),
            ("[stylize]\ndeflicker = -0.1\n", "stylize.deflicker"),
            (
                "[stylize]\ntransition_ms = 60001\n",
                "stylize.transition_ms",
            ),
            ("[stylize]\ntransition_ms = -1\n", "transition_ms"),
        ] {
            let e = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 2") && e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let text = "[source]\ninput = \"test\"\n\n[stylize]\nstyle = \"monet\"\nblend = 2.5\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 6") && e.contains("stylize.blend"), "{e}");

        let text = "[source]\nwidht = 3\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("widht"), "{e}");

        let text = "[recording]\nbitrate_kbps = \"fast\"\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("bitrate_kbps"), "{e}");
    }

    #[test]
    fn inputs() {
        assert_eq!("test".parse(), Ok(Input::Test));
        assert_eq!(
            "v4l2:/dev/video2".parse(),
            Ok(Input::V4l2("/dev/video2".into()))
        );
        assert_eq!("/dev/video1".parse(), Ok(Input::V4l2("/dev/video1".into())));
        assert_eq!("/a/b.mp4".parse(), Ok(Input::Uri("file:///a/b.mp4".into())));
        assert!(" ".parse::<Input>().is_err());
    }

    #[test]
    fn enums_parse_from_lowercase_names_and_name_the_key() {
        let c = Config::parse(
            "[stylize]\naccelerator = \"gpu\"\n[recording]\ncontainer = \"mp4\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.stylize.accelerator, Accelerator::Gpu);
        assert_eq!(c.recording.container, Container::Mp4);
        for (text, key) in [
            ("[stylize]\naccelerator = \"tpu\"\n", "stylize.accelerator"),
            ("[recording]\ncontainer = \"avi\"\n", "recording.container"),
            ("[source]\ninput = \" \"\n", "source.input"),
            ("[source]\ninput = \"v4l2:\"\n", "source.input"),
            ("[stylize]\naccelerator = 3\n", "stylize.accelerator"),
            (
                "[stylize]\naccelerator = { gpu = {} }\n",
                "stylize.accelerator",
            ),
            ("[recording]\ncontainer = \"MP4\"\n", "recording.container"),
            ("[stylize]\nthreads = 257\n", "stylize.threads"),
            ("[recording]\nbitrate_kbps = 0\n", "recording.bitrate_kbps"),
            (
                "[recording]\nmax_file_seconds = 9223372036854775807\n",
                "recording.max_file_seconds",
            ),
        ] {
            let e = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 2") && e.contains(key), "{text}: {e}");
        }
    }
}

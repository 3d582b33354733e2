//! The daemon's TOML configuration: what it reads, its defaults (shared with the element
//! through [`stylize::defaults`]) and the checks that name the bad key and its line.
//! The enums (accelerator, container, input) are parsed by serde from their lowercase
//! names, not by hand, and every line number comes from the spans the `toml` parser
//! gives, counted in the file's own text.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use stylize::{defaults, Accelerator};

use crate::display::SinkKind;
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
    pub stream: StreamConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `test`, `v4l2:/dev/videoN` (or a bare `/dev/videoN`), `libcamera` or
    /// `libcamera:NAME`, or a file path or URI that plays in a loop.
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
    /// The style store; unset or empty (`store = ""`) means the installed default.
    #[serde(deserialize_with = "empty_path_is_unset")]
    pub store: Option<PathBuf>,
    /// Where the GPU accelerator caches compiled programs; unset or empty means the
    /// element's default (systemd's CacheDirectory for the service).
    #[serde(deserialize_with = "empty_path_is_unset")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// The switch: no display unless true (`--display on|off` sets it).
    pub enabled: bool,
    /// Which sink shows the stream when enabled; `none` means no display even then.
    pub sink: SinkKind,
    /// `kmssink`'s `connector-id` and `plane-id`; unset lets kmssink choose.
    pub connector_id: Option<u32>,
    pub plane_id: Option<u32>,
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

/// `[stream]`: the RTSP server (src/daemon/stream.rs).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub enabled: bool,
    /// The address to listen on: an IPv4 or IPv6 address (`0.0.0.0`: every interface).
    pub address: String,
    pub port: u16,
    /// The mount path, `rtsp://HOST:PORT/path`.
    pub path: String,
    /// Basic-auth credentials; both are required unless `allow_anonymous`.
    pub username: String,
    pub password: String,
    pub allow_anonymous: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            enabled: false,
            address: "0.0.0.0".into(),
            port: 8554,
            path: "/stylize".into(),
            username: String::new(),
            password: String::new(),
            allow_anonymous: false,
        }
    }
}

/// Never prints the password (a config may be logged at debug).
impl std::fmt::Debug for StreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamConfig")
            .field("enabled", &self.enabled)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl StreamConfig {
    /// What is wrong with `[stream]`, as (key, problem): the shape of each value, and,
    /// when enabled, that a client has to give credentials unless anonymous viewers are
    /// allowed. Checked when the file is read and again after the command line
    /// (`--stream on`) in [`Config::check_system`].
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.address.trim().parse::<std::net::IpAddr>().is_err() {
            return Some((
                "address",
                format!(
                    "{:?} is not an IP address: use 0.0.0.0 (every interface), :: or one \
                     address of this machine",
                    self.address
                ),
            ));
        }
        if self.port == 0 {
            return Some(("port", "is 0, must be 1..=65535".into()));
        }
        let path_ok = self.path.len() > 1
            && self.path.starts_with('/')
            && self
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
        if !path_ok {
            return Some((
                "path",
                format!(
                    "{:?} is not a mount path: use / and letters, digits, -, _, . or ~ \
                     (for example /stylize)",
                    self.path
                ),
            ));
        }
        if self.username.contains(':') || self.username.chars().any(char::is_control) {
            return Some((
                "username",
                "may not hold ':' or control characters (basic authentication)".into(),
            ));
        }
        if self.enabled && !self.allow_anonymous {
            let missing = if self.username.is_empty() {
                Some("username")
            } else if self.password.is_empty() {
                Some("password")
            } else {
                None
            };
            if let Some(key) = missing {
                return Some((
                    key,
                    "is empty, and the stream is enabled: set stream.username and \
                     stream.password (clients must give them), or set \
                     stream.allow_anonymous = true to let anyone who can reach the port watch"
                        .into(),
                ));
            }
        }
        None
    }
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

/// `""` for a path means the same as leaving the key out.
fn empty_path_is_unset<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(Option::<PathBuf>::deserialize(d)?.filter(|p| !p.as_os_str().is_empty()))
}

/// Why a config cannot be used. The Display text is the whole message, cause included
/// (the element and the D-Bus errors print Display alone), so no variant also gives
/// its cause as `source()`: a chain printer (`{:#}`) would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
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
    /// A value that reads well but that this system cannot use ([`Config::check_system`]);
    /// it may come from the command line, so no line is given.
    #[error("config {path}: `{field}` {problem}")]
    Unusable {
        path: PathBuf,
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
    /// A libcamera camera (`libcamerasrc`), by name, or the first one.
    Libcamera(Option<String>),
    Uri(String),
}

/// A `source.input` or `--source` that names no source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInput {
    #[error("is empty: use test, v4l2:/dev/videoN, libcamera, a file or a URI")]
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
        if text == "libcamera" {
            return Ok(Input::Libcamera(None));
        }
        if let Some(name) = text.strip_prefix("libcamera:") {
            let name = name.trim();
            return Ok(Input::Libcamera(
                (!name.is_empty()).then(|| name.to_string()),
            ));
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
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io {
            path: path.to_path_buf(),
            cause,
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
        let keys = Keys::of(text);
        let invalid = |section: &str, key: &str, problem: String| {
            let field = format!("{section}.{key}");
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line: keys
                    .span_of(&field)
                    .map_or(0, |span| line_at(text, span.start).0),
                field,
                problem,
            }
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
        if let Some((key, problem)) = self.stream.problem() {
            let mut error = invalid("stream", key, problem);
            // A missing username or password has no line: name the one that enabled it.
            if let ConfigError::Invalid { line: line @ 0, .. } = &mut error {
                *line = keys
                    .span_of("stream.enabled")
                    .map_or(0, |span| line_at(text, span.start).0);
            }
            return Err(error);
        }
        Ok(())
    }
}

impl Config {
    /// Checks, at daemon start, what only this system can tell. A stream enabled without
    /// credentials is an error. What would otherwise fail only at the first
    /// StartRecording (the recordings folder is a file, the encoder element is not
    /// installed) comes back as warnings for the log: the camera, the display and the
    /// stream still run, and StartRecording names the same problem. (A board installed
    /// without the package's Recommends has no x264enc, and must still show its
    /// camera.) Needs `gst::init`. `path` is the config file, for the messages.
    pub fn check_system(&self, path: &Path) -> Result<Vec<ConfigError>, ConfigError> {
        let unusable = |field: &str, problem: String| ConfigError::Unusable {
            path: path.to_path_buf(),
            field: field.into(),
            problem,
        };
        // Again, after the command line: `--stream on` needs credentials too.
        if let Some((key, problem)) = self.stream.problem() {
            return Err(unusable(&format!("stream.{key}"), problem));
        }
        let mut warnings = Vec::new();
        let dir = &self.recording.directory;
        // The first part of the path that exists must be a folder: create_dir_all makes
        // the rest when a recording starts.
        if let Some(existing) = dir.ancestors().find(|a| a.exists()) {
            if !existing.is_dir() {
                let problem = if existing == dir.as_path() {
                    format!(
                        "{} is a file, not a folder: set recording.directory (or \
                         --recordings) to a folder",
                        dir.display()
                    )
                } else {
                    format!(
                        "{} cannot be a folder: {} is a file; set recording.directory (or \
                         --recordings) to a folder",
                        dir.display(),
                        existing.display()
                    )
                };
                warnings.push(unusable("recording.directory", problem));
            }
        }
        let encoder = self.recording.encoder.trim();
        if gst::ElementFactory::find(encoder).is_none() {
            let package = if encoder == "x264enc" {
                " (Debian: gstreamer1.0-plugins-ugly)"
            } else {
                ""
            };
            warnings.push(unusable(
                "recording.encoder",
                format!(
                    "{encoder:?} is not an installed GStreamer element, so recordings and \
                     the stream cannot start: install the plugin that has it{package} or set \
                     another H.264 encoder (`gst-inspect-1.0 | grep -i h264` lists them)"
                ),
            ));
        }
        Ok(warnings)
    }
}

/// The toml error with its line made explicit, and the field it is about when the toml
/// parser can locate the keys: "line 2, column 16: `recording.bitrate_kbps`: invalid
/// type ...".
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let (line, column) = line_at(text, span.start);
    match Keys::of(text).at(text, span.start) {
        Some(field) if !message.contains(field) => {
            format!("line {line}, column {column}: `{field}`: {message}")
        }
        _ => format!("line {line}, column {column}: {message}"),
    }
}

/// The 1-based line and column (in characters) of byte `at` of `text`. A byte order
/// mark is part of the first line, as it is of the text the toml parser saw.
fn line_at(text: &str, at: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..at.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Every key of a TOML document by its dotted path ("stylize.blend" for `blend` under
/// `[stylize]`, for `stylize.blend = ..` and for `stylize = { blend = .. }` alike), with
/// the span of the key as the toml parser located it (a value has no span when it is a
/// table made by a dotted key). Empty when the text does not parse.
#[derive(Default)]
struct Keys(Vec<(String, Range<usize>)>);

impl Keys {
    fn of(text: &str) -> Keys {
        toml::from_str(text).unwrap_or_default()
    }

    /// Where `field` is set.
    fn span_of(&self, field: &str) -> Option<Range<usize>> {
        self.0
            .iter()
            .find(|(path, _)| path == field)
            .map(|(_, key)| key.clone())
    }

    /// The key that byte `at` of `text` belongs to: the last one that starts before it
    /// on its line (so `blend` in `stylize = { blend = "x" }` for the "x").
    fn at(&self, text: &str, at: usize) -> Option<&str> {
        let line = line_at(text, at).0;
        self.0
            .iter()
            .filter(|(_, key)| key.start <= at && line_at(text, key.start).0 == line)
            .max_by_key(|(_, key)| key.start)
            .map(|(path, _)| path.as_str())
    }
}

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Keys;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any TOML value")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<toml::Spanned<String>>()? {
                    let span = key.span();
                    let key = key.into_inner();
                    for (path, at) in map.next_value::<Keys>()?.0 {
                        keys.push((format!("{key}.{path}"), at));
                    }
                    keys.push((key, span));
                }
                Ok(Keys(keys))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Keys, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Keys::default())
            }

            fn visit_bool<E>(self, _: bool) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Keys, E> {
                Ok(Keys::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Keys, E> {
                Ok(Keys::default())
            }
        }
        d.deserialize_any(Visit)
    }
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
    fn the_stream_is_off_by_default_and_needs_credentials_or_anonymous() {
        let example = include_str!("../../config/stylized.toml");
        let c = Config::parse(example, Path::new("stylized.toml")).unwrap();
        assert_eq!(
            c.stream,
            StreamConfig {
                username: "viewer".into(),
                ..StreamConfig::default()
            },
            "the example shows the defaults, with a username to fill the password in for"
        );
        let text = "[source]\ninput = \"test\"\n\n[stream]\nenabled = true\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("`stream.username` is empty"), "{e}");
        assert!(e.contains("allow_anonymous = true"), "{e}");
        let text = "[stream]\nenabled = true\nusername = \"v\"\npassword = \"\"\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4: `stream.password` is empty"), "{e}");
        let ok = "[stream]\nenabled = true\nusername = \"v\"\npassword = \"p\"\n";
        assert!(Config::parse(ok, Path::new("c.toml")).is_ok());
        let anonymous = "[stream]\nenabled = true\nallow_anonymous = true\n";
        assert!(Config::parse(anonymous, Path::new("c.toml")).is_ok());
        // Disabled, nothing is required; the overrides are checked again at start.
        let mut c = Config::parse("[stream]\nenabled = false\n", Path::new("c.toml")).unwrap();
        c.stream.enabled = true;
        let e = c.check_system(Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("`stream.username` is empty"), "{e}");
        for (bad, key) in [
            ("address = \"everywhere\"", "stream.address"),
            ("port = 0", "stream.port"),
            ("port = 70000", "stream.port"),
            ("path = \"stylize\"", "stream.path"),
            ("path = \"/a b\"", "stream.path"),
            ("username = \"a:b\"", "stream.username"),
        ] {
            let e = Config::parse(&format!("[stream]\n{bad}\n"), Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 2"), "{bad}: {e}");
            assert!(e.contains(key), "{bad}: {e}");
        }
        let secret = StreamConfig {
            password: "hunter2".into(),
            ..StreamConfig::default()
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
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
        assert_eq!("libcamera".parse(), Ok(Input::Libcamera(None)));
        assert_eq!("libcamera:".parse(), Ok(Input::Libcamera(None)));
        assert_eq!(
            "libcamera: /base/soc/i2c0mux/i2c@1/imx708@1a".parse(),
            Ok(Input::Libcamera(Some(
                "/base/soc/i2c0mux/i2c@1/imx708@1a".into()
            )))
        );
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
        assert_eq!(c.display.sink, SinkKind::Auto, "the default");
        let c = Config::parse(
            "[display]\nenabled = true\nsink = \"kms\"\nconnector_id = 42\nplane_id = 7\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.display.sink, SinkKind::Kms);
        assert_eq!(
            (c.display.connector_id, c.display.plane_id),
            (Some(42), Some(7))
        );
        for (name, kind) in [
            ("auto", SinkKind::Auto),
            ("wayland", SinkKind::Wayland),
            ("x", SinkKind::X),
            ("none", SinkKind::None),
        ] {
            let c = Config::parse(
                &format!("[display]\nsink = \"{name}\"\n"),
                Path::new("c.toml"),
            );
            assert_eq!(c.unwrap().display.sink, kind);
        }
        for (text, key) in [
            ("[display]\nsink = \"autovideosink\"\n", "display.sink"),
            ("[display]\nconnector_id = -1\n", "display.connector_id"),
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

    /// Issue 13, fault 1: the line came from a hand-written lookup that knew only
    /// `[section]` lines and `key = value`, and said line 0 (or a line in another
    /// section) for everything else. Each of these has the bad value on line 3.
    #[test]
    fn lines_come_from_the_toml_spans_whatever_the_layout() {
        for (layout, text) in [
            ("header comments", "# stylized\n[stylize]\nblend = 2.5\n"),
            ("a dotted key", "# stylized\n\nstylize.blend = 2.5\n"),
            (
                "an inline table",
                "# stylized\n\nstylize = { style = \"monet\", blend = 2.5 }\n",
            ),
            ("a quoted key", "# stylized\n[stylize]\n\"blend\" = 2.5\n"),
            (
                "a byte order mark",
                "\u{feff}# stylized\n[stylize]\nblend = 2.5\n",
            ),
            (
                "a header with a comment",
                "[source]\n[stylize] # the network\nblend = 2.5\n",
            ),
            (
                "a key in another section",
                "[recording]\n[stylize]\nblend = 2.5\n",
            ),
        ] {
            let e = Config::parse(text, Path::new("c.toml")).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { line: 3, field, .. } if field == "stylize.blend"),
                "{layout}: {e}"
            );
        }
        // Type errors too: the toml parser's span, and the key it points into.
        for (layout, text) in [
            ("an inline table", "\n\nstylize = { blend = \"x\" }\n"),
            ("a dotted key", "\n\nstylize.blend = \"x\"\n"),
            ("a byte order mark", "\u{feff}\n[stylize]\nblend = \"x\"\n"),
            ("an unknown key", "[source]\n\nwidht = 3\n"),
        ] {
            let e = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 3, column"), "{layout}: {e}");
            assert!(
                e.contains("`stylize.blend`") || e.contains("widht"),
                "{layout}: {e}"
            );
        }
    }

    /// Issue 13, fault 2: `store = ""` is what the example config and the field's doc
    /// call the default, and it failed when the daemon loaded a store named "".
    #[test]
    fn an_empty_store_or_cache_dir_means_the_default() {
        let c = Config::parse(
            "[stylize]\nstore = \"\"\ncache_dir = \"\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.stylize.store, None);
        assert_eq!(c.stylize.cache_dir, None);
        let c = Config::parse("[stylize]\nstore = \"/s.json\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.stylize.store, Some(PathBuf::from("/s.json")));
        let example = include_str!("../../config/stylized.toml");
        assert!(
            example.contains("(store = \"\")"),
            "the example documents it"
        );
    }

    /// Issue 13, fault 3: the cause was both in the text and the `source()`, so the
    /// daemon's `{:#}` printed it twice.
    #[test]
    fn an_unreadable_config_names_its_cause_once() {
        let e = Config::load(Path::new("/nonexistent/stylized.toml")).unwrap_err();
        let printed = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(
            printed,
            "cannot read config /nonexistent/stylized.toml: No such file or directory (os error 2)"
        );
    }

    /// Issue 13, fault 4: a recordings "folder" that is a file, or an encoder that is not
    /// installed, failed only at StartRecording; `check_system` (run at daemon start)
    /// says what to fix.
    #[test]
    fn the_recordings_folder_and_the_encoder_are_checked_at_start() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recordings");
        std::fs::write(&file, b"").unwrap();
        let path = Path::new("c.toml");
        let mut c = Config::default();
        c.recording.directory = dir.path().join("new/recordings");
        assert!(c.check_system(path).unwrap().is_empty());
        let warning = |c: &Config| {
            let warnings = c.check_system(path).expect("a warning, not an error");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            warnings[0].to_string()
        };

        c.recording.directory = file.clone();
        let e = warning(&c);
        assert!(
            e.contains("`recording.directory`") && e.contains("is a file, not a folder"),
            "{e}"
        );
        c.recording.directory = file.join("inside");
        let e = warning(&c);
        assert!(e.contains(&format!("{} is a file", file.display())), "{e}");

        c.recording.directory = dir.path().to_path_buf();
        c.recording.encoder = "x265nosuchenc".into();
        let e = warning(&c);
        assert!(
            e.contains(
                "`recording.encoder` \"x265nosuchenc\" is not an installed GStreamer element"
            ),
            "{e}"
        );
    }

    /// Mutation test of the config parser: the example config and a short one with
    /// dotted keys and an inline table, with bytes flipped and replaced, TOML tokens
    /// inserted (headers, quotes, dotted keys, a BOM, CRs, huge numbers), ranges removed
    /// or repeated, and cuts. Whatever the text, `parse` gives a config or a
    /// `ConfigError` naming the file, with a line that is in the file; never a panic.
    mod mutations {
        use super::*;
        use proptest::prelude::*;
        use proptest::test_runner::{Config as ProptestConfig, TestRunner};
        use std::cell::Cell;
        use std::time::{Duration, Instant};

        /// 50000 take about a second on two busy cores (the count is printed).
        const CASES: u32 = 50_000;
        const MAX_CASE_TIME: Duration = Duration::from_secs(2);
        /// A BOM, a header comment, a dotted key, a quoted key and an inline table.
        const SHORT: &str = "\u{feff}# header\nsource.input = \"test\"\n\
                             recording = { bitrate_kbps = 4000 }\n[stylize]\n\"blend\" = 0.5\n\
                             [display]\nenabled = true\n";

        const TOKENS: &[&str] = &[
            "[",
            "]",
            "[[",
            "]]",
            "=",
            "\"",
            "'",
            "\"\"\"",
            "'''",
            "{",
            "}",
            ",",
            ".",
            "#",
            "\n",
            "\r",
            "\r\n",
            "\t",
            "\\",
            "\\u0000",
            "\\uD800",
            "\u{feff}",
            "é",
            "\u{0}",
            "[stylize]\n",
            "[source]\n",
            "[recording]\n",
            "[display]\n",
            "stylize.blend = 2\n",
            "display.enabled = true\n",
            "x = 1\n",
            "blend = 1.5\n",
            "threads = 999\n",
            "width = 0\n",
            "= 1\n",
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999999999999",
            "1e999",
            "nan",
            "inf",
            "-0.0",
            "1979-05-27T07:32:00Z",
            "true",
            "{ a = 1 }",
            "[1, 2]",
            "store = \"\"\n",
            "directory = \"rel\"\n",
        ];

        #[derive(Clone, Debug)]
        enum Mutation {
            FlipBit(usize, u8),
            SetByte(usize, u8),
            Insert(usize, usize),
            Remove(usize, u8),
            Repeat(usize, u8),
            Truncate(usize),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                1 => (any::<usize>(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
                1 => (any::<usize>(), any::<u8>()).prop_map(|(a, v)| Mutation::SetByte(a, v)),
                3 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
                1 => (any::<usize>(), 1u8..40).prop_map(|(a, n)| Mutation::Remove(a, n)),
                1 => (any::<usize>(), 1u8..80).prop_map(|(a, n)| Mutation::Repeat(a, n)),
                1 => any::<usize>().prop_map(Mutation::Truncate),
            ]
        }

        fn apply(text: &str, mutations: &[Mutation]) -> Vec<u8> {
            let mut b = text.as_bytes().to_vec();
            for m in mutations {
                let len = b.len();
                let at = |i: usize| i % (len + 1);
                match *m {
                    Mutation::FlipBit(i, bit) if len > 0 => b[i % len] ^= 1 << bit,
                    Mutation::SetByte(i, v) if len > 0 => b[i % len] = v,
                    Mutation::Insert(i, t) => {
                        b.splice(at(i)..at(i), TOKENS[t].bytes());
                    }
                    Mutation::Remove(i, n) => {
                        let i = at(i);
                        b.drain(i..(i + n as usize).min(len));
                    }
                    Mutation::Repeat(i, n) => {
                        let i = at(i);
                        let piece = b[i..(i + n as usize).min(len)].to_vec();
                        b.splice(i..i, piece);
                    }
                    Mutation::Truncate(n) => b.truncate(n % (len + 1)),
                    _ => {}
                }
            }
            b
        }

        #[test]
        fn mutated_configs_give_a_config_or_an_error_with_a_real_line() {
            let texts = [include_str!("../../config/stylized.toml"), SHORT];
            let config = ProptestConfig {
                cases: CASES,
                failure_persistence: None,
                ..ProptestConfig::default()
            };
            let (cases, parsed) = (Cell::new(0u32), Cell::new(0u32));
            let started = Instant::now();
            let result = TestRunner::new(config).run(
                &(0..texts.len(), prop::collection::vec(mutation(), 1..6)),
                |(text, mutations)| {
                    cases.set(cases.get() + 1);
                    let bytes = apply(texts[text], &mutations);
                    // A file that is not UTF-8 fails in `load`; the rest goes to `parse`.
                    let text = String::from_utf8_lossy(&bytes);
                    let start = Instant::now();
                    let result = Config::parse(&text, Path::new("/etc/stylized/mutated.toml"));
                    prop_assert!(start.elapsed() < MAX_CASE_TIME, "{:?}", start.elapsed());
                    let lines = text.split('\n').count();
                    match result {
                        Ok(_) => parsed.set(parsed.get() + 1),
                        Err(e) => {
                            let message = e.to_string();
                            prop_assert!(
                                message.starts_with("config /etc/stylized/mutated.toml"),
                                "{message}"
                            );
                            if let ConfigError::Invalid { line, field, .. } = &e {
                                // The line is in the file and sets the key.
                                prop_assert!((1..=lines).contains(line), "{message}");
                                let key = field.rsplit('.').next().unwrap_or(field);
                                let text_line = text.split('\n').nth(line - 1).unwrap_or("");
                                prop_assert!(text_line.contains(key), "{message}: {text_line:?}");
                            }
                            if let Some(rest) = message.split(": line ").nth(1) {
                                let line: usize = rest
                                    .split(',')
                                    .next()
                                    .and_then(|n| n.parse().ok())
                                    .unwrap_or(0);
                                prop_assert!((1..=lines).contains(&line), "{message}");
                            }
                        }
                    }
                    Ok(())
                },
            );
            if let Err(e) = result {
                panic!("{e}");
            }
            eprintln!(
                "config mutation cases: {} in {:.1?} ({} still valid configs)",
                cases.get(),
                started.elapsed(),
                parsed.get()
            );
            assert_eq!(cases.get(), CASES);
        }
    }
}

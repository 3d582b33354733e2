//! The one "CPU or GPU" choice. The element's `accelerator` property, the daemon's
//! `[stylize] accelerator` key and the engine all take this type, so the names
//! (`auto`, `cpu`, `gpu`) and the default are written once.
//!
//! With the `glib` feature it is also a registered GLib enum (`GstStylizeAccelerator`),
//! which is what a GStreamer property needs; the core itself never needs GLib.

use std::fmt;
use std::str::FromStr;

/// Where the transfer network runs.
///
/// As a setting all three values occur. What an engine actually runs on
/// ([`crate::Engine::accelerator`]) is always `Cpu` or `Gpu`: `Auto` is decided before
/// an engine exists ([`crate::auto`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
// Through a string, so a config's bad value reads "expected a string" or names the three
// choices, never serde's table form of an enum.
#[serde(try_from = "String", into = "&'static str")]
#[cfg_attr(feature = "glib", derive(glib::Enum))]
#[cfg_attr(feature = "glib", enum_type(name = "GstStylizeAccelerator"))]
#[repr(u32)]
pub enum Accelerator {
    /// The faster of a hardware GPU and the CPU, measured; never a software GPU.
    #[default]
    #[cfg_attr(
        feature = "glib",
        enum_value(
            name = "Auto: the faster of a hardware GPU and the CPU, measured; never a software GPU",
            nick = "auto"
        )
    )]
    Auto = 0,
    /// The CPU (XNNPACK) with the int8 transfer model.
    #[cfg_attr(
        feature = "glib",
        enum_value(name = "CPU (XNNPACK), int8 model", nick = "cpu")
    )]
    Cpu = 1,
    /// The GPU (LiteRT's WebGPU accelerator on Vulkan) with the fp16 transfer model.
    #[cfg_attr(
        feature = "glib",
        enum_value(name = "GPU (WebGPU accelerator), fp16 model", nick = "gpu")
    )]
    Gpu = 2,
}

impl Accelerator {
    pub const ALL: [Accelerator; 3] = [Accelerator::Auto, Accelerator::Cpu, Accelerator::Gpu];

    /// The lowercase name used by the property, the config file and the logs.
    pub fn name(self) -> &'static str {
        match self {
            Accelerator::Auto => "auto",
            Accelerator::Cpu => "cpu",
            Accelerator::Gpu => "gpu",
        }
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not `auto`, `cpu` or `gpu`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator {0:?}: use auto, cpu or gpu")]
pub struct UnknownAccelerator(pub String);

impl TryFrom<String> for Accelerator {
    type Error = UnknownAccelerator;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Accelerator> for &'static str {
    fn from(a: Accelerator) -> Self {
        a.name()
    }
}

impl FromStr for Accelerator {
    type Err = UnknownAccelerator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Accelerator::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAccelerator(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_default_is_auto() {
        for a in Accelerator::ALL {
            assert_eq!(a.name().parse::<Accelerator>(), Ok(a));
        }
        assert_eq!(Accelerator::default(), Accelerator::Auto);
        assert!("GPU".parse::<Accelerator>().is_err());
    }
}

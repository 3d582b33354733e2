//! The defaults that the element's properties and the daemon's config share, written
//! once. (The accelerator's is [`crate::Accelerator::default`].)

/// The style used when none is named: an id in the style store.
pub const STYLE: &str = "monet";
/// Long side of the inference size, in pixels.
pub const INFERENCE_SIZE: u32 = 384;
/// The smallest and largest `inference-size`.
pub const INFERENCE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 32..=4096;
/// How much of the frame's own style is mixed in (0..1).
pub const BLEND: f64 = 0.0;
/// With blend > 0, frames between recomputations of the frame's own style vector.
pub const BLEND_INTERVAL: u32 = 30;
/// Deflicker strength (0..1); see [`crate::deflicker`].
pub const DEFLICKER: f64 = crate::deflicker::DEFAULT_STRENGTH;
/// The longest style cross-fade, in milliseconds (a minute).
pub const MAX_TRANSITION_MS: u32 = 60_000;

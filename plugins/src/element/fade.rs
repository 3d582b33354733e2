//! A linear fade between two style vectors over stream time (buffer PTS): a style
//! switch with `transition-ms`, and the frame's own vector for `blend` when it is
//! recomputed.

use std::time::Duration;

use stylize::StyleVector;

/// How early (ns) a frame may come and still end a fade; see [`Fade::progress`].
const PTS_ROUNDING_NS: u64 = 1_000;

/// A linear fade between two style vectors over stream time.
#[derive(Clone, Copy)]
pub struct Fade {
    pub from: StyleVector,
    pub to: StyleVector,
    pub start: Option<gst::ClockTime>,
    pub duration: Duration,
}

impl Fade {
    /// A fade that is already over.
    pub fn settled(to: StyleVector) -> Fade {
        Fade {
            from: to,
            to,
            start: None,
            duration: Duration::ZERO,
        }
    }

    /// The fraction of the way from `from` to `to` at `pts`: 1 when the fade has no
    /// length or the time is unknown, and when time went back before its start (a
    /// seek back), so a fade never runs backwards or stalls.
    pub fn progress(&self, pts: Option<gst::ClockTime>) -> f32 {
        match (self.start, pts) {
            (Some(start), Some(pts)) if !self.duration.is_zero() && pts >= start => {
                let elapsed = pts.nseconds() - start.nseconds();
                let duration = self.duration.as_nanos() as u64;
                // Timestamps from a frame rate are rounded to the nanosecond, so the
                // frame that ends a fade of whole frames may come a few ns early.
                if elapsed + PTS_ROUNDING_NS >= duration {
                    return 1.0;
                }
                (elapsed as f64 / duration as f64) as f32
            }
            _ => 1.0,
        }
    }

    pub fn at(&self, pts: Option<gst::ClockTime>) -> StyleVector {
        let t = self.progress(pts);
        if t >= 1.0 {
            return self.to;
        }
        let mut v = self.from;
        for (o, &b) in v.iter_mut().zip(&self.to) {
            *o += t * (b - *o);
        }
        v
    }

    /// Whether the fade is over at `pts`.
    pub fn done(&self, pts: Option<gst::ClockTime>) -> bool {
        self.progress(pts) >= 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fade() -> Fade {
        let mut to = [0.0; stylize::store::VECTOR_LEN];
        to[0] = 1.0;
        Fade {
            from: [0.0; stylize::store::VECTOR_LEN],
            to,
            start: Some(gst::ClockTime::from_seconds(10)),
            duration: Duration::from_millis(500),
        }
    }

    #[test]
    fn runs_linearly_over_pts_and_ends_on_a_rounded_frame_time() {
        let f = fade();
        let at = |ms: u64| f.at(Some(gst::ClockTime::from_mseconds(ms)))[0];
        assert_eq!(at(10_000), 0.0);
        assert!((at(10_250) - 0.5).abs() < 1e-6);
        // 15 frames at 30 fps: 499.999995 ms.
        let end = gst::ClockTime::from_nseconds(10_000_000_000 + 33_333_333 * 15);
        assert_eq!(f.at(Some(end))[0], 1.0);
        assert!(f.done(Some(end)));
    }

    #[test]
    fn unknown_or_earlier_time_gives_the_end() {
        let f = fade();
        assert_eq!(f.at(None)[0], 1.0);
        assert_eq!(f.at(Some(gst::ClockTime::from_seconds(3)))[0], 1.0);
        assert_eq!(Fade::settled(f.to).at(Some(gst::ClockTime::ZERO))[0], 1.0);
    }
}

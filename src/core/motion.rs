//! Global motion between two frames, and moving a picture by it, for the deflicker.
//!
//! When the camera pans, every pixel changes, so a plain hold repaints everything and
//! the pan shimmers like a fixed camera without deflicker. Moving the held painting
//! with the camera first lets the hold work there too. The motion is one translation
//! (a pan or tilt), found by block matching on the blurred luma; the painting is moved
//! with a Catmull-Rom kernel, which keeps more of the brush texture over repeated
//! sub-pixel moves than bilinear interpolation (measured on a 2 px/frame pan of the
//! benchmark: texture 0.92 against 0.79 of the per-frame output).

/// The largest motion searched, in pixels of the image searched, per frame.
const SEARCH: isize = 6;
/// Sample every this many pixels in the search over all motions, then every
/// `COARSE_STEP` around the best one.
const SEARCH_STEP: usize = 8;
const COARSE_STEP: usize = 4;
/// A frame that changed by less than this (mean blurred luma levels) did not move:
/// sensor noise is below it.
const NOISE_FLOOR: f32 = 0.3;
/// A motion must fit at least this much better than none...
const BETTER_THAN_STILL: f32 = 0.5;
/// ... and help (by `HELPED_LEVELS`) at this share of the samples at least: a pan
/// helps across the picture, even a dark or misty one, while a ball on a flat test
/// pattern, or people and cars crossing a fixed camera, are a small part of it and
/// must not move the rest.
const MIN_HELPED_SHARE: f32 = 0.1;
const HELPED_LEVELS: f32 = 0.5;
/// Sub-pixel motion under this is none.
const MIN_MOTION: f32 = 0.25;

/// A translation in pixels: the content at (x, y) now was at (x + dx, y + dy) before.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Motion {
    pub dx: f32,
    pub dy: f32,
}

impl Motion {
    pub fn is_still(self) -> bool {
        self == Motion::default()
    }
}

/// Mean |now(x, y) - before(x + sx, y + sy)| over a grid inside the margins.
fn cost(
    before: &[f32],
    now: &[f32],
    (w, h): (usize, usize),
    (sx, sy): (isize, isize),
    step: usize,
) -> f32 {
    let m = SEARCH as usize + 1;
    let (mut sum, mut n) = (0.0f32, 0usize);
    for y in (m..h.saturating_sub(m)).step_by(step) {
        let by = (y as isize + sy) as usize;
        let row = &now[y * w..(y + 1) * w];
        let brow = &before[by * w..(by + 1) * w];
        for x in (m..w.saturating_sub(m)).step_by(step) {
            sum += (row[x] - brow[(x as isize + sx) as usize]).abs();
            n += 1;
        }
    }
    if n == 0 {
        f32::INFINITY
    } else {
        sum / n as f32
    }
}

/// The share of the coarse samples where moving by `by` lowers the difference by more
/// than `HELPED_LEVELS`; with no motion, the share that changed by more than that (the
/// most any motion could help).
fn helped_share(
    before: &[f32],
    now: &[f32],
    (w, h): (usize, usize),
    by: Option<(isize, isize)>,
) -> f32 {
    let (sx, sy) = by.unwrap_or((0, 0));
    let m = SEARCH as usize + 1;
    let (mut helped, mut n) = (0usize, 0usize);
    for y in (m..h.saturating_sub(m)).step_by(COARSE_STEP) {
        let moved = (y as isize + sy) as usize * w;
        for x in (m..w.saturating_sub(m)).step_by(COARSE_STEP) {
            let i = y * w + x;
            let still = (now[i] - before[i]).abs();
            let with = match by {
                Some(_) => (now[i] - before[moved + (x as isize + sx) as usize]).abs(),
                None => 0.0,
            };
            helped += (still - with > HELPED_LEVELS) as usize;
            n += 1;
        }
    }
    helped as f32 / n.max(1) as f32
}

/// The parabola's minimum through costs at -1, 0 and +1, within half a pixel.
fn sub_pixel(left: f32, centre: f32, right: f32) -> f32 {
    let curvature = left - 2.0 * centre + right;
    if curvature <= f32::EPSILON {
        return 0.0;
    }
    (0.5 * (left - right) / curvature).clamp(-0.5, 0.5)
}

/// The translation that best maps `before` onto `now` (both `w`x`h`, row-major luma),
/// or none when no motion fits clearly better than standing still.
pub fn estimate(before: &[f32], now: &[f32], (w, h): (usize, usize)) -> Motion {
    let m = 2 * (SEARCH as usize + 1);
    if before.len() != w * h || now.len() != w * h || w <= m + COARSE_STEP || h <= m + COARSE_STEP {
        return Motion::default();
    }
    let still = cost(before, now, (w, h), (0, 0), COARSE_STEP);
    // A motion can only help where the frame changed: when too little did, there is
    // no need to search (a fixed camera pays only these two passes).
    if still < NOISE_FLOOR || helped_share(before, now, (w, h), None) < MIN_HELPED_SHARE {
        return Motion::default();
    }
    let search = |centre: (isize, isize), reach: isize, step: usize| {
        let mut best = (centre, f32::INFINITY);
        for sy in (centre.1 - reach).max(-SEARCH)..=(centre.1 + reach).min(SEARCH) {
            for sx in (centre.0 - reach).max(-SEARCH)..=(centre.0 + reach).min(SEARCH) {
                let c = cost(before, now, (w, h), (sx, sy), step);
                if c < best.1 {
                    best = ((sx, sy), c);
                }
            }
        }
        best
    };
    let (rough, _) = search((0, 0), SEARCH, SEARCH_STEP);
    let ((bx, by), c) = search(rough, 1, COARSE_STEP);
    if (bx, by) == (0, 0)
        || c >= BETTER_THAN_STILL * still
        || helped_share(before, now, (w, h), Some((bx, by))) < MIN_HELPED_SHARE
    {
        return Motion::default();
    }
    // Refine on a finer grid around the best whole-pixel motion.
    let fine = |s| cost(before, now, (w, h), s, 2);
    let centre = fine((bx, by));
    let dx = if bx.abs() < SEARCH {
        bx as f32 + sub_pixel(fine((bx - 1, by)), centre, fine((bx + 1, by)))
    } else {
        bx as f32
    };
    let dy = if by.abs() < SEARCH {
        by as f32 + sub_pixel(fine((bx, by - 1)), centre, fine((bx, by + 1)))
    } else {
        by as f32
    };
    Motion {
        dx: if dx.abs() < MIN_MOTION { 0.0 } else { dx },
        dy: if dy.abs() < MIN_MOTION { 0.0 } else { dy },
    }
}

/// Catmull-Rom weights for a sample `f` (0..1) of the way from tap 0 to tap 1, for
/// taps -1, 0, 1, 2.
fn weights(f: f32) -> [f32; 4] {
    let (f2, f3) = (f * f, f * f * f);
    [
        -0.5 * f3 + f2 - 0.5 * f,
        1.5 * f3 - 2.5 * f2 + 1.0,
        -1.5 * f3 + 2.0 * f2 + 0.5 * f,
        0.5 * f3 - 0.5 * f2,
    ]
}

/// Moves the picture by `motion`: `out(x, y) = src(x + dx, y + dy)` for `channels`
/// interleaved values per pixel, edges repeated. `rows` is scratch space.
pub fn shift(
    src: &[f32],
    (w, h): (usize, usize),
    channels: usize,
    motion: Motion,
    rows: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    let (ix, fx) = (motion.dx.floor() as isize, motion.dx - motion.dx.floor());
    let (iy, fy) = (motion.dy.floor() as isize, motion.dy - motion.dy.floor());
    let (kx, ky) = (weights(fx), weights(fy));
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    if fx == 0.0 && fy == 0.0 {
        // Whole pixels: a copy, exact.
        out.clear();
        out.resize(src.len(), 0.0);
        for y in 0..h {
            let sy = clamp(y as isize + iy, h);
            for x in 0..w {
                let (to, from) = (
                    (y * w + x) * channels,
                    (sy * w + clamp(x as isize + ix, w)) * channels,
                );
                out[to..to + channels].copy_from_slice(&src[from..from + channels]);
            }
        }
        return;
    }
    resample_pass(src, (w, h), channels, (ix, kx), (1, 0), rows);
    resample_pass(rows, (w, h), channels, (iy, ky), (0, 1), out);
}

/// One direction of [`shift`]: `out(p) = sum_t k[t] * src(p + (start + t - 1) * step)`,
/// with `step` (1, 0) along rows or (0, 1) along columns, edges repeated.
fn resample_pass(
    src: &[f32],
    (w, h): (usize, usize),
    channels: usize,
    (start, kernel): (isize, [f32; 4]),
    step: (usize, usize),
    out: &mut Vec<f32>,
) {
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    out.clear();
    out.resize(src.len(), 0.0);
    for y in 0..h {
        for x in 0..w {
            for c in 0..channels {
                let mut v = 0.0;
                for (t, k) in kernel.iter().enumerate() {
                    let d = start + t as isize - 1;
                    let (sx, sy) = (
                        clamp(x as isize + d * step.0 as isize, w),
                        clamp(y as isize + d * step.1 as isize, h),
                    );
                    v += k * src[(sy * w + sx) * channels + c];
                }
                out[(y * w + x) * channels + c] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured test image, shifted by (dx, dy) whole pixels.
    fn texture(w: usize, h: usize, dx: isize, dy: isize) -> Vec<f32> {
        let mut v = Vec::with_capacity(w * h);
        for y in 0..h as isize {
            for x in 0..w as isize {
                let (u, t) = ((x + dx) as f32, (y + dy) as f32);
                v.push(
                    128.0
                        + 60.0 * (u * 0.37).sin() * (t * 0.23).cos()
                        + 30.0 * ((u + 2.0 * t) * 0.11).sin(),
                );
            }
        }
        v
    }

    #[test]
    fn finds_a_pan_and_a_tilt_and_no_motion_on_a_still_image() {
        let (w, h) = (96, 64);
        let before = texture(w, h, 0, 0);
        assert!(estimate(&before, &before, (w, h)).is_still());
        let m = estimate(&before, &texture(w, h, 3, -2), (w, h));
        assert!(
            (m.dx - 3.0).abs() < 0.3 && (m.dy + 2.0).abs() < 0.3,
            "{m:?}"
        );
        let flat = vec![50.0; w * h];
        assert!(estimate(&flat, &flat, (w, h)).is_still());
        // A small patch moving over a still picture is not a pan.
        let mut crossed = before.clone();
        for y in 20..36 {
            for x in 30..46 {
                crossed[y * w + x] = 250.0;
            }
        }
        assert!(estimate(&before, &crossed, (w, h)).is_still());
    }

    #[test]
    fn whole_pixel_shifts_are_exact_and_sub_pixel_ones_interpolate() {
        let (w, h) = (16, 8);
        let src = texture(w, h, 0, 0);
        let (mut rows, mut out) = (Vec::new(), Vec::new());
        shift(
            &src,
            (w, h),
            1,
            Motion { dx: 2.0, dy: 1.0 },
            &mut rows,
            &mut out,
        );
        assert!((out[3 * w + 4] - src[4 * w + 6]).abs() < 1e-4);
        shift(
            &src,
            (w, h),
            1,
            Motion { dx: 0.5, dy: 0.0 },
            &mut rows,
            &mut out,
        );
        let mid = (src[3 * w + 4] + src[3 * w + 5]) / 2.0;
        assert!((out[3 * w + 4] - mid).abs() < 3.0);
    }
}

//! Bilinear resampling of packed RGB images with the semantics of Pillow's
//! `Image.resize(..., BILINEAR)`: a triangle filter widened by the scale factor when
//! shrinking (so downscaling averages, not skips), fixed-point weights, and the
//! horizontal pass before the vertical one. The reference implementation resizes with
//! Pillow, so matching it here keeps the element's output comparable pixel for pixel.
//!
//! Weight tables and the intermediate image are built once per size pair; `resize`
//! itself allocates nothing.

mod four_lanes;

const PRECISION_BITS: u32 = 32 - 8 - 2;
const CHANNELS: usize = 3;

/// Weights for one axis: for each output index, the first input index and its taps.
#[derive(Debug, Clone)]
struct Axis {
    first: Vec<usize>,
    taps: Vec<usize>,
    ksize: usize,
    weights: Vec<i32>,
}

impl Axis {
    fn new(in_size: usize, out_size: usize) -> Axis {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // bilinear support is 1.0
        let ksize = support.ceil() as usize * 2 + 1;
        let mut first = Vec::with_capacity(out_size);
        let mut taps = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            // Truncation toward zero, as the C cast in Pillow.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(n) {
                let t = ((x + xmin) as f64 - center + 0.5) * ss;
                let w = (1.0 - t.abs()).max(0.0);
                *kx = w;
                total += w;
            }
            for (x, kx) in k.iter().enumerate().take(n) {
                let w = if total != 0.0 { kx / total } else { 0.0 };
                let fixed = w * (1u32 << PRECISION_BITS) as f64;
                weights[xx * ksize + x] = if fixed < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            first.push(xmin);
            taps.push(n);
        }
        Axis {
            first,
            taps,
            ksize,
            weights,
        }
    }

    /// The same weights with exactly `ksize` taps per output, all inside the input (zero
    /// weights pad the short ones; zeros add nothing, so results stay exact). None when
    /// the input is narrower than the kernel.
    fn padded(&self, in_size: usize) -> Option<(Vec<usize>, Vec<i32>)> {
        if in_size < self.ksize {
            return None;
        }
        let mut first = Vec::with_capacity(self.first.len());
        let mut weights = vec![0i32; self.weights.len()];
        for (x, (&f, &taps)) in self.first.iter().zip(&self.taps).enumerate() {
            let start = f.min(in_size - self.ksize);
            let shift = f - start;
            let row = &mut weights[x * self.ksize..(x + 1) * self.ksize];
            row[shift..shift + taps]
                .copy_from_slice(&self.weights[x * self.ksize..x * self.ksize + taps]);
            first.push(start);
        }
        Some((first, weights))
    }

    fn span(&self) -> (usize, usize) {
        let lo = self.first.iter().copied().min().unwrap_or(0);
        let hi = self
            .first
            .iter()
            .zip(&self.taps)
            .map(|(f, t)| f + t)
            .max()
            .unwrap_or(0);
        (lo, hi)
    }
}

/// Accumulators start at one half, so the shift below rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Pillow accumulates in 32-bit ints too: the weights of one output sum to about
/// 2^22 and are never negative for this filter, so 255 * 2^22 + 2^21 cannot overflow.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes RGB images of one size to another.
#[derive(Debug, Clone)]
pub struct Resizer {
    src: (usize, usize),
    dst: (usize, usize),
    horizontal: Option<Axis>,
    /// `horizontal` with a fixed number of taps, for the unrolled row kernels.
    horizontal_padded: Option<(Vec<usize>, Vec<i32>)>,
    vertical: Option<Axis>,
    rows: (usize, usize),
    tmp: Vec<u8>,
    /// One output row of accumulators for the vertical pass.
    acc: Vec<i32>,
}

impl Resizer {
    /// A resizer from `src` (width, height) to `dst` (width, height).
    pub fn new(src: (usize, usize), dst: (usize, usize)) -> Resizer {
        let horizontal = (src.0 != dst.0).then(|| Axis::new(src.0, dst.0));
        let vertical = (src.1 != dst.1).then(|| Axis::new(src.1, dst.1));
        let horizontal_padded = horizontal.as_ref().and_then(|h| h.padded(src.0));
        let rows = vertical.as_ref().map(Axis::span).unwrap_or((0, src.1));
        let tmp = if horizontal.is_some() && vertical.is_some() {
            vec![0u8; (rows.1 - rows.0) * dst.0 * CHANNELS]
        } else {
            Vec::new()
        };
        let acc = if vertical.is_some() {
            vec![0; dst.0 * CHANNELS]
        } else {
            Vec::new()
        };
        Resizer {
            src,
            dst,
            horizontal,
            horizontal_padded,
            vertical,
            rows,
            tmp,
            acc,
        }
    }

    pub fn src(&self) -> (usize, usize) {
        self.src
    }

    pub fn dst(&self) -> (usize, usize) {
        self.dst
    }

    /// Resizes `src` (rows `src_stride` bytes apart) into `dst` (rows `dst_stride` apart).
    pub fn resize(&mut self, src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.resize_avx2(src, src_stride, dst, dst_stride) };
        }
        self.resize_passes(src, src_stride, dst, dst_stride)
    }

    /// The same passes built for AVX2, so the row-wise vertical loops vectorize eight
    /// lanes wide with a 32-bit multiply (x86-64's baseline SSE2 has none; aarch64's
    /// baseline NEON has one).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn resize_avx2(&mut self, src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
        self.resize_passes(src, src_stride, dst, dst_stride)
    }

    #[inline(always)]
    fn resize_passes(&mut self, src: &[u8], src_stride: usize, dst: &mut [u8], dst_stride: usize) {
        let (sw, sh) = self.src;
        let (dw, dh) = self.dst;
        match (&self.horizontal, &self.vertical) {
            (None, None) => {
                for y in 0..sh {
                    dst[y * dst_stride..y * dst_stride + sw * CHANNELS]
                        .copy_from_slice(&src[y * src_stride..y * src_stride + sw * CHANNELS]);
                }
            }
            (Some(h), None) => horizontal_pass(
                h,
                self.horizontal_padded.as_ref(),
                src,
                src_stride,
                0..sh,
                dst,
                dst_stride,
                dw,
            ),
            (None, Some(v)) => {
                vertical_pass(v, src, src_stride, 0, dst, dst_stride, &mut self.acc, dh)
            }
            (Some(h), Some(v)) => {
                let tmp_stride = dw * CHANNELS;
                horizontal_pass(
                    h,
                    self.horizontal_padded.as_ref(),
                    src,
                    src_stride,
                    self.rows.0..self.rows.1,
                    &mut self.tmp,
                    tmp_stride,
                    dw,
                );
                vertical_pass(
                    v,
                    &self.tmp,
                    tmp_stride,
                    self.rows.0,
                    dst,
                    dst_stride,
                    &mut self.acc,
                    dh,
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn horizontal_pass(
    axis: &Axis,
    padded: Option<&(Vec<usize>, Vec<i32>)>,
    src: &[u8],
    src_stride: usize,
    rows: std::ops::Range<usize>,
    dst: &mut [u8],
    dst_stride: usize,
    dw: usize,
) {
    let start = rows.start;
    for y in rows {
        let s = &src[y * src_stride..];
        let d = &mut dst[(y - start) * dst_stride..][..dw * CHANNELS];
        match (padded, axis.ksize) {
            (Some((first, w)), 3) => horizontal_row::<3>(first, w, s, d),
            (Some((first, w)), 5) => horizontal_row::<5>(first, w, s, d),
            (Some((first, w)), 7) => horizontal_row::<7>(first, w, s, d),
            (Some((first, w)), 9) => horizontal_row::<9>(first, w, s, d),
            _ => horizontal_row_any(axis, s, d),
        }
    }
}

/// One row with exactly `K` taps per output pixel, so the tap loop unrolls.
fn horizontal_row<const K: usize>(first: &[usize], weights: &[i32], s: &[u8], d: &mut [u8]) {
    if four_lanes::available() {
        // SAFETY: checked just above.
        return unsafe { four_lanes::row::<K>(first, weights, s, d) };
    }
    for ((out, &f), w) in d
        .chunks_exact_mut(CHANNELS)
        .zip(first)
        .zip(weights.chunks_exact(K))
    {
        weighted_pixel(&s[f * CHANNELS..][..K * CHANNELS], w, out);
    }
}

fn horizontal_row_any(axis: &Axis, s: &[u8], d: &mut [u8]) {
    for (x, out) in d.chunks_exact_mut(CHANNELS).enumerate() {
        let taps = axis.taps[x];
        let w = &axis.weights[x * axis.ksize..][..taps];
        weighted_pixel(&s[axis.first[x] * CHANNELS..][..taps * CHANNELS], w, out);
    }
}

/// One output pixel: the RGB `pixels` weighted by `w`, one weight per pixel.
#[inline(always)]
fn weighted_pixel(pixels: &[u8], w: &[i32], out: &mut [u8]) {
    let (mut r, mut g, mut b) = (HALF, HALF, HALF);
    for (p, &wi) in pixels.chunks_exact(CHANNELS).zip(w) {
        r += p[0] as i32 * wi;
        g += p[1] as i32 * wi;
        b += p[2] as i32 * wi;
    }
    out[0] = clip8(r);
    out[1] = clip8(g);
    out[2] = clip8(b);
}

/// `src` row 0 is input row `row_offset`. Each output row is summed row by row over the
/// taps, so the inner loop runs along contiguous memory (and vectorizes).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn vertical_pass(
    axis: &Axis,
    src: &[u8],
    src_stride: usize,
    row_offset: usize,
    dst: &mut [u8],
    dst_stride: usize,
    acc: &mut [i32],
    dh: usize,
) {
    let n = acc.len();
    for y in 0..dh {
        let first = axis.first[y] - row_offset;
        let w = &axis.weights[y * axis.ksize..][..axis.taps[y]];
        acc.fill(HALF);
        for (i, &wi) in w.iter().enumerate() {
            let row = &src[(first + i) * src_stride..][..n];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * wi;
            }
        }
        let d = &mut dst[y * dst_stride..][..n];
        for (o, &a) in d.iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
}

/// The smallest side, in pixels, the transfer network runs at. Its first 9x9
/// convolution reflect-pads 4 pixels, and after two stride-2 convolutions its 3x3
/// residual blocks reflect-pad 1 pixel of a side a quarter as long; reflect padding must
/// be narrower than the tensor it pads, so 8 is the smallest multiple of 4 that runs
/// (measured: 1920x40 frames run, 1920x28 ones, at a short side of 4, did not).
pub const MIN_INFERENCE_SIDE: usize = 8;

/// The inference size for a frame: the long side becomes `long_side`, the short side
/// keeps the aspect ratio, rounded to the nearest multiple of 4 and at least
/// [`MIN_INFERENCE_SIDE`] (so a frame wider than `long_side / 8 : 1` is squeezed a
/// little; the painting is scaled back to the frame's own shape). Returns (width, height).
pub fn inference_size(width: usize, height: usize, long_side: usize) -> (usize, usize) {
    let round4 = |x: f64| (((x / 4.0).round() as usize) * 4).max(MIN_INFERENCE_SIDE);
    if width >= height {
        (
            long_side,
            round4(height as f64 * long_side as f64 / width as f64),
        )
    } else {
        (
            round4(width as f64 * long_side as f64 / height as f64),
            long_side,
        )
    }
}

/// The centred square of a `width`x`height` image: (left, top, side).
pub fn centre_square(width: usize, height: usize) -> (usize, usize, usize) {
    let side = width.min(height);
    ((width - side) / 2, (height - side) / 2, side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_sizes_match_the_reference() {
        assert_eq!(inference_size(640, 480, 384), (384, 288));
        assert_eq!(inference_size(1280, 720, 384), (384, 216));
        assert_eq!(inference_size(384, 384, 384), (384, 384));
        assert_eq!(inference_size(480, 640, 384), (288, 384));
        assert_eq!(inference_size(17, 17, 384), (384, 384));
    }

    #[test]
    fn the_short_side_never_goes_below_what_the_network_takes() {
        // Wide frames: the reference would give a short side of 4, which the network's
        // reflect padding cannot take.
        assert_eq!(inference_size(16, 3840, 384), (MIN_INFERENCE_SIDE, 384));
        assert_eq!(inference_size(1920, 28, 384), (384, MIN_INFERENCE_SIDE));
        assert_eq!(inference_size(1280, 200, 32), (32, MIN_INFERENCE_SIDE));
        assert_eq!(inference_size(4096, 16, 32), (32, MIN_INFERENCE_SIDE));
        assert_eq!(inference_size(17, 17, 384), (384, 384));
    }

    #[test]
    fn unrolled_kernels_match_the_general_one() {
        for (sw, dw) in [
            (640, 384),
            (1280, 384),
            (384, 640),
            (641, 257),
            (16, 384),
            (7, 3),
            (5, 2),
        ] {
            let (sh, dh) = (5, 4);
            let src: Vec<u8> = (0..sw * sh * 3).map(|i| (i * 37 % 251) as u8).collect();
            let mut fast = Resizer::new((sw, sh), (dw, dh));
            let mut general = fast.clone();
            general.horizontal_padded = None;
            let (mut a, mut b) = (vec![0u8; dw * dh * 3], vec![0u8; dw * dh * 3]);
            fast.resize(&src, sw * 3, &mut a, dw * 3);
            general.resize(&src, sw * 3, &mut b, dw * 3);
            assert_eq!(a, b, "{sw} -> {dw}");
        }
    }

    #[test]
    fn identity_copies_and_constant_stays_constant() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        let mut dst = vec![0u8; src.len()];
        Resizer::new((4, 3), (4, 3)).resize(&src, 12, &mut dst, 12);
        assert_eq!(src, dst);

        let flat = vec![77u8; 33 * 17 * 3];
        for dst_size in [(10, 5), (64, 40), (33, 40), (5, 17)] {
            let mut out = vec![0u8; dst_size.0 * dst_size.1 * 3];
            Resizer::new((33, 17), dst_size).resize(&flat, 33 * 3, &mut out, dst_size.0 * 3);
            assert!(out.iter().all(|&v| v == 77), "{dst_size:?}");
        }
    }

    #[test]
    fn halving_averages_neighbours() {
        // 4x1 -> 2x1 with Pillow's bilinear: support 2, weights (1/8, 3/8, 3/8, 1/8)
        // around centres 1.0 and 3.0, clipped at the border.
        let src = [0u8, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255];
        let mut out = [0u8; 6];
        Resizer::new((4, 1), (2, 1)).resize(&src, 12, &mut out, 6);
        // x=0: taps 0..3 at t=(-0.5,0,..): weights 0.75,0.75,0.25 over 0,1,2 -> 300/ ...
        let w = |ts: &[f64], vs: &[f64]| {
            let ws: Vec<f64> = ts.iter().map(|t: &f64| (1.0 - t.abs()).max(0.0)).collect();
            let s: f64 = ws.iter().sum();
            (ws.iter().zip(vs).map(|(a, b)| a * b).sum::<f64>() / s).round() as u8
        };
        assert_eq!(out[0], w(&[-0.25, 0.25, 0.75], &[0.0, 100.0, 200.0]));
        assert_eq!(out[3], w(&[-0.75, -0.25, 0.25], &[100.0, 200.0, 255.0]));
    }
}

//! Deinterlacing of packed RGB frames before the network sees them.
//!
//! An interlaced frame holds two fields taken at different instants, on alternate
//! rows. Anything that moved between them shows as a comb, and the network paints the
//! comb as texture. The element keeps the field that comes first in time and fills the
//! other field's rows by interpolating between the kept rows above and below ("bob").
//! This halves the vertical resolution, which costs nothing here: the network sees at
//! most `inference-size` rows (384 by default), fewer than one field of 576i or 1080i.

use gst_video::prelude::*;

/// Which field of an interlaced frame is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Rows 0, 2, 4, ...
    Top,
    /// Rows 1, 3, 5, ...
    Bottom,
}

/// The field to keep for a frame of `info`'s caps with `buffer`'s flags: the one that
/// comes first in time, or None when the frame is progressive (a progressive frame of
/// a `mixed` stream, or a progressive stream). The field order comes from the caps
/// (`field-order`), else from the buffer's TFF flag, else top first, the most common.
pub fn field_to_keep(info: &gst_video::VideoInfo, buffer: &gst::BufferRef) -> Option<Field> {
    let flags = buffer.video_flags();
    match info.interlace_mode() {
        gst_video::VideoInterlaceMode::Progressive => return None,
        gst_video::VideoInterlaceMode::Mixed
            if !flags.contains(gst_video::VideoBufferFlags::INTERLACED) =>
        {
            return None
        }
        _ => {}
    }
    Some(match info.field_order() {
        gst_video::VideoFieldOrder::TopFieldFirst => Field::Top,
        gst_video::VideoFieldOrder::BottomFieldFirst => Field::Bottom,
        _ if flags.contains(gst_video::VideoBufferFlags::INTERLACED)
            && !flags.contains(gst_video::VideoBufferFlags::TFF) =>
        {
            Field::Bottom
        }
        _ => Field::Top,
    })
}

/// Replaces the rows of the field that is not `keep` in a packed RGB frame
/// (`height` rows of `3 * width` bytes, `stride` bytes apart) by the mean of the kept
/// rows above and below, or a copy of the one kept neighbour at the top or bottom edge.
/// A frame of one row has nothing to fill.
pub fn deinterlace_rgb(data: &mut [u8], stride: usize, width: usize, height: usize, keep: Field) {
    let row_len = width * 3;
    let first_filled = match keep {
        Field::Top => 1,
        Field::Bottom => 0,
    };
    for y in (first_filled..height).step_by(2) {
        let above = y.checked_sub(1);
        let below = (y + 1 < height).then_some(y + 1);
        let (a, b) = match (above, below) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, a),
            (None, Some(b)) => (b, b),
            (None, None) => continue,
        };
        for x in 0..row_len {
            let mean = (data[a * stride + x] as u16 + data[b * stride + x] as u16).div_ceil(2);
            data[y * stride + x] = mean as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame whose fields differ completely: top rows 200, bottom rows 10.
    fn combed(width: usize, height: usize, stride: usize) -> Vec<u8> {
        let mut data = vec![0u8; stride * height];
        for y in 0..height {
            let v = if y % 2 == 0 { 200 } else { 10 };
            data[y * stride..][..width * 3].fill(v);
        }
        data
    }

    /// The largest difference between neighbouring rows: a comb shows as a big one.
    fn comb(data: &[u8], stride: usize, width: usize, height: usize) -> u8 {
        (1..height)
            .flat_map(|y| (0..width * 3).map(move |x| (y, x)))
            .map(|(y, x)| data[y * stride + x].abs_diff(data[(y - 1) * stride + x]))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn keeping_a_field_removes_the_comb() {
        for (width, height) in [(4, 6), (5, 7), (33, 17), (1, 2)] {
            let stride = width * 3 + 5;
            for (keep, value) in [(Field::Top, 200), (Field::Bottom, 10)] {
                let mut data = combed(width, height, stride);
                deinterlace_rgb(&mut data, stride, width, height, keep);
                assert_eq!(comb(&data, stride, width, height), 0, "{width}x{height}");
                for y in 0..height {
                    assert!(
                        data[y * stride..][..width * 3].iter().all(|&v| v == value),
                        "{width}x{height} {keep:?} row {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_kept_field_is_untouched_and_the_other_is_interpolated() {
        let (width, height, stride) = (2, 5, 6);
        // Kept (top) rows 0, 2, 4 hold a ramp; the bottom rows hold noise.
        let rows = [0u8, 99, 100, 7, 201];
        let mut data: Vec<u8> = rows.iter().flat_map(|&v| [v; 6]).collect();
        deinterlace_rgb(&mut data, stride, width, height, Field::Top);
        let got: Vec<u8> = (0..height).map(|y| data[y * stride]).collect();
        assert_eq!(got, [0, 50, 100, 151, 201]);
    }

    #[test]
    fn the_padding_between_rows_is_left_alone() {
        let (width, height, stride) = (2, 4, 9);
        let mut data = combed(width, height, stride);
        for y in 0..height {
            data[y * stride + 6..][..3].fill(77);
        }
        deinterlace_rgb(&mut data, stride, width, height, Field::Top);
        for y in 0..height {
            assert_eq!(&data[y * stride + 6..][..3], &[77, 77, 77]);
        }
    }

    #[test]
    fn the_field_order_comes_from_the_caps_then_the_buffer() {
        gst::init().unwrap();
        let info = |mode, order| {
            gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 48)
                .interlace_mode(mode)
                .field_order(order)
                .build()
                .unwrap()
        };
        use gst_video::VideoBufferFlags as F;
        use gst_video::VideoFieldOrder as O;
        use gst_video::VideoInterlaceMode as M;
        let buffer = |flags: F| {
            let mut b = gst::Buffer::new();
            b.get_mut().unwrap().set_video_flags(flags);
            b
        };
        let cases = [
            (M::Progressive, O::Unknown, F::empty(), None),
            (M::Interleaved, O::Unknown, F::empty(), Some(Field::Top)),
            (
                M::Interleaved,
                O::BottomFieldFirst,
                F::TFF,
                Some(Field::Bottom),
            ),
            (
                M::Interleaved,
                O::TopFieldFirst,
                F::INTERLACED,
                Some(Field::Top),
            ),
            (
                M::Interleaved,
                O::Unknown,
                F::INTERLACED,
                Some(Field::Bottom),
            ),
            (
                M::Interleaved,
                O::Unknown,
                F::INTERLACED | F::TFF,
                Some(Field::Top),
            ),
            (M::Mixed, O::Unknown, F::empty(), None),
            (M::Mixed, O::Unknown, F::TFF, None),
            (
                M::Mixed,
                O::Unknown,
                F::INTERLACED | F::TFF,
                Some(Field::Top),
            ),
            (M::Mixed, O::Unknown, F::INTERLACED, Some(Field::Bottom)),
        ];
        for (mode, order, flags, want) in cases {
            assert_eq!(
                field_to_keep(&info(mode, order), &buffer(flags)),
                want,
                "{mode:?} {order:?} {flags:?}"
            );
        }
    }
}

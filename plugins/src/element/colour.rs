//! Colour conversion between the negotiated format and the packed RGB the network
//! takes: GStreamer's converter, set up once per caps, with its RGB scratch frame.

use std::sync::Arc;

/// Why a frame could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ColourError {
    #[error("converter to RGB: {0}")]
    ToRgb(gst::glib::BoolError),
    #[error("converter from RGB: {0}")]
    FromRgb(gst::glib::BoolError),
    #[error("cannot map the frame")]
    Map,
    #[error("the RGB frame for {width}x{height}: {reason}")]
    Scratch {
        width: u32,
        height: u32,
        reason: String,
    },
}

/// Converts frames of one caps to packed RGB and back. An interlaced input is
/// converted field by field (its chroma belongs to the field's rows) into an RGB frame
/// that is still interlaced; the way back is from a progressive RGB frame into the
/// output caps, which are progressive (see [`super::deinterlace`]).
pub struct RgbConversion {
    /// The input caps this conversion was made for (compared by pointer).
    pub info: Arc<gst_video::VideoInfo>,
    out_info: Arc<gst_video::VideoInfo>,
    to_rgb: gst_video::VideoConverter,
    from_rgb: gst_video::VideoConverter,
    rgb_in_info: gst_video::VideoInfo,
    rgb_out_info: gst_video::VideoInfo,
    rgb: gst::Buffer,
}

/// The packed RGB frame of `info`'s size, rate and interlacing.
fn rgb_like(info: &gst_video::VideoInfo) -> Result<gst_video::VideoInfo, gst::glib::BoolError> {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, info.width(), info.height())
        .fps(info.fps())
        .par(info.par())
        .interlace_mode(info.interlace_mode())
        .field_order(info.field_order())
        .build()
}

impl RgbConversion {
    /// For frames that come in as `info` and go out as `out_info` (the same format and
    /// size, progressive).
    pub fn new(
        info: &Arc<gst_video::VideoInfo>,
        out_info: &Arc<gst_video::VideoInfo>,
    ) -> Result<RgbConversion, ColourError> {
        let scratch = |reason: String| ColourError::Scratch {
            width: info.width(),
            height: info.height(),
            reason,
        };
        let rgb_in_info = rgb_like(info).map_err(|e| scratch(e.to_string()))?;
        let rgb_out_info = rgb_like(out_info).map_err(|e| scratch(e.to_string()))?;
        let to_rgb =
            gst_video::VideoConverter::new(info, &rgb_in_info, None).map_err(ColourError::ToRgb)?;
        let from_rgb = gst_video::VideoConverter::new(&rgb_out_info, out_info, None)
            .map_err(ColourError::FromRgb)?;
        let rgb = gst::Buffer::with_size(rgb_in_info.size()).map_err(|e| scratch(e.to_string()))?;
        Ok(RgbConversion {
            info: info.clone(),
            out_info: out_info.clone(),
            to_rgb,
            from_rgb,
            rgb_in_info,
            rgb_out_info,
            rgb,
        })
    }

    /// Converts `buffer` (a frame of the input caps) to RGB, runs `f` on the RGB frame,
    /// and converts the result back into `buffer` as a frame of the output caps.
    pub fn round_trip<R, E: From<ColourError>>(
        &mut self,
        buffer: &mut gst::BufferRef,
        f: impl FnOnce(&mut gst_video::VideoFrameRef<&mut gst::BufferRef>) -> Result<R, E>,
    ) -> Result<R, E> {
        let (width, height) = (self.rgb_in_info.width(), self.rgb_in_info.height());
        let scratch = |reason: &str| ColourError::Scratch {
            width,
            height,
            reason: reason.to_string(),
        };
        let rgb = self
            .rgb
            .get_mut()
            .ok_or_else(|| scratch("the scratch buffer is shared"))?;
        let mut rgb_frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(rgb, &self.rgb_in_info)
                .map_err(|_| scratch("cannot map it"))?;
        {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &self.info)
                .map_err(|_| ColourError::Map)?;
            self.to_rgb.frame_ref(&frame, &mut rgb_frame);
        }
        let r = f(&mut rgb_frame)?;
        drop(rgb_frame);
        // f made the RGB frame progressive; the converter back expects it so.
        let rgb = self
            .rgb
            .get_mut()
            .ok_or_else(|| scratch("the scratch buffer is shared"))?;
        let rgb_frame = gst_video::VideoFrameRef::from_buffer_ref_readable(rgb, &self.rgb_out_info)
            .map_err(|_| scratch("cannot map it"))?;
        let mut out = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &self.out_info)
            .map_err(|_| ColourError::Map)?;
        self.from_rgb.frame_ref(&rgb_frame, &mut out);
        Ok(r)
    }
}

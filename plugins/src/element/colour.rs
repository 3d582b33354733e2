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
    #[error("the RGB frame for {width}x{height}: {reason}")]
    Scratch {
        width: u32,
        height: u32,
        reason: String,
    },
}

/// Converts frames of one caps to packed RGB and back.
pub struct RgbConversion {
    /// The caps this conversion was made for (compared by pointer).
    pub info: Arc<gst_video::VideoInfo>,
    to_rgb: gst_video::VideoConverter,
    from_rgb: gst_video::VideoConverter,
    rgb_info: gst_video::VideoInfo,
    rgb: gst::Buffer,
}

impl RgbConversion {
    pub fn new(info: &Arc<gst_video::VideoInfo>) -> Result<RgbConversion, ColourError> {
        let scratch = |reason: String| ColourError::Scratch {
            width: info.width(),
            height: info.height(),
            reason,
        };
        let rgb_info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, info.width(), info.height())
                .fps(info.fps())
                .par(info.par())
                .build()
                .map_err(|e| scratch(e.to_string()))?;
        let to_rgb =
            gst_video::VideoConverter::new(info, &rgb_info, None).map_err(ColourError::ToRgb)?;
        let from_rgb =
            gst_video::VideoConverter::new(&rgb_info, info, None).map_err(ColourError::FromRgb)?;
        let rgb = gst::Buffer::with_size(rgb_info.size()).map_err(|e| scratch(e.to_string()))?;
        Ok(RgbConversion {
            info: info.clone(),
            to_rgb,
            from_rgb,
            rgb_info,
            rgb,
        })
    }

    /// Converts `frame` to RGB, runs `f` on the RGB frame, and converts the result back
    /// into `frame`.
    pub fn round_trip<R, E: From<ColourError>>(
        &mut self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        f: impl FnOnce(&mut gst_video::VideoFrameRef<&mut gst::BufferRef>) -> Result<R, E>,
    ) -> Result<R, E> {
        let (width, height) = (self.rgb_info.width(), self.rgb_info.height());
        let scratch = |reason: &str| ColourError::Scratch {
            width,
            height,
            reason: reason.to_string(),
        };
        let rgb = self
            .rgb
            .get_mut()
            .ok_or_else(|| scratch("the scratch buffer is shared"))?;
        let mut rgb_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(rgb, &self.rgb_info)
            .map_err(|_| scratch("cannot map it"))?;
        self.to_rgb.frame_ref(frame, &mut rgb_frame);
        let r = f(&mut rgb_frame)?;
        self.from_rgb.frame_ref(&rgb_frame, frame);
        Ok(r)
    }
}

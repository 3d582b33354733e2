//! Snapshots: the last stylized frame written as a PNG file. Written to a temporary file
//! and renamed, so a reader never sees half a picture.

use std::path::Path;

/// Why a snapshot could not be written. The text carries any cause, so none is also the
/// `source()` (a chain would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the frame has no {0}")]
    Incomplete(&'static str),
    #[error("cannot convert the frame to RGB: {0}")]
    Convert(String),
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot encode the PNG: {0}")]
    Encode(image::ImageError),
}

/// Converts a sample to packed RGB and writes it to `path` as PNG.
pub fn write_png(sample: &gst::Sample, path: &Path) -> Result<(), SnapshotError> {
    let convert = |e: &dyn std::fmt::Display| SnapshotError::Convert(e.to_string());
    let caps = sample.caps().ok_or(SnapshotError::Incomplete("caps"))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| convert(&e))?;
    let buffer = sample.buffer().ok_or(SnapshotError::Incomplete("data"))?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|e| convert(&e))?;
    let (w, h) = (info.width(), info.height());
    let rgb_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| convert(&e))?;
    let mut rgb = gst::Buffer::with_size(rgb_info.size()).map_err(|e| convert(&e))?;
    {
        let rgb_ref = rgb
            .get_mut()
            .ok_or(SnapshotError::Incomplete("writable buffer"))?;
        let mut out = gst_video::VideoFrameRef::from_buffer_ref_writable(rgb_ref, &rgb_info)
            .map_err(|e| convert(&e))?;
        let converter =
            gst_video::VideoConverter::new(&info, &rgb_info, None).map_err(|e| convert(&e))?;
        converter.frame_ref(&frame, &mut out);
    }
    let map = rgb.map_readable().map_err(|e| convert(&e))?;
    let stride = rgb_info.stride()[0] as usize;
    let mut packed = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        packed.extend_from_slice(&map[y * stride..y * stride + w as usize * 3]);
    }
    let write = |cause| SnapshotError::Write {
        path: path.to_path_buf(),
        cause,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write)?;
    // As for recordings, the process umask decides who may read it (the service's
    // UMask=0027: the group stylize); a temporary file alone would be 0600.
    let tmp = tempfile::Builder::new()
        .prefix(".snapshot.")
        .suffix(".png")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(write)?;
    image::save_buffer_with_format(
        tmp.path(),
        &packed,
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(SnapshotError::Encode)?;
    tmp.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

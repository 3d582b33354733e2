//! Which mode to ask a camera for, and how to open it. Left to itself a V4L2 camera
//! often picks its largest frame at a low rate, and most USB webcams give 720p and
//! 1080p at 30 fps only as MJPEG. So the pipeline task reads the modes the device
//! offers (its caps in READY state), [`choose`]s one for the configured size and rate
//! (a pure function over caps, tested with the caps of real webcams), asks the camera
//! for exactly that mode, and decodes MJPEG with the board's hardware decoder when
//! there is one. libcamera (Raspberry Pi CSI cameras) is opened through `libcamerasrc`.
//! Only the pipeline task calls this module.

use std::fmt;
use std::path::Path;

use gst::prelude::*;

/// The Debian package that has `libcamerasrc`.
pub const LIBCAMERA_PACKAGE: &str = "gstreamer1.0-libcamera";

/// Why a camera could not be opened; the fault shown over D-Bus. The text carries the
/// cause, so no variant also gives it as `source()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    #[error("cannot open camera {device}: {cause}")]
    Open { device: String, cause: String },
    /// The element is not installed: retrying cannot help, the package must be.
    #[error("{element} is not installed: install the Debian package {package}")]
    NotInstalled {
        element: &'static str,
        package: &'static str,
    },
}

/// How the camera sends its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// `video/x-raw` in this format (YUY2, NV12, ...).
    Raw(String),
    /// `image/jpeg`, decoded after the source.
    Mjpeg,
}

/// One mode a camera offers: encoding, size and frame rate (a fraction, as V4L2 gives it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
    pub framerate: (i32, i32),
}

/// The configured size and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
}

/// How the chosen mode relates to the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    ExactRaw,
    ExactMjpeg,
    Nearest,
}

/// `1280x720 MJPEG 30/1`, `640x480 YUY2 30/1`: the `CameraMode` property.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoding = match &self.encoding {
            Encoding::Raw(format) => format.as_str(),
            Encoding::Mjpeg => "MJPEG",
        };
        write!(
            f,
            "{}x{} {encoding} {}/{}",
            self.width, self.height, self.framerate.0, self.framerate.1
        )
    }
}

impl Mode {
    /// The caps that ask the camera for this mode, in `gst-launch` syntax.
    pub fn caps_string(&self) -> String {
        let (w, h, (n, d)) = (self.width, self.height, self.framerate);
        match &self.encoding {
            Encoding::Raw(format) => {
                format!("video/x-raw,format={format},width={w},height={h},framerate={n}/{d}")
            }
            Encoding::Mjpeg => format!("image/jpeg,width={w},height={h},framerate={n}/{d}"),
        }
    }

    /// The mode of fixed caps, as a source pad negotiated them; None for caps that are
    /// not video or not fixed.
    pub fn of_fixed_caps(caps: &gst::CapsRef) -> Option<Mode> {
        let s = caps.structure(0)?;
        let encoding = match s.name().as_str() {
            "image/jpeg" => Encoding::Mjpeg,
            "video/x-raw" => Encoding::Raw(s.get::<String>("format").ok()?),
            _ => return None,
        };
        let rate = s.get::<gst::Fraction>("framerate").ok()?;
        Some(Mode {
            encoding,
            width: u32::try_from(s.get::<i32>("width").ok()?).ok()?,
            height: u32::try_from(s.get::<i32>("height").ok()?).ok()?,
            framerate: (rate.numer(), rate.denom()),
        })
    }

    fn fps(&self) -> f64 {
        self.framerate.0 as f64 / self.framerate.1 as f64
    }

    fn area(&self) -> i64 {
        self.width as i64 * self.height as i64
    }

    fn is_exact(&self, want: Want) -> bool {
        // 30000/1001 counts as 30: V4L2 drivers give either for the same mode.
        self.width == want.width
            && self.height == want.height
            && (self.fps() - want.framerate as f64).abs() <= want.framerate as f64 * 0.01
    }
}

/// Every mode in `caps` (as `v4l2src` reports them for its src pad in READY state),
/// raw and MJPEG, in the device's order. A range (a stepwise size or a continuous rate)
/// gives the configured value clamped into it, and its ends. Other encodings (H.264,
/// Bayer) and variable rates (0/1) are left out.
pub fn modes(caps: &gst::CapsRef, want: Want) -> Vec<Mode> {
    let mut out: Vec<Mode> = Vec::new();
    for s in caps.iter() {
        let encodings = match s.name().as_str() {
            "image/jpeg" => vec![Encoding::Mjpeg],
            "video/x-raw" => strings(s.value("format").ok())
                .into_iter()
                .map(Encoding::Raw)
                .collect(),
            _ => continue,
        };
        let widths = ints(s.value("width").ok(), want.width);
        let heights = ints(s.value("height").ok(), want.height);
        let rates = fractions(s.value("framerate").ok(), want.framerate);
        for encoding in &encodings {
            for &width in &widths {
                for &height in &heights {
                    for &framerate in &rates {
                        let mode = Mode {
                            encoding: encoding.clone(),
                            width,
                            height,
                            framerate,
                        };
                        if !out.contains(&mode) {
                            out.push(mode);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Chooses the mode to ask for: an exact raw mode, else an exact MJPEG mode, else the
/// nearest mode. "Nearest" ranks the modes by, in turn:
/// 1. at least the configured size and rate (nothing upscaled, no frame repeated),
///    then at least the rate, then at least the size, then the rest: smooth motion
///    comes first because the network paints at its inference size (384 by default),
///    so a smaller camera frame costs little, while a low rate shows as judder;
/// 2. the smallest difference in area from the configured size (the least to decode
///    and scale; among larger modes that is the smallest, among smaller the largest);
/// 3. the smallest difference in rate;
/// 4. raw before MJPEG (no decoding, no JPEG artefacts), then the device's order.
///
/// None when the caps offer no raw or MJPEG mode.
pub fn choose(caps: &gst::CapsRef, want: Want) -> Option<(Mode, Fit)> {
    let modes = modes(caps, want);
    let exact = |raw: bool| {
        modes
            .iter()
            .find(|m| matches!(m.encoding, Encoding::Raw(_)) == raw && m.is_exact(want))
    };
    if let Some(m) = exact(true) {
        return Some((m.clone(), Fit::ExactRaw));
    }
    if let Some(m) = exact(false) {
        return Some((m.clone(), Fit::ExactMjpeg));
    }
    let want_area = want.width as i64 * want.height as i64;
    let rank = |m: &Mode| {
        let big = m.width >= want.width && m.height >= want.height;
        let fast = m.fps() >= want.framerate as f64 * 0.99;
        let tier = match (big, fast) {
            (true, true) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (false, false) => 3,
        };
        let mjpeg = matches!(m.encoding, Encoding::Mjpeg);
        (
            tier,
            (m.area() - want_area).abs(),
            (m.fps() - want.framerate as f64).abs(),
            mjpeg,
        )
    };
    modes
        .iter()
        .min_by(|a, b| {
            let (a, b) = (rank(a), rank(b));
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(&b.3))
        })
        .map(|m| (m.clone(), Fit::Nearest))
}

/// The JPEG decoder to use among the installed ones (`names`): a V4L2 one (the board's
/// hardware decoder, `v4l2jpegdec` or a per-device `v4l2videoNjpegdec`), else
/// `jpegdec`, else any other.
pub fn choose_jpeg_decoder(names: &[String]) -> Option<String> {
    names
        .iter()
        .find(|n| n.starts_with("v4l2"))
        .or_else(|| names.iter().find(|n| n.as_str() == "jpegdec"))
        .or_else(|| names.first())
        .cloned()
}

/// The installed decoders that take `image/jpeg`, sorted by name.
pub fn jpeg_decoders() -> Vec<String> {
    let jpeg = gst::Caps::new_empty_simple("image/jpeg");
    let mut names: Vec<String> =
        gst::ElementFactory::factories_with_type(gst::ElementFactoryType::DECODER, gst::Rank::NONE)
            .into_iter()
            .filter(|f| f.can_sink_any_caps(&jpeg))
            .map(|f| f.name().to_string())
            .collect();
    names.sort();
    names
}

/// The caps a V4L2 device offers, read by opening it to READY.
pub fn query_v4l2(device: &Path) -> Result<gst::Caps, CameraError> {
    let open_error = |cause: String| CameraError::Open {
        device: device.display().to_string(),
        cause,
    };
    let src = gst::ElementFactory::make("v4l2src")
        .property("device", device.to_string_lossy().to_string())
        .build()
        .map_err(|_| CameraError::NotInstalled {
            element: "v4l2src",
            package: "gstreamer1.0-plugins-good",
        })?;
    // In a pipeline, so that the reason for a failed open arrives on a bus.
    let pipeline = gst::Pipeline::new();
    pipeline
        .add(&src)
        .map_err(|e| open_error(e.message.to_string()))?;
    let opened = pipeline.set_state(gst::State::Ready);
    let result = match opened {
        Ok(_) => src
            .static_pad("src")
            .map(|pad| pad.query_caps(None))
            .ok_or_else(|| open_error("v4l2src has no src pad".into())),
        Err(_) => {
            let cause = pipeline
                .bus()
                .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|msg| match msg.view() {
                    gst::MessageView::Error(e) => Some(e.error().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "the device does not open".into());
            Err(open_error(cause))
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The `gst-launch` source for a V4L2 camera, ending in raw video of any size: the
/// device at the chosen mode and the JPEG decoder for MJPEG. The chosen mode is logged.
/// A device whose caps offer no raw or MJPEG mode is left to `decodebin`.
pub fn v4l2_source(device: &Path, want: Want) -> Result<String, CameraError> {
    let caps = query_v4l2(device)?;
    let src = format!("v4l2src name=camera device=\"{}\"", device.display());
    let Some((mode, fit)) = choose(&caps, want) else {
        tracing::warn!(device = %device.display(), %caps,
            "the camera offers no raw or MJPEG mode; letting decodebin choose");
        return Ok(format!("{src} ! decodebin"));
    };
    let wanted = format!("{}x{} {}/1", want.width, want.height, want.framerate);
    match fit {
        Fit::ExactRaw | Fit::ExactMjpeg => {
            tracing::info!(device = %device.display(), %mode, "camera mode")
        }
        Fit::Nearest => tracing::warn!(device = %device.display(), %mode, %wanted,
            "the camera has no mode of the configured size and rate; using the nearest"),
    }
    Ok(match mode.encoding {
        Encoding::Raw(_) => format!("{src} ! {}", mode.caps_string()),
        Encoding::Mjpeg => {
            let decoder =
                choose_jpeg_decoder(&jpeg_decoders()).ok_or(CameraError::NotInstalled {
                    element: "jpegdec",
                    package: "gstreamer1.0-plugins-good",
                })?;
            tracing::info!(%decoder, "decoding the camera's MJPEG");
            format!("{src} ! {} ! {decoder}", mode.caps_string())
        }
    })
}

/// The `gst-launch` source for a libcamera camera (`None`: the first one). libcamera
/// scales in the ISP, so the configured size and rate are asked for first, and
/// whatever the camera can give is accepted after them.
pub fn libcamera_source(name: Option<&str>, want: Want) -> Result<String, CameraError> {
    if gst::ElementFactory::find("libcamerasrc").is_none() {
        return Err(CameraError::NotInstalled {
            element: "libcamerasrc",
            package: LIBCAMERA_PACKAGE,
        });
    }
    let camera = name
        .map(|n| format!(" camera-name=\"{n}\""))
        .unwrap_or_default();
    let (w, h, r) = (want.width, want.height, want.framerate);
    Ok(format!(
        "libcamerasrc name=camera{camera} ! \
         video/x-raw,width={w},height={h},framerate={r}/1;video/x-raw,width={w},height={h};video/x-raw"
    ))
}

/// The mode a running source negotiated, from its first src pad's caps.
pub fn negotiated(camera: &gst::Element) -> Option<Mode> {
    camera
        .src_pads()
        .iter()
        .find_map(|pad| pad.current_caps())
        .and_then(|caps| Mode::of_fixed_caps(&caps))
}

fn strings(value: Option<&gst::glib::SendValue>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    if let Ok(s) = value.get::<String>() {
        return vec![s];
    }
    if let Ok(list) = value.get::<gst::List>() {
        return list.iter().filter_map(|v| v.get::<String>().ok()).collect();
    }
    Vec::new()
}

/// A size field's candidate values: the value, the list, or for a range the wanted
/// value clamped into it (on its step) and its ends.
fn ints(value: Option<&gst::glib::SendValue>, want: u32) -> Vec<u32> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut out: Vec<i32> = Vec::new();
    if let Ok(v) = value.get::<i32>() {
        out.push(v);
    } else if let Ok(range) = value.get::<gst::IntRange<i32>>() {
        let (lo, hi, step) = (range.min(), range.max(), range.step().max(1));
        let clamped = (want.min(i32::MAX as u32) as i32).clamp(lo, hi);
        let below = lo + (clamped - lo) / step * step;
        let above = if below < clamped && below + step <= hi {
            below + step
        } else {
            below
        };
        out.extend([below, above, lo, hi]);
    } else if let Ok(list) = value.get::<gst::List>() {
        out.extend(list.iter().filter_map(|v| v.get::<i32>().ok()));
    }
    let mut unique: Vec<u32> = Vec::new();
    for v in out.into_iter().filter_map(|v| u32::try_from(v).ok()) {
        if v > 0 && !unique.contains(&v) {
            unique.push(v);
        }
    }
    unique
}

/// A rate field's candidate fractions, as [`ints`] does for sizes.
fn fractions(value: Option<&gst::glib::SendValue>, want: u32) -> Vec<(i32, i32)> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut out: Vec<gst::Fraction> = Vec::new();
    if let Ok(f) = value.get::<gst::Fraction>() {
        out.push(f);
    } else if let Ok(range) = value.get::<gst::FractionRange>() {
        let (lo, hi) = (range.min(), range.max());
        let want = gst::Fraction::new(want.min(i32::MAX as u32) as i32, 1);
        let clamped = if want < lo {
            lo
        } else if want > hi {
            hi
        } else {
            want
        };
        out.extend([clamped, lo, hi]);
    } else if let Ok(list) = value.get::<gst::List>() {
        out.extend(list.iter().filter_map(|v| v.get::<gst::Fraction>().ok()));
    }
    let mut unique: Vec<(i32, i32)> = Vec::new();
    for f in out {
        let f = (f.numer(), f.denom());
        if f.0 > 0 && f.1 > 0 && !unique.contains(&f) {
            unique.push(f);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn caps(text: &str) -> gst::Caps {
        gst::init().expect("GStreamer initialises");
        gst::Caps::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn want(width: u32, height: u32, framerate: u32) -> Want {
        Want {
            width,
            height,
            framerate,
        }
    }

    fn chosen(caps: &gst::Caps, w: Want) -> (String, Fit) {
        let (mode, fit) = choose(caps, w).expect("a mode");
        (mode.to_string(), fit)
    }

    /// A Logitech C920 as v4l2src reports it (trimmed to the usual sizes): YUY2 up to
    /// 1920x1080 but 30 fps only up to 640x480, MJPEG up to 1920x1080 at 30.
    const C920: &str = "\
        video/x-raw, format=(string)YUY2, width=(int)1920, height=(int)1080, framerate=(fraction){ 5/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)1280, height=(int)720, framerate=(fraction){ 10/1, 15/2, 5/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)960, height=(int)720, framerate=(fraction){ 15/1, 10/1, 15/2, 5/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)800, height=(int)600, framerate=(fraction){ 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        video/x-raw, format=(string)YUY2, width=(int)320, height=(int)240, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        image/jpeg, width=(int)1920, height=(int)1080, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        image/jpeg, width=(int)800, height=(int)600, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }; \
        image/jpeg, width=(int)640, height=(int)480, framerate=(fraction){ 30/1, 24/1, 20/1, 15/1, 10/1, 15/2, 5/1 }";

    /// A cheap 720p webcam: MJPEG 1280x720 and 640x480 at 30, YUY2 at 640x480 30 and
    /// 1280x720 10, as lsusb/v4l2-ctl show for many UVC "HD webcams".
    const HD_WEBCAM: &str = "\
        image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction)30/1; \
        image/jpeg, width=(int)640, height=(int)480, framerate=(fraction)30/1; \
        video/x-raw, format=(string)YUY2, width=(int)1280, height=(int)720, framerate=(fraction)10/1; \
        video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=(fraction)30/1; \
        video/x-raw, format=(string)YUY2, width=(int)320, height=(int)240, framerate=(fraction)30/1";

    /// A Raspberry Pi-style V4L2 device with stepwise sizes and continuous rates, in two
    /// raw formats.
    const STEPWISE: &str = "\
        video/x-raw, format=(string){ I420, NV12 }, width=(int)[ 32, 2592, 2 ], height=(int)[ 32, 1944, 2 ], framerate=(fraction)[ 1/1, 90/1 ]; \
        image/jpeg, width=(int)[ 32, 2592, 2 ], height=(int)[ 32, 1944, 2 ], framerate=(fraction)[ 1/1, 90/1 ]";

    #[test]
    fn an_exact_raw_mode_comes_first() {
        let c920 = caps(C920);
        assert_eq!(
            chosen(&c920, want(640, 480, 30)),
            ("640x480 YUY2 30/1".into(), Fit::ExactRaw)
        );
        let hd = caps(HD_WEBCAM);
        // MJPEG is offered first by this device, raw still wins.
        assert_eq!(
            chosen(&hd, want(640, 480, 30)),
            ("640x480 YUY2 30/1".into(), Fit::ExactRaw)
        );
        // A slow raw rate matches exactly too.
        assert_eq!(
            chosen(&c920, want(1280, 720, 10)),
            ("1280x720 YUY2 10/1".into(), Fit::ExactRaw)
        );
    }

    #[test]
    fn mjpeg_when_raw_lacks_the_rate() {
        let c920 = caps(C920);
        assert_eq!(
            chosen(&c920, want(1280, 720, 30)),
            ("1280x720 MJPEG 30/1".into(), Fit::ExactMjpeg)
        );
        assert_eq!(
            chosen(&c920, want(1920, 1080, 30)),
            ("1920x1080 MJPEG 30/1".into(), Fit::ExactMjpeg)
        );
        assert_eq!(
            chosen(&caps(HD_WEBCAM), want(1280, 720, 30)),
            ("1280x720 MJPEG 30/1".into(), Fit::ExactMjpeg)
        );
    }

    #[test]
    fn the_nearest_mode_keeps_the_rate_and_the_size_first() {
        let c920 = caps(C920);
        // 1024x768@30 does not exist: the smallest mode of at least that size at 30.
        assert_eq!(
            chosen(&c920, want(1024, 768, 30)),
            ("1920x1080 MJPEG 30/1".into(), Fit::Nearest)
        );
        // 1280x720@60: no mode reaches 60, so at least the size, nearest rate.
        assert_eq!(
            chosen(&c920, want(1280, 720, 60)),
            ("1280x720 MJPEG 30/1".into(), Fit::Nearest)
        );
        // Larger than anything: the rate first, then the largest.
        assert_eq!(
            chosen(&c920, want(3840, 2160, 30)),
            ("1920x1080 MJPEG 30/1".into(), Fit::Nearest)
        );
        // Raw before MJPEG at the same distance: 640x480 at 25 has 30 in both.
        assert_eq!(
            chosen(&c920, want(640, 480, 25)),
            ("640x480 YUY2 30/1".into(), Fit::Nearest)
        );
        // Smaller than anything: the smallest at least as large, raw.
        assert_eq!(
            chosen(&c920, want(160, 120, 15)),
            ("320x240 YUY2 15/1".into(), Fit::Nearest)
        );
        // Only raw and a rate above 30: 1280x720@30 on the HD webcam with MJPEG gone.
        let raw_only = caps(
            "video/x-raw, format=(string)YUY2, width=(int)1280, height=(int)720, framerate=(fraction)10/1; \
             video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=(fraction)30/1",
        );
        assert_eq!(
            chosen(&raw_only, want(1280, 720, 30)),
            ("640x480 YUY2 30/1".into(), Fit::Nearest),
            "smooth motion before size"
        );
    }

    #[test]
    fn ranges_give_the_configured_value() {
        let stepwise = caps(STEPWISE);
        assert_eq!(
            chosen(&stepwise, want(1280, 720, 30)),
            ("1280x720 I420 30/1".into(), Fit::ExactRaw)
        );
        // An odd width is not on the step of 2: the nearest even width above.
        assert_eq!(
            chosen(&stepwise, want(641, 481, 30)),
            ("642x482 I420 30/1".into(), Fit::Nearest)
        );
        // A rate above the range: its top.
        assert_eq!(
            chosen(&stepwise, want(640, 480, 120)),
            ("640x480 I420 90/1".into(), Fit::Nearest)
        );
    }

    #[test]
    fn ntsc_rates_count_as_exact_and_other_encodings_are_ignored() {
        let c = caps(
            "video/x-h264, width=(int)1280, height=(int)720, framerate=(fraction)30/1, stream-format=(string)byte-stream; \
             video/x-raw, format=(string)NV12, width=(int)1280, height=(int)720, framerate=(fraction)30000/1001",
        );
        assert_eq!(
            chosen(&c, want(1280, 720, 30)),
            ("1280x720 NV12 30000/1001".into(), Fit::ExactRaw)
        );
        assert!(choose(
            &caps("video/x-h264, width=(int)640, height=(int)480"),
            want(640, 480, 30)
        )
        .is_none());
        assert!(choose(&gst::Caps::new_empty(), want(640, 480, 30)).is_none());
    }

    #[test]
    fn caps_of_a_mode_parse_back_to_it() {
        for text in [C920, HD_WEBCAM, STEPWISE] {
            for mode in modes(&caps(text), want(640, 480, 30)) {
                let back = caps(&mode.caps_string());
                assert!(back.is_fixed(), "{mode}");
                assert_eq!(Mode::of_fixed_caps(&back), Some(mode));
            }
        }
    }

    #[test]
    fn a_v4l2_jpeg_decoder_comes_first() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_jpeg_decoder(&names(&["avdec_mjpeg", "jpegdec", "v4l2jpegdec"])).as_deref(),
            Some("v4l2jpegdec")
        );
        assert_eq!(
            choose_jpeg_decoder(&names(&["jpegdec", "v4l2video10jpegdec"])).as_deref(),
            Some("v4l2video10jpegdec")
        );
        assert_eq!(
            choose_jpeg_decoder(&names(&["avdec_mjpeg", "jpegdec"])).as_deref(),
            Some("jpegdec")
        );
        assert_eq!(choose_jpeg_decoder(&[]), None);
        // On this machine: jpegdec (gstreamer1.0-plugins-good) is there.
        gst::init().expect("GStreamer initialises");
        assert!(jpeg_decoders().contains(&"jpegdec".to_string()));
    }
}

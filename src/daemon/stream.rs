//! The RTSP stream (`[stream]`): gst-rtsp-server on a GLib main loop of its own thread,
//! serving the stylized frames as H.264, encoded like a recording
//! ([`recording::h264_encoder`]), to every client through one shared media, behind basic
//! authentication.
//!
//! Frames reach the media the way they reach a recording: the camera pipeline's
//! appsink (behind the `tee` and a leaky queue, `pipeline.rs`) hands each sample to
//! [`StreamFeed::push`], which copies the buffer's reference into the media's `appsrc`.
//! That push never blocks: the appsrc holds at most two frames and drops the oldest, so
//! a slow or vanished client, or an encoder that falls behind, costs the stream frames
//! and never the camera, the display or a recording. While nobody watches there is no
//! media and nothing is encoded. Only the pipeline task calls this module.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use crate::config::{RecordingConfig, StreamConfig};
use crate::recording::{self, RecordingError};

/// The role the credentials give: it may open and build the stream's media.
const ROLE: &str = "viewer";
/// How often expired sessions (clients gone without TEARDOWN) are dropped.
const SESSION_CLEANUP: Duration = Duration::from_secs(2);

/// Why the stream could not start. The text carries the cause, so it is not also the
/// `source()` (a chain printer would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(
        "the RTSP server cannot listen on {address} port {port} (in use, or an address \
         this machine does not have): {cause}"
    )]
    Listen {
        address: String,
        port: u16,
        cause: String,
    },
    #[error("the RTSP server has no mount points")]
    NoMountPoints,
    #[error("the RTSP server's thread did not start: {0}")]
    Thread(String),
}

/// Where the camera pipeline hands frames to the stream: the appsrc of the media the
/// clients watch now, if there is one.
#[derive(Clone, Default)]
pub struct StreamFeed(Arc<Mutex<Option<gst_app::AppSrc>>>);

impl StreamFeed {
    fn slot(&self) -> MutexGuard<'_, Option<gst_app::AppSrc>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one frame for the clients, if any; never blocks. The media stamps it with
    /// its own clock when it arrives (`do-timestamp`), so the camera's timestamps and
    /// a camera pipeline rebuilt after a fault do not matter to the clients.
    pub fn push(&self, sample: &gst::Sample) {
        let Some(appsrc) = self.slot().clone() else {
            return;
        };
        let Some(buffer) = sample.buffer() else {
            return;
        };
        if let Some(caps) = sample.caps() {
            if appsrc.caps().as_deref() != Some(caps) {
                appsrc.set_caps(Some(&caps.to_owned()));
            }
        }
        let mut copy = buffer.copy();
        {
            let b = copy.make_mut();
            b.set_pts(gst::ClockTime::NONE);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::NONE);
        }
        // A full appsrc drops its oldest frame; a media shutting down refuses (flushing).
        let _ = appsrc.push_buffer(copy);
    }
}

/// What the media factory needs to build a media.
struct MediaSettings {
    recording: RecordingConfig,
    framerate: u32,
    feed: StreamFeed,
}

mod factory {
    use super::*;
    use gst_rtsp_server::gst_rtsp;
    use gst_rtsp_server::subclass::prelude::*;

    #[derive(Default)]
    pub struct Imp {
        pub(super) settings: OnceLock<MediaSettings>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Imp {
        const NAME: &'static str = "StylizedStreamFactory";
        type Type = Factory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for Imp {}

    impl RTSPMediaFactoryImpl for Imp {
        /// `appsrc → videoconvert → 4:2:0 → encoder → h264parse → rtph264pay name=pay0`,
        /// and the feed pointed at the new appsrc.
        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let settings = self.settings.get()?;
            match media_bin(settings) {
                Ok((bin, appsrc)) => {
                    *settings.feed.slot() = Some(appsrc);
                    Some(bin.upcast())
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the stream's media");
                    None
                }
            }
        }
    }

    glib::wrapper! {
        pub struct Factory(ObjectSubclass<Imp>) @extends gst_rtsp_server::RTSPMediaFactory;
    }

    impl Factory {
        pub(super) fn new(settings: MediaSettings) -> Factory {
            let factory: Factory = glib::Object::new();
            let _ = factory.imp().settings.set(settings);
            factory
        }
    }
}

fn make(factory: &str) -> Result<gst::Element, RecordingError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| RecordingError::MissingElement(factory.to_string()))
}

fn media_bin(settings: &MediaSettings) -> Result<(gst::Bin, gst_app::AppSrc), RecordingError> {
    let bin = gst::Bin::new();
    let appsrc = gst_app::AppSrc::builder()
        .name("frames")
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .build();
    // Two frames at most, the oldest dropped: a push from the camera never waits.
    appsrc.set_property("max-buffers", 2u64);
    appsrc.set_property_from_str("leaky-type", "downstream");
    let [convert, chroma_420, encoder] =
        recording::h264_encoder(&settings.recording, settings.framerate)?;
    let parse = make("h264parse")?;
    let pay = make("rtph264pay")?;
    pay.set_property("name", "pay0");
    pay.set_property("pt", 96u32);
    // SPS and PPS with every keyframe, so a client joining the shared media decodes at
    // its first keyframe.
    pay.set_property("config-interval", -1i32);
    let elements = [
        appsrc.upcast_ref::<gst::Element>(),
        &convert,
        &chroma_420,
        &encoder,
        &parse,
        &pay,
    ];
    let build = |e: glib::BoolError| RecordingError::Build(format!("the stream's media: {e}"));
    bin.add_many(elements).map_err(build)?;
    gst::Element::link_many(elements).map_err(build)?;
    Ok((bin, appsrc))
}

/// The running RTSP server. Dropping it closes every client and ends its thread.
pub struct Stream {
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    url: String,
}

impl Stream {
    /// Listens on `config.address`:`config.port` and serves the frames pushed into
    /// `feed` at `config.path`, with `[recording]`'s encoder settings.
    pub fn start(
        config: &StreamConfig,
        recording: &RecordingConfig,
        framerate: u32,
        feed: &StreamFeed,
    ) -> Result<Stream, StreamError> {
        let factory = factory::Factory::new(MediaSettings {
            recording: recording.clone(),
            framerate,
            feed: feed.clone(),
        });
        // One media, one encoder, for every client.
        factory.set_shared(true);
        // A media that ends (its last client left) lets go of its appsrc, unless a newer
        // media has already taken the slot.
        let slot = feed.clone();
        factory.connect_media_configure(move |_, media| {
            let Some(ours) = media
                .element()
                .downcast::<gst::Bin>()
                .ok()
                .and_then(|bin| bin.by_name("frames"))
            else {
                return;
            };
            let (slot, ours) = (slot.clone(), ours.downgrade());
            media.connect_unprepared(move |_| {
                let mut slot = slot.slot();
                let current = slot
                    .as_ref()
                    .map(|a| a.upcast_ref::<gst::Element>().clone());
                if current.is_some() && current == ours.upgrade() {
                    *slot = None;
                }
            });
        });

        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(config.address.trim());
        server.set_service(&config.port.to_string());
        if !config.username.is_empty() && !config.password.is_empty() {
            let auth = gst_rtsp_server::RTSPAuth::new();
            let token = gst_rtsp_server::RTSPToken::builder()
                .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
                .build();
            let basic = gst_rtsp_server::RTSPAuth::make_basic(&config.username, &config.password);
            auth.add_basic(basic.as_str(), &token);
            if config.allow_anonymous {
                // Without credentials, the same rights.
                auth.set_default_token(Some(&mut token.clone()));
            }
            server.set_auth(Some(&auth));
        }
        // Without an RTSPAuth on the server (anonymous only) every client passes; with
        // one, only a token with this role may open or build the media: the others get
        // 401 Unauthorized.
        factory.add_role_from_structure(
            &gst::Structure::builder(ROLE)
                .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
        server
            .mount_points()
            .ok_or(StreamError::NoMountPoints)?
            .add_factory(&config.path, factory);

        let context = glib::MainContext::new();
        server
            .attach(Some(&context))
            .map_err(|e| StreamError::Listen {
                address: config.address.clone(),
                port: config.port,
                cause: e.to_string(),
            })?;
        if let Some(pool) = server.session_pool() {
            let cleanup = glib::timeout_source_new(
                SESSION_CLEANUP,
                Some("stylized-rtsp-sessions"),
                glib::Priority::DEFAULT,
                move || {
                    pool.cleanup();
                    glib::ControlFlow::Continue
                },
            );
            cleanup.attach(Some(&context));
        }
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("rtsp-server".into())
                .spawn(move || {
                    if context.with_thread_default(|| main_loop.run()).is_err() {
                        tracing::error!("the RTSP server's main context is taken elsewhere");
                    }
                })
                .map_err(|e| StreamError::Thread(e.to_string()))?
        };
        let port = u16::try_from(server.bound_port()).unwrap_or(config.port);
        let url = url(config, port);
        tracing::info!(%url, "RTSP stream served");
        Ok(Stream {
            server,
            main_loop,
            thread: Some(thread),
            url,
        })
    }

    /// `rtsp://HOST:PORT/path`, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// RTSP sessions open now: one per client that set the stream up.
    pub fn clients(&self) -> u32 {
        self.server.session_pool().map_or(0, |p| p.n_sessions())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The address clients use: this machine's host name when the server listens on every
/// interface.
fn url(config: &StreamConfig, port: u16) -> String {
    let host = match config.address.trim().parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => glib::host_name().to_string(),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(ip) => ip.to_string(),
        Err(_) => config.address.trim().to_string(),
    };
    format!("rtsp://{host}:{port}{}", config.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_host_clients_use_and_no_credentials() {
        let config = StreamConfig {
            address: "127.0.0.1".into(),
            username: "viewer".into(),
            password: "secret".into(),
            ..StreamConfig::default()
        };
        assert_eq!(url(&config, 8554), "rtsp://127.0.0.1:8554/stylize");
        let v6 = StreamConfig {
            address: "::1".into(),
            ..config.clone()
        };
        assert_eq!(url(&v6, 9000), "rtsp://[::1]:9000/stylize");
        let any = StreamConfig {
            address: "0.0.0.0".into(),
            ..config
        };
        let shown = url(&any, 8554);
        assert!(
            !shown.contains("0.0.0.0") && !shown.contains("secret"),
            "{shown}"
        );
        assert!(shown.ends_with(":8554/stylize"), "{shown}");
    }
}

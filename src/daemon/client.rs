//! A zbus proxy for the daemon's interface, for `stylizectl` and the tests.

#[zbus::proxy(
    interface = "io.github.stylize.Stylized1",
    default_service = "io.github.stylize.Stylized1",
    default_path = "/io/github/stylize/Stylized1"
)]
pub trait Stylized {
    fn list_styles(&self) -> zbus::Result<Vec<(String, String)>>;
    fn set_style(&self, id: &str) -> zbus::Result<()>;
    fn set_blend(&self, blend: f64) -> zbus::Result<()>;
    fn start_recording(&self, name: &str) -> zbus::Result<String>;
    fn stop_recording(&self) -> zbus::Result<String>;
    fn reload(&self) -> zbus::Result<()>;
    fn snapshot(&self, name: &str) -> zbus::Result<String>;
    #[zbus(signal)]
    fn recording_failed(&self, path: String, message: String) -> zbus::Result<()>;
    #[zbus(property)]
    fn style(&self) -> zbus::Result<String>;
    /// Writes the Style property (the SetStyle method gives the named errors).
    #[zbus(property, name = "Style")]
    fn set_style_property(&self, id: &str) -> zbus::Result<()>;
    #[zbus(property)]
    fn blend(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn accelerator(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fault(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn fps(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn inference_ms(&self) -> zbus::Result<f64>;
    #[zbus(property)]
    fn frames(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn recording(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn recording_path(&self) -> zbus::Result<String>;
}

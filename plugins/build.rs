//! Stamps the plugin with its version, commit and build date (gst-plugin-version-helper).

fn main() {
    gst_plugin_version_helper::info()
}

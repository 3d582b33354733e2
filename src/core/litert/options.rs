//! Accelerator settings handed to LiteRT as TOML text: the GPU program cache and the
//! opaque options added to a model's compilation options.

use std::ffi::{c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr;

use super::error::{check, LiteRtError};
use super::ffi;

/// Where the GPU accelerator keeps compiled shader programs between runs.
///
/// The WebGPU accelerator of LiteRT 2.3.0 reads this from its "gpu_options" TOML: it
/// loads `<dir>/<key>_mldrift_compiled_cache.bin` when the first GPU model compiles and
/// writes it back when the environment is destroyed. The folder must exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuCache {
    pub dir: PathBuf,
    /// The file's name prefix; it may not hold path separators.
    pub key: String,
}

impl GpuCache {
    /// The accelerator's options as TOML text.
    pub fn toml(&self) -> String {
        format!(
            "serialization_dir = {}\nmodel_cache_key = {}\ncache_only_compiled_programs = true\n",
            toml_string(&self.dir.to_string_lossy()),
            toml_string(&self.key)
        )
    }

    /// The file the accelerator writes.
    pub fn file(&self) -> PathBuf {
        self.dir
            .join(format!("{}_mldrift_compiled_cache.bin", self.key))
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Adds TOML settings under `identifier` to compilation options. The text is handed to
/// LiteRT, which frees it with `free_c_string`.
///
/// # Safety
/// `options` must be a live LiteRtOptions from `api`.
pub(super) unsafe fn add_toml_options(
    api: &ffi::Api,
    options: ffi::Options,
    identifier: &CStr,
    toml: String,
) -> Result<(), LiteRtError> {
    let toml = CString::new(toml)
        .expect("no NUL: integers, environment values and toml_string's escaped text");
    let payload = toml.into_raw() as *mut c_void;
    let mut opaque = ptr::null_mut();
    // SAFETY: the payload is a leaked CString whose deleter is free_c_string; on failure
    // nothing took ownership, so it is freed here.
    unsafe {
        let status = (api.create_opaque_options)(
            identifier.as_ptr(),
            payload,
            Some(free_c_string),
            &mut opaque,
        );
        if status != ffi::STATUS_OK {
            free_c_string(payload);
            return check("LiteRtCreateOpaqueOptions", status);
        }
        let status = (api.add_opaque_options)(options, opaque);
        if status != ffi::STATUS_OK {
            (api.destroy_opaque_options)(opaque);
            return check("LiteRtAddOpaqueOptions", status);
        }
    }
    Ok(())
}

unsafe extern "C" fn free_c_string(payload: *mut c_void) {
    drop(CString::from_raw(payload as *mut std::ffi::c_char));
}

#[cfg(test)]
mod tests {
    use super::GpuCache;

    #[test]
    fn gpu_cache_options_are_toml_with_the_path_escaped() {
        let cache = GpuCache {
            dir: "/var/cache/a \"b\"\\c\td".into(),
            key: "stylize".into(),
        };
        assert_eq!(
            cache.toml(),
            "serialization_dir = \"/var/cache/a \\\"b\\\"\\\\c\\u0009d\"\n\
             model_cache_key = \"stylize\"\n\
             cache_only_compiled_programs = true\n"
        );
        assert_eq!(
            cache.file(),
            std::path::Path::new("/var/cache/a \"b\"\\c\td/stylize_mldrift_compiled_cache.bin")
        );
    }
}

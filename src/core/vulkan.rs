//! The Vulkan devices of this machine, read before the GPU accelerator is loaded.
//!
//! LiteRT's WebGPU accelerator runs on Vulkan and takes whatever adapter Dawn offers,
//! including Mesa's software rasterizer (lavapipe, "llvmpipe"), which is some 90 times
//! slower than XNNPACK on the same cores. `accelerator=auto` must never land there, so it
//! asks the Vulkan loader first: `libvulkan.so.1` is opened at run time through `ash`,
//! an instance is made, the physical devices are listed, and the instance is destroyed.
//! A machine without the loader costs one failed `dlopen`.

use std::sync::OnceLock;

use ash::vk;

/// What kind of device Vulkan reports (`VkPhysicalDeviceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Discrete,
    Integrated,
    Virtual,
    /// `VK_PHYSICAL_DEVICE_TYPE_CPU`: a software rasterizer such as lavapipe.
    Software,
    Other,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Discrete => "discrete GPU",
            DeviceKind::Integrated => "integrated GPU",
            DeviceKind::Virtual => "virtual GPU",
            DeviceKind::Software => "software",
            DeviceKind::Other => "other",
        }
    }
}

/// One Vulkan physical device, as `vkGetPhysicalDeviceProperties` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub kind: DeviceKind,
    pub vendor_id: u32,
    pub device_id: u32,
    /// Vendor-specific encoding; only compared, never decoded.
    pub driver_version: u32,
}

impl Device {
    /// True for real hardware: neither a software rasterizer nor an unknown kind.
    pub fn is_hardware(&self) -> bool {
        matches!(
            self.kind,
            DeviceKind::Discrete | DeviceKind::Integrated | DeviceKind::Virtual
        )
    }

    /// A stable identity for caching decisions: the same board, GPU and driver give the
    /// same text, and a driver update changes it.
    pub fn identity(&self) -> String {
        format!(
            "{:04x}:{:04x} driver {:#x} {}",
            self.vendor_id, self.device_id, self.driver_version, self.name
        )
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.name, self.kind.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VulkanError {
    #[error("no Vulkan loader ({0}); install libvulkan1 and the GPU's Vulkan driver")]
    NoLoader(String),
    #[error("the Vulkan loader found no driver ({0}); install the GPU's Vulkan driver (Mesa: mesa-vulkan-drivers)")]
    NoDriver(String),
    #[error("listing the Vulkan devices failed: {0}")]
    Enumerate(String),
}

/// The machine's Vulkan devices, read once per process (devices do not come and go
/// while a pipeline runs, and instance creation loads every driver).
pub fn devices() -> Result<Vec<Device>, VulkanError> {
    static DEVICES: OnceLock<Result<Vec<Device>, VulkanError>> = OnceLock::new();
    // Drivers may print as the instance loads them (Mesa's "MESA-INTEL: warning: …"):
    // routed like LiteRT's lines (see crate::native_log).
    DEVICES
        .get_or_init(|| crate::native_log::routed(read_devices))
        .clone()
}

/// The hardware device the GPU accelerator would most likely take (discrete before
/// integrated before virtual, as Dawn's high-performance preference orders them), else
/// why there is none: no loader, no driver, or only software devices (named).
pub fn hardware_device() -> Result<Device, String> {
    let all = devices().map_err(|e| e.to_string())?;
    let rank = |d: &&Device| match d.kind {
        DeviceKind::Discrete => 0,
        DeviceKind::Integrated => 1,
        _ => 2,
    };
    if let Some(device) = all.iter().filter(|d| d.is_hardware()).min_by_key(rank) {
        return Ok(device.clone());
    }
    if all.is_empty() {
        return Err("Vulkan lists no device".into());
    }
    let names: Vec<String> = all.iter().map(Device::to_string).collect();
    Err(format!(
        "the only Vulkan devices are software: {}",
        names.join(", ")
    ))
}

fn read_devices() -> Result<Vec<Device>, VulkanError> {
    // SAFETY: loading the Vulkan loader runs its initialisers, which are benign.
    let entry = unsafe { ash::Entry::load() }.map_err(|e| VulkanError::NoLoader(e.to_string()))?;
    let app = vk::ApplicationInfo::default()
        .application_name(c"stylize")
        .api_version(vk::API_VERSION_1_0);
    let info = vk::InstanceCreateInfo::default().application_info(&app);
    // SAFETY: `info` and what it points to live across the call; no extensions or layers.
    let instance = unsafe { entry.create_instance(&info, None) }.map_err(|e| match e {
        vk::Result::ERROR_INCOMPATIBLE_DRIVER => VulkanError::NoDriver(e.to_string()),
        other => VulkanError::Enumerate(format!("vkCreateInstance: {other}")),
    })?;
    // SAFETY: the instance is valid until destroyed below, after its last use.
    let result = unsafe { instance.enumerate_physical_devices() }
        .map_err(|e| VulkanError::Enumerate(format!("vkEnumeratePhysicalDevices: {e}")))
        .map(|handles| {
            handles
                .into_iter()
                .map(|handle| {
                    // SAFETY: `handle` came from this instance.
                    let p = unsafe { instance.get_physical_device_properties(handle) };
                    device_from(&p)
                })
                .collect()
        });
    // SAFETY: nothing made from the instance outlives it.
    unsafe { instance.destroy_instance(None) };
    // The loader stays loaded: some drivers (NVIDIA's) crash when unloaded and loaded
    // again, which the GPU accelerator does next.
    std::mem::forget(entry);
    result
}

fn device_from(p: &vk::PhysicalDeviceProperties) -> Device {
    let kind = match p.device_type {
        vk::PhysicalDeviceType::DISCRETE_GPU => DeviceKind::Discrete,
        vk::PhysicalDeviceType::INTEGRATED_GPU => DeviceKind::Integrated,
        vk::PhysicalDeviceType::VIRTUAL_GPU => DeviceKind::Virtual,
        vk::PhysicalDeviceType::CPU => DeviceKind::Software,
        _ => DeviceKind::Other,
    };
    let name = p
        .device_name_as_c_str()
        .unwrap_or(c"(unnamed)")
        .to_string_lossy()
        .into_owned();
    Device {
        name,
        kind,
        vendor_id: p.vendor_id,
        device_id: p.device_id,
        driver_version: p.driver_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(kind: vk::PhysicalDeviceType, name: &str) -> vk::PhysicalDeviceProperties {
        let mut p = vk::PhysicalDeviceProperties {
            device_type: kind,
            vendor_id: 0x10de,
            device_id: 0x2335,
            driver_version: 42,
            ..Default::default()
        };
        for (d, s) in p.device_name.iter_mut().zip(name.bytes()) {
            *d = s as std::ffi::c_char;
        }
        p
    }

    #[test]
    fn software_devices_are_not_hardware() {
        let lavapipe = device_from(&properties(
            vk::PhysicalDeviceType::CPU,
            "llvmpipe (LLVM 19.1.7, 256 bits)",
        ));
        assert_eq!(lavapipe.kind, DeviceKind::Software);
        assert!(!lavapipe.is_hardware());
        assert_eq!(lavapipe.name, "llvmpipe (LLVM 19.1.7, 256 bits)");
        for kind in [
            vk::PhysicalDeviceType::DISCRETE_GPU,
            vk::PhysicalDeviceType::INTEGRATED_GPU,
            vk::PhysicalDeviceType::VIRTUAL_GPU,
        ] {
            assert!(
                device_from(&properties(kind, "gpu")).is_hardware(),
                "{kind:?}"
            );
        }
        assert!(!device_from(&properties(vk::PhysicalDeviceType::OTHER, "x")).is_hardware());
    }

    #[test]
    fn identity_changes_with_the_driver() {
        let a = device_from(&properties(vk::PhysicalDeviceType::DISCRETE_GPU, "H200"));
        let mut b = a.clone();
        b.driver_version += 1;
        assert_ne!(a.identity(), b.identity());
        assert!(a.identity().starts_with("10de:2335 driver 0x2a H200"));
    }
}

//! A model compiled in an environment for one accelerator, with its input and output
//! tensor buffers, run frame after frame.

use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::Arc;

use super::environment::Environment;
use super::error::{check, LiteRtError};
use super::ffi;
use super::options::add_toml_options;
use crate::accelerator::Accelerator;

#[derive(Clone, Debug)]
struct TensorInfo {
    name: String,
    dims: Vec<i32>,
}

/// A model compiled for one piece of hardware, with its input and output buffers kept
/// across runs so the streaming path allocates nothing.
pub struct Network {
    env: Arc<Environment>,
    _bytes: Arc<[u8]>,
    model: ffi::Model,
    compiled: ffi::CompiledModel,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    input_buffers: Vec<ffi::TensorBuffer>,
    output_buffers: Vec<ffi::TensorBuffer>,
    accelerator: Accelerator,
}

// SAFETY: a Network is used by one thread at a time (`&mut self` for every call that
// touches LiteRT state).
unsafe impl Send for Network {}

impl Network {
    /// Compiles `bytes` (a .tflite flatbuffer). `input_dims` resizes named inputs before
    /// the buffers are made, for models whose graph was rewritten for another size.
    ///
    /// LiteRT prints as it loads and compiles (the GPU accelerator a lot more): the whole
    /// of it runs with stderr routed (see [`crate::native_log`]).
    pub fn new(
        env: Arc<Environment>,
        bytes: Arc<[u8]>,
        accelerator: Accelerator,
        threads: usize,
        input_dims: &[(&str, &[i32])],
    ) -> Result<Network, LiteRtError> {
        crate::native_log::routed(|| Self::build(env, bytes, accelerator, threads, input_dims))
    }

    fn build(
        env: Arc<Environment>,
        bytes: Arc<[u8]>,
        accelerator: Accelerator,
        threads: usize,
        input_dims: &[(&str, &[i32])],
    ) -> Result<Network, LiteRtError> {
        let api = &env.rt.api;
        let mut model = ptr::null_mut();
        // SAFETY: `bytes` is kept alive in the Network for as long as the model exists.
        check("LiteRtCreateModelFromBuffer", unsafe {
            (api.create_model_from_buffer)(
                env.raw,
                bytes.as_ptr() as *const c_void,
                bytes.len(),
                &mut model,
            )
        })?;
        let mut net = Network {
            env: env.clone(),
            _bytes: bytes,
            model,
            compiled: ptr::null_mut(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            input_buffers: Vec::new(),
            output_buffers: Vec::new(),
            accelerator,
        };
        net.read_signature()?;
        net.compile(accelerator, threads)?;
        for (name, dims) in input_dims {
            let index = net.input_index(name)?;
            // SAFETY: valid compiled model; dims points to dims.len() ints.
            check("LiteRtCompiledModelResizeInputTensorNonStrict", unsafe {
                (api.resize_input_tensor_non_strict)(
                    net.compiled,
                    0,
                    index,
                    dims.as_ptr(),
                    dims.len(),
                )
            })?;
            net.inputs[index].dims = dims.to_vec();
        }
        if !input_dims.is_empty() {
            let mut layouts = vec![ffi::Layout::default(); net.outputs.len()];
            // SAFETY: `layouts` has room for every output of signature 0.
            check("LiteRtGetCompiledModelOutputTensorLayouts", unsafe {
                (api.get_output_tensor_layouts)(
                    net.compiled,
                    0,
                    layouts.len(),
                    layouts.as_mut_ptr(),
                    true,
                )
            })?;
            for (info, layout) in net.outputs.iter_mut().zip(&layouts) {
                info.dims = layout.dims().to_vec();
            }
        }
        net.make_buffers()?;
        Ok(net)
    }

    fn read_signature(&mut self) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        let mut count = 0usize;
        // SAFETY: valid model handle, out-pointers to locals.
        unsafe {
            check(
                "LiteRtGetNumModelSignatures",
                (api.get_num_model_signatures)(self.model, &mut count),
            )?;
            if count == 0 {
                return Err(LiteRtError::Call {
                    call: "LiteRtGetNumModelSignatures",
                    status: 6,
                });
            }
            let mut sig = ptr::null_mut();
            check(
                "LiteRtGetModelSignature",
                (api.get_model_signature)(self.model, 0, &mut sig),
            )?;
            let mut n_in = 0usize;
            let mut n_out = 0usize;
            check(
                "LiteRtGetNumSignatureInputs",
                (api.get_num_signature_inputs)(sig, &mut n_in),
            )?;
            check(
                "LiteRtGetNumSignatureOutputs",
                (api.get_num_signature_outputs)(sig, &mut n_out),
            )?;
            for i in 0..n_in {
                let mut name = ptr::null();
                check(
                    "LiteRtGetSignatureInputName",
                    (api.get_signature_input_name)(sig, i, &mut name),
                )?;
                let mut tensor = ptr::null_mut();
                check(
                    "LiteRtGetSignatureInputTensorByIndex",
                    (api.get_signature_input_tensor_by_index)(sig, i, &mut tensor),
                )?;
                self.inputs.push(TensorInfo {
                    name: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    dims: self.tensor_dims(tensor)?,
                });
            }
            for i in 0..n_out {
                let mut name = ptr::null();
                check(
                    "LiteRtGetSignatureOutputName",
                    (api.get_signature_output_name)(sig, i, &mut name),
                )?;
                let mut tensor = ptr::null_mut();
                check(
                    "LiteRtGetSignatureOutputTensorByIndex",
                    (api.get_signature_output_tensor_by_index)(sig, i, &mut tensor),
                )?;
                self.outputs.push(TensorInfo {
                    name: CStr::from_ptr(name).to_string_lossy().into_owned(),
                    dims: self.tensor_dims(tensor)?,
                });
            }
        }
        Ok(())
    }

    unsafe fn tensor_dims(&self, tensor: ffi::Tensor) -> Result<Vec<i32>, LiteRtError> {
        let mut ty = ffi::RankedTensorType::default();
        check(
            "LiteRtGetRankedTensorType",
            (self.env.rt.api.get_ranked_tensor_type)(tensor, &mut ty),
        )?;
        Ok(ty.layout.dims().to_vec())
    }

    fn compile(&mut self, accelerator: Accelerator, threads: usize) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        let mut options = ptr::null_mut();
        // SAFETY: options is created, configured and destroyed here; the compiled model
        // does not keep a reference to it.
        unsafe {
            check("LiteRtCreateOptions", (api.create_options)(&mut options))?;
            let result = (|| {
                let set = match accelerator {
                    // `Auto` is decided before a network exists; like the engine, a
                    // network given it runs on the CPU.
                    Accelerator::Cpu | Accelerator::Auto => ffi::HW_CPU,
                    Accelerator::Gpu => ffi::HW_GPU,
                };
                check(
                    "LiteRtSetOptionsHardwareAccelerators",
                    (api.set_options_hardware_accelerators)(options, set),
                )?;
                if accelerator != Accelerator::Gpu && threads > 0 {
                    // The CPU accelerator reads its settings as TOML text under two
                    // identifiers: "xnnpack" sizes XNNPACK's thread pool, "cpu_delegate"
                    // the builtin kernels XNNPACK does not take, which otherwise stay on
                    // one thread (the Python Interpreter gives them all its threads). In
                    // the stock transfer network those are 16 MIRROR_PADs; the engine's
                    // CPU graph (tflite::transfer_for_cpu) has none left.
                    // Extra XNNPACK settings in the same TOML form (`flags = 1`,
                    // `kernel_mode = "xnnpack"`) come from STYLIZE_XNNPACK_OPTIONS, for
                    // profiling the CPU path.
                    let extra = std::env::var("STYLIZE_XNNPACK_OPTIONS").unwrap_or_default();
                    add_toml_options(
                        api,
                        options,
                        c"xnnpack",
                        format!("num_threads = {threads}\n{extra}"),
                    )?;
                    add_toml_options(
                        api,
                        options,
                        c"cpu_delegate",
                        format!("num_threads = {threads}\n"),
                    )?;
                }
                if let (Accelerator::Gpu, Some(cache)) = (accelerator, &self.env.gpu_cache) {
                    add_toml_options(api, options, c"gpu_options", cache.toml())?;
                }
                check(
                    "LiteRtCreateCompiledModel",
                    (api.create_compiled_model)(
                        self.env.raw,
                        self.model,
                        options,
                        &mut self.compiled,
                    ),
                )
            })();
            (api.destroy_options)(options);
            result
        }
    }

    fn make_buffers(&mut self) -> Result<(), LiteRtError> {
        let api = &self.env.rt.api;
        for (is_input, infos) in [(true, self.inputs.clone()), (false, self.outputs.clone())] {
            for (i, info) in infos.iter().enumerate() {
                let mut reqs = ptr::null_mut();
                let ty = ffi::RankedTensorType {
                    element_type: ffi::ELEMENT_FLOAT32,
                    layout: ffi::Layout::new(&info.dims),
                };
                let mut buffer = ptr::null_mut();
                // SAFETY: requirements belong to the compiled model; the tensor type is a
                // local that outlives the call.
                unsafe {
                    if is_input {
                        check(
                            "LiteRtGetCompiledModelInputBufferRequirements",
                            (api.get_input_buffer_requirements)(self.compiled, 0, i, &mut reqs),
                        )?;
                    } else {
                        check(
                            "LiteRtGetCompiledModelOutputBufferRequirements",
                            (api.get_output_buffer_requirements)(self.compiled, 0, i, &mut reqs),
                        )?;
                    }
                    check(
                        "LiteRtCreateManagedTensorBufferFromRequirements",
                        (api.create_managed_tensor_buffer_from_requirements)(
                            self.env.raw,
                            &ty,
                            reqs,
                            &mut buffer,
                        ),
                    )?;
                }
                if is_input {
                    self.input_buffers.push(buffer);
                } else {
                    self.output_buffers.push(buffer);
                }
            }
        }
        Ok(())
    }

    pub fn accelerator(&self) -> Accelerator {
        self.accelerator
    }

    pub fn input_index(&self, name: &str) -> Result<usize, LiteRtError> {
        self.inputs
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| LiteRtError::NoSuchTensor(name.to_string()))
    }

    pub fn output_index(&self, name: &str) -> Result<usize, LiteRtError> {
        self.outputs
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| LiteRtError::NoSuchTensor(name.to_string()))
    }

    pub fn input_dims(&self, index: usize) -> &[i32] {
        &self.inputs[index].dims
    }

    pub fn output_dims(&self, index: usize) -> &[i32] {
        &self.outputs[index].dims
    }

    /// Lets `fill` write input `index` in place (float32, NHWC).
    pub fn write_input<R>(
        &mut self,
        index: usize,
        fill: impl FnOnce(&mut [f32]) -> R,
    ) -> Result<R, LiteRtError> {
        let buffer = self.input_buffers[index];
        let want = element_count(&self.inputs[index].dims);
        // SAFETY: the locked region is at least `want` floats (checked) and unlocked below.
        unsafe {
            let host = self.lock(buffer, ffi::LOCK_WRITE, &self.inputs[index].name, want)?;
            let r = fill(std::slice::from_raw_parts_mut(host as *mut f32, want));
            check(
                "LiteRtUnlockTensorBuffer",
                (self.env.rt.api.unlock_tensor_buffer)(buffer),
            )?;
            Ok(r)
        }
    }

    /// Lets `read` see output `index` (float32, NHWC).
    pub fn read_output<R>(
        &mut self,
        index: usize,
        read: impl FnOnce(&[f32]) -> R,
    ) -> Result<R, LiteRtError> {
        let buffer = self.output_buffers[index];
        let want = element_count(&self.outputs[index].dims);
        // SAFETY: as in `write_input`.
        unsafe {
            let host = self.lock(buffer, ffi::LOCK_READ, &self.outputs[index].name, want)?;
            let r = read(std::slice::from_raw_parts(host as *const f32, want));
            check(
                "LiteRtUnlockTensorBuffer",
                (self.env.rt.api.unlock_tensor_buffer)(buffer),
            )?;
            Ok(r)
        }
    }

    unsafe fn lock(
        &self,
        buffer: ffi::TensorBuffer,
        mode: ffi::LockMode,
        name: &str,
        want: usize,
    ) -> Result<*mut c_void, LiteRtError> {
        let api = &self.env.rt.api;
        let mut size = 0usize;
        check(
            "LiteRtGetTensorBufferSize",
            (api.get_tensor_buffer_size)(buffer, &mut size),
        )?;
        if size < want * 4 {
            return Err(LiteRtError::SizeMismatch {
                name: name.to_string(),
                have: size / 4,
                want,
            });
        }
        let mut host = ptr::null_mut();
        check(
            "LiteRtLockTensorBuffer",
            (api.lock_tensor_buffer)(buffer, &mut host, mode),
        )?;
        Ok(host)
    }

    pub fn run(&mut self) -> Result<(), LiteRtError> {
        // SAFETY: buffers were made from this model's requirements.
        check("LiteRtRunCompiledModel", unsafe {
            (self.env.rt.api.run_compiled_model)(
                self.compiled,
                0,
                self.input_buffers.len(),
                self.input_buffers.as_mut_ptr(),
                self.output_buffers.len(),
                self.output_buffers.as_mut_ptr(),
            )
        })
    }
}

fn element_count(dims: &[i32]) -> usize {
    dims.iter().map(|&d| d.max(0) as usize).product()
}

impl Drop for Network {
    fn drop(&mut self) {
        let env = self.env.clone();
        let api = &env.rt.api;
        // Routed like the creation: a GPU model prints as it goes.
        // SAFETY: each handle was created by this Network and is destroyed once, buffers
        // and compiled model before the model they came from.
        crate::native_log::routed(|| unsafe {
            for b in self
                .input_buffers
                .drain(..)
                .chain(self.output_buffers.drain(..))
            {
                (api.destroy_tensor_buffer)(b);
            }
            if !self.compiled.is_null() {
                (api.destroy_compiled_model)(self.compiled);
            }
            (api.destroy_model)(self.model);
        })
    }
}

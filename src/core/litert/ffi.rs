//! Our own declarations of the LiteRT C API ("CompiledModel" API) as exported by
//! `libLiteRt.so` from the `ai-edge-litert==2.3.0` wheel. The library is opened at run
//! time, so nothing here links against it. `tests/litert_abi.rs` checks these
//! declarations against the real library.

use std::ffi::{c_char, c_int, c_void};

pub type Status = c_int;
pub const STATUS_OK: Status = 0;

/// `LiteRtParamIndex` is a `size_t`.
pub type ParamIndex = usize;

pub type HwAcceleratorSet = c_int;
pub const HW_CPU: HwAcceleratorSet = 1;
pub const HW_GPU: HwAcceleratorSet = 2;

pub type LockMode = c_int;
pub const LOCK_READ: LockMode = 0;
pub const LOCK_WRITE: LockMode = 1;

pub type ElementType = c_int;
pub const ELEMENT_FLOAT32: ElementType = 1;

pub const ENV_OPTION_RUNTIME_LIBRARY_DIR: c_int = 22;
pub const ANY_TYPE_STRING: c_int = 8;

macro_rules! opaque {
    ($($name:ident),* $(,)?) => {$(
        #[repr(C)]
        pub struct $name { _private: [u8; 0] }
    )*};
}
opaque!(
    EnvironmentT,
    ModelT,
    OptionsT,
    OpaqueOptionsT,
    CompiledModelT,
    TensorBufferT,
    TensorBufferRequirementsT,
    SignatureT,
    TensorT,
);

pub type Environment = *mut EnvironmentT;
pub type Model = *mut ModelT;
pub type Options = *mut OptionsT;
pub type OpaqueOptions = *mut OpaqueOptionsT;
pub type CompiledModel = *mut CompiledModelT;
pub type TensorBuffer = *mut TensorBufferT;
pub type TensorBufferRequirements = *mut TensorBufferRequirementsT;
pub type Signature = *mut SignatureT;
pub type Tensor = *mut TensorT;

pub const MAX_RANK: usize = 8;

/// `LiteRtLayout`: one `unsigned int` of bit-fields (`rank:7`, `has_strides:1`), then
/// dimensions and strides. 68 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    pub rank_and_flags: u32,
    pub dimensions: [i32; MAX_RANK],
    pub strides: [u32; MAX_RANK],
}

impl Layout {
    pub fn new(dims: &[i32]) -> Self {
        let mut layout = Layout {
            rank_and_flags: (dims.len() as u32) & 0x7f,
            ..Default::default()
        };
        layout.dimensions[..dims.len()].copy_from_slice(dims);
        layout
    }

    pub fn rank(&self) -> usize {
        (self.rank_and_flags & 0x7f) as usize
    }

    pub fn dims(&self) -> &[i32] {
        &self.dimensions[..self.rank().min(MAX_RANK)]
    }
}

/// `LiteRtRankedTensorType`: element type (4-byte enum) then the layout at offset 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RankedTensorType {
    pub element_type: ElementType,
    pub layout: Layout,
}

/// `LiteRtAny`: a type tag, then an 8-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Any {
    pub kind: c_int,
    pub value: *const c_void,
}

/// `LiteRtEnvOption`: 24 bytes, the value at offset 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvOption {
    pub tag: c_int,
    pub value: Any,
}

pub type PayloadDestructor = unsafe extern "C" fn(*mut c_void);

macro_rules! api {
    ($($field:ident = $symbol:literal : fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// Function pointers resolved from `libLiteRt.so`.
        pub struct Api {
            $(pub $field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            /// Every symbol this crate uses, for diagnostics and the ABI test.
            pub const SYMBOLS: &'static [&'static str] = &[$($symbol),*];

            /// # Safety
            /// The library must be a LiteRT 2.x `libLiteRt.so` whose functions have the
            /// signatures declared here.
            pub unsafe fn load(lib: &libloading::Library) -> Result<Self, (&'static str, libloading::Error)> {
                Ok(Api {
                    $($field: *lib
                        .get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(concat!($symbol, "\0").as_bytes())
                        .map_err(|e| ($symbol, e))?,)*
                })
            }
        }
    };
}

api! {
    create_environment = "LiteRtCreateEnvironment": fn(c_int, *const EnvOption, *mut Environment) -> Status;
    destroy_environment = "LiteRtDestroyEnvironment": fn(Environment);
    create_model_from_buffer = "LiteRtCreateModelFromBuffer": fn(Environment, *const c_void, usize, *mut Model) -> Status;
    destroy_model = "LiteRtDestroyModel": fn(Model);
    get_num_model_signatures = "LiteRtGetNumModelSignatures": fn(Model, *mut ParamIndex) -> Status;
    get_model_signature = "LiteRtGetModelSignature": fn(Model, ParamIndex, *mut Signature) -> Status;
    get_num_signature_inputs = "LiteRtGetNumSignatureInputs": fn(Signature, *mut ParamIndex) -> Status;
    get_num_signature_outputs = "LiteRtGetNumSignatureOutputs": fn(Signature, *mut ParamIndex) -> Status;
    get_signature_input_name = "LiteRtGetSignatureInputName": fn(Signature, ParamIndex, *mut *const c_char) -> Status;
    get_signature_output_name = "LiteRtGetSignatureOutputName": fn(Signature, ParamIndex, *mut *const c_char) -> Status;
    get_signature_input_tensor_by_index = "LiteRtGetSignatureInputTensorByIndex": fn(Signature, ParamIndex, *mut Tensor) -> Status;
    get_signature_output_tensor_by_index = "LiteRtGetSignatureOutputTensorByIndex": fn(Signature, ParamIndex, *mut Tensor) -> Status;
    get_ranked_tensor_type = "LiteRtGetRankedTensorType": fn(Tensor, *mut RankedTensorType) -> Status;
    create_options = "LiteRtCreateOptions": fn(*mut Options) -> Status;
    destroy_options = "LiteRtDestroyOptions": fn(Options);
    set_options_hardware_accelerators = "LiteRtSetOptionsHardwareAccelerators": fn(Options, HwAcceleratorSet) -> Status;
    create_opaque_options = "LiteRtCreateOpaqueOptions": fn(*const c_char, *mut c_void, Option<PayloadDestructor>, *mut OpaqueOptions) -> Status;
    destroy_opaque_options = "LiteRtDestroyOpaqueOptions": fn(OpaqueOptions);
    add_opaque_options = "LiteRtAddOpaqueOptions": fn(Options, OpaqueOptions) -> Status;
    create_compiled_model = "LiteRtCreateCompiledModel": fn(Environment, Model, Options, *mut CompiledModel) -> Status;
    destroy_compiled_model = "LiteRtDestroyCompiledModel": fn(CompiledModel);
    resize_input_tensor_non_strict = "LiteRtCompiledModelResizeInputTensorNonStrict": fn(CompiledModel, ParamIndex, ParamIndex, *const c_int, usize) -> Status;
    get_output_tensor_layouts = "LiteRtGetCompiledModelOutputTensorLayouts": fn(CompiledModel, ParamIndex, usize, *mut Layout, bool) -> Status;
    get_input_buffer_requirements = "LiteRtGetCompiledModelInputBufferRequirements": fn(CompiledModel, ParamIndex, ParamIndex, *mut TensorBufferRequirements) -> Status;
    get_output_buffer_requirements = "LiteRtGetCompiledModelOutputBufferRequirements": fn(CompiledModel, ParamIndex, ParamIndex, *mut TensorBufferRequirements) -> Status;
    create_managed_tensor_buffer_from_requirements = "LiteRtCreateManagedTensorBufferFromRequirements": fn(Environment, *const RankedTensorType, TensorBufferRequirements, *mut TensorBuffer) -> Status;
    destroy_tensor_buffer = "LiteRtDestroyTensorBuffer": fn(TensorBuffer);
    get_tensor_buffer_size = "LiteRtGetTensorBufferSize": fn(TensorBuffer, *mut usize) -> Status;
    lock_tensor_buffer = "LiteRtLockTensorBuffer": fn(TensorBuffer, *mut *mut c_void, LockMode) -> Status;
    unlock_tensor_buffer = "LiteRtUnlockTensorBuffer": fn(TensorBuffer) -> Status;
    run_compiled_model = "LiteRtRunCompiledModel": fn(CompiledModel, ParamIndex, usize, *mut TensorBuffer, usize, *mut TensorBuffer) -> Status;
}

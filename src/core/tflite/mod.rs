//! Reads the TFLite flatbuffer (schema.fbs) far enough to rewrite the transfer
//! network's `RESIZE_NEAREST_NEIGHBOR` output sizes, so the decoder produces the
//! inference size instead of the 384x384 baked into the file. For the CPU it also
//! writes the activations' shapes for that size ([`shapes`]) and turns the mirror
//! pads into ops XNNPACK runs ([`reflect_pad`], written by [`rewrite`] in front of the
//! unchanged file).
//!
//! Tables are followed through their vtables as the flatbuffer format defines, so the
//! patch finds the ops by their operator code and the size tensors by operator inputs,
//! not by scanning bytes.

#[cfg(test)]
pub(crate) mod mutation_tests;
mod prefix;
mod reflect_pad;
mod rewrite;
mod shapes;
mod wide_kernel;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("not a TFLite flatbuffer: {0}")]
    Malformed(&'static str),
    #[error("expected 3 RESIZE_NEAREST_NEIGHBOR size constants, found {0}")]
    ResizeOps(usize),
    #[error("inference size {height}x{width} must be positive multiples of 4")]
    BadSize { height: usize, width: usize },
    #[error("the model's content input is {0:?}, not 1xHxWx3")]
    InputShape(Vec<i32>),
}

const RESIZE_NEAREST_NEIGHBOR: i32 = 97;
const TENSOR_TYPE_INT32: i8 = 2;

// Field slots, from schema.fbs.
const MODEL_OPERATOR_CODES: usize = 1;
const MODEL_SUBGRAPHS: usize = 2;
const MODEL_BUFFERS: usize = 4;
const OPCODE_DEPRECATED_BUILTIN: usize = 0;
const OPCODE_BUILTIN: usize = 3;
const SUBGRAPH_TENSORS: usize = 0;
const SUBGRAPH_INPUTS: usize = 1;
const SUBGRAPH_OPERATORS: usize = 3;
const TENSOR_SHAPE: usize = 0;
const TENSOR_TYPE: usize = 1;
const TENSOR_BUFFER: usize = 2;
const OPERATOR_OPCODE_INDEX: usize = 0;
const OPERATOR_INPUTS: usize = 1;
const BUFFER_DATA: usize = 0;

type Result<T> = std::result::Result<T, ModelError>;

#[derive(Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn u8(self, at: usize) -> Result<u8> {
        self.0
            .get(at)
            .copied()
            .ok_or(ModelError::Malformed("offset out of range"))
    }
    fn u16(self, at: usize) -> Result<u16> {
        let b = self
            .0
            .get(at..at + 2)
            .ok_or(ModelError::Malformed("offset out of range"))?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(self, at: usize) -> Result<u32> {
        let b = self
            .0
            .get(at..at + 4)
            .ok_or(ModelError::Malformed("offset out of range"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(self, at: usize) -> Result<i32> {
        Ok(self.u32(at)? as i32)
    }
    /// Follows a uoffset stored at `at`.
    fn deref(self, at: usize) -> Result<usize> {
        let target = at
            .checked_add(self.u32(at)? as usize)
            .ok_or(ModelError::Malformed("offset overflow"))?;
        if target >= self.0.len() {
            return Err(ModelError::Malformed("offset out of range"));
        }
        Ok(target)
    }
}

#[derive(Clone, Copy)]
struct Table<'a> {
    buf: Buf<'a>,
    pos: usize,
}

impl<'a> Table<'a> {
    fn root(bytes: &'a [u8]) -> Result<Self> {
        let buf = Buf(bytes);
        Ok(Table {
            buf,
            pos: buf.deref(0)?,
        })
    }

    fn vtable(self) -> Result<usize> {
        let soffset = self.buf.i32(self.pos)? as isize;
        (self.pos as isize)
            .checked_sub(soffset)
            .filter(|&v| v >= 0)
            .map(|v| v as usize)
            .ok_or(ModelError::Malformed("bad vtable offset"))
    }

    /// Absolute position of field `slot`, or None when it is absent (default value).
    fn field(self, slot: usize) -> Result<Option<usize>> {
        let vtable = self.vtable()?;
        let vtable_len = self.buf.u16(vtable)? as usize;
        let entry = 4 + 2 * slot;
        if entry + 2 > vtable_len {
            return Ok(None);
        }
        match self.buf.u16(vtable + entry)? {
            0 => Ok(None),
            off => Ok(Some(self.pos + off as usize)),
        }
    }

    fn vector(self, slot: usize) -> Result<Option<Vector>> {
        match self.field(slot)? {
            None => Ok(None),
            Some(at) => {
                let start = self.buf.deref(at)?;
                let len = self.buf.u32(start)? as usize;
                Ok(Some(Vector {
                    data: start + 4,
                    len,
                }))
            }
        }
    }

    fn table_vector(self, slot: usize) -> Result<Vec<Table<'a>>> {
        let Some(v) = self.vector(slot)? else {
            return Ok(Vec::new());
        };
        (0..v.len)
            .map(|i| {
                Ok(Table {
                    buf: self.buf,
                    pos: self.buf.deref(v.data + 4 * i)?,
                })
            })
            .collect()
    }

    fn i32_vector(self, slot: usize) -> Result<Vec<i32>> {
        let Some(v) = self.vector(slot)? else {
            return Ok(Vec::new());
        };
        (0..v.len).map(|i| self.buf.i32(v.data + 4 * i)).collect()
    }

    fn u32_or(self, slot: usize, default: u32) -> Result<u32> {
        match self.field(slot)? {
            Some(at) => self.buf.u32(at),
            None => Ok(default),
        }
    }

    fn i32_or(self, slot: usize, default: i32) -> Result<i32> {
        Ok(self.u32_or(slot, default as u32)? as i32)
    }

    /// The slots this table stores (fields left at their defaults are absent).
    fn present_slots(self) -> Result<Vec<usize>> {
        let vtable = self.vtable()?;
        let entries = (self.buf.u16(vtable)? as usize).saturating_sub(4) / 2;
        let mut slots = Vec::new();
        for slot in 0..entries {
            if self.buf.u16(vtable + 4 + 2 * slot)? != 0 {
                slots.push(slot);
            }
        }
        Ok(slots)
    }

    /// Where the offset field `slot` points.
    fn target(self, slot: usize) -> Result<Option<usize>> {
        match self.field(slot)? {
            Some(at) => Ok(Some(self.buf.deref(at)?)),
            None => Ok(None),
        }
    }

    fn string(self, slot: usize) -> Result<Option<&'a [u8]>> {
        let Some(start) = self.target(slot)? else {
            return Ok(None);
        };
        let len = self.buf.u32(start)? as usize;
        self.buf
            .0
            .get(start + 4..start + 4 + len)
            .map(Some)
            .ok_or(ModelError::Malformed("string out of range"))
    }

    fn i8_or(self, slot: usize, default: i8) -> Result<i8> {
        match self.field(slot)? {
            Some(at) => Ok(self.buf.u8(at)? as i8),
            None => Ok(default),
        }
    }
}

#[derive(Clone, Copy)]
struct Vector {
    data: usize,
    len: usize,
}

/// A place in the file that holds one RESIZE_NEAREST_NEIGHBOR output size.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeConstant {
    /// Byte offset of the two little-endian int32 values (height, width).
    pub offset: usize,
    pub size: (i32, i32),
}

/// The transfer network's content input shape and its resize constants.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferGraph {
    pub input: (i32, i32),
    pub resizes: Vec<ResizeConstant>,
}

/// The builtin operator of each operator code (the larger of the old byte field and
/// the newer int field, as readers of schema v3a do).
fn builtin_codes(model: Table) -> Result<Vec<i32>> {
    model
        .table_vector(MODEL_OPERATOR_CODES)?
        .into_iter()
        .map(|c| {
            let old = c.i8_or(OPCODE_DEPRECATED_BUILTIN, 0)? as i32;
            let new = c.i32_or(OPCODE_BUILTIN, 0)?;
            Ok(old.max(new))
        })
        .collect()
}

/// The builtin operator code of each operator in the main graph, in order.
pub fn builtin_ops(bytes: &[u8]) -> Result<Vec<i32>> {
    let model = Table::root(bytes)?;
    let codes = builtin_codes(model)?;
    let graph = *model
        .table_vector(MODEL_SUBGRAPHS)?
        .first()
        .ok_or(ModelError::Malformed("no subgraph"))?;
    graph
        .table_vector(SUBGRAPH_OPERATORS)?
        .into_iter()
        .map(|op| {
            codes
                .get(op.u32_or(OPERATOR_OPCODE_INDEX, 0)? as usize)
                .copied()
                .ok_or(ModelError::Malformed("opcode index out of range"))
        })
        .collect()
}

/// Finds the first graph input's HxW and every RESIZE_NEAREST_NEIGHBOR size constant.
pub fn inspect_transfer(bytes: &[u8]) -> Result<TransferGraph> {
    let model = Table::root(bytes)?;
    let codes = builtin_codes(model)?;
    let buffers = model.table_vector(MODEL_BUFFERS)?;
    let graph = *model
        .table_vector(MODEL_SUBGRAPHS)?
        .first()
        .ok_or(ModelError::Malformed("no subgraph"))?;
    let tensors = graph.table_vector(SUBGRAPH_TENSORS)?;
    let tensor = |i: i32| -> Result<Table> {
        usize::try_from(i)
            .ok()
            .and_then(|i| tensors.get(i).copied())
            .ok_or(ModelError::Malformed("tensor index out of range"))
    };

    let input_shape = match graph.i32_vector(SUBGRAPH_INPUTS)?.first() {
        Some(&i) => tensor(i)?.i32_vector(TENSOR_SHAPE)?,
        None => return Err(ModelError::Malformed("graph has no input")),
    };
    if input_shape.len() != 4
        || input_shape[0] != 1
        || input_shape[3] != 3
        || input_shape[1] <= 0
        || input_shape[2] <= 0
    {
        return Err(ModelError::InputShape(input_shape));
    }

    let mut resizes: Vec<ResizeConstant> = Vec::new();
    // Constants already listed, by offset: a set, so a file of many resize ops does not
    // take quadratic time.
    let mut seen = std::collections::HashSet::new();
    for op in graph.table_vector(SUBGRAPH_OPERATORS)? {
        let index = op.u32_or(OPERATOR_OPCODE_INDEX, 0)? as usize;
        if codes.get(index) != Some(&RESIZE_NEAREST_NEIGHBOR) {
            continue;
        }
        let inputs = op.i32_vector(OPERATOR_INPUTS)?;
        let size_tensor = tensor(
            *inputs
                .get(1)
                .ok_or(ModelError::Malformed("resize op without a size input"))?,
        )?;
        if size_tensor.i8_or(TENSOR_TYPE, 0)? != TENSOR_TYPE_INT32 {
            return Err(ModelError::Malformed("resize size is not int32"));
        }
        let buffer = buffers
            .get(size_tensor.u32_or(TENSOR_BUFFER, 0)? as usize)
            .ok_or(ModelError::Malformed("buffer index out of range"))?;
        let data = buffer
            .vector(BUFFER_DATA)?
            .ok_or(ModelError::Malformed("resize size is not a constant"))?;
        if data.len != 8 {
            return Err(ModelError::Malformed("resize size is not two int32"));
        }
        let size = (model.buf.i32(data.data)?, model.buf.i32(data.data + 4)?);
        if seen.insert(data.data) {
            resizes.push(ResizeConstant {
                offset: data.data,
                size,
            });
        }
    }
    Ok(TransferGraph {
        input: (input_shape[1], input_shape[2]),
        resizes,
    })
}

/// A copy of the transfer network whose decoder produces `height`x`width`. Each resize
/// constant is scaled by the same factor as the input (192 -> H/2, 384 -> H).
pub fn transfer_for_size(bytes: &[u8], height: usize, width: usize) -> Result<Vec<u8>> {
    resized(bytes, &inspect_transfer(bytes)?, height, width)
}

fn resized(bytes: &[u8], graph: &TransferGraph, height: usize, width: usize) -> Result<Vec<u8>> {
    if height == 0 || width == 0 || !height.is_multiple_of(4) || !width.is_multiple_of(4) {
        return Err(ModelError::BadSize { height, width });
    }
    if graph.resizes.len() != 3 {
        return Err(ModelError::ResizeOps(graph.resizes.len()));
    }
    let (in_h, in_w) = (graph.input.0 as i64, graph.input.1 as i64);
    let mut out = bytes.to_vec();
    for r in &graph.resizes {
        let h = r.size.0 as i64 * height as i64 / in_h;
        let w = r.size.1 as i64 * width as i64 / in_w;
        out[r.offset..r.offset + 4].copy_from_slice(&(h as i32).to_le_bytes());
        out[r.offset + 4..r.offset + 8].copy_from_slice(&(w as i32).to_le_bytes());
    }
    Ok(out)
}

/// The transfer network for the GPU at `height`x`width`: the decoder resized as in
/// [`transfer_for_size`] and every activation's static shape set to that size, so the
/// GPU delegate plans its buffers for the size it runs at (no input resize). The graph
/// is otherwise the stock one: the GPU takes `MIRROR_PAD` as it is.
pub fn transfer_for_gpu(bytes: &[u8], height: usize, width: usize) -> Result<Vec<u8>> {
    let graph = inspect_transfer(bytes)?;
    let mut sized = resized(bytes, &graph, height, width)?;
    shapes::set_static_shapes(&mut sized, graph.input, (height as i32, width as i32))?;
    Ok(sized)
}

/// The transfer network for the CPU at `height`x`width`: the decoder resized as in
/// [`transfer_for_size`], every activation's static shape set to that size, each
/// reflect pad made of slices and concatenations, and each wide convolution (the 9x9
/// ones) stacked into a one-column kernel ([`wide_kernel`]). The output is
/// bit-identical; the pads then run inside XNNPACK instead of as builtin kernels
/// between its partitions, and XNNPACK's per-convolution tables shrink ninefold.
pub fn transfer_for_cpu(bytes: &[u8], height: usize, width: usize) -> Result<Vec<u8>> {
    let graph = inspect_transfer(bytes)?;
    let mut sized = resized(bytes, &graph, height, width)?;
    shapes::set_static_shapes(&mut sized, graph.input, (height as i32, width as i32))?;
    let padded = reflect_pad::expand_reflect_pads(&sized)?;
    wide_kernel::stack_wide_kernels(&padded)
}

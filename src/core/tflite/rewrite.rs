//! The part of a graph rewrite that every rewrite shares: new tensors, buffers,
//! operator codes and operators numbered after the old ones, and writing it all in
//! front of the old file ([`super::prefix`]).
//!
//! A rewrite ([`super::reflect_pad`], [`super::wide_kernel`]) decides what to add; this
//! module knows the flatbuffer tables and the slices and concatenations both build.
//! (Commit a7f447a also rewired old operators and added graph inputs and outputs, for a
//! rewrite that was measured and not kept.)

use std::collections::HashMap;

use super::prefix::{Field, Label, Prefix, Target};
use super::{builtin_codes, ModelError, Result, Table};
use super::{
    MODEL_BUFFERS, MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, OPCODE_BUILTIN,
    OPCODE_DEPRECATED_BUILTIN, OPERATOR_INPUTS, OPERATOR_OPCODE_INDEX, SUBGRAPH_INPUTS,
    SUBGRAPH_OPERATORS, SUBGRAPH_TENSORS, TENSOR_BUFFER, TENSOR_SHAPE, TENSOR_TYPE,
    TENSOR_TYPE_INT32,
};

pub(super) const TENSOR_TYPE_FLOAT32: i8 = 0;
pub(super) const TENSOR_NAME: usize = 3;
const TENSOR_QUANTIZATION: usize = 4;
pub(super) const OPERATOR_OUTPUTS: usize = 2;
pub(super) const OPERATOR_OPTIONS_TYPE: usize = 3;
pub(super) const OPERATOR_OPTIONS: usize = 4;
const SUBGRAPH_OUTPUTS: usize = 2;

const MODEL_VERSION: usize = 0;
const MODEL_DESCRIPTION: usize = 3;
const MODEL_METADATA_BUFFER: usize = 5;
const MODEL_METADATA: usize = 6;
const MODEL_SIGNATURE_DEFS: usize = 7;
const SUBGRAPH_NAME: usize = 4;
const SUBGRAPH_DEBUG_METADATA: usize = 5;
const BUFFER_DATA: usize = 0;
const BUFFER_OFFSET: usize = 1;
const OPERATOR_LARGE_CUSTOM_OPTIONS_OFFSET: usize = 9;
const OPCODE_VERSION: usize = 2;
const CONCAT_AXIS: usize = 0;
/// The byte-sized builtin code field holds codes up to this; larger ones say it.
const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;

/// A builtin operator's options table, by its BuiltinOptions union type.
#[derive(Clone, Copy)]
pub(super) enum Options {
    /// A table with no fields set (all defaults), of this union type.
    Empty(u8),
    /// ConcatenationOptions with this axis.
    Concatenation(i32),
    /// Conv2DOptions: VALID padding, stride 1, this fused activation and width dilation.
    Conv2D { activation: u8, dilation_w: i32 },
}

const OPTIONS_CONCATENATION: u8 = 10;
const OPTIONS_CONV_2D: u8 = 1;
const CONV_PADDING: usize = 0;
const CONV_STRIDE_W: usize = 1;
const CONV_STRIDE_H: usize = 2;
const CONV_ACTIVATION: usize = 3;
const CONV_DILATION_W: usize = 4;
const CONV_DILATION_H: usize = 5;
const PADDING_VALID: u8 = 1;
const SLICE: i32 = 65;
const CONCATENATION: i32 = 2;
const OPTIONS_SLICE: u8 = 48;
/// Inputs per CONCATENATION: every XNNPACK version takes up to four.
const MAX_CONCAT_INPUTS: usize = 4;

struct NewTensor {
    shape: Vec<i32>,
    ty: u8,
    buffer: u32,
    name: String,
    /// An old QuantizationParameters table (its position) this tensor shares.
    quantization: Option<usize>,
}

pub(super) struct NewOp {
    opcode: u32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: Options,
}

pub(super) enum Op {
    Old(usize),
    New(NewOp),
}

/// A rewrite in progress: the old graph, and what is added to it.
pub(super) struct Rewrite<'a> {
    bytes: &'a [u8],
    model: Table<'a>,
    graphs: Vec<Table<'a>>,
    old_codes: Vec<Table<'a>>,
    old_buffers: Vec<Table<'a>>,
    pub old_tensors: Vec<Table<'a>>,
    pub old_ops: Vec<Table<'a>>,
    /// The builtin operator of each old operator code.
    pub codes: Vec<i32>,
    new_codes: Vec<i32>,
    tensors: Vec<NewTensor>,
    buffers: Vec<Vec<u8>>,
    constants: HashMap<Vec<i32>, i32>,
}

impl<'a> Rewrite<'a> {
    /// Opens `bytes` for a rewrite of its main graph; None for a model whose layout a
    /// rewrite would break (data after the flatbuffer, large custom options).
    pub fn open(bytes: &'a [u8]) -> Result<Option<Rewrite<'a>>> {
        let model = Table::root(bytes)?;
        let codes = builtin_codes(model)?;
        let old_codes = model.table_vector(MODEL_OPERATOR_CODES)?;
        let old_buffers = model.table_vector(MODEL_BUFFERS)?;
        let graphs = model.table_vector(MODEL_SUBGRAPHS)?;
        let graph = *graphs.first().ok_or(ModelError::Malformed("no subgraph"))?;
        let old_tensors = graph.table_vector(SUBGRAPH_TENSORS)?;
        let old_ops = graph.table_vector(SUBGRAPH_OPERATORS)?;
        // Data placed after the flatbuffer is found by absolute file offsets (models over
        // 2 GB), which moving the file would break.
        for buffer in &old_buffers {
            if let Some(at) = buffer.field(BUFFER_OFFSET)? {
                let offset = buffer.buf.u32(at)? as u64 | (buffer.buf.u32(at + 4)? as u64) << 32;
                if offset > 1 {
                    return Ok(None);
                }
            }
        }
        for op in &old_ops {
            if op.field(OPERATOR_LARGE_CUSTOM_OPTIONS_OFFSET)?.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(Rewrite {
            bytes,
            model,
            graphs,
            old_codes,
            old_buffers,
            old_tensors,
            old_ops,
            codes,
            new_codes: Vec::new(),
            tensors: Vec::new(),
            buffers: Vec::new(),
            constants: HashMap::new(),
        }))
    }

    /// The builtin operator of old operator `op`.
    pub fn builtin(&self, op: Table) -> Result<i32> {
        self.codes
            .get(op.u32_or(OPERATOR_OPCODE_INDEX, 0)? as usize)
            .copied()
            .ok_or(ModelError::Malformed("opcode index out of range"))
    }

    /// The operator code index for `builtin`, added when the model has none.
    pub fn code_index(&mut self, builtin: i32) -> u32 {
        if let Some(i) = self.codes.iter().position(|&c| c == builtin) {
            return i as u32;
        }
        if let Some(i) = self.new_codes.iter().position(|&c| c == builtin) {
            return (self.codes.len() + i) as u32;
        }
        self.new_codes.push(builtin);
        (self.codes.len() + self.new_codes.len() - 1) as u32
    }

    fn added(&self, tensor: i32) -> Result<Option<&NewTensor>> {
        match usize::try_from(tensor)
            .ok()
            .and_then(|i| i.checked_sub(self.old_tensors.len()))
        {
            Some(i) => self
                .tensors
                .get(i)
                .map(Some)
                .ok_or(ModelError::Malformed("tensor index out of range")),
            None => Ok(None),
        }
    }

    pub fn old(&self, tensor: i32) -> Result<Table<'a>> {
        usize::try_from(tensor)
            .ok()
            .and_then(|i| self.old_tensors.get(i).copied())
            .ok_or(ModelError::Malformed("tensor index out of range"))
    }

    pub fn shape(&self, tensor: i32) -> Result<Vec<i32>> {
        match self.added(tensor)? {
            Some(t) => Ok(t.shape.clone()),
            None => self.old(tensor)?.i32_vector(TENSOR_SHAPE),
        }
    }

    pub fn tensor_type(&self, tensor: i32) -> Result<u8> {
        match self.added(tensor)? {
            Some(t) => Ok(t.ty),
            None => Ok(self.old(tensor)?.i8_or(TENSOR_TYPE, 0)? as u8),
        }
    }

    /// The constant int32 or int64 data of old tensor `tensor` as int32 values.
    pub fn constant_i32s(&self, tensor: i32) -> Result<Option<Vec<i32>>> {
        const TENSOR_TYPE_INT64: i8 = 4;
        let tensor = self.old(tensor)?;
        let Some(buffer) = self
            .old_buffers
            .get(tensor.u32_or(TENSOR_BUFFER, 0)? as usize)
        else {
            return Ok(None);
        };
        let Some(data) = buffer.vector(BUFFER_DATA)? else {
            return Ok(None);
        };
        let bytes = buffer
            .buf
            .0
            .get(data.data..data.data + data.len)
            .ok_or(ModelError::Malformed("buffer out of range"))?;
        Ok(match tensor.i8_or(TENSOR_TYPE, 0)? {
            TENSOR_TYPE_INT32 => Some(
                bytes
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            TENSOR_TYPE_INT64 => bytes
                .chunks_exact(8)
                .map(|b| i32::try_from(i64::from_le_bytes(b.try_into().expect("8 bytes"))).ok())
                .collect(),
            _ => None,
        })
    }

    /// The QuantizationParameters table (its position) of a tensor, old or new.
    pub fn quantization(&self, tensor: i32) -> Result<Option<usize>> {
        match self.added(tensor)? {
            Some(t) => Ok(t.quantization),
            None => self.old(tensor)?.target(TENSOR_QUANTIZATION),
        }
    }

    /// A new activation (no data) of `like`'s element type and quantization: the slices
    /// and concatenations of int8 values keep their scale and zero point.
    pub fn tensor_like(&mut self, shape: Vec<i32>, like: i32, name: String) -> Result<i32> {
        let (ty, quantization) = (self.tensor_type(like)?, self.quantization(like)?);
        Ok(self.push_tensor(NewTensor {
            shape,
            ty,
            buffer: 0,
            name,
            quantization,
        }))
    }

    /// Whether old tensor `tensor` is a constant (has a buffer with data).
    pub fn has_data(&self, tensor: i32) -> Result<bool> {
        let buffer = self.old(tensor)?.u32_or(TENSOR_BUFFER, 0)? as usize;
        Ok(match self.old_buffers.get(buffer) {
            Some(b) if buffer != 0 => b.vector(BUFFER_DATA)?.is_some_and(|v| v.len > 0),
            _ => false,
        })
    }

    /// A new tensor over old tensor `old`'s data and quantization with another shape of
    /// the same element count (a reshaped constant: the bytes are not copied).
    pub fn reshaped_constant(&mut self, old: i32, shape: Vec<i32>, name: String) -> Result<i32> {
        let table = self.old(old)?;
        let buffer = table.u32_or(TENSOR_BUFFER, 0)?;
        if buffer == 0 {
            return Err(ModelError::Malformed("a constant without data"));
        }
        let (ty, quantization) = (self.tensor_type(old)?, self.quantization(old)?);
        Ok(self.push_tensor(NewTensor {
            shape,
            ty,
            buffer,
            name,
            quantization,
        }))
    }

    fn push_tensor(&mut self, t: NewTensor) -> i32 {
        self.tensors.push(t);
        (self.old_tensors.len() + self.tensors.len() - 1) as i32
    }

    /// A constant int32 vector, shared by every user of the same values.
    pub fn constant(&mut self, values: Vec<i32>, name: &str) -> i32 {
        if let Some(&t) = self.constants.get(&values) {
            return t;
        }
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.buffers.push(data);
        let buffer = (self.old_buffers.len() + self.buffers.len() - 1) as u32;
        let name = format!("{name}/const{}", self.constants.len());
        let t = self.push_tensor(NewTensor {
            shape: vec![values.len() as i32],
            ty: TENSOR_TYPE_INT32 as u8,
            buffer,
            name,
            quantization: None,
        });
        self.constants.insert(values, t);
        t
    }

    pub fn op(
        &mut self,
        builtin: i32,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options: Options,
    ) -> Op {
        Op::New(NewOp {
            opcode: self.code_index(builtin),
            inputs,
            outputs,
            options,
        })
    }

    /// `len` entries of `x` from `at` along `axis`, as a SLICE into a new tensor of
    /// `x`'s type and quantization.
    pub fn slice(
        &mut self,
        ops: &mut Vec<Op>,
        x: i32,
        axis: usize,
        at: i32,
        len: i32,
        name: &str,
    ) -> Result<i32> {
        let shape = self.shape(x)?;
        let mut begin = vec![0; shape.len()];
        begin[axis] = at;
        let mut size = shape.clone();
        size[axis] = len;
        let begin = self.constant(begin, "stylize/slice");
        let size_t = self.constant(size.clone(), "stylize/slice");
        let out = self.tensor_like(size, x, format!("{name}/at{at}"))?;
        let op = self.op(
            SLICE,
            vec![x, begin, size_t],
            vec![out],
            Options::Empty(OPTIONS_SLICE),
        );
        ops.push(op);
        Ok(out)
    }

    /// Joins `pieces` along `axis` into `out` (a new tensor when None).
    pub fn concat(
        &mut self,
        ops: &mut Vec<Op>,
        pieces: &[i32],
        axis: usize,
        out: Option<i32>,
        name: &str,
    ) -> Result<i32> {
        let mut pieces = pieces.to_vec();
        while pieces.len() > MAX_CONCAT_INPUTS {
            let mut joined = Vec::new();
            for chunk in pieces.chunks(MAX_CONCAT_INPUTS) {
                joined.push(match chunk {
                    [one] => *one,
                    _ => self.concat(ops, chunk, axis, None, name)?,
                });
            }
            pieces = joined;
        }
        let mut shape = self.shape(pieces[0])?;
        shape[axis] = 0;
        for &p in &pieces {
            shape[axis] = shape[axis]
                .checked_add(self.shape(p)?[axis])
                .ok_or(ModelError::Malformed("tensor dimension overflow"))?;
        }
        let out = match out {
            Some(out) => out,
            None => {
                let n = ops.len();
                self.tensor_like(shape, pieces[0], format!("{name}/joined{n}"))?
            }
        };
        let op = self.op(
            CONCATENATION,
            pieces,
            vec![out],
            Options::Concatenation(axis as i32),
        );
        ops.push(op);
        Ok(out)
    }

    /// One tensor for `pieces` joined along `axis`, or None for no pieces.
    pub fn join(
        &mut self,
        ops: &mut Vec<Op>,
        pieces: &[i32],
        axis: usize,
        name: &str,
    ) -> Result<Option<i32>> {
        Ok(match pieces {
            [] => None,
            [one] => Some(*one),
            _ => Some(self.concat(ops, pieces, axis, None, name)?),
        })
    }

    /// The model with `ops` as its main graph's operators, written in front of the old
    /// file.
    pub fn write(&self, ops: &[Op]) -> Result<Vec<u8>> {
        let (bytes, model) = (self.bytes, self.model);
        let identifier: [u8; 4] = bytes
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(ModelError::Malformed("no file identifier"))?;
        let (mut p, root) = Prefix::new(identifier);
        let (codes_vec, graphs_vec, buffers_vec) = (p.label(), p.label(), p.label());

        let mut fields = Vec::new();
        for slot in model.present_slots()? {
            fields.push((
                slot,
                match slot {
                    MODEL_VERSION => Field::U32(model.u32_or(MODEL_VERSION, 0)?),
                    MODEL_OPERATOR_CODES => Field::Ref(Target::New(codes_vec)),
                    MODEL_SUBGRAPHS => Field::Ref(Target::New(graphs_vec)),
                    MODEL_BUFFERS => Field::Ref(Target::New(buffers_vec)),
                    MODEL_DESCRIPTION
                    | MODEL_METADATA_BUFFER
                    | MODEL_METADATA
                    | MODEL_SIGNATURE_DEFS => Field::Ref(Target::Old(old_target(model, slot)?)),
                    _ => return Err(ModelError::Malformed("model field unknown to the rewrite")),
                },
            ));
        }
        p.table(root, &fields);

        let code_labels: Vec<Label> = self.new_codes.iter().map(|_| p.label()).collect();
        let mut items: Vec<Target> = self.old_codes.iter().map(|t| Target::Old(t.pos)).collect();
        items.extend(code_labels.iter().map(|&l| Target::New(l)));
        p.ref_vector(codes_vec, &items);
        for (&code, &label) in self.new_codes.iter().zip(&code_labels) {
            p.table(
                label,
                &[
                    (
                        OPCODE_DEPRECATED_BUILTIN,
                        Field::U8(code.min(PLACEHOLDER_FOR_GREATER_OP_CODES) as u8),
                    ),
                    (OPCODE_VERSION, Field::U32(1)),
                    (OPCODE_BUILTIN, Field::U32(code as u32)),
                ],
            );
        }

        let graph = self.graphs[0];
        let graph_label = p.label();
        let mut items = vec![Target::New(graph_label)];
        items.extend(self.graphs[1..].iter().map(|g| Target::Old(g.pos)));
        p.ref_vector(graphs_vec, &items);

        let (tensors_vec, ops_vec) = (p.label(), p.label());
        let mut fields = Vec::new();
        for slot in graph.present_slots()? {
            fields.push((
                slot,
                match slot {
                    SUBGRAPH_TENSORS => Field::Ref(Target::New(tensors_vec)),
                    SUBGRAPH_OPERATORS => Field::Ref(Target::New(ops_vec)),
                    SUBGRAPH_DEBUG_METADATA => Field::U32(graph.u32_or(slot, 0)?),
                    SUBGRAPH_INPUTS | SUBGRAPH_OUTPUTS | SUBGRAPH_NAME => {
                        Field::Ref(Target::Old(old_target(graph, slot)?))
                    }
                    _ => {
                        return Err(ModelError::Malformed(
                            "subgraph field unknown to the rewrite",
                        ))
                    }
                },
            ));
        }
        p.table(graph_label, &fields);
        let tensor_labels: Vec<Label> = self.tensors.iter().map(|_| p.label()).collect();
        let mut items: Vec<Target> = self
            .old_tensors
            .iter()
            .map(|t| Target::Old(t.pos))
            .collect();
        items.extend(tensor_labels.iter().map(|&l| Target::New(l)));
        p.ref_vector(tensors_vec, &items);
        for (t, &label) in self.tensors.iter().zip(&tensor_labels) {
            let (shape, name) = (p.label(), p.label());
            let mut fields = vec![
                (TENSOR_SHAPE, Field::Ref(Target::New(shape))),
                (TENSOR_TYPE, Field::U8(t.ty)),
                (TENSOR_NAME, Field::Ref(Target::New(name))),
            ];
            if t.buffer != 0 {
                fields.push((TENSOR_BUFFER, Field::U32(t.buffer)));
            }
            if let Some(q) = t.quantization {
                fields.push((TENSOR_QUANTIZATION, Field::Ref(Target::Old(q))));
            }
            p.table(label, &fields);
            p.i32_vector(shape, &t.shape);
            p.string(name, &t.name);
        }

        let op_labels: Vec<Option<Label>> = ops
            .iter()
            .map(|op| matches!(op, Op::New(_)).then(|| p.label()))
            .collect();
        let items: Vec<Target> = ops
            .iter()
            .zip(&op_labels)
            .map(|(op, label)| match (op, label) {
                (Op::Old(pos), _) => Target::Old(*pos),
                (Op::New(_), Some(l)) => Target::New(*l),
                (Op::New(_), None) => unreachable!("every new op has a label"),
            })
            .collect();
        p.ref_vector(ops_vec, &items);
        for (op, label) in ops.iter().zip(op_labels) {
            if let (Op::New(op), Some(label)) = (op, label) {
                write_new_op(&mut p, label, op);
            }
        }

        let buffer_labels: Vec<Label> = self.buffers.iter().map(|_| p.label()).collect();
        let mut items: Vec<Target> = self
            .old_buffers
            .iter()
            .map(|b| Target::Old(b.pos))
            .collect();
        items.extend(buffer_labels.iter().map(|&l| Target::New(l)));
        p.ref_vector(buffers_vec, &items);
        for (data, &label) in self.buffers.iter().zip(&buffer_labels) {
            let vector = p.label();
            p.table(label, &[(BUFFER_DATA, Field::Ref(Target::New(vector)))]);
            p.byte_vector(vector, data);
        }
        p.finish(bytes)
    }
}

fn write_new_op(p: &mut Prefix, label: Label, op: &NewOp) {
    let (inputs, outputs, options) = (p.label(), p.label(), p.label());
    let options_type = match op.options {
        Options::Empty(ty) => ty,
        Options::Concatenation(_) => OPTIONS_CONCATENATION,
        Options::Conv2D { .. } => OPTIONS_CONV_2D,
    };
    p.table(
        label,
        &[
            (OPERATOR_OPCODE_INDEX, Field::U32(op.opcode)),
            (OPERATOR_INPUTS, Field::Ref(Target::New(inputs))),
            (OPERATOR_OUTPUTS, Field::Ref(Target::New(outputs))),
            (OPERATOR_OPTIONS_TYPE, Field::U8(options_type)),
            (OPERATOR_OPTIONS, Field::Ref(Target::New(options))),
        ],
    );
    p.i32_vector(inputs, &op.inputs);
    p.i32_vector(outputs, &op.outputs);
    match op.options {
        Options::Concatenation(axis) => p.table(options, &[(CONCAT_AXIS, Field::U32(axis as u32))]),
        Options::Empty(_) => p.table(options, &[]),
        Options::Conv2D {
            activation,
            dilation_w,
        } => p.table(
            options,
            &[
                (CONV_PADDING, Field::U8(PADDING_VALID)),
                (CONV_STRIDE_W, Field::U32(1)),
                (CONV_STRIDE_H, Field::U32(1)),
                (CONV_ACTIVATION, Field::U8(activation)),
                (CONV_DILATION_W, Field::U32(dilation_w as u32)),
                (CONV_DILATION_H, Field::U32(1)),
            ],
        ),
    }
}

fn old_target(table: Table, slot: usize) -> Result<usize> {
    table
        .target(slot)?
        .ok_or(ModelError::Malformed("field vanished"))
}

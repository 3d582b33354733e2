//! Replaces each REFLECT `MIRROR_PAD` with `SLICE`s and `CONCATENATION`s.
//!
//! XNNPACK does not take MIRROR_PAD, so on the CPU the transfer network's 16 pads run
//! as builtin kernels and split the graph into up to 17 XNNPACK partitions; together
//! that is about 45% of a frame. Slices and concatenations are plain copies that XNNPACK does take, and
//! copying the same values gives the same output bit for bit.
//!
//! Reflect padding of `p` rows on top of `x` is rows `p, p-1, .., 1` of `x`; below it,
//! rows `h-2, .., h-1-p`. Each such row is a one-row SLICE; the pieces are joined with
//! CONCATENATION (at most four inputs each, which every XNNPACK version takes), first
//! along the height, then the width. The slices use the static shapes in the file, so
//! run this after [`super::shapes::set_static_shapes`].

use std::collections::HashMap;

use super::prefix::{Field, Label, Prefix, Target};
use super::{builtin_codes, ModelError, Result, Table};
use super::{
    BUFFER_DATA, MODEL_BUFFERS, MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, OPCODE_BUILTIN,
    OPCODE_DEPRECATED_BUILTIN, OPERATOR_INPUTS, OPERATOR_OPCODE_INDEX, SUBGRAPH_INPUTS,
    SUBGRAPH_OPERATORS, SUBGRAPH_TENSORS, TENSOR_BUFFER, TENSOR_SHAPE, TENSOR_TYPE,
    TENSOR_TYPE_INT32,
};

const MIRROR_PAD: i32 = 100;
const SLICE: i32 = 65;
const CONCATENATION: i32 = 2;
const TENSOR_TYPE_FLOAT32: i8 = 0;
const TENSOR_TYPE_INT64: i8 = 4;
const OPTIONS_CONCATENATION: u8 = 10;
const OPTIONS_SLICE: u8 = 48;
const OPTIONS_MIRROR_PAD: i8 = 77;
const MIRROR_PAD_REFLECT: i8 = 0;
const MAX_CONCAT_INPUTS: usize = 4;

const MODEL_VERSION: usize = 0;
const MODEL_DESCRIPTION: usize = 3;
const MODEL_METADATA_BUFFER: usize = 5;
const MODEL_METADATA: usize = 6;
const MODEL_SIGNATURE_DEFS: usize = 7;
const SUBGRAPH_OUTPUTS: usize = 2;
const SUBGRAPH_NAME: usize = 4;
const SUBGRAPH_DEBUG_METADATA: usize = 5;
const BUFFER_OFFSET: usize = 1;
const OPERATOR_LARGE_CUSTOM_OPTIONS_OFFSET: usize = 9;
/// The byte-sized builtin code field holds codes up to this; larger ones say it.
const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;
const TENSOR_NAME: usize = 3;
const OPERATOR_OUTPUTS: usize = 2;
const OPERATOR_OPTIONS_TYPE: usize = 3;
const OPERATOR_OPTIONS: usize = 4;
const MIRROR_PAD_MODE: usize = 0;
const CONCAT_AXIS: usize = 0;
const OPCODE_VERSION: usize = 2;

struct NewTensor {
    shape: Vec<i32>,
    ty: u8,
    buffer: u32,
    name: String,
}

struct NewOp {
    opcode: u32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    /// None for SLICE, the axis for CONCATENATION.
    concat_axis: Option<i32>,
}

enum Op {
    Old(usize),
    New(NewOp),
}

/// The tensors, buffers and operators a rewrite adds, numbered after the old ones.
struct Additions<'a> {
    old_tensors: &'a [Table<'a>],
    tensors: Vec<NewTensor>,
    buffers: Vec<Vec<u8>>,
    constants: HashMap<Vec<i32>, i32>,
    slice_code: u32,
    concat_code: u32,
    old_buffer_count: usize,
}

impl Additions<'_> {
    /// The added tensor `tensor` names, or None for an old one.
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

    fn shape(&self, tensor: i32) -> Result<Vec<i32>> {
        match self.added(tensor)? {
            Some(t) => Ok(t.shape.clone()),
            None => self.old(tensor)?.i32_vector(TENSOR_SHAPE),
        }
    }

    fn old(&self, tensor: i32) -> Result<Table<'_>> {
        usize::try_from(tensor)
            .ok()
            .and_then(|i| self.old_tensors.get(i).copied())
            .ok_or(ModelError::Malformed("tensor index out of range"))
    }

    fn tensor(&mut self, shape: Vec<i32>, ty: u8, buffer: u32, name: String) -> i32 {
        self.tensors.push(NewTensor {
            shape,
            ty,
            buffer,
            name,
        });
        (self.old_tensors.len() + self.tensors.len() - 1) as i32
    }

    /// A constant int32 vector, shared by every slice that needs the same values.
    fn constant(&mut self, values: Vec<i32>) -> i32 {
        if let Some(&t) = self.constants.get(&values) {
            return t;
        }
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.buffers.push(data);
        let buffer = (self.old_buffer_count + self.buffers.len() - 1) as u32;
        let name = format!("stylize/reflect_pad/const{}", self.constants.len());
        let t = self.tensor(
            vec![values.len() as i32],
            TENSOR_TYPE_INT32 as u8,
            buffer,
            name,
        );
        self.constants.insert(values, t);
        t
    }

    fn slice(
        &mut self,
        ops: &mut Vec<Op>,
        x: i32,
        axis: usize,
        at: i32,
        name: &str,
    ) -> Result<i32> {
        let shape = self.shape(x)?;
        let mut begin = vec![0; shape.len()];
        begin[axis] = at;
        let mut size = shape.clone();
        size[axis] = 1;
        let begin = self.constant(begin);
        let size_t = self.constant(size.clone());
        let ty = self.tensor_type(x)?;
        let out = self.tensor(size, ty, 0, format!("{name}/row{at}"));
        ops.push(Op::New(NewOp {
            opcode: self.slice_code,
            inputs: vec![x, begin, size_t],
            outputs: vec![out],
            concat_axis: None,
        }));
        Ok(out)
    }

    fn tensor_type(&self, tensor: i32) -> Result<u8> {
        match self.added(tensor)? {
            Some(t) => Ok(t.ty),
            None => Ok(self.old(tensor)?.i8_or(TENSOR_TYPE, 0)? as u8),
        }
    }

    /// Joins `pieces` along `axis` into `out` (a new tensor when None).
    fn concat(
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
        let ty = self.tensor_type(pieces[0])?;
        let out = match out {
            Some(out) => out,
            None => {
                let n = self.tensors.len();
                self.tensor(shape, ty, 0, format!("{name}/joined{n}"))
            }
        };
        ops.push(Op::New(NewOp {
            opcode: self.concat_code,
            inputs: pieces,
            outputs: vec![out],
            concat_axis: Some(axis as i32),
        }));
        Ok(out)
    }

    /// One tensor for `pieces` joined along `axis`, or None for no pieces.
    fn join(
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

    /// Reflect-pads `x` by (before, after) along `axis`.
    fn reflect(
        &mut self,
        ops: &mut Vec<Op>,
        x: i32,
        axis: usize,
        (before, after): (i32, i32),
        out: Option<i32>,
        name: &str,
    ) -> Result<i32> {
        let n = self.shape(x)?[axis];
        if before >= n || after >= n {
            return Err(ModelError::Malformed(
                "reflect padding wider than the tensor",
            ));
        }
        let mut top = Vec::new();
        for k in (1..=before).rev() {
            top.push(self.slice(ops, x, axis, k, name)?);
        }
        let mut bottom = Vec::new();
        for k in 1..=after {
            bottom.push(self.slice(ops, x, axis, n - 1 - k, name)?);
        }
        let mut pieces = Vec::new();
        pieces.extend(self.join(ops, &top, axis, name)?);
        pieces.push(x);
        pieces.extend(self.join(ops, &bottom, axis, name)?);
        self.concat(ops, &pieces, axis, out, name)
    }
}

/// The model with every REFLECT MIRROR_PAD over height and width replaced.
/// A model without one comes back unchanged.
pub fn expand_reflect_pads(bytes: &[u8]) -> Result<Vec<u8>> {
    let model = Table::root(bytes)?;
    let codes = builtin_codes(model)?;
    if !codes.contains(&MIRROR_PAD) {
        return Ok(bytes.to_vec());
    }
    let old_codes = model.table_vector(MODEL_OPERATOR_CODES)?;
    let old_buffers = model.table_vector(MODEL_BUFFERS)?;
    let graphs = model.table_vector(MODEL_SUBGRAPHS)?;
    let graph = *graphs.first().ok_or(ModelError::Malformed("no subgraph"))?;
    let old_tensors = graph.table_vector(SUBGRAPH_TENSORS)?;
    let old_ops = graph.table_vector(SUBGRAPH_OPERATORS)?;
    // Data placed after the flatbuffer is found by absolute file offsets (models over
    // 2 GB), which moving the file would break. Such a model stays as it is.
    for buffer in &old_buffers {
        if let Some(at) = buffer.field(BUFFER_OFFSET)? {
            let offset = buffer.buf.u32(at)? as u64 | (buffer.buf.u32(at + 4)? as u64) << 32;
            if offset > 1 {
                return Ok(bytes.to_vec());
            }
        }
    }
    for op in &old_ops {
        if op.field(OPERATOR_LARGE_CUSTOM_OPTIONS_OFFSET)?.is_some() {
            return Ok(bytes.to_vec());
        }
    }

    let mut new_codes = Vec::new();
    let mut code_index = |code: i32| -> u32 {
        if let Some(i) = codes.iter().position(|&c| c == code) {
            return i as u32;
        }
        new_codes.push(code);
        (codes.len() + new_codes.len() - 1) as u32
    };
    let slice_code = code_index(SLICE);
    let concat_code = code_index(CONCATENATION);

    let mut add = Additions {
        old_tensors: &old_tensors,
        tensors: Vec::new(),
        buffers: Vec::new(),
        constants: HashMap::new(),
        slice_code,
        concat_code,
        old_buffer_count: old_buffers.len(),
    };
    let mut ops = Vec::with_capacity(old_ops.len());
    for op in &old_ops {
        let code = codes
            .get(op.u32_or(OPERATOR_OPCODE_INDEX, 0)? as usize)
            .copied()
            .ok_or(ModelError::Malformed("opcode index out of range"))?;
        let replaced = code == MIRROR_PAD && expand_one(&mut add, &mut ops, *op, &old_buffers)?;
        if !replaced {
            ops.push(Op::Old(op.pos));
        }
    }
    write(
        bytes,
        model,
        &graphs,
        &old_codes,
        &old_buffers,
        &new_codes,
        &add,
        &ops,
    )
}

/// Appends the replacement of one MIRROR_PAD to `ops`; false leaves the op as it is
/// (SYMMETRIC mode, or padding outside height and width).
fn expand_one(
    add: &mut Additions,
    ops: &mut Vec<Op>,
    op: Table,
    buffers: &[Table],
) -> Result<bool> {
    // Without MirrorPadOptions TFLite's kernel does not pad by reflection.
    let options = op.target(OPERATOR_OPTIONS)?;
    let mode = match (op.i8_or(OPERATOR_OPTIONS_TYPE, 0)?, options) {
        (OPTIONS_MIRROR_PAD, Some(pos)) => {
            Table { buf: op.buf, pos }.i8_or(MIRROR_PAD_MODE, MIRROR_PAD_REFLECT)?
        }
        _ => return Ok(false),
    };
    let inputs = op.i32_vector(OPERATOR_INPUTS)?;
    let outputs = op.i32_vector(OPERATOR_OUTPUTS)?;
    let (&[x, pads], &[y]) = (inputs.as_slice(), outputs.as_slice()) else {
        return Ok(false);
    };
    let Some(pads) = constant_pads(add.old(pads)?, buffers)? else {
        return Ok(false);
    };
    // Float only: the new tensors carry no quantization.
    let float = add.old(x)?.i8_or(TENSOR_TYPE, 0)? == TENSOR_TYPE_FLOAT32;
    let rank4 = add.shape(x)?.len() == 4 && pads.len() == 8;
    let outer_unpadded = rank4 && pads[..2] == [0, 0] && pads[6..] == [0, 0];
    if mode != MIRROR_PAD_REFLECT || !float || !outer_unpadded || pads.iter().any(|&p| p < 0) {
        return Ok(false);
    }
    let name = String::from_utf8_lossy(add.old(y)?.string(TENSOR_NAME)?.unwrap_or(b"mirror_pad"))
        .into_owned();
    let (h, w) = ((pads[2], pads[3]), (pads[4], pads[5]));
    match (h != (0, 0), w != (0, 0)) {
        (true, true) => {
            let tall = add.reflect(ops, x, 1, h, None, &format!("{name}/h"))?;
            add.reflect(ops, tall, 2, w, Some(y), &format!("{name}/w"))?;
        }
        (true, false) => {
            add.reflect(ops, x, 1, h, Some(y), &format!("{name}/h"))?;
        }
        (false, true) => {
            add.reflect(ops, x, 2, w, Some(y), &format!("{name}/w"))?;
        }
        (false, false) => return Ok(false),
    }
    Ok(true)
}

/// A constant int32 or int64 paddings tensor as int32 values.
fn constant_pads(tensor: Table, buffers: &[Table]) -> Result<Option<Vec<i32>>> {
    let Some(buffer) = buffers.get(tensor.u32_or(TENSOR_BUFFER, 0)? as usize) else {
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

/// Writes the new Model, SubGraph, vectors and added objects in front of `bytes`.
#[allow(clippy::too_many_arguments)]
fn write(
    bytes: &[u8],
    model: Table,
    graphs: &[Table],
    old_codes: &[Table],
    old_buffers: &[Table],
    new_codes: &[i32],
    add: &Additions,
    ops: &[Op],
) -> Result<Vec<u8>> {
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

    let code_labels: Vec<Label> = new_codes.iter().map(|_| p.label()).collect();
    let mut items: Vec<Target> = old_codes.iter().map(|t| Target::Old(t.pos)).collect();
    items.extend(code_labels.iter().map(|&l| Target::New(l)));
    p.ref_vector(codes_vec, &items);
    for (&code, &label) in new_codes.iter().zip(&code_labels) {
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

    let graph = graphs[0];
    let graph_label = p.label();
    let mut items = vec![Target::New(graph_label)];
    items.extend(graphs[1..].iter().map(|g| Target::Old(g.pos)));
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

    let tensor_labels: Vec<Label> = add.tensors.iter().map(|_| p.label()).collect();
    let mut items: Vec<Target> = add.old_tensors.iter().map(|t| Target::Old(t.pos)).collect();
    items.extend(tensor_labels.iter().map(|&l| Target::New(l)));
    p.ref_vector(tensors_vec, &items);
    for (t, &label) in add.tensors.iter().zip(&tensor_labels) {
        let (shape, name) = (p.label(), p.label());
        let mut fields = vec![
            (TENSOR_SHAPE, Field::Ref(Target::New(shape))),
            (TENSOR_TYPE, Field::U8(t.ty)),
            (TENSOR_NAME, Field::Ref(Target::New(name))),
        ];
        if t.buffer != 0 {
            fields.push((TENSOR_BUFFER, Field::U32(t.buffer)));
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
        let (Op::New(op), Some(label)) = (op, label) else {
            continue;
        };
        let (inputs, outputs, options) = (p.label(), p.label(), p.label());
        let options_type = match op.concat_axis {
            Some(_) => OPTIONS_CONCATENATION,
            None => OPTIONS_SLICE,
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
        match op.concat_axis {
            Some(axis) => p.table(options, &[(CONCAT_AXIS, Field::U32(axis as u32))]),
            None => p.table(options, &[]),
        }
    }

    let buffer_labels: Vec<Label> = add.buffers.iter().map(|_| p.label()).collect();
    let mut items: Vec<Target> = old_buffers.iter().map(|b| Target::Old(b.pos)).collect();
    items.extend(buffer_labels.iter().map(|&l| Target::New(l)));
    p.ref_vector(buffers_vec, &items);
    for (data, &label) in add.buffers.iter().zip(&buffer_labels) {
        let vector = p.label();
        p.table(label, &[(BUFFER_DATA, Field::Ref(Target::New(vector)))]);
        p.byte_vector(vector, data);
    }
    p.finish(bytes)
}

fn old_target(table: Table, slot: usize) -> Result<usize> {
    table
        .target(slot)?
        .ok_or(ModelError::Malformed("field vanished"))
}

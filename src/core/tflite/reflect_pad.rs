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

use super::rewrite::{Op, Rewrite, OPERATOR_OPTIONS, OPERATOR_OPTIONS_TYPE};
use super::rewrite::{OPERATOR_OUTPUTS, TENSOR_NAME, TENSOR_TYPE_FLOAT32};
use super::{ModelError, Result, Table};
use super::{OPERATOR_INPUTS, TENSOR_TYPE};

const MIRROR_PAD: i32 = 100;
const OPTIONS_MIRROR_PAD: i8 = 77;
const MIRROR_PAD_REFLECT: i8 = 0;
const MIRROR_PAD_MODE: usize = 0;
/// Each padded row is one SLICE, so a pad is expanded only up to this many rows on a
/// side (the transfer network pads 1 to 4). A wider one, which only a damaged or
/// foreign model has, stays a MIRROR_PAD rather than growing the graph by that many
/// ops (a file claiming 2^30 rows asked for a billion).
const MAX_EXPANDED_PAD: i32 = 64;

impl Rewrite<'_> {
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
            top.push(self.slice(ops, x, axis, k, 1, name)?);
        }
        let mut bottom = Vec::new();
        for k in 1..=after {
            bottom.push(self.slice(ops, x, axis, n - 1 - k, 1, name)?);
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
    let Some(mut add) = Rewrite::open(bytes)? else {
        return Ok(bytes.to_vec());
    };
    if !add.codes.contains(&MIRROR_PAD) {
        return Ok(bytes.to_vec());
    }
    let old_ops = add.old_ops.clone();
    let mut ops = Vec::with_capacity(old_ops.len());
    for op in &old_ops {
        let replaced = add.builtin(*op)? == MIRROR_PAD && expand_one(&mut add, &mut ops, *op)?;
        if !replaced {
            ops.push(Op::Old(op.pos));
        }
    }
    add.write(&ops)
}

/// Appends the replacement of one MIRROR_PAD to `ops`; false leaves the op as it is
/// (SYMMETRIC mode, or padding outside height and width).
fn expand_one(add: &mut Rewrite, ops: &mut Vec<Op>, op: Table) -> Result<bool> {
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
    let Some(pads) = add.constant_i32s(pads)? else {
        return Ok(false);
    };
    // Float only: the new tensors carry no quantization.
    let float = add.old(x)?.i8_or(TENSOR_TYPE, 0)? == TENSOR_TYPE_FLOAT32;
    let rank4 = add.shape(x)?.len() == 4 && pads.len() == 8;
    let outer_unpadded = rank4 && pads[..2] == [0, 0] && pads[6..] == [0, 0];
    if mode != MIRROR_PAD_REFLECT
        || !float
        || !outer_unpadded
        || pads.iter().any(|&p| !(0..=MAX_EXPANDED_PAD).contains(&p))
    {
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

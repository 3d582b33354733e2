//! Turns each wide stride-1 `CONV_2D` (a kernel 5 or more columns wide) into column
//! `SLICE`s of its input joined along the channels, and a convolution with fewer
//! columns.
//!
//! Why: XNNPACK runs a convolution as an indirect GEMM, with a table of one pointer per
//! kernel tap per output pixel, built once and kept for the life of the network. The
//! transfer network's first and last convolutions are 9x9 at the full inference size,
//! so at 384x288 each table is 81 x 110592 x 8 bytes = 72 MB, together 143 of the 181 MB
//! an engine held. (XNNPACK's `TRANSIENT_INDIRECTION_BUFFER` flag rebuilds the tables
//! for every run instead: 100 MB less, but a run took 1.7 times as long.)
//!
//! For a kh x kw kernel over C channels, take g shifted copies of the input (columns
//! x, x+1, .., x+g-1) stacked along the channels, g·C channels, and a kh x (kw/g)
//! kernel dilated by g across: tap (ky, a) at channel b·C + c reads
//! in(y+ky, x+g·a+b, c), so every (ky, kx = g·a+b, c) of the old kernel is summed once.
//! The weights are the same bytes: [O][kh][kw][C] and [O][kh][kw/g][g·C] are one
//! layout, so the new weight tensor is the old buffer with another shape. The table
//! then has kh·kw/g pointers per pixel. The first convolution (3 channels) stacks all
//! 9 columns (a 9x1 kernel over 27 channels, which XNNPACK also runs faster); the last
//! (8 channels) stacks 3 (a 9x3 kernel dilated by 3 over 24 channels): stacking all 9
//! there saved 13 MB more but made a run about 7% slower, where 3 costs nothing
//! measurable.
//!
//! The transfer network's convolutions are int8 with int32 sums, so the order of the
//! terms cannot change a bit of the output; the slices and concatenations copy int8
//! values with the input's own scale and zero point. Only VALID padding, stride 1 and
//! dilation 1 are taken (the network pads explicitly before each convolution); any other
//! convolution stays as it is.

use super::rewrite::{Op, Options, Rewrite, OPERATOR_OPTIONS, OPERATOR_OPTIONS_TYPE};
use super::rewrite::{OPERATOR_OUTPUTS, TENSOR_NAME};
use super::{Result, Table, OPERATOR_INPUTS};

const CONV_2D: i32 = 3;
const TENSOR_TYPE_INT8: u8 = 9;
const OPTIONS_CONV_2D: i8 = 1;
const CONV_PADDING: usize = 0;
const CONV_STRIDE_W: usize = 1;
const CONV_STRIDE_H: usize = 2;
const CONV_DILATION_W: usize = 4;
const CONV_DILATION_H: usize = 5;
const CONV_ACTIVATION: usize = 3;
const PADDING_VALID: i8 = 1;
/// Kernels at least this wide are stacked; a 3-wide one would save no memory.
const MIN_KERNEL_WIDTH: i32 = 5;
/// Inputs of at most this many channels get all their columns stacked.
const FEW_CHANNELS: i32 = 4;
/// Columns stacked for wider inputs: every `GROUP`th kernel column is then one tap of a
/// convolution dilated by `GROUP`.
const GROUP: i32 = 3;

/// The model with every wide stride-1 VALID convolution stacked as described above. A
/// model without one comes back unchanged.
pub fn stack_wide_kernels(bytes: &[u8]) -> Result<Vec<u8>> {
    let Some(mut add) = Rewrite::open(bytes)? else {
        return Ok(bytes.to_vec());
    };
    if !add.codes.contains(&CONV_2D) {
        return Ok(bytes.to_vec());
    }
    let old_ops = add.old_ops.clone();
    let mut ops = Vec::with_capacity(old_ops.len());
    let mut changed = false;
    for op in &old_ops {
        let replaced = add.builtin(*op)? == CONV_2D && stack_one(&mut add, &mut ops, *op)?;
        changed |= replaced;
        if !replaced {
            ops.push(Op::Old(op.pos));
        }
    }
    if !changed {
        return Ok(bytes.to_vec());
    }
    add.write(&ops)
}

/// Appends the stacked form of one CONV_2D to `ops`; false leaves the op as it is.
fn stack_one(add: &mut Rewrite, ops: &mut Vec<Op>, op: Table) -> Result<bool> {
    let (OPTIONS_CONV_2D, Some(options)) = (
        op.i8_or(OPERATOR_OPTIONS_TYPE, 0)?,
        op.target(OPERATOR_OPTIONS)?,
    ) else {
        return Ok(false);
    };
    let conv = Table {
        buf: op.buf,
        pos: options,
    };
    // Defaults from schema.fbs: SAME padding, dilation 1 (strides have no default).
    if conv.i8_or(CONV_PADDING, 0)? != PADDING_VALID
        || conv.i32_or(CONV_STRIDE_W, 0)? != 1
        || conv.i32_or(CONV_STRIDE_H, 0)? != 1
        || conv.i32_or(CONV_DILATION_W, 1)? != 1
        || conv.i32_or(CONV_DILATION_H, 1)? != 1
    {
        return Ok(false);
    }
    let inputs = op.i32_vector(OPERATOR_INPUTS)?;
    let outputs = op.i32_vector(OPERATOR_OUTPUTS)?;
    let (&[x, weights, ref bias @ ..], &[y]) = (inputs.as_slice(), outputs.as_slice()) else {
        return Ok(false);
    };
    // Int8 only, where the sums are exact integers (a float kernel would sum in another
    // order); weights an old constant, whose buffer the new shape reuses.
    let int8 = |t: i32| -> Result<bool> { Ok(add.tensor_type(t)? == TENSOR_TYPE_INT8) };
    if weights < 0 || weights as usize >= add.old_tensors.len() || !int8(x)? || !int8(weights)? {
        return Ok(false);
    }
    if !add.has_data(weights)? {
        return Ok(false);
    }
    let (in_shape, w_shape, out_shape) = (add.shape(x)?, add.shape(weights)?, add.shape(y)?);
    let (&[1, h, w, c], &[o, kh, kw, wc], &[1, oh, ow, oc]) = (
        in_shape.as_slice(),
        w_shape.as_slice(),
        out_shape.as_slice(),
    ) else {
        return Ok(false);
    };
    let fits = kw >= MIN_KERNEL_WIDTH
        && c > 0
        && wc == c
        && oc == o
        && w.checked_sub(kw - 1) == Some(ow)
        && h.checked_sub(kh - 1) == Some(oh)
        && ow > 0
        && oh > 0
        && kw.checked_mul(c).is_some();
    if !fits {
        return Ok(false);
    }
    let g = group(kw, c);
    if g < 2 {
        return Ok(false);
    }
    let m = kw / g;
    let name =
        String::from_utf8_lossy(add.old(y)?.string(TENSOR_NAME)?.unwrap_or(b"conv")).into_owned();
    let name = format!("{name}/stacked");
    let sw = w - (g - 1);
    let mut columns = Vec::with_capacity(g as usize);
    for dx in 0..g {
        columns.push(add.slice(ops, x, 2, dx, sw, &name)?);
    }
    let stacked = add.concat(ops, &columns, 3, None, &name)?;
    let narrow =
        add.reshaped_constant(weights, vec![o, kh, m, g * c], format!("{name}/weights"))?;
    let mut new_inputs = vec![stacked, narrow];
    new_inputs.extend_from_slice(bias);
    let activation = conv.i8_or(CONV_ACTIVATION, 0)? as u8;
    let conv = add.op(
        CONV_2D,
        new_inputs,
        vec![y],
        Options::Conv2D {
            activation,
            dilation_w: g,
        },
    );
    ops.push(conv);
    Ok(true)
}

/// How many shifted copies to stack for a kernel `kw` wide over `c` channels: all `kw`
/// for up to [`FEW_CHANNELS`] (the first convolution, 3 channels: XNNPACK rounds each
/// tap's channels up to 8, so 27 stacked channels also waste less work), else
/// [`GROUP`] when it divides `kw`; 1 (nothing to do) otherwise.
fn group(kw: i32, c: i32) -> i32 {
    if c <= FEW_CHANNELS {
        kw
    } else if kw % GROUP == 0 {
        GROUP
    } else {
        1
    }
}

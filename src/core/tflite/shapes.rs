//! Sets the static shapes of the transfer network's activations for an inference size.
//!
//! TFLite kernels work out their output shapes when the input is resized, but XNNPACK
//! plans slices and concatenations from the shapes it sees when the graph is
//! delegated. Writing the real shapes into the file makes both agree from the start.
//!
//! Every activation in the transfer network is 1 x h x w x c, where h is the input
//! height divided by 1, 2 or 4, plus up to 8 rows of padding (2 or 8 in this network)
//! before a convolution.
//! Weights (tensors with data) and 1x1 statistics keep their shapes.

use super::BUFFER_DATA;
use super::{ModelError, Result, Table};
use super::{MODEL_BUFFERS, MODEL_SUBGRAPHS, SUBGRAPH_TENSORS, TENSOR_BUFFER, TENSOR_SHAPE};

const SCALES: [i32; 3] = [1, 2, 4];
const MAX_PADDING: i32 = 8;

/// `dim` of a tensor in a graph built for `native`, in the same graph built for
/// `target`; None when it does not follow the input size.
fn scale_dim(dim: i32, native: i32, target: i32) -> Option<i32> {
    SCALES.iter().find_map(|&s| {
        let padding = dim.checked_sub(native / s)?;
        (native % s == 0 && (0..=MAX_PADDING).contains(&padding) && padding % 2 == 0)
            .then(|| (target / s).checked_add(padding))
            .flatten()
    })
}

/// Rewrites, in place, each activation's height and width from `native` (the file's
/// input HxW) to `target`.
pub fn set_static_shapes(bytes: &mut [u8], native: (i32, i32), target: (i32, i32)) -> Result<()> {
    let mut writes = Vec::new();
    {
        let model = Table::root(bytes)?;
        let buffers = model.table_vector(MODEL_BUFFERS)?;
        let graph = *model
            .table_vector(MODEL_SUBGRAPHS)?
            .first()
            .ok_or(ModelError::Malformed("no subgraph"))?;
        for tensor in graph.table_vector(SUBGRAPH_TENSORS)? {
            let buffer = buffers.get(tensor.u32_or(TENSOR_BUFFER, 0)? as usize);
            let constant = match buffer {
                Some(b) => b.vector(BUFFER_DATA)?.is_some_and(|v| v.len > 0),
                None => false,
            };
            let Some(shape) = tensor.vector(TENSOR_SHAPE)? else {
                continue;
            };
            if constant || shape.len != 4 || model.buf.i32(shape.data)? != 1 {
                continue;
            }
            for (axis, native, target) in [(1, native.0, target.0), (2, native.1, target.1)] {
                let at = shape.data + 4 * axis;
                if let Some(v) = scale_dim(model.buf.i32(at)?, native, target) {
                    writes.push((at, v));
                }
            }
        }
    }
    for (at, v) in writes {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::scale_dim;

    #[test]
    fn padded_and_strided_sizes_follow_the_input() {
        assert_eq!(scale_dim(384, 384, 288), Some(288));
        assert_eq!(scale_dim(392, 384, 288), Some(296));
        assert_eq!(scale_dim(386, 384, 288), Some(290));
        assert_eq!(scale_dim(194, 384, 288), Some(146));
        assert_eq!(scale_dim(96, 384, 288), Some(72));
        assert_eq!(scale_dim(98, 384, 216), Some(56));
        assert_eq!(scale_dim(1, 384, 288), None);
        assert_eq!(scale_dim(3, 384, 288), None);
    }
}

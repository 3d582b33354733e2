//! Makes the transfer network's instance-norm statistics steerable over time.
//!
//! Each conditional instance norm normalizes a layer with the mean and variance of the
//! whole frame. Those statistics move a little with every change anywhere in the frame
//! (and, in the int8 network, jump by whole quantization steps), and every pixel's
//! output moves with them: most of the shimmer on a fixed camera comes from here.
//!
//! The rewrite gives the graph, per norm, two inputs (the statistics to hold, from
//! earlier frames) and two outputs (the statistics it used), plus one scalar input
//! `hold` (h, 0..1). It then normalizes with
//!
//! ```text
//!     used = frame + h * (held - frame)
//! ```
//!
//! for the mean and the variance alike. With h = 0 this is exactly the frame's own
//! statistic (`held - frame` times 0 is 0, and x + 0 is x), so the output is the
//! per-frame output bit for bit. Fed back frame after frame, `used` is an exponential
//! moving average with weight 1 - h on the newest frame.
//!
//! Only the uses in the normalization change: the variance is still measured around
//! the frame's own mean.

use super::rewrite::{Op, Options, Rewrite, OPERATOR_OUTPUTS, TENSOR_TYPE_FLOAT32};
use super::OPERATOR_INPUTS;
use super::{ModelError, Result, Table};

const ADD: i32 = 0;
const DEQUANTIZE: i32 = 6;
const QUANTIZE: i32 = 114;
const MUL: i32 = 18;
const SUB: i32 = 41;
const MEAN: i32 = 40;
const RSQRT: i32 = 76;
const SQUARED_DIFFERENCE: i32 = 99;
const OPTIONS_ADD: u8 = 11;
const OPTIONS_MUL: u8 = 21;
const OPTIONS_SUB: u8 = 28;
const OPTIONS_QUANTIZE: u8 = 89;
/// How many single-consumer ops may lie between SQUARED_DIFFERENCE and RSQRT.
const MAX_VARIANCE_CHAIN: usize = 6;

/// The name of the scalar input h.
pub const HOLD_INPUT: &str = "stylize/stats/hold";

/// One statistic the rewritten graph takes and gives: input `{name}/held`, output
/// `{name}/used`, `channels` floats each.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistic {
    pub name: String,
    pub channels: usize,
}

impl Statistic {
    pub fn input(&self) -> String {
        format!("{}/held", self.name)
    }
    pub fn output(&self) -> String {
        format!("{}/used", self.name)
    }
}

/// One instance norm found in the graph.
struct Norm {
    /// The frame's mean as float (the SQUARED_DIFFERENCE operand) and the op after
    /// which it exists.
    mean: i32,
    mean_ready: usize,
    /// The MEAN output the normalization reads (int8 or float).
    mean_source: i32,
    /// Ops that read `mean_source` to normalize, by index.
    mean_users: Vec<usize>,
    /// The RSQRT op and its float input (variance plus epsilon).
    rsqrt: usize,
    variance: i32,
    channels: i32,
}

/// The transfer network with steerable statistics, and the statistics in input order
/// (after the content and style inputs). A graph without instance norms gives None.
pub fn steady_stats(bytes: &[u8]) -> Result<Option<(Vec<u8>, Vec<Statistic>)>> {
    let Some(mut rw) = Rewrite::open(bytes)? else {
        return Ok(None);
    };
    let ops = rw.old_ops.clone();
    let norms = find_norms(&rw, &ops)?;
    if norms.is_empty() {
        return Ok(None);
    }

    let hold = rw.tensor(
        vec![1, 1, 1, 1],
        TENSOR_TYPE_FLOAT32 as u8,
        HOLD_INPUT.into(),
    );
    rw.extra_inputs.push(hold);
    let mut stats = Vec::new();
    // Ops to insert after op i, and rewired inputs per op.
    let mut after: Vec<Vec<Op>> = (0..ops.len()).map(|_| Vec::new()).collect();
    let mut before: Vec<Vec<Op>> = (0..ops.len()).map(|_| Vec::new()).collect();
    let mut rewired: Vec<Option<Vec<i32>>> = vec![None; ops.len()];
    for (n, norm) in norms.iter().enumerate() {
        let shape = vec![1, 1, 1, norm.channels];
        for (kind, frame) in [("mean", norm.mean), ("variance", norm.variance)] {
            let name = format!("stylize/stats/{n}/{kind}");
            let stat = Statistic {
                name: name.clone(),
                channels: norm.channels as usize,
            };
            let held = rw.tensor(shape.clone(), TENSOR_TYPE_FLOAT32 as u8, stat.input());
            let diff = rw.tensor(
                shape.clone(),
                TENSOR_TYPE_FLOAT32 as u8,
                format!("{name}/diff"),
            );
            let step = rw.tensor(
                shape.clone(),
                TENSOR_TYPE_FLOAT32 as u8,
                format!("{name}/step"),
            );
            let used = rw.tensor(shape.clone(), TENSOR_TYPE_FLOAT32 as u8, stat.output());
            rw.extra_inputs.push(held);
            rw.extra_outputs.push(used);
            stats.push(stat);
            let mut smooth = vec![
                rw.op(
                    SUB,
                    vec![held, frame],
                    vec![diff],
                    Options::Empty(OPTIONS_SUB),
                ),
                rw.op(
                    MUL,
                    vec![diff, hold],
                    vec![step],
                    Options::Empty(OPTIONS_MUL),
                ),
                rw.op(
                    ADD,
                    vec![frame, step],
                    vec![used],
                    Options::Empty(OPTIONS_ADD),
                ),
            ];
            if kind == "mean" {
                let int8 = rw.tensor_type(norm.mean_source)? != TENSOR_TYPE_FLOAT32 as u8;
                let normalized = if int8 {
                    let q = rw.quantized_like(norm.mean_source, format!("{name}/used_q"))?;
                    smooth.push(rw.op(
                        QUANTIZE,
                        vec![used],
                        vec![q],
                        Options::Empty(OPTIONS_QUANTIZE),
                    ));
                    q
                } else {
                    used
                };
                after[norm.mean_ready].extend(smooth);
                for &user in &norm.mean_users {
                    let inputs = rewired[user]
                        .take()
                        .map_or_else(|| ops[user].i32_vector(OPERATOR_INPUTS), Ok)?;
                    rewired[user] = Some(
                        inputs
                            .into_iter()
                            .map(|t| if t == norm.mean_source { normalized } else { t })
                            .collect(),
                    );
                }
            } else {
                before[norm.rsqrt].extend(smooth);
                rewired[norm.rsqrt] = Some(vec![used]);
            }
        }
    }

    let mut out = Vec::with_capacity(ops.len() + norms.len() * 7);
    for (i, op) in ops.iter().enumerate() {
        out.append(&mut before[i]);
        out.push(match rewired[i].take() {
            Some(inputs) => Op::Rewired(op.pos, inputs),
            None => Op::Old(op.pos),
        });
        out.append(&mut after[i]);
    }
    Ok(Some((rw.write(&out)?, stats)))
}

fn find_norms(rw: &Rewrite, ops: &[Table]) -> Result<Vec<Norm>> {
    let mut producer = std::collections::HashMap::new();
    let mut consumers: std::collections::HashMap<i32, Vec<usize>> = Default::default();
    let mut builtin = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        builtin.push(rw.builtin(*op)?);
        for t in op.i32_vector(OPERATOR_OUTPUTS)? {
            producer.insert(t, i);
        }
        for t in op.i32_vector(OPERATOR_INPUTS)? {
            consumers.entry(t).or_default().push(i);
        }
    }
    let is_stat = |t: i32| -> Result<bool> {
        let s = rw.shape(t)?;
        Ok(s.len() == 4 && s[..3] == [1, 1, 1])
    };
    let mut norms = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if builtin[i] != SQUARED_DIFFERENCE {
            continue;
        }
        let inputs = op.i32_vector(OPERATOR_INPUTS)?;
        let Some(&mean) = inputs.iter().find(|&&t| is_stat(t).unwrap_or(false)) else {
            continue;
        };
        let Some(&mean_ready) = producer.get(&mean) else {
            continue;
        };
        let mean_source = if builtin[mean_ready] == DEQUANTIZE {
            ops[mean_ready].i32_vector(OPERATOR_INPUTS)?[0]
        } else {
            mean
        };
        if producer.get(&mean_source).map(|&p| builtin[p]) != Some(MEAN) {
            continue;
        }
        // Follow the variance to its RSQRT.
        let mut t = op.i32_vector(OPERATOR_OUTPUTS)?[0];
        let mut rsqrt = None;
        for _ in 0..MAX_VARIANCE_CHAIN {
            let Some([next]) = consumers.get(&t).map(|c| c.as_slice()) else {
                break;
            };
            if builtin[*next] == RSQRT {
                rsqrt = Some(*next);
                break;
            }
            t = ops[*next].i32_vector(OPERATOR_OUTPUTS)?[0];
        }
        let Some(rsqrt) = rsqrt else {
            continue;
        };
        let variance = ops[rsqrt].i32_vector(OPERATOR_INPUTS)?[0];
        if rw.tensor_type(variance)? != TENSOR_TYPE_FLOAT32 as u8
            || rw.tensor_type(mean)? != TENSOR_TYPE_FLOAT32 as u8
        {
            continue;
        }
        let mean_users: Vec<usize> = consumers
            .get(&mean_source)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&u| u != i && u != mean_ready)
            .collect();
        // The smoothed mean exists only after `mean_ready`.
        if mean_users.iter().any(|&u| u < mean_ready) {
            continue;
        }
        let channels = rw.shape(mean)?[3];
        if mean_users.is_empty() || rw.shape(variance)? != rw.shape(mean)? || channels <= 0 {
            return Err(ModelError::Malformed(
                "instance norm whose statistics are not used as expected",
            ));
        }
        norms.push(Norm {
            mean,
            mean_ready,
            mean_source,
            mean_users,
            rsqrt,
            variance,
            channels,
        });
    }
    Ok(norms)
}

//! Mutation tests for the TFLite reader and rewriter: the real models (fetched by
//! `scripts/setup.sh`) with bit flips, overwritten offsets and lengths, truncations,
//! splices, insertions and removals, then every read and rewrite the engine performs
//! (`inspect_transfer`, `transfer_for_size`, `transfer_for_gpu`, `transfer_for_cpu`) and
//! the rewrite steps on their own. A model file comes from outside, so whatever it holds
//! must give a [`ModelError`]: never a panic, a hang or an allocation the file's size
//! does not justify.
//!
//! Mutations land anywhere in the file or, more often, on the flatbuffer's structure
//! (root offset, tables' vtable offsets, vtable entries, field values, vector lengths,
//! shapes and small constants), found by walking the unmutated model; random bytes in a
//! model are mostly weights, which the reader never looks at.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use super::*;

/// SubGraph.outputs, from schema.fbs.
const SUBGRAPH_OUTPUTS: usize = 2;

/// Cases per run: 20000 take about 7 s on two busy cores (the count is printed).
const CASES: u32 = 20_000;
/// A case that takes longer than this is a hang (a clean case takes milliseconds).
const MAX_CASE_TIME: Duration = Duration::from_secs(5);

/// The global allocator of this test binary: the system's, recording the largest single
/// allocation each thread asks for, so a test can tell a length field taken on trust.
struct Watched;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed to `System` unchanged; `note` does not allocate.
unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

/// Runs `f` and gives its result and the largest single allocation it made on this
/// thread. Also used by the style store's mutation test.
pub(crate) fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

/// The most one allocation may take for a model of `len` bytes: the copies a rewrite
/// makes, with room for a vector's doubling; a length field read on trust asks for
/// gigabytes.
fn allocation_budget(len: usize) -> usize {
    16 * len + (16 << 20)
}

/// The real model for `role`, or a failure that says how to get it.
fn real_model(role: &str) -> Vec<u8> {
    let file = crate::models::file_for(role).expect("a role of the manifest");
    let path = crate::paths::default_model_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the mutation tests need the real models and {} is missing ({e}): run \
             scripts/setup.sh once (it fetches them), or point {} at the model folder",
            path.display(),
            crate::paths::MODEL_DIR_ENV
        )
    })
}

struct Model {
    role: &'static str,
    bytes: Vec<u8>,
    /// Positions of the flatbuffer's structure in `bytes`.
    structure: Vec<usize>,
}

fn models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        ["transfer-int8", "transfer-fp16", "prediction-int8"]
            .into_iter()
            .map(|role| {
                let bytes = real_model(role);
                let structure = structure(&bytes).expect("the real model reads");
                assert!(
                    structure.len() > 100,
                    "{role}: {} positions",
                    structure.len()
                );
                Model {
                    role,
                    bytes,
                    structure,
                }
            })
            .collect()
    })
}

/// The positions a reader follows in a well-formed model: root offset, each table's
/// vtable offset, vtable and fields, vector lengths and their elements (offsets, shapes,
/// indices), and the data of constants up to 64 bytes (resize sizes, paddings).
fn structure(bytes: &[u8]) -> Result<Vec<usize>> {
    let mut at = vec![0];
    let model = Table::root(bytes)?;
    table(model, &mut at)?;
    for code in tables(model, MODEL_OPERATOR_CODES, &mut at)? {
        table(code, &mut at)?;
    }
    for buffer in tables(model, MODEL_BUFFERS, &mut at)? {
        table(buffer, &mut at)?;
        if let Some(v) = buffer.vector(BUFFER_DATA)? {
            at.push(v.data - 4);
            if v.len <= 64 {
                at.extend((0..v.len / 4).map(|i| v.data + 4 * i));
            }
        }
    }
    for graph in tables(model, MODEL_SUBGRAPHS, &mut at)? {
        table(graph, &mut at)?;
        for slot in [SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS] {
            ints(graph, slot, &mut at)?;
        }
        for tensor in tables(graph, SUBGRAPH_TENSORS, &mut at)? {
            table(tensor, &mut at)?;
            ints(tensor, TENSOR_SHAPE, &mut at)?;
        }
        for op in tables(graph, SUBGRAPH_OPERATORS, &mut at)? {
            table(op, &mut at)?;
            ints(op, OPERATOR_INPUTS, &mut at)?;
            ints(op, rewrite::OPERATOR_OUTPUTS, &mut at)?;
            if let Some(pos) = op.target(rewrite::OPERATOR_OPTIONS)? {
                table(Table { buf: op.buf, pos }, &mut at)?;
            }
        }
    }
    at.sort_unstable();
    at.dedup();
    Ok(at)
}

/// A table's vtable offset, its vtable's entries and its fields.
fn table(t: Table, at: &mut Vec<usize>) -> Result<()> {
    at.push(t.pos);
    let vtable = t.vtable()?;
    let len = t.buf.u16(vtable)? as usize;
    at.extend((0..len / 2).map(|i| vtable + 2 * i));
    for slot in t.present_slots()? {
        at.extend(t.field(slot)?);
    }
    Ok(())
}

/// The tables of vector `slot`, with the vector's length and elements.
fn tables<'a>(t: Table<'a>, slot: usize, at: &mut Vec<usize>) -> Result<Vec<Table<'a>>> {
    if let Some(v) = t.vector(slot)? {
        at.push(v.data - 4);
        at.extend((0..v.len).map(|i| v.data + 4 * i));
    }
    t.table_vector(slot)
}

/// The length and elements of int vector `slot`.
fn ints(t: Table, slot: usize, at: &mut Vec<usize>) -> Result<()> {
    if let Some(v) = t.vector(slot)? {
        at.push(v.data - 4);
        at.extend((0..v.len).map(|i| v.data + 4 * i));
    }
    Ok(())
}

/// Where a mutation lands: anywhere in the file, or on its structure; reduced modulo
/// the file's length (the structure's count) when applied.
#[derive(Clone, Copy, Debug)]
enum At {
    Anywhere(usize),
    Structure(usize),
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(At, u8),
    SetByte(At, u8),
    SetU16(At, u16),
    SetU32(At, u32),
    /// Moves an offset or a length by a little.
    AddU32(At, i32),
    /// Keeps `n % (len + 1)` bytes.
    Truncate(usize),
    /// Copies `len` bytes from one place over another.
    Splice {
        from: At,
        to: At,
        len: u16,
    },
    /// Inserts bytes, shifting everything after them (offsets then point elsewhere).
    Insert(At, Vec<u8>),
    Remove(At, u16),
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        1 => any::<usize>().prop_map(At::Anywhere),
        3 => any::<usize>().prop_map(At::Structure),
    ]
}

/// Values that break offsets and lengths: zero, all ones, the sign boundary, huge
/// lengths just under u32::MAX, small numbers, anything.
fn u32_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(u32::MAX),
        Just(u32::MAX - 3),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0x4000_0000),
        Just(0x1000_0000),
        1u32..64,
        any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (at(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
        2 => (at(), any::<u8>()).prop_map(|(a, v)| Mutation::SetByte(a, v)),
        2 => (at(), prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()])
            .prop_map(|(a, v)| Mutation::SetU16(a, v)),
        4 => (at(), u32_value()).prop_map(|(a, v)| Mutation::SetU32(a, v)),
        2 => (at(), -64i32..64).prop_map(|(a, d)| Mutation::AddU32(a, d * 4)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (at(), at(), 1u16..512).prop_map(|(from, to, len)| Mutation::Splice { from, to, len }),
        1 => (at(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        1 => (at(), 1u16..64).prop_map(|(a, n)| Mutation::Remove(a, n)),
    ]
}

/// Inference sizes the engine asks for (multiples of 4 from 32 to 4096), and a bad one.
fn size() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        Just((384, 384)),
        Just((288, 384)),
        Just((216, 384)),
        Just((32, 32)),
        Just((2304, 4096)),
        (8usize..1025, 8usize..1025).prop_map(|(h, w)| (h * 4, w * 4)),
        Just((6, 10)),
    ]
}

fn apply(model: &Model, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = model.bytes.clone();
    let pos = |bytes: &[u8], a: At| -> Option<usize> {
        if bytes.is_empty() {
            return None;
        }
        Some(match a {
            At::Anywhere(i) => i % bytes.len(),
            At::Structure(i) => model.structure[i % model.structure.len()] % bytes.len(),
        })
    };
    let put = |bytes: &mut Vec<u8>, at: usize, value: &[u8]| {
        let end = (at + value.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&value[..end - at]);
    };
    for m in mutations {
        match *m {
            Mutation::FlipBit(a, bit) => {
                if let Some(i) = pos(&bytes, a) {
                    bytes[i] ^= 1 << bit;
                }
            }
            Mutation::SetByte(a, v) => {
                if let Some(i) = pos(&bytes, a) {
                    bytes[i] = v;
                }
            }
            Mutation::SetU16(a, v) => {
                if let Some(i) = pos(&bytes, a) {
                    put(&mut bytes, i, &v.to_le_bytes());
                }
            }
            Mutation::SetU32(a, v) => {
                if let Some(i) = pos(&bytes, a) {
                    put(&mut bytes, i, &v.to_le_bytes());
                }
            }
            Mutation::AddU32(a, d) => {
                if let Some(i) = pos(&bytes, a) {
                    if let Some(old) = bytes.get(i..i + 4) {
                        let old = u32::from_le_bytes([old[0], old[1], old[2], old[3]]);
                        put(&mut bytes, i, &old.wrapping_add(d as u32).to_le_bytes());
                    }
                }
            }
            Mutation::Truncate(n) => {
                let keep = n % (bytes.len() + 1);
                bytes.truncate(keep);
            }
            Mutation::Splice { from, to, len } => {
                if let (Some(from), Some(to)) = (pos(&bytes, from), pos(&bytes, to)) {
                    let end = (from + len as usize).min(bytes.len());
                    let piece = bytes[from..end].to_vec();
                    put(&mut bytes, to, &piece);
                }
            }
            Mutation::Insert(a, ref extra) => {
                if let Some(i) = pos(&bytes, a) {
                    bytes.splice(i..i, extra.iter().copied());
                }
            }
            Mutation::Remove(a, n) => {
                if let Some(i) = pos(&bytes, a) {
                    let end = (i + n as usize).min(bytes.len());
                    bytes.drain(i..end);
                }
            }
        }
    }
    bytes
}

/// How far a case got, for the summary line.
#[derive(Default, Debug)]
struct Reached {
    read: usize,
    rewritten_for_cpu: usize,
    pads_expanded: usize,
}

/// Every read and rewrite the engine performs on `bytes`, the rewrite steps on their
/// own, and a read of each rewritten model.
fn exercise(bytes: &[u8], (height, width): (usize, usize), reached: &mut Reached) {
    let _ = builtin_ops(bytes);
    if inspect_transfer(bytes).is_ok() {
        reached.read += 1;
    }
    for (name, rewrite) in [
        (
            "transfer_for_size",
            transfer_for_size as fn(&[u8], usize, usize) -> _,
        ),
        ("transfer_for_gpu", transfer_for_gpu),
        ("transfer_for_cpu", transfer_for_cpu),
    ] {
        if let Ok(out) = rewrite(bytes, height, width) {
            if name == "transfer_for_cpu" {
                reached.rewritten_for_cpu += 1;
            }
            let _ = builtin_ops(&out);
            let _ = inspect_transfer(&out);
        }
    }
    if let Ok(out) = reflect_pad::expand_reflect_pads(bytes) {
        reached.pads_expanded += 1;
        let _ = builtin_ops(&out);
    }
    let mut copy = bytes.to_vec();
    let _ = shapes::set_static_shapes(&mut copy, (384, 384), (height as i32, width as i32));
}

#[test]
fn mutated_real_models_give_errors_not_panics_hangs_or_huge_allocations() {
    let models = models();
    let config = ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (
        0..models.len(),
        prop::collection::vec(mutation(), 1..8),
        size(),
    );
    let cases = Cell::new(0u32);
    let reached = RefCell::new(Reached::default());
    let started = Instant::now();
    let result = runner.run(&strategy, |(model, mutations, size)| {
        cases.set(cases.get() + 1);
        let model = &models[model];
        let bytes = apply(model, &mutations);
        let start = Instant::now();
        let ((), largest) =
            largest_allocation(|| exercise(&bytes, size, &mut reached.borrow_mut()));
        let took = start.elapsed();
        prop_assert!(took < MAX_CASE_TIME, "{}: took {took:?}", model.role);
        prop_assert!(
            largest <= allocation_budget(bytes.len()),
            "{}: one allocation of {largest} bytes for a {}-byte file",
            model.role,
            bytes.len()
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (cases, reached) = (cases.get(), reached.into_inner());
    eprintln!(
        "tflite mutation cases: {cases} in {:.1?} ({reached:?})",
        started.elapsed()
    );
    assert_eq!(cases, CASES);
    // The mutations must leave enough of the models for the rewrites to run.
    assert!(
        reached.rewritten_for_cpu > CASES as usize / 20,
        "{reached:?}"
    );
}

/// Found by reading `reflect_pad` (two coordinated values, which random mutations
/// seldom make): a MIRROR_PAD whose input claims 2^30 rows and whose padding is
/// 2^30 - 1 rows passed the "wider than the tensor" check and made a billion one-row
/// slices. Such a pad is now left to the runtime's kernel.
#[test]
fn a_huge_reflect_pad_is_left_as_it_is_not_expanded_row_by_row() {
    let mut bytes = real_model("transfer-int8");
    let (shape_at, pads_at) = {
        let add = rewrite::Rewrite::open(&bytes).unwrap().unwrap();
        let op = add
            .old_ops
            .iter()
            .copied()
            .find(|op| add.builtin(*op).unwrap() == 100)
            .expect("the transfer network has a MIRROR_PAD");
        let inputs = op.i32_vector(OPERATOR_INPUTS).unwrap();
        let shape = add
            .old(inputs[0])
            .unwrap()
            .vector(TENSOR_SHAPE)
            .unwrap()
            .unwrap();
        let pads = add.old(inputs[1]).unwrap();
        let buffers = Table::root(&bytes)
            .unwrap()
            .table_vector(MODEL_BUFFERS)
            .unwrap();
        let buffer = buffers[pads.u32_or(TENSOR_BUFFER, 0).unwrap() as usize];
        let data = buffer.vector(BUFFER_DATA).unwrap().unwrap();
        assert_eq!(data.len, 32, "eight int32 paddings");
        (shape.data, data.data)
    };
    bytes[shape_at + 4..shape_at + 8].copy_from_slice(&(1i32 << 30).to_le_bytes());
    bytes[pads_at + 8..pads_at + 12].copy_from_slice(&((1i32 << 30) - 1).to_le_bytes());
    let start = Instant::now();
    let (result, largest) = largest_allocation(|| reflect_pad::expand_reflect_pads(&bytes));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(largest <= allocation_budget(bytes.len()), "{largest} bytes");
    assert!(result.is_ok());
}

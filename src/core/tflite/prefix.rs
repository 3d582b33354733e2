//! Writes new flatbuffer objects in front of an existing TFLite file.
//!
//! Flatbuffer references (uoffsets) are unsigned and point forward. Objects placed
//! before the old file can therefore refer to anything in it, unchanged, while the old
//! file's own references stay valid because it moves as one block. A rewrite only has
//! to write the tables it changes (a new root Model, its SubGraph, the new tensors and
//! operators) and the vectors that list them; the weights are not copied.
//!
//! Objects are laid out front to back. A reference may name an object that is written
//! later (a [`Label`]); every reference must point forward, which `finish` checks.

use super::{ModelError, Result};

/// The old file starts at a multiple of this, which keeps its 16-byte aligned buffers
/// aligned.
const OLD_FILE_ALIGN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// An absolute position in the old file.
    Old(usize),
    New(Label),
}

#[derive(Clone, Copy, Debug)]
pub enum Field {
    U8(u8),
    U32(u32),
    Ref(Target),
}

pub struct Prefix {
    bytes: Vec<u8>,
    labels: Vec<Option<usize>>,
    refs: Vec<(usize, Target)>,
}

impl Prefix {
    /// Starts with the root offset and the file identifier; the label is for the root
    /// table.
    pub fn new(identifier: [u8; 4]) -> (Self, Label) {
        let root = Label(0);
        let mut prefix = Prefix {
            bytes: vec![0; 4],
            labels: vec![None],
            refs: vec![(0, Target::New(root))],
        };
        prefix.bytes.extend_from_slice(&identifier);
        (prefix, root)
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn align(&mut self, to: usize) {
        while !self.bytes.len().is_multiple_of(to) {
            self.bytes.push(0);
        }
    }

    fn place(&mut self, label: Label) {
        debug_assert!(self.labels[label.0].is_none(), "label placed twice");
        self.labels[label.0] = Some(self.bytes.len());
    }

    fn push_ref(&mut self, target: Target) {
        self.refs.push((self.bytes.len(), target));
        self.bytes.extend_from_slice(&[0; 4]);
    }

    /// A table with the given (slot, value) fields, its vtable just before it.
    pub fn table(&mut self, label: Label, fields: &[(usize, Field)]) {
        // Four-byte fields first, then bytes, so every field is naturally aligned.
        let mut order: Vec<&(usize, Field)> = fields.iter().collect();
        order.sort_by_key(|(_, f)| matches!(f, Field::U8(_)));
        let mut layout = Vec::with_capacity(order.len());
        let mut offset = 4usize;
        for (slot, field) in &order {
            layout.push((*slot, offset));
            offset += if matches!(field, Field::U8(_)) { 1 } else { 4 };
        }
        let table_size = offset;
        let slots = fields.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
        let mut entries = vec![0u16; slots];
        for &(slot, at) in &layout {
            entries[slot] = at as u16;
        }

        self.align(4);
        let vtable = self.bytes.len();
        self.bytes
            .extend_from_slice(&(4 + 2 * slots as u16).to_le_bytes());
        self.bytes
            .extend_from_slice(&(table_size as u16).to_le_bytes());
        for e in entries {
            self.bytes.extend_from_slice(&e.to_le_bytes());
        }
        self.align(4);
        self.place(label);
        let table = self.bytes.len();
        self.bytes
            .extend_from_slice(&((table - vtable) as i32).to_le_bytes());
        for (_, field) in order {
            match *field {
                Field::U8(v) => self.bytes.push(v),
                Field::U32(v) => self.bytes.extend_from_slice(&v.to_le_bytes()),
                Field::Ref(t) => self.push_ref(t),
            }
        }
    }

    pub fn ref_vector(&mut self, label: Label, items: &[Target]) {
        self.align(4);
        self.place(label);
        self.bytes
            .extend_from_slice(&(items.len() as u32).to_le_bytes());
        for &t in items {
            self.push_ref(t);
        }
    }

    pub fn i32_vector(&mut self, label: Label, items: &[i32]) {
        self.align(4);
        self.place(label);
        self.bytes
            .extend_from_slice(&(items.len() as u32).to_le_bytes());
        for v in items {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A byte vector whose data starts 16-byte aligned, as schema.fbs asks for buffers.
    pub fn byte_vector(&mut self, label: Label, data: &[u8]) {
        while !(self.bytes.len() + 4).is_multiple_of(16) {
            self.bytes.push(0);
        }
        self.place(label);
        self.bytes
            .extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(data);
    }

    pub fn string(&mut self, label: Label, s: &str) {
        self.align(4);
        self.place(label);
        self.bytes
            .extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
    }

    /// The new file: these objects, then `old` unchanged.
    pub fn finish(mut self, old: &[u8]) -> Result<Vec<u8>> {
        self.align(OLD_FILE_ALIGN);
        let base = self.bytes.len();
        for &(at, target) in &self.refs {
            let to = match target {
                Target::Old(pos) => base + pos,
                Target::New(label) => self.labels[label.0]
                    .ok_or(ModelError::Malformed("rewrite left a label unplaced"))?,
            };
            if to <= at {
                return Err(ModelError::Malformed("rewrite made a backward reference"));
            }
            let offset = u32::try_from(to - at)
                .map_err(|_| ModelError::Malformed("rewritten model over 4 GiB"))?;
            self.bytes[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        }
        self.bytes.extend_from_slice(old);
        Ok(self.bytes)
    }
}

//! Writes what `torch.save` writes, for the artifacts other tools load with
//! `torch.load(..., weights_only=True)` (a Jacobian lens for TransformerLens): a zip archive
//! of stored entries, `archive/data.pkl` (a protocol-2 pickle naming nothing but
//! `torch._utils._rebuild_tensor_v2`, `torch.FloatStorage` and `collections.OrderedDict`,
//! the globals the weights-only unpickler allows), `archive/byteorder`, `archive/version`
//! and one 64-byte-aligned `archive/data/{key}` per tensor, as torch lays them out. The
//! reader ([`crate::load::checkpoint::torch_bin`]) maps what this writes.

use std::io::{Cursor, Write};

use anyhow::{anyhow, Result};

/// A value of the saved tree.
#[derive(Debug, Clone)]
pub enum Item {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Item>),
    /// Keys are strings or integers (a lens's layers).
    Dict(Vec<(Key, Item)>),
    /// An f32 tensor, row-major.
    Tensor {
        shape: Vec<usize>,
        data: Vec<f32>,
    },
}

#[derive(Debug, Clone)]
pub enum Key {
    Str(String),
    Int(i64),
}

impl Item {
    /// A JSON value (numbers, strings, arrays, objects) as an item.
    pub fn from_json(v: &serde_json::Value) -> Item {
        use serde_json::Value as J;
        match v {
            J::Null => Item::None,
            J::Bool(b) => Item::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Item::Int(i),
                None => Item::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Item::Str(s.clone()),
            J::Array(a) => Item::List(a.iter().map(Item::from_json).collect()),
            J::Object(o) => Item::Dict(
                (o.iter())
                    .map(|(k, v)| (Key::Str(k.clone()), Item::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// The bytes of `torch.save(root)`.
pub fn to_bytes(root: &Item) -> Result<Vec<u8>> {
    let mut pickle = Pickle::default();
    pickle.out.extend_from_slice(&[0x80, 0x02]);
    pickle.item(root);
    pickle.out.push(b'.');

    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = |align: u16| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .with_alignment(align)
    };
    let mut put = |name: &str, bytes: &[u8], align: u16| -> Result<()> {
        zip.start_file(format!("archive/{name}"), stored(align))
            .map_err(|e| anyhow!("{e}"))?;
        zip.write_all(bytes)?;
        Ok(())
    };
    put("data.pkl", &pickle.out, 1)?;
    put("byteorder", b"little", 1)?;
    for (key, data) in pickle.storages.iter().enumerate() {
        put(&format!("data/{key}"), bytemuck::cast_slice(data), 64)?;
    }
    put("version", b"3\n", 1)?;
    let cursor = zip.finish().map_err(|e| anyhow!("{e}"))?;
    Ok(cursor.into_inner())
}

/// A protocol-2 pickle being written, and the storages its tensors name.
#[derive(Default)]
struct Pickle<'a> {
    out: Vec<u8>,
    storages: Vec<&'a [f32]>,
}

impl<'a> Pickle<'a> {
    fn item(&mut self, item: &'a Item) {
        match item {
            Item::None => self.out.push(b'N'),
            Item::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            Item::Int(i) => self.int(*i),
            Item::Float(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Item::Str(s) => self.str(s),
            Item::List(items) => {
                self.out.extend_from_slice(b"](");
                items.iter().for_each(|i| self.item(i));
                self.out.push(b'e');
            }
            Item::Dict(items) => {
                self.out.extend_from_slice(b"}(");
                for (k, v) in items {
                    match k {
                        Key::Str(s) => self.str(s),
                        Key::Int(i) => self.int(*i),
                    }
                    self.item(v);
                }
                self.out.push(b'u');
            }
            Item::Tensor { shape, data } => self.tensor(shape, data),
        }
    }

    /// `_rebuild_tensor_v2(storage, 0, shape, strides, False, OrderedDict())`.
    fn tensor(&mut self, shape: &'a [usize], data: &'a [f32]) {
        let key = self.storages.len();
        self.storages.push(data);
        self.out
            .extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        self.str("storage");
        self.out.extend_from_slice(b"ctorch\nFloatStorage\n");
        self.str(&key.to_string());
        self.str("cpu");
        self.int(data.len() as i64);
        self.out.extend_from_slice(b"tQ");
        self.int(0);
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        for dims in [shape, &strides[..]] {
            self.out.push(b'(');
            dims.iter().for_each(|&d| self.int(d as i64));
            self.out.push(b't');
        }
        self.out
            .extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    }

    fn int(&mut self, i: i64) {
        match i {
            0..=0xff => self.out.extend_from_slice(&[b'K', i as u8]),
            0x100..=0xffff => {
                self.out.push(b'M');
                self.out.extend_from_slice(&(i as u16).to_le_bytes());
            }
            _ if i32::try_from(i).is_ok() => {
                self.out.push(b'J');
                self.out.extend_from_slice(&(i as i32).to_le_bytes());
            }
            _ => {
                self.out.extend_from_slice(&[0x8a, 8]);
                self.out.extend_from_slice(&i.to_le_bytes());
            }
        }
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }
}

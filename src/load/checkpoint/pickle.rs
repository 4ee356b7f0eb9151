//! A restricted unpickler for the `data.pkl` of `torch.save`: it rebuilds a state dict of
//! tensor descriptions (storage, offset, shape, strides) and nothing else. No Python object
//! is ever made and nothing the pickle names is called: a global other than torch's
//! tensor-rebuilding functions and storage types is refused as soon as it is read.
//!
//! The opcodes are those protocols 2–4 use for containers, strings, numbers and the
//! `REDUCE`/`BINPERSID` calls torch writes; anything else is refused. Every length is
//! checked against the bytes left before anything is allocated, and the values copied out
//! of the memo are counted, so a small pickle cannot ask for unbounded memory.

use std::collections::HashMap;

use anyhow::{anyhow, bail, ensure, Result};

/// A storage of the archive: `data/{key}`, `numel` elements of `dtype` (safetensors'
/// spelling: F32, F16, BF16…).
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub dtype: &'static str,
    pub key: String,
    pub numel: u64,
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`: a view of a storage,
/// offset and strides in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Storage,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// The globals a tensor checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildParameter,
    RebuildFromTypeV2,
    /// `torch.nn.parameter.Parameter` or `torch.Tensor`, named by `_rebuild_from_type_v2`.
    TensorType,
    StorageType(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(Storage),
    Tensor(TensorRef),
}

const STORAGE_TYPES: &[(&str, &str)] = &[
    ("FloatStorage", "F32"),
    ("HalfStorage", "F16"),
    ("BFloat16Storage", "BF16"),
    ("DoubleStorage", "F64"),
    ("LongStorage", "I64"),
    ("IntStorage", "I32"),
    ("ShortStorage", "I16"),
    ("CharStorage", "I8"),
    ("ByteStorage", "U8"),
    ("BoolStorage", "BOOL"),
];

fn global(module: &str, name: &str) -> Result<Global> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch.nn.parameter", "Parameter") | ("torch", "Tensor") => Global::TensorType,
        ("torch", storage) => match STORAGE_TYPES.iter().find(|(s, _)| *s == storage) {
            Some((_, dtype)) => Global::StorageType(dtype),
            None => bail!("its pickle names torch.{storage}"),
        },
        _ => bail!("its pickle names {module}.{name}"),
    })
}

/// Values copied out of the memo, in all: far more than any state dict holds.
const MEMO_BUDGET: usize = 1 << 24;
const MAX_DEPTH: usize = 1 << 16;

/// Runs the pickle; the value it leaves (a state dict, for a checkpoint).
pub fn load(bytes: &[u8]) -> Result<Value> {
    let mut vm = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget: MEMO_BUDGET,
    };
    loop {
        let at = vm.pos;
        let op = vm.take(1)?[0];
        if op == b'.' {
            ensure!(vm.marks.is_empty(), "an unclosed MARK at STOP");
            return vm.pop();
        }
        vm.step(op)
            .map_err(|e| anyhow!("{e} (opcode {op:#04x} at byte {at})"))?;
        ensure!(
            vm.stack.len() <= MAX_DEPTH,
            "a stack deeper than {MAX_DEPTH}"
        );
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack heights at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    budget: usize,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = (self.pos.checked_add(n)).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| anyhow!("the pickle ends inside an opcode"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        ensure!(self.stack.len() > floor, "pops an empty stack");
        Ok(self.stack.pop().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .marks
            .pop()
            .ok_or_else(|| anyhow!("no MARK to pop to"))?;
        Ok(self.stack.split_off(at))
    }

    fn top(&mut self) -> Result<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        ensure!(self.stack.len() > floor, "reads an empty stack");
        Ok(self.stack.last_mut().expect("checked"))
    }

    fn string(&mut self, len: u64) -> Result<String> {
        let len = usize::try_from(len)?;
        let b = self.take(len)?.to_vec();
        String::from_utf8(b).map_err(|_| anyhow!("a string that is not UTF-8"))
    }

    fn put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn get(&mut self, key: u32) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .ok_or_else(|| anyhow!("memo {key} is unset"))?;
        let size = v.size();
        ensure!(
            size <= self.budget,
            "copies more values than a checkpoint holds"
        );
        self.budget -= size;
        self.stack.push(v.clone());
        Ok(())
    }

    /// The opcodes that push constants, numbers and strings.
    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => ensure!(self.take(1)?[0] <= 5, "an unknown pickle protocol"),
            0x95 => drop(self.take(8)?), // FRAME: a length hint
            b'}' => self.stack.push(Value::Dict(Vec::new())),
            b']' => self.stack.push(Value::List(Vec::new())),
            b')' => self.stack.push(Value::Tuple(Vec::new())),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'K' => self.push_int(1)?,
            b'M' => self.push_int(2)?,
            b'J' => {
                let v = self.uint(4)? as u32 as i32;
                self.stack.push(Value::Int(v as i64));
            }
            0x8a => {
                let n = self.take(1)?[0] as usize;
                self.push_long(n)?;
            }
            0x8b => {
                let n = self.uint(4)? as usize;
                self.push_long(n)?;
            }
            b'G' => {
                let b: [u8; 8] = self.take(8)?.try_into()?;
                self.stack.push(Value::Float(f64::from_be_bytes(b)));
            }
            b'X' => {
                let n = self.uint(4)?;
                let s = self.string(n)?;
                self.stack.push(Value::Str(s));
            }
            0x8c => {
                let n = self.uint(1)?;
                let s = self.string(n)?;
                self.stack.push(Value::Str(s));
            }
            b'C' | b'B' => {
                let n = self.uint(if op == b'C' { 1 } else { 4 })? as usize;
                let b = self.take(n)?.to_vec();
                self.stack.push(Value::Bytes(b));
            }
            _ => self.step_structure(op)?,
        }
        Ok(())
    }

    /// The opcodes that build tuples and use the memo.
    fn step_structure(&mut self, op: u8) -> Result<()> {
        match op {
            b'(' => self.marks.push(self.stack.len()),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>>>()?;
                self.stack
                    .push(Value::Tuple(items.into_iter().rev().collect()));
            }
            b'q' => {
                let k = self.uint(1)? as u32;
                self.put(k)?
            }
            b'r' => {
                let k = self.uint(4)? as u32;
                self.put(k)?
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.put(k)?
            }
            b'h' => {
                let k = self.uint(1)? as u32;
                self.get(k)?
            }
            b'j' => {
                let k = self.uint(4)? as u32;
                self.get(k)?
            }
            _ => self.step_object(op)?,
        }
        Ok(())
    }

    /// The opcodes that name globals, call them and fill containers.
    fn step_object(&mut self, op: u8) -> Result<()> {
        match op {
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.stack.push(Value::Global(global(&module, &name)?));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(m), Value::Str(n)) = (module, name) else {
                    bail!("STACK_GLOBAL of a non-string");
                };
                self.stack.push(Value::Global(global(&m, &n)?));
            }
            b'Q' => {
                let pid = self.pop()?;
                self.stack.push(Value::Storage(storage(pid)?));
            }
            b'R' => {
                let args = self.pop()?;
                let f = self.pop()?;
                self.stack.push(reduce(f, args)?);
            }
            b'b' => {
                let _state = self.pop()?;
                ensure!(
                    matches!(self.top()?, Value::Dict(_) | Value::Tensor(_)),
                    "BUILD of something other than a dict or a tensor"
                );
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.dict()?.push((k, v));
            }
            b'u' => {
                let items = self.pop_mark()?;
                ensure!(items.len() % 2 == 0, "SETITEMS of an odd count");
                let mut it = items.into_iter();
                let d = self.dict()?;
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            b'a' => {
                let v = self.pop()?;
                self.list()?.push(v);
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.list()?.extend(items);
            }
            _ => bail!("an opcode torch.save does not write"),
        }
        Ok(())
    }

    fn push_int(&mut self, n: usize) -> Result<()> {
        let v = self.uint(n)?;
        self.stack.push(Value::Int(v as i64));
        Ok(())
    }

    /// LONG1/LONG4: a little-endian two's-complement integer of `n` bytes.
    fn push_long(&mut self, n: usize) -> Result<()> {
        ensure!(n <= 8, "an integer wider than 64 bits");
        let b = self.take(n)?;
        let mut v = 0i64;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as i64) << (8 * i);
        }
        if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
            v -= 1i64 << (8 * n);
        }
        self.stack.push(Value::Int(v));
        Ok(())
    }

    /// A `\n`-terminated ASCII line (GLOBAL's module and name).
    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let n = (rest.iter().take(256).position(|&b| b == b'\n'))
            .ok_or_else(|| anyhow!("a GLOBAL name without an end"))?;
        let s = self.string(n as u64)?;
        self.take(1)?;
        Ok(s)
    }

    fn dict(&mut self) -> Result<&mut Vec<(Value, Value)>> {
        match self.top()? {
            Value::Dict(d) => Ok(d),
            _ => bail!("SETITEM on something other than a dict"),
        }
    }

    fn list(&mut self) -> Result<&mut Vec<Value>> {
        match self.top()? {
            Value::List(l) => Ok(l),
            _ => bail!("APPEND on something other than a list"),
        }
    }
}

impl Value {
    /// How many values this is made of, itself included.
    fn size(&self) -> usize {
        match self {
            Value::Tuple(v) | Value::List(v) => 1 + v.iter().map(Value::size).sum::<usize>(),
            Value::Dict(d) => 1 + d.iter().map(|(k, v)| k.size() + v.size()).sum::<usize>(),
            Value::Tensor(t) => 1 + t.shape.len(),
            _ => 1,
        }
    }
}

/// `BINPERSID` of `('storage', torch.FloatStorage, key, location, numel)`.
fn storage(pid: Value) -> Result<Storage> {
    let Value::Tuple(t) = pid else {
        bail!("a persistent id that is not a tuple");
    };
    match t.as_slice() {
        [Value::Str(kind), Value::Global(Global::StorageType(dtype)), Value::Str(key), Value::Str(_), Value::Int(numel)]
            if kind == "storage" && *numel >= 0 =>
        {
            Ok(Storage {
                dtype,
                key: key.clone(),
                numel: *numel as u64,
            })
        }
        _ => bail!("a persistent id that is not a storage"),
    }
}

/// `REDUCE`: the only calls allowed are building an empty OrderedDict and rebuilding a
/// tensor from a storage.
fn reduce(f: Value, args: Value) -> Result<Value> {
    let Value::Global(g) = f else {
        bail!("REDUCE of something other than a global");
    };
    let Value::Tuple(args) = args else {
        bail!("REDUCE with arguments that are not a tuple");
    };
    match (g, args.as_slice()) {
        (Global::OrderedDict, []) => Ok(Value::Dict(Vec::new())),
        (
            Global::RebuildTensor | Global::RebuildTensorV2,
            [Value::Storage(s), Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..],
        ) => {
            let dims = |t: &[Value]| -> Result<Vec<usize>> {
                (t.iter())
                    .map(|v| match v {
                        Value::Int(n) if *n >= 0 => Ok(*n as usize),
                        _ => bail!("a tensor size or stride that is not a count"),
                    })
                    .collect()
            };
            let (shape, strides) = (dims(size)?, dims(stride)?);
            ensure!(
                shape.len() == strides.len(),
                "a tensor with {} sizes and {} strides",
                shape.len(),
                strides.len()
            );
            ensure!(*offset >= 0, "a negative storage offset");
            Ok(Value::Tensor(TensorRef {
                storage: s.clone(),
                offset: *offset as u64,
                shape,
                strides,
            }))
        }
        (Global::RebuildParameter, [t @ Value::Tensor(_), ..]) => Ok(t.clone()),
        (
            Global::RebuildFromTypeV2,
            [Value::Global(func), Value::Global(Global::TensorType), Value::Tuple(inner), _],
        ) => reduce(Value::Global(*func), Value::Tuple(inner.clone())),
        (g, _) => bail!("a call of {g:?} that does not rebuild a tensor"),
    }
}

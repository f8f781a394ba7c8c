//! A pickle reader for what `torch.save` writes: the opcodes of protocols 2 to 5, objects
//! kept as data (never executed), shared and cyclic references through an arena.
//!
//! `pytorch-reader` 0.22.1, the kept library for this, stops at the first dict key that is not
//! a string or an int, and an official Lightning checkpoint has tuple keys in its pickled
//! tokenizer; so the checkpoint converter reads the pickle here. Classes are never imported:
//! a `GLOBAL` is a name, `NEWOBJ` and `REDUCE` record the call, `BUILD` records the state.
//! Only a few calls are understood because a checkpoint's data is built by them:
//! `torch._utils._rebuild_tensor_v2` (a tensor), `collections.OrderedDict` and
//! `collections.defaultdict` (dicts), and `_codecs.encode(text, 'latin1')` (bytes).

use crate::error::{PrimeError, Result};

/// Index of a mutable container (list, dict, object) in the arena.
pub type NodeId = usize;

/// A pickled value. Lists, dicts and objects live in the arena, so that they can be shared and
/// filled after they are referenced (pickles are graphs, not trees).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// `None`.
    #[default]
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in i64.
    Int(i64),
    /// An int too wide for i64 (its little-endian two's-complement bytes).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// Bytes (also from `_codecs.encode(text, 'latin1')`).
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list, dict or object in the arena.
    Node(NodeId),
    /// A global name (`module.name`), such as a class.
    Global(String, String),
    /// A storage named by a persistent id: `('storage', class, key, location, numel)`.
    Storage(StorageRef),
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`.
    Tensor(TensorRef),
}

/// Where a storage's bytes are: `data/<key>` in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// File name under `data/`.
    pub key: String,
    /// The storage class, e.g. `FloatStorage`.
    pub class: String,
    /// Number of elements.
    pub numel: u64,
}

/// A tensor view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: u64,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Strides, in elements.
    pub stride: Vec<u64>,
}

/// A container in the arena.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A list (or a set).
    List(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// An object: its class, the arguments it was made with, and the state BUILD gave it.
    Object {
        /// `(module, name)` of the class or callable.
        class: (String, String),
        /// Arguments of `NEWOBJ` or `REDUCE`.
        args: Vec<Value>,
        /// State set by `BUILD`, if any.
        state: Option<Value>,
    },
}

/// A read pickle: the root value and the arena it refers to.
#[derive(Debug, Default)]
pub struct Pickle {
    /// The unpickled value.
    pub root: Value,
    nodes: Vec<Node>,
}

impl Pickle {
    /// The container `id` refers to.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The value under string key `key` of a dict, or of an object's dict state.
    pub fn get<'a>(&'a self, value: &'a Value, key: &str) -> Option<&'a Value> {
        match value {
            Value::Node(id) => match self.node(*id) {
                Node::Dict(items) => items.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v),
                // Only a dict state is looked into: a state that is itself an object (even the
                // same one, in a hostile file) would make this recurse without end.
                Node::Object { state: Some(state @ Value::Node(sid)), .. }
                    if matches!(self.node(*sid), Node::Dict(_)) =>
                {
                    self.get(state, key)
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn items<'a>(&'a self, value: &'a Value) -> Option<&'a [Value]> {
        match value {
            Value::Tuple(items) => Some(items),
            Value::Node(id) => match self.node(*id) {
                Node::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every object of class `module.name` in the arena, with its state.
    pub fn objects_of<'a>(&'a self, module: &'a str, name: &'a str) -> impl Iterator<Item = &'a Option<Value>> + 'a {
        self.nodes.iter().filter_map(move |n| match n {
            Node::Object { class, state, .. } if class.0 == module && class.1 == name => Some(state),
            _ => None,
        })
    }

    /// Reads a pickle.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Machine { bytes, at: 0, stack: Vec::new(), marks: Vec::new(), memo: Vec::new(), nodes: Vec::new() }.run()
    }
}

fn bad(message: String) -> PrimeError {
    PrimeError::Checkpoint(format!("pickle: {message}"))
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
    nodes: Vec<Node>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| bad(format!("truncated at byte {} (wants {n} more)", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize> {
        let len = self.uint(n)?;
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.bytes.len())
            .ok_or_else(|| bad(format!("length {len} exceeds the file")))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("unterminated GLOBAL".into()))?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| bad(format!("stack underflow at byte {}", self.at)))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().ok_or_else(|| bad("MARK missing".into()))?;
        if mark > self.stack.len() {
            return Err(bad("MARK beyond the stack".into()));
        }
        Ok(self.stack.split_off(mark))
    }

    fn top_node(&mut self) -> Result<NodeId> {
        match self.stack.last() {
            Some(Value::Node(id)) => Ok(*id),
            other => Err(bad(format!("expected a list, dict or object on the stack, found {other:?}"))),
        }
    }

    fn alloc(&mut self, node: Node) -> Value {
        self.nodes.push(node);
        Value::Node(self.nodes.len() - 1)
    }

    fn put(&mut self, index: usize) -> Result<()> {
        let value = self.stack.last().cloned().ok_or_else(|| bad("memo of an empty stack".into()))?;
        if index > self.bytes.len() {
            return Err(bad(format!("memo index {index} out of range")));
        }
        if self.memo.len() <= index {
            self.memo.resize(index + 1, None);
        }
        self.memo[index] = Some(value);
        Ok(())
    }

    fn get(&mut self, index: usize) -> Result<()> {
        let value = self.memo.get(index).cloned().flatten().ok_or_else(|| bad(format!("memo {index} is empty")))?;
        self.stack.push(value);
        Ok(())
    }

    fn append(&mut self, list: NodeId, values: Vec<Value>) -> Result<()> {
        match &mut self.nodes[list] {
            Node::List(items) => items.extend(values),
            Node::Object { args, .. } => args.extend(values),
            Node::Dict(_) => return Err(bad("APPEND to a dict".into())),
        }
        Ok(())
    }

    fn set_items(&mut self, dict: NodeId, values: Vec<Value>) -> Result<()> {
        if !values.len().is_multiple_of(2) {
            return Err(bad("SETITEMS with an odd number of values".into()));
        }
        let Node::Dict(items) = &mut self.nodes[dict] else { return Err(bad("SETITEM on a non-dict".into())) };
        let mut values = values.into_iter();
        while let (Some(k), Some(v)) = (values.next(), values.next()) {
            match items.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => items.push((k, v)),
            }
        }
        Ok(())
    }

    /// A call: `REDUCE` (`new == false`) or `NEWOBJ`.
    fn call(&mut self, callable: Value, args: Vec<Value>) -> Result<Value> {
        let Value::Global(module, name) = callable else {
            return Err(bad(format!("call of a non-global {callable:?}")));
        };
        Ok(match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") => rebuild_tensor(&args)?,
            ("collections", "OrderedDict")
            | ("collections", "defaultdict")
            | ("__builtin__", "dict")
            | ("builtins", "dict") => self.alloc(Node::Dict(Vec::new())),
            ("_codecs", "encode") => match args.first() {
                // latin1: each code point is one byte.
                Some(Value::Str(text)) => Value::Bytes(text.chars().map(|c| c as u32 as u8).collect()),
                _ => return Err(bad("_codecs.encode without a str".into())),
            },
            ("__builtin__", "set") | ("builtins", "set") => {
                let items = args.first().and_then(|a| match a {
                    Value::Node(id) => match &self.nodes[*id] {
                        Node::List(items) => Some(items.clone()),
                        _ => None,
                    },
                    _ => None,
                });
                self.alloc(Node::List(items.unwrap_or_default()))
            }
            _ => self.alloc(Node::Object { class: (module, name), args, state: None }),
        })
    }

    fn run(mut self) -> Result<Pickle> {
        loop {
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle { root, nodes: self.nodes });
                }
                b'(' => self.marks.push(self.stack.len()),
                b'}' => {
                    let v = self.alloc(Node::Dict(Vec::new()));
                    self.stack.push(v);
                }
                b']' | 0x8f => {
                    let v = self.alloc(Node::List(Vec::new()));
                    self.stack.push(v);
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(bad("TUPLE of a short stack".into()));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::List(items));
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::Dict(Vec::new()));
                    if let Value::Node(id) = v {
                        self.set_items(id, items)?;
                    }
                    self.stack.push(v);
                }
                b'q' => {
                    let i = self.len(1)?;
                    self.put(i)?;
                }
                b'r' => {
                    let i = self.len(4)?;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.len(1)?;
                    self.get(i)?;
                }
                b'j' => {
                    let i = self.len(4)?;
                    self.get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(bad("STACK_GLOBAL without two strs".into())),
                    }
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.len(1)? } else { self.len(4)? };
                    let bytes = self.take(n)?.to_vec();
                    self.stack.push(long(bytes));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    self.stack.push(Value::Float(v));
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' => {
                    let n = match op {
                        0x8c | b'U' => self.len(1)?,
                        0x8d => self.len(8)?,
                        _ => self.len(4)?,
                    };
                    let text = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(Value::Str(text));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.len(1)?,
                        b'B' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(bytes));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top_node()?;
                    self.append(list, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let list = self.top_node()?;
                    self.append(list, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top_node()?;
                    self.set_items(dict, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top_node()?;
                    self.set_items(dict, items)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = match args {
                        Value::Tuple(items) => items,
                        other => return Err(bad(format!("call arguments are not a tuple: {other:?}"))),
                    };
                    let v = self.call(callable, args)?;
                    self.stack.push(v);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = match args {
                        Value::Tuple(items) => items,
                        _ => Vec::new(),
                    };
                    let v = self.call(callable, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    // State of a dict (OrderedDict's `_metadata`) or of a non-object is dropped.
                    if let Some(Value::Node(id)) = self.stack.last()
                        && let Node::Object { state: slot, .. } = &mut self.nodes[*id]
                    {
                        *slot = Some(state);
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent(pid)?);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.stack.last().cloned().ok_or_else(|| bad("DUP of an empty stack".into()))?;
                    self.stack.push(top);
                }
                other => return Err(bad(format!("unsupported opcode 0x{other:02x} at byte {}", self.at - 1))),
            }
        }
    }
}

/// LONG1/LONG4: little-endian two's complement.
fn long(bytes: Vec<u8>) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(bytes);
    }
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xFF } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(&bytes);
    Value::Int(i64::from_le_bytes(buf))
}

/// A persistent id `('storage', class, key, location, numel)`.
fn persistent(pid: Value) -> Result<Value> {
    let Value::Tuple(items) = pid else { return Err(bad("a persistent id is not a tuple".into())) };
    match items.as_slice() {
        [Value::Str(kind), Value::Global(_, class), Value::Str(key), _, Value::Int(numel)]
            if kind == "storage" && *numel >= 0 =>
        {
            Ok(Value::Storage(StorageRef { key: key.clone(), class: class.clone(), numel: *numel as u64 }))
        }
        _ => Err(bad(format!("unsupported persistent id {items:?}"))),
    }
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, …)`.
fn rebuild_tensor(args: &[Value]) -> Result<Value> {
    let dims = |v: &Value| -> Option<Vec<u64>> {
        match v {
            Value::Tuple(items) => {
                items.iter().map(|i| if let Value::Int(n) = i { u64::try_from(*n).ok() } else { None }).collect()
            }
            _ => None,
        }
    };
    match args {
        [Value::Storage(storage), Value::Int(offset), size, stride, ..] if *offset >= 0 => {
            let (shape, stride) =
                dims(size).zip(dims(stride)).ok_or_else(|| bad("tensor size or stride is not ints".into()))?;
            Ok(Value::Tensor(TensorRef { storage: storage.clone(), offset: *offset as u64, shape, stride }))
        }
        _ => Err(bad("unsupported _rebuild_tensor_v2 arguments".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pickle written by hand: {'a': [1, -2, 3.5], 'b': (None, True), 't': obj} where obj is
    /// NEWOBJ(m.C) then BUILD {'x': 'y'}, and the dict refers to itself under 'self'.
    #[test]
    fn reads_a_graph_with_objects_and_sharing() {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend([0x8c, 1, b'a', b']', b'(', b'K', 1, b'J']);
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([b'e', 0x8c, 1, b'b', b'N', 0x88, 0x86]);
        p.extend([0x8c, 1, b't', b'c']);
        p.extend(b"m\nC\n");
        p.extend([b')', 0x81, b'}', 0x8c, 1, b'x', 0x8c, 1, b'y', b's', b'b']);
        p.extend([0x8c, 4]);
        p.extend(b"self");
        p.extend([b'h', 0, b'u', b'.']);
        let pickle = Pickle::parse(&p).unwrap();
        let root = &pickle.root;
        let a = pickle.items(pickle.get(root, "a").unwrap()).unwrap();
        assert_eq!(a, &[Value::Int(1), Value::Int(-2), Value::Float(3.5)]);
        assert_eq!(pickle.get(root, "b"), Some(&Value::Tuple(vec![Value::None, Value::Bool(true)])));
        let t = pickle.get(root, "t").unwrap();
        assert_eq!(pickle.get(t, "x"), Some(&Value::Str("y".into())));
        assert_eq!(pickle.get(root, "self"), Some(root), "the cycle resolves to the same node");
        assert_eq!(pickle.objects_of("m", "C").count(), 1);
    }

    #[test]
    fn broken_pickles_are_errors() {
        for bytes in [&b""[..], b"\x80\x02", b"\x80\x02h\x05.", b"\x80\x02\xff", b"\x80\x02X\xff\xff\xff\x7f"] {
            assert!(Pickle::parse(bytes).is_err(), "{bytes:?}");
        }
    }
}

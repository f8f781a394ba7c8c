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
//!
//! The reader is built for hostile files, like PyTorch's `weights_only` loader:
//! - a global outside [`ALLOWED_GLOBALS`] (the classes a Lightning checkpoint is made of) is
//!   refused by name, wherever it stands in the file;
//! - every container (tuples too) lives in the arena and a [`Value`] is never more than a
//!   handle, so no nesting depth can overflow a stack, and a memo fetch or `DUP` shares what it
//!   fetches (strings and bytes are reference-counted) instead of copying it;
//! - dicts keep a hash index and the memo is a map, so both are built in linear time;
//! - `MARK` nesting is capped at [`MAX_NESTING`], and what the reader builds is counted against
//!   a budget proportional to the file's size ([`Pickle::budget`]).

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{PrimeError, Result};

/// Index of a container (tuple, list, dict, object) in the arena.
pub type NodeId = usize;

/// `MARK`s open at once, at most: a Lightning checkpoint nests a few dozen deep.
pub const MAX_NESTING: usize = 1000;

/// The globals a checkpoint may name, as `(module, names)`: the containers and scalars of
/// Python, the tensor and storage types of torch, and the config, tokenizer and numpy classes
/// an official MDM-Prime Lightning checkpoint stores. They are recorded as data, never called;
/// any other global (`os.system`, `builtins.eval`, …) means the file is not a checkpoint.
pub const ALLOWED_GLOBALS: &[(&str, &[&str])] = &[
    ("__builtin__", BUILTINS),
    ("builtins", BUILTINS),
    ("collections", &["OrderedDict", "defaultdict", "Counter", "deque"]),
    ("_codecs", &["encode"]),
    (
        "torch",
        &[
            "FloatStorage",
            "DoubleStorage",
            "HalfStorage",
            "BFloat16Storage",
            "LongStorage",
            "IntStorage",
            "ShortStorage",
            "CharStorage",
            "ByteStorage",
            "BoolStorage",
            "ComplexFloatStorage",
            "ComplexDoubleStorage",
            "UntypedStorage",
            "Size",
            "device",
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "int64",
            "int32",
            "int16",
            "int8",
            "uint8",
            "bool",
        ],
    ),
    ("torch._utils", &["_rebuild_tensor_v2", "_rebuild_parameter"]),
    ("omegaconf.dictconfig", &["DictConfig"]),
    ("omegaconf.listconfig", &["ListConfig"]),
    (
        "omegaconf.nodes",
        &["AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode", "PathNode", "EnumNode"],
    ),
    ("omegaconf.base", &["ContainerMetadata", "Metadata"]),
    ("typing", &["Any", "Dict", "List", "Tuple", "Optional", "Union"]),
    ("tokenizers", &["Tokenizer", "AddedToken"]),
    ("tokenizers.models", &["Model", "BPE", "WordPiece"]),
    ("transformers.models.gpt2.tokenization_gpt2_fast", &["GPT2TokenizerFast"]),
    ("transformers.models.bert.tokenization_bert_fast", &["BertTokenizerFast"]),
    ("numpy", &["ndarray", "dtype"]),
    ("numpy.core.multiarray", &["_reconstruct", "scalar"]),
    ("numpy._core.multiarray", &["_reconstruct", "scalar"]),
];

const BUILTINS: &[&str] =
    &["dict", "list", "set", "frozenset", "tuple", "int", "long", "float", "bool", "str", "bytes", "bytearray"];

/// Whether a checkpoint may name `module.name` (see [`ALLOWED_GLOBALS`]).
pub fn is_allowed_global(module: &str, name: &str) -> bool {
    ALLOWED_GLOBALS.iter().any(|(m, names)| *m == module && names.contains(&name))
}

/// A pickled value: a scalar, a shared string, or a handle. Tuples, lists, dicts and objects
/// live in the arena, so that they can be shared and filled after they are referenced (pickles
/// are graphs, not trees), and so that a value is cheap to copy however large its contents.
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
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A str.
    Str(Rc<str>),
    /// Bytes (also from `_codecs.encode(text, 'latin1')`).
    Bytes(Rc<[u8]>),
    /// A tuple, list, dict or object in the arena.
    Node(NodeId),
    /// A global name, such as a class.
    Global(Rc<Global>),
    /// A storage named by a persistent id: `('storage', class, key, location, numel)`.
    Storage(Rc<StorageRef>),
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`.
    Tensor(Rc<TensorRef>),
}

/// A global's `module.name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Global {
    /// The module, e.g. `collections`.
    pub module: String,
    /// The name in the module, e.g. `OrderedDict`.
    pub name: String,
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
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list (or a set).
    List(Vec<Value>),
    /// A dict, in insertion order (boxed: it is the largest kind).
    Dict(Box<Dict>),
    /// An object: its class, the arguments it was made with, and the state BUILD gave it.
    Object {
        /// The class or callable.
        class: Rc<Global>,
        /// Arguments of `NEWOBJ` or `REDUCE`, then any items `APPEND`ed to it.
        args: Vec<Value>,
        /// State set by `BUILD`, if any.
        state: Option<Value>,
    },
}

/// A dict: its entries in insertion order, and an index from key to entry. Keys compare by
/// kind and value; containers (tuples included) by identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict {
    entries: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    /// The entries, in insertion order.
    pub fn entries(&self) -> &[(Value, Value)] {
        &self.entries
    }

    /// The value under string key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(&Key::Str(Rc::from(key))).map(|&i| &self.entries[i].1)
    }

    /// Sets `key` to `value`, replacing an earlier value; true when the key is new.
    fn insert(&mut self, key: Value, value: Value) -> bool {
        match self.index.get(&Key::of(&key)) {
            Some(&i) => {
                self.entries[i].1 = value;
                false
            }
            None => {
                self.index.insert(Key::of(&key), self.entries.len());
                self.entries.push((key, value));
                true
            }
        }
    }
}

/// A dict key's identity for the index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    None,
    Bool(bool),
    Int(i64),
    Float(u64),
    BigInt(Rc<[u8]>),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Node(NodeId),
    Global(Rc<Global>),
    /// A storage or tensor: by the address of its record.
    Shared(usize),
}

impl Key {
    fn of(value: &Value) -> Self {
        match value {
            Value::None => Self::None,
            Value::Bool(b) => Self::Bool(*b),
            Value::Int(i) => Self::Int(*i),
            Value::Float(f) => Self::Float(f.to_bits()),
            Value::BigInt(b) => Self::BigInt(b.clone()),
            Value::Str(s) => Self::Str(s.clone()),
            Value::Bytes(b) => Self::Bytes(b.clone()),
            Value::Node(id) => Self::Node(*id),
            Value::Global(g) => Self::Global(g.clone()),
            Value::Storage(s) => Self::Shared(Rc::as_ptr(s) as usize),
            Value::Tensor(t) => Self::Shared(Rc::as_ptr(t) as usize),
        }
    }
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
        let Value::Node(id) = value else { return None };
        match self.node(*id) {
            Node::Dict(dict) => dict.get(key),
            // Only a dict state is looked into: a state that is itself an object (even the same
            // one, in a hostile file) would make this recurse without end.
            Node::Object { state: Some(Value::Node(sid)), .. } => match self.node(*sid) {
                Node::Dict(dict) => dict.get(key),
                _ => None,
            },
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items<'a>(&'a self, value: &'a Value) -> Option<&'a [Value]> {
        match value {
            Value::Node(id) => match self.node(*id) {
                Node::Tuple(items) | Node::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every object of class `module.name` in the arena, with its state.
    pub fn objects_of<'a>(&'a self, module: &'a str, name: &'a str) -> impl Iterator<Item = &'a Option<Value>> + 'a {
        self.nodes.iter().filter_map(move |n| match n {
            Node::Object { class, state, .. } if class.module == module && class.name == name => Some(state),
            _ => None,
        })
    }

    /// The bytes a pickle of `len` bytes may decode to: 128 per byte of the file, plus 1 MiB.
    /// An honest pickle stays below (an opcode byte makes at most one container, 56 bytes, and
    /// moves one value, 24 bytes, into it; text is copied out once; the official fixture
    /// decodes to 2.2 bytes per byte); only a file built to amplify (a container rebuilt from a
    /// shared one again and again) reaches it.
    pub fn budget(len: usize) -> usize {
        len.saturating_mul(128).saturating_add(1 << 20)
    }

    /// Reads a pickle.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Machine {
            bytes,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            nodes: Vec::new(),
            spent: 0,
            budget: Self::budget(bytes.len()),
        }
        .run()
    }
}

fn bad(message: String) -> PrimeError {
    super::bad(format!("pickle: {message}"))
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<usize, Value>,
    nodes: Vec<Node>,
    /// Bytes of containers, items and text decoded so far.
    spent: usize,
    budget: usize,
}

impl Machine<'_> {
    /// Counts `bytes` more decoded against the budget.
    fn spend(&mut self, bytes: usize) -> Result<()> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err(bad(format!(
                "decodes to more than {} MB from a {}-byte pickle (built to exhaust memory?)",
                self.budget >> 20,
                self.bytes.len()
            )));
        }
        Ok(())
    }

    /// Counts `n` values added to containers.
    fn spend_values(&mut self, n: usize) -> Result<()> {
        self.spend(n.saturating_mul(size_of::<Value>()))
    }

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

    /// A memo index (any size: the memo is a map).
    fn index(&mut self, n: usize) -> Result<usize> {
        let i = self.uint(n)?;
        usize::try_from(i).map_err(|_| bad(format!("memo index {i} out of range")))
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

    /// Puts `node` in the arena; its items are counted against the budget.
    fn alloc(&mut self, node: Node) -> Result<Value> {
        let items = match &node {
            Node::Tuple(items) | Node::List(items) => items.len(),
            Node::Dict(dict) => 2 * dict.entries.len(),
            Node::Object { args, .. } => args.len(),
        };
        self.spend(size_of::<Node>())?;
        self.spend_values(items)?;
        self.nodes.push(node);
        Ok(Value::Node(self.nodes.len() - 1))
    }

    /// Pushes a new container.
    fn push_node(&mut self, node: Node) -> Result<()> {
        let v = self.alloc(node)?;
        self.stack.push(v);
        Ok(())
    }

    fn put(&mut self, index: usize) -> Result<()> {
        let value = self.stack.last().cloned().ok_or_else(|| bad("memo of an empty stack".into()))?;
        self.spend(size_of::<(usize, Value)>())?;
        self.memo.insert(index, value);
        Ok(())
    }

    fn get(&mut self, index: usize) -> Result<()> {
        let value = self.memo.get(&index).cloned().ok_or_else(|| bad(format!("memo {index} is empty")))?;
        self.stack.push(value);
        Ok(())
    }

    fn global(&mut self, module: String, name: String) -> Result<()> {
        if !is_allowed_global(&module, &name) {
            return Err(bad(format!(
                "global `{module}.{name}` is not allowed: a checkpoint holds data, not code, and this reader \
                 accepts only the classes a Lightning checkpoint is made of"
            )));
        }
        self.stack.push(Value::Global(Rc::new(Global { module, name })));
        Ok(())
    }

    fn append(&mut self, list: NodeId, values: Vec<Value>) -> Result<()> {
        self.spend_values(values.len())?;
        match &mut self.nodes[list] {
            Node::List(items) => items.extend(values),
            Node::Object { args, .. } => args.extend(values),
            Node::Dict(_) | Node::Tuple(_) => return Err(bad("APPEND to a dict or tuple".into())),
        }
        Ok(())
    }

    fn set_items(&mut self, dict: NodeId, values: Vec<Value>) -> Result<()> {
        if !values.len().is_multiple_of(2) {
            return Err(bad("SETITEMS with an odd number of values".into()));
        }
        self.spend_values(values.len())?;
        let Node::Dict(dict) = &mut self.nodes[dict] else { return Err(bad("SETITEM on a non-dict".into())) };
        let mut values = values.into_iter();
        while let (Some(k), Some(v)) = (values.next(), values.next()) {
            dict.insert(k, v);
        }
        Ok(())
    }

    /// A copy of the items of the tuple `value` refers to (call arguments, persistent ids,
    /// shapes), counted against the budget.
    fn tuple(&mut self, value: &Value, what: &str) -> Result<Vec<Value>> {
        let items = match value {
            Value::Node(id) => match &self.nodes[*id] {
                Node::Tuple(items) => items.clone(),
                _ => return Err(bad(format!("{what} is not a tuple"))),
            },
            other => return Err(bad(format!("{what} is not a tuple: {other:?}"))),
        };
        self.spend_values(items.len())?;
        Ok(items)
    }

    /// A call: `REDUCE`, `NEWOBJ` or `NEWOBJ_EX`.
    fn call(&mut self, callable: Value, args: Vec<Value>) -> Result<Value> {
        let Value::Global(global) = callable else {
            return Err(bad(format!("call of a non-global {callable:?}")));
        };
        match (global.module.as_str(), global.name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") => self.rebuild_tensor(&args),
            // `_rebuild_parameter(data, requires_grad, hooks)`: the data is what is kept.
            ("torch._utils", "_rebuild_parameter") => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(bad("_rebuild_parameter without a tensor".into())),
            },
            ("collections", "OrderedDict")
            | ("collections", "defaultdict")
            | ("__builtin__", "dict")
            | ("builtins", "dict") => self.alloc(Node::Dict(Box::default())),
            ("_codecs", "encode") => match args.first() {
                // latin1: each code point is one byte.
                Some(Value::Str(text)) => {
                    self.spend(text.len())?;
                    Ok(Value::Bytes(text.chars().map(|c| c as u32 as u8).collect()))
                }
                _ => Err(bad("_codecs.encode without a str".into())),
            },
            ("__builtin__", "set" | "frozenset") | ("builtins", "set" | "frozenset") => {
                let items = match args.first() {
                    Some(Value::Node(id)) => match &self.nodes[*id] {
                        Node::List(items) | Node::Tuple(items) => items.clone(),
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                // `alloc` counts the copied items.
                self.alloc(Node::List(items))
            }
            _ => self.alloc(Node::Object { class: global, args, state: None }),
        }
    }

    /// The arguments of a call: a tuple.
    fn call_args(&mut self) -> Result<Vec<Value>> {
        let args = self.pop()?;
        self.tuple(&args, "call arguments")
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
                b'(' => {
                    if self.marks.len() >= MAX_NESTING {
                        return Err(bad(format!("nested deeper than {MAX_NESTING} levels at byte {}", self.at - 1)));
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.push_node(Node::Dict(Box::default()))?,
                b']' | 0x8f => self.push_node(Node::List(Vec::new()))?,
                b')' => self.push_node(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(bad("TUPLE of a short stack".into()));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Node::Tuple(items))?;
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::Dict(Box::default()))?;
                    if let Value::Node(id) = v {
                        self.set_items(id, items)?;
                    }
                    self.stack.push(v);
                }
                b'q' => {
                    let i = self.index(1)?;
                    self.put(i)?;
                }
                b'r' => {
                    let i = self.index(4)?;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.index(1)?;
                    self.get(i)?;
                }
                b'j' => {
                    let i = self.index(4)?;
                    self.get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(m.to_string(), n.to_string())?,
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
                    self.spend(n)?;
                    let v = long(self.take(n)?);
                    self.stack.push(v);
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
                    self.spend(n)?;
                    let text = Rc::from(String::from_utf8_lossy(self.take(n)?));
                    self.stack.push(Value::Str(text));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.len(1)?,
                        b'B' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    self.spend(n)?;
                    let bytes = Rc::from(self.take(n)?);
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
                    let args = self.call_args()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.stack.push(v);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.call_args()?;
                    let callable = self.pop()?;
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
                    let v = self.persistent(&pid)?;
                    self.stack.push(v);
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

    /// A persistent id `('storage', class, key, location, numel)`.
    fn persistent(&mut self, pid: &Value) -> Result<Value> {
        let items = self.tuple(pid, "a persistent id")?;
        match items.as_slice() {
            [Value::Str(kind), Value::Global(class), Value::Str(key), _, Value::Int(numel)]
                if &**kind == "storage" && *numel >= 0 =>
            {
                Ok(Value::Storage(Rc::new(StorageRef {
                    key: key.to_string(),
                    class: class.name.clone(),
                    numel: *numel as u64,
                })))
            }
            _ => Err(bad(format!("unsupported persistent id {items:?}"))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, …)`.
    fn rebuild_tensor(&mut self, args: &[Value]) -> Result<Value> {
        let mut dims = |v: &Value| -> Result<Vec<u64>> {
            let items = self.tuple(v, "a tensor's size or stride")?;
            items
                .iter()
                .map(|i| if let Value::Int(n) = i { u64::try_from(*n).ok() } else { None })
                .collect::<Option<_>>()
                .ok_or_else(|| bad("tensor size or stride is not ints".into()))
        };
        match args {
            [Value::Storage(storage), Value::Int(offset), size, stride, ..] if *offset >= 0 => {
                let (shape, stride) = (dims(size)?, dims(stride)?);
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: StorageRef::clone(storage),
                    offset: *offset as u64,
                    shape,
                    stride,
                })))
            }
            _ => Err(bad("unsupported _rebuild_tensor_v2 arguments".into())),
        }
    }
}

/// LONG1/LONG4: little-endian two's complement.
fn long(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt(Rc::from(bytes));
    }
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xFF } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SHORT_BINUNICODE text`.
    fn text(s: &str) -> Vec<u8> {
        let mut out = vec![0x8c, s.len() as u8];
        out.extend(s.as_bytes());
        out
    }

    /// A pickle written by hand: {'a': [1, -2, 3.5], 'b': (None, True), 't': obj} where obj is
    /// NEWOBJ(omegaconf.nodes.AnyNode) then BUILD {'x': 'y'}, and the dict refers to itself
    /// under 'self'.
    #[test]
    fn reads_a_graph_with_objects_and_sharing() {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend([0x8c, 1, b'a', b']', b'(', b'K', 1, b'J']);
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([b'e', 0x8c, 1, b'b', b'N', 0x88, 0x86]);
        p.extend([0x8c, 1, b't', b'c']);
        p.extend(b"omegaconf.nodes\nAnyNode\n");
        p.extend([b')', 0x81, b'}', 0x8c, 1, b'x', 0x8c, 1, b'y', b's', b'b']);
        p.extend(text("self"));
        p.extend([b'h', 0, b'u', b'.']);
        let pickle = Pickle::parse(&p).unwrap();
        let root = &pickle.root;
        let a = pickle.items(pickle.get(root, "a").unwrap()).unwrap();
        assert_eq!(a, &[Value::Int(1), Value::Int(-2), Value::Float(3.5)]);
        assert_eq!(pickle.items(pickle.get(root, "b").unwrap()), Some(&[Value::None, Value::Bool(true)][..]));
        let t = pickle.get(root, "t").unwrap();
        assert_eq!(pickle.get(t, "x"), Some(&Value::Str("y".into())));
        assert_eq!(pickle.get(root, "self"), Some(root), "the cycle resolves to the same node");
        assert_eq!(pickle.objects_of("omegaconf.nodes", "AnyNode").count(), 1);
    }

    #[test]
    fn broken_pickles_are_errors() {
        for bytes in [&b""[..], b"\x80\x02", b"\x80\x02h\x05.", b"\x80\x02\xff", b"\x80\x02X\xff\xff\xff\x7f"] {
            assert!(Pickle::parse(bytes).is_err(), "{bytes:?}");
        }
    }

    /// Globals outside the allowlist are refused by name, by either opcode, even where the
    /// converter would never look (here: called, then popped, before the real root).
    #[test]
    fn globals_outside_the_allowlist_are_refused() {
        let mut by_global = b"\x80\x02}cos\nsystem\n".to_vec();
        by_global.extend(text("echo hi"));
        by_global.extend(b"\x85R0.");
        let mut by_stack = vec![0x80, 4, b'}'];
        by_stack.extend(text("builtins"));
        by_stack.extend(text("eval"));
        by_stack.extend([0x93, 0x30, b'.']);
        for (bytes, name) in [(by_global, "`os.system`"), (by_stack, "`builtins.eval`")] {
            let e = Pickle::parse(&bytes).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("not allowed"), "{e}");
        }
        assert!(is_allowed_global("collections", "OrderedDict"));
        assert!(!is_allowed_global("collections", "namedtuple"));
    }

    /// A tuple nested a million deep is read and dropped without recursion; a million `MARK`s
    /// are refused at the nesting cap.
    #[test]
    fn deep_nesting_neither_overflows_nor_passes_the_cap() {
        let mut deep = vec![0x80, 2, b'N'];
        deep.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep.push(b'.');
        let pickle = Pickle::parse(&deep).unwrap();
        assert!(matches!(pickle.root, Value::Node(_)));
        drop(pickle);
        let mut marks = vec![0x80, 2];
        marks.extend(std::iter::repeat_n(b'(', 1_000_000));
        let e = Pickle::parse(&marks).unwrap_err().to_string();
        assert!(e.contains(&format!("nested deeper than {MAX_NESTING}")), "{e}");
    }

    /// A dict of a million distinct keys is built in linear time (a linear search per key
    /// would take minutes), and a repeated key keeps its place and takes the last value.
    #[test]
    fn large_dicts_are_built_in_linear_time() {
        let n = 1_000_000u32;
        let mut p = vec![0x80, 2, b'}', b'('];
        for i in 0..n {
            p.push(b'J');
            p.extend(i.to_le_bytes());
            p.extend([b'K', (i % 7) as u8]);
        }
        p.extend(text("k"));
        p.extend([b'K', 1]);
        p.extend(text("k"));
        p.extend([b'K', 2, b'u', b'.']);
        let pickle = Pickle::parse(&p).unwrap();
        let Value::Node(id) = pickle.root else { panic!("root is not a node") };
        let Node::Dict(dict) = pickle.node(id) else { panic!("root is not a dict") };
        assert_eq!(dict.entries().len(), n as usize + 1);
        assert_eq!(dict.get("k"), Some(&Value::Int(2)));
        assert_eq!(dict.entries()[n as usize - 1], (Value::Int(i64::from(n) - 1), Value::Int(i64::from((n - 1) % 7))));
    }

    /// Memo fetches share what they fetch: a 1 MiB string appended 20,000 times is one string
    /// (copies would take 20 GB); and a memo index far beyond the file is a map entry, not an
    /// allocation of that many slots.
    #[test]
    fn memo_fetches_share_and_indices_are_sparse() {
        let mut p = vec![0x80, 2, b']', b'X'];
        p.extend((1u32 << 20).to_le_bytes());
        p.extend(std::iter::repeat_n(b'a', 1 << 20));
        p.extend([b'r']);
        p.extend(100_000_000u32.to_le_bytes());
        p.push(b'0');
        p.push(b'(');
        for _ in 0..20_000 {
            p.push(b'j');
            p.extend(100_000_000u32.to_le_bytes());
        }
        p.extend([b'e', b'.']);
        let pickle = Pickle::parse(&p).unwrap();
        let items = pickle.items(&pickle.root).unwrap();
        assert_eq!(items.len(), 20_000);
        let (Value::Str(first), Value::Str(last)) = (&items[0], &items[19_999]) else { panic!("not strs") };
        assert!(Rc::ptr_eq(first, last) && first.len() == 1 << 20);
    }

    /// A file built to amplify (a 10,000-item list turned into a set 10,000 times: 10⁸ items
    /// from 40 kB) is refused at the decoding budget.
    #[test]
    fn amplification_is_refused_at_the_budget() {
        let mut p = vec![0x80, 2, b']', b'q', 0, b'('];
        p.extend(std::iter::repeat_n(b'N', 10_000));
        p.extend([b'e', b'0', b']', b'(']);
        for _ in 0..10_000 {
            p.extend(b"c__builtin__\nset\n");
            p.extend([b'h', 0, 0x85, b'R']);
        }
        p.extend([b'e', b'.']);
        let e = Pickle::parse(&p).unwrap_err().to_string();
        assert!(e.contains("decodes to more than"), "{e}");
    }
}

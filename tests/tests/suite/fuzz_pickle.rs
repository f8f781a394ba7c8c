//! Grammar-aware fuzzing of the checkpoint pickle reader: random pickles built from the
//! grammar of the opcodes `torch.save` uses — scalars, tuples, lists, dicts, memo puts and
//! gets (valid and dangling), globals (allowed and hostile, by `GLOBAL` and `STACK_GLOBAL`),
//! calls, `BUILD`, persistent ids, deep nesting, long repetitions of shared values — some of
//! them then mutated byte-wise. Every input must be read or refused with a one-line `pickle:`
//! error, never panic, overflow the stack or hang; a call of a hostile global must never be
//! recorded (the global itself is refused).
//!
//! CI runs a fixed-seed round; a long run:
//!
//! ```text
//! PRIME_FUZZ_SECONDS=600 PRIME_FUZZ_SEED=11 cargo test --workspace --test suite fuzz_pickle_grammar -- --nocapture
//! ```

use prime_core::checkpoint::pickle::{ALLOWED_GLOBALS, Pickle, Value};

use crate::fuzz_loaders::{Focus, Rng, fuzz_cases, judge, mutate};

/// Globals no checkpoint may name.
const HOSTILE: &[(&str, &str)] = &[
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("__builtin__", "exec"),
    ("builtins", "getattr"),
    ("subprocess", "Popen"),
    ("torch", "load"),
    ("collections", "namedtuple"),
];

/// Writes random pickles.
struct Writer<'a> {
    rng: &'a mut Rng,
    out: Vec<u8>,
    /// Memo indices put so far.
    memo: Vec<u32>,
}

impl Writer<'_> {
    fn chance(&mut self, percent: usize) -> bool {
        self.rng.below(100) < percent
    }

    fn text(&mut self, s: &str) {
        if s.len() < 256 && self.chance(70) {
            self.out.extend([0x8c, s.len() as u8]);
        } else {
            self.out.push(b'X');
            self.out.extend((s.len() as u32).to_le_bytes());
        }
        self.out.extend(s.as_bytes());
    }

    fn scalar(&mut self) {
        match self.rng.below(9) {
            0 => self.out.push(b'N'),
            1 => {
                let op = if self.chance(50) { 0x88 } else { 0x89 };
                self.out.push(op);
            }
            2 => self.out.extend([b'K', self.rng.next() as u8]),
            3 => {
                self.out.push(b'M');
                self.out.extend((self.rng.next() as u16).to_le_bytes());
            }
            4 => {
                self.out.push(b'J');
                self.out.extend((self.rng.next() as u32).to_le_bytes());
            }
            5 => {
                let n = self.rng.below(13);
                self.out.extend([0x8a, n as u8]);
                for _ in 0..n {
                    self.out.push(self.rng.next() as u8);
                }
            }
            6 => {
                self.out.push(b'G');
                self.out.extend(f64::from_bits(self.rng.next()).to_be_bytes());
            }
            7 => {
                let len = self.rng.below(40);
                let s: String = (0..len).map(|_| char::from(b'a' + self.rng.below(26) as u8)).collect();
                self.text(&s);
            }
            _ => {
                let n = self.rng.below(40);
                self.out.extend([b'C', n as u8]);
                for _ in 0..n {
                    self.out.push(self.rng.next() as u8);
                }
            }
        }
    }

    fn global(&mut self) {
        let (module, name) = if self.chance(8) {
            HOSTILE[self.rng.below(HOSTILE.len())]
        } else {
            let (module, names) = ALLOWED_GLOBALS[self.rng.below(ALLOWED_GLOBALS.len())];
            (module, names[self.rng.below(names.len())])
        };
        if self.chance(50) {
            self.out.push(b'c');
            self.out.extend(format!("{module}\n{name}\n").as_bytes());
        } else {
            self.text(module);
            self.text(name);
            self.out.push(0x93);
        }
    }

    /// Pushes one value.
    fn value(&mut self, depth: usize) {
        let kind = if depth == 0 { 0 } else { self.rng.below(12) };
        match kind {
            0..=2 => self.scalar(),
            3 => {
                let n = self.rng.below(5);
                if n <= 3 && self.chance(50) {
                    for _ in 0..n {
                        self.value(depth - 1);
                    }
                    self.out.push([b')', 0x85, 0x86, 0x87][n]);
                } else {
                    self.out.push(b'(');
                    for _ in 0..n {
                        self.value(depth - 1);
                    }
                    self.out.push(b't');
                }
            }
            4 => {
                self.out.push(b']');
                let n = self.rng.below(5);
                if self.chance(50) {
                    self.out.push(b'(');
                    for _ in 0..n {
                        self.value(depth - 1);
                    }
                    self.out.push(b'e');
                } else {
                    for _ in 0..n {
                        self.value(depth - 1);
                        self.out.push(b'a');
                    }
                }
            }
            5 => {
                self.out.push(b'}');
                self.out.push(b'(');
                for _ in 0..self.rng.below(4) {
                    self.value(depth - 1);
                    self.value(depth - 1);
                }
                self.out.push(b'u');
            }
            6 => {
                // A call: REDUCE or NEWOBJ, sometimes with a BUILD state.
                self.global();
                self.out.push(b'(');
                for _ in 0..self.rng.below(4) {
                    self.value(depth - 1);
                }
                self.out.push(b't');
                let op = if self.chance(50) { b'R' } else { 0x81 };
                self.out.push(op);
                if self.chance(40) {
                    self.value(depth - 1);
                    self.out.push(b'b');
                }
            }
            7 => {
                // A storage and a tensor on it.
                self.out.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
                self.out.push(b'(');
                self.text("storage");
                self.out.extend(b"ctorch\nFloatStorage\n");
                self.text("0");
                self.text("cpu");
                self.out.extend([b'K', self.rng.below(256) as u8, b't', b'Q']);
                self.out.extend([b'K', self.rng.below(4) as u8]);
                self.out.extend([b'K', self.rng.below(9) as u8, 0x85, b'K', 1, 0x85, 0x89]);
                self.out.extend([b')', b't', b'R']);
            }
            8 if !self.memo.is_empty() => {
                let i = self.memo[self.rng.below(self.memo.len())];
                self.get(i);
            }
            8 => {
                let dangling = self.rng.next() as u32;
                self.get(dangling);
            }
            9 => {
                // Deep nesting of shallow opcodes.
                self.out.push(b'N');
                let n = 1 + self.rng.below(50_000);
                self.out.extend(std::iter::repeat_n(0x85, n));
            }
            10 => {
                // A shared value repeated into a list.
                self.value(depth - 1);
                let i = self.put();
                self.out.extend([b'0', b']', b'(']);
                for _ in 0..self.rng.below(2_000) {
                    self.get(i);
                }
                self.out.push(b'e');
            }
            _ => self.global(),
        }
        if self.chance(20) {
            self.put();
        }
    }

    fn put(&mut self) -> u32 {
        let i = if self.chance(10) { self.rng.next() as u32 } else { self.memo.len() as u32 };
        match self.rng.below(3) {
            0 if i < 256 => self.out.extend([b'q', i as u8]),
            1 => self.out.push(0x94),
            _ => {
                self.out.push(b'r');
                self.out.extend(i.to_le_bytes());
            }
        }
        // MEMOIZE takes the next free index whatever `i` is.
        let stored = if self.out.last() == Some(&0x94) { self.memo.len() as u32 } else { i };
        self.memo.push(stored);
        stored
    }

    fn get(&mut self, i: u32) {
        if i < 256 && self.chance(50) {
            self.out.extend([b'h', i as u8]);
        } else {
            self.out.push(b'j');
            self.out.extend(i.to_le_bytes());
        }
    }
}

/// One random pickle (a quarter of them then mutated byte-wise).
fn generate(rng: &mut Rng) -> Vec<u8> {
    let mutate_after = rng.below(4) == 0;
    let mut w = Writer { rng, out: vec![0x80, 2], memo: Vec::new() };
    let depth = 1 + w.rng.below(6);
    w.out.push(b'}');
    w.out.push(b'(');
    for _ in 0..w.rng.below(6) {
        w.text("key");
        w.value(depth);
    }
    w.out.extend([b'u', b'.']);
    let out = w.out;
    if mutate_after { mutate(rng, &out, Focus::Anywhere) } else { out }
}

#[test]
fn fuzz_pickle_grammar() {
    fuzz_cases("pickle-grammar", 2000, generate, |case| match Pickle::parse(case) {
        Ok(p) => {
            // A call of a hostile global is never recorded: the global itself is refused.
            if HOSTILE.iter().any(|(m, n)| p.objects_of(m, n).count() > 0) {
                return Err("a call of a hostile global was accepted".into());
            }
            let _ = p.get(&p.root, "key").map(|v| p.items(v));
            Ok(matches!(p.root, Value::Node(_)))
        }
        Err(e) => judge(Err::<(), _>(e), "pickle"),
    });
}

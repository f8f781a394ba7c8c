//! Mutation fuzzing of everything a user hands the runtime: config.json, model.safetensors,
//! tokenizer.json, network inputs, generation requests and the pickle of a training checkpoint.
//! Each input is a valid one, mutated at random (bit flips, interesting bytes and numbers, cuts,
//! repeats); every call must return `Ok` or a one-line error naming its file, never panic, abort
//! or hang.
//!
//! CI runs a fixed-seed round of a few seconds. A long run (the figures in the README):
//!
//! ```text
//! PRIME_FUZZ_SECONDS=300 PRIME_FUZZ_SEED=7 cargo test --workspace --test suite fuzz_ -- --nocapture
//! ```
//!
//! A failing input is written to the system's temporary directory and its path printed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use prime_core::weights::WeightFile;
use prime_core::{GenerationRequest, Model, ModelConfig};
use prime_tests::case_dir;

/// splitmix64: a small, seeded source for the mutations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break parsers and size arithmetic more often than random bytes do.
const INTERESTING: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "16",
    "31",
    "255",
    "256",
    "1023",
    "65536",
    "-1",
    "1e309",
    "NaN",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "4611686018427387904",
    "9223372036854775807",
    "1000000000",
    "null",
    "\"\"",
    "[]",
    "{}",
    "true",
    "\u{feff}",
    "\"\\ud800\"",
];

/// Where mutations land.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Focus {
    /// Anywhere in the input.
    Anywhere,
    /// Mostly in the first n bytes (the safetensors header, where the structure is).
    Prefix(usize),
    /// Mostly on numbers (JSON whose keys are checked: most byte edits only rename a key).
    Numbers,
}

/// One random mutation of `input`.
pub(crate) fn mutate(rng: &mut Rng, input: &[u8], focus: Focus) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = out.len().max(1);
        let at = match focus {
            Focus::Prefix(n) if rng.below(4) > 0 => rng.below(n.min(len)),
            _ => rng.below(len),
        };
        let kind = match focus {
            Focus::Numbers if rng.below(4) > 0 => 2,
            _ => rng.below(7),
        };
        match kind {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = [0, 0xFF, b'"', b'{', b'9', b'-', b'.'][rng.below(7)];
            }
            2 => {
                // Replace a run of digits (a number in JSON or a header) with an interesting value.
                let digit = |i: &usize| out[*i].is_ascii_digit();
                let start = (at..out.len()).find(digit).or_else(|| (0..at).find(digit)).unwrap_or(out.len());
                let end = (start..out.len()).find(|&i| !out[i].is_ascii_digit()).unwrap_or(out.len());
                let value = INTERESTING[rng.below(INTERESTING.len())].as_bytes();
                out.splice(start..end, value.iter().copied());
            }
            3 => out.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                out.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let copy = out[at.min(end)..end].to_vec();
                out.splice(at.min(end)..at.min(end), copy);
            }
            _ => out.insert(at.min(out.len()), rng.next() as u8),
        }
    }
    out
}

/// The time budget and seed of a fuzz run: `PRIME_FUZZ_SECONDS` (default: a fixed number of
/// iterations instead) and `PRIME_FUZZ_SEED` (default 1).
fn budget() -> (Option<Duration>, u64) {
    let seconds = std::env::var("PRIME_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let seed = std::env::var("PRIME_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    (seconds, seed)
}

/// What a check makes of one input: accepted, or refused with a clean error.
pub(crate) type Verdict = Result<bool, String>;

/// Runs `check` on mutations of `input` for the budget (or `iterations` times), failing with
/// the saved input on the first panic or bad message.
fn fuzz(name: &str, input: &[u8], focus: Focus, iterations: usize, check: impl Fn(&[u8]) -> Verdict) {
    assert_eq!(check(input), Ok(true), "{name}: the unmutated input must be accepted");
    fuzz_cases(name, iterations, |rng| mutate(rng, input, focus), check);
}

/// Runs `check` on the inputs `generate` makes for the budget (or `iterations` times), failing
/// with the saved input on the first panic or bad message.
pub(crate) fn fuzz_cases(
    name: &str,
    iterations: usize,
    mut generate: impl FnMut(&mut Rng) -> Vec<u8>,
    check: impl Fn(&[u8]) -> Verdict,
) {
    let (seconds, seed) = budget();
    let mut rng = Rng(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let start = Instant::now();
    let (mut done, mut accepted) = (0usize, 0usize);
    loop {
        match seconds {
            Some(limit) if start.elapsed() >= limit => break,
            None if done >= iterations => break,
            _ => {}
        }
        let case = generate(&mut rng);
        let failure = match catch_unwind(AssertUnwindSafe(|| check(&case))) {
            Ok(Ok(ok)) => {
                accepted += usize::from(ok);
                None
            }
            Ok(Err(message)) => Some(message),
            Err(panic) => {
                let text = panic.downcast_ref::<String>().cloned();
                Some(format!(
                    "panicked: {}",
                    text.or(panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
                ))
            }
        };
        if let Some(failure) = failure {
            let path = std::env::temp_dir().join(format!("prime-fuzz-{name}-{seed}-{done}.bin"));
            let _ = std::fs::write(&path, &case);
            panic!("{name}: input {} ({} bytes): {failure}", path.display(), case.len());
        }
        done += 1;
    }
    eprintln!(
        "fuzz {name}: {done} inputs in {:.1} s (seed {seed}): {accepted} accepted, {} refused with a clean error, 0 failures",
        start.elapsed().as_secs_f64(),
        done - accepted
    );
}

/// A clean refusal is one line that contains `file`; anything else is a failure.
pub(crate) fn judge<T>(result: prime_core::Result<T>, file: &str) -> Verdict {
    match result {
        Ok(_) => Ok(true),
        Err(e) => {
            let text = e.to_string();
            if text.contains('\n') || !text.contains(file) {
                Err(format!("error does not name {file:?} on one line: {text}"))
            } else {
                Ok(false)
            }
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn fuzz_config() {
    let dir = case_dir("prime_l2_tiny");
    let config = read(&dir.join("config.json"));
    let weights = read(&dir.join("model.safetensors"));
    fuzz("config", &config, Focus::Numbers, 400, |case| {
        let Ok(text) = std::str::from_utf8(case) else { return Ok(false) };
        // Parsing alone must be safe; a parsed config must also load (or be refused) safely.
        match ModelConfig::from_json(text) {
            Ok(config) => {
                let file = WeightFile::from_bytes(&weights).map_err(|e| e.to_string())?;
                judge(Model::from_weights(config, file, &Device::flex()), "")
            }
            Err(e) => judge(Err::<(), _>(e), "config.json"),
        }
    });
}

#[test]
fn fuzz_weights() {
    let dir = case_dir("prime_l2_tiny");
    let config = ModelConfig::from_json(&String::from_utf8(read(&dir.join("config.json"))).unwrap()).unwrap();
    let weights = read(&dir.join("model.safetensors"));
    let header = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    fuzz("weights", &weights, Focus::Prefix(header), 150, |case| {
        let file = match WeightFile::from_bytes(case) {
            Ok(file) => file,
            Err(e) => return judge(Err::<(), _>(e), "model.safetensors"),
        };
        // Tensors are checked against the config: a refusal names the weight file, or the
        // config key that the weights contradict.
        match Model::from_weights(config.clone(), file, &Device::flex()) {
            Err(e) if e.to_string().contains("n_blocks") => judge(Err::<(), _>(e), "model.safetensors"),
            result => judge(result, "model.safetensors"),
        }
    });
}

#[test]
fn fuzz_tokenizer() {
    let tokenizer = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/prime/tokenizer.json"));
    fuzz("tokenizer", &tokenizer, Focus::Numbers, 40, |case| {
        judge(prime_core::text::TextCodec::from_bytes(case, 4096), "tokenizer.json")
    });
}

#[test]
fn fuzz_forward_inputs_and_requests() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).expect("golden model");
    // Network inputs: rows of ℓ·L = 32 sub-token ids, one byte each (0xFF is −1), in as many
    // rows as the length allows.
    let ids: Vec<u8> = (0..64).map(|i| (i % 19) as u8).collect();
    fuzz("forward", &ids, Focus::Anywhere, 150, |case| {
        let ids: Vec<i64> = case.iter().map(|&b| i64::from(b as i8)).collect();
        judge(model.forward(&ids, (ids.len() / 32).max(1)), "")
    });
    // Generation requests as the browser sends them (JSON).
    let request = br#"{"prompt":[1,2,3],"suffix":[4],"pins":[[5,6]],"executor":"twin",
        "settings":{"steps":8,"seed":3,"top_k":5,"top_p":0.9,"mode":"event_driven","record_guesses":true}}"#;
    fuzz("request", request, Focus::Numbers, 150, |case| {
        let Ok(request) = serde_json::from_slice::<GenerationRequest>(case) else { return Ok(false) };
        match request.start(&model) {
            // Accepted; long runs are not carried out, to keep the fuzzer fast.
            Ok(_) if request.settings.steps > 4096 => Ok(true),
            Ok(mut run) => judge(run.run(&model, |_| std::ops::ControlFlow::Continue(())), ""),
            Err(e) => judge(Err::<(), _>(e), ""),
        }
    });
}

/// The pickle reader of `prime convert` on mutations of the official checkpoint's `data.pkl`
/// (the zip container checks CRCs, so mutating the archive itself would stop there).
#[test]
fn fuzz_checkpoint_pickle() {
    use prime_core::checkpoint::pickle::Pickle;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints/owt_prime_l2_co/checkpoint.ckpt");
    let pickle = prime_core::checkpoint::data_pickle(&read(&path)).expect("the fixture's pickle");
    // The first 64 kB hold the structure; the rest is mostly the tokenizer's JSON text.
    fuzz("pickle", &pickle, Focus::Prefix(64 << 10), 60, |case| match Pickle::parse(case) {
        Ok(p) => {
            // Walk what the converter reads: a cyclic graph must not loop.
            let hyper = p.get(&p.root, "hyper_parameters");
            let _ = hyper.and_then(|h| p.get(h, "config")).and_then(|c| p.get(c, "_content"));
            let _ = p.get(&p.root, "ema").and_then(|e| p.get(e, "shadow_params")).and_then(|s| p.items(s));
            Ok(true)
        }
        Err(e) => judge(Err::<(), _>(e), "pickle"),
    });
}

//! Every bad input gives a one-line error naming the problem, never a panic.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use prime_core::{Model, PrimeError};
use prime_tests::{TempDir, case_dir};

/// A copy of a golden model folder in a temporary directory, to break on purpose.
fn copy_case(case: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(case);
    let target = dir.path().join(case);
    std::fs::create_dir(&target).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(case_dir(case).join(name), target.join(name)).unwrap();
    }
    (dir, target)
}

fn load_error(dir: &Path) -> PrimeError {
    let err = Model::load_dir(dir, &Device::flex()).expect_err("loading must fail");
    let text = err.to_string();
    assert!(!text.contains('\n'), "one-line message: {text}");
    err
}

/// Rewrites the weight file with `edit` applied to its (name, shape, data) list.
fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> =
        file.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn truncated_weights() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(&dir);
    assert!(matches!(err.root(), PrimeError::Weights(_)));
    let text = err.to_string();
    assert!(text.contains("model.safetensors: truncated") && text.contains(dir.to_str().unwrap()), "{text}");
}

#[test]
fn corrupt_weights() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    let path = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes[8..40].iter_mut() {
        *b = b'#';
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(load_error(&dir).root(), PrimeError::Weights(_)));
}

#[test]
fn missing_tensor() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    rewrite_weights(&dir, |t| t.retain(|(n, _, _)| n != "blocks.1.attn_out.weight"));
    let err = load_error(&dir);
    assert!(err.to_string().contains("blocks.1.attn_out.weight"), "{err}");
}

#[test]
fn wrong_shape() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    rewrite_weights(&dir, |t| {
        let e = t.iter_mut().find(|(n, _, _)| n == "output_layer.linear.bias").unwrap();
        e.1 = vec![150, 2];
    });
    let err = load_error(&dir);
    assert!(matches!(err.root(), PrimeError::TensorShape { .. }), "{err}");
    assert!(err.to_string().contains("output_layer.linear.bias"), "{err}");
}

#[test]
fn lightning_prefix_is_accepted() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    rewrite_weights(&dir, |t| {
        for e in t.iter_mut() {
            e.0 = format!("backbone.{}", e.0);
        }
    });
    Model::load_dir(&dir, &Device::flex()).expect("prefixed names load");
}

#[test]
fn bad_configs() {
    for (from, to, needle) in [
        ("\"n_heads\": 4", "\"n_heads\": 3", "heads"),
        ("\"base\": 18", "\"base\": 17", "fewer than"),
        ("\"hidden_size\": 64", "\"hidden_size\": 32", "shape"),
        ("\"model_class\": \"PerceiverDIT\"", "\"model_class\": \"GPT\"", "model_class"),
        ("{", "[", "config"),
    ] {
        let (_tmp, dir) = copy_case("prime_l2_tiny");
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "fixture has {from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let err = load_error(&dir);
        assert!(err.to_string().contains(needle), "{to}: {err}");
    }
}

#[test]
fn missing_folder_and_files() {
    let err = load_error(Path::new("/nonexistent/model"));
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(load_error(&dir).to_string().contains("model.safetensors"));
}

#[test]
fn ids_out_of_range() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).unwrap();
    let mut ids = vec![18i64; 32];
    ids[5] = 19;
    let err = model.forward(&ids, 1).unwrap_err();
    assert!(err.to_string().contains("id 19 at row 0, column 5"), "{err}");
    ids[5] = -1;
    assert!(model.forward(&ids, 1).is_err());
    assert!(model.forward(&ids[..31], 1).is_err(), "wrong length");
}

/// Rewrites one key of the folder's config.json to a raw JSON value.
fn set_config(dir: &Path, key: &str, value: &str) {
    let path = dir.join("config.json");
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.insert(key.to_string(), serde_json::from_str(value).unwrap());
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
}

/// Absurd sizes are refused from the config alone, naming the key and the estimate, before
/// anything is allocated (each of these aborted or overflowed before).
#[test]
fn absurd_sizes_are_refused_before_allocation() {
    let huge = "4611686018427387904"; // 2^62
    for (key, value, needles) in [
        ("length", "1000000000", &["length = 1000000000", "estimated", "attention scores"][..]),
        ("hidden_size", huge, &["hidden_size = 4611686018427387904", "estimated"]),
        ("mlp_ratio", huge, &["mlp_ratio = 4611686018427387904", "estimated"]),
        ("cond_dim", huge, &["cond_dim = 4611686018427387904", "estimated"]),
        ("n_blocks", huge, &["n_blocks = 4611686018427387904", "estimated"]),
        ("vocab_size", "4294967295", &["vocab_size", "4294967295"]),
        ("subtokens", huge, &["subtokens = 4611686018427387904"]),
        ("frequency_embedding_size", huge, &["frequency_embedding_size"]),
        ("rope_base", "0", &["rope_base"]),
        ("rope_base", "1.0", &["rope_base"]),
        ("layer_norm_eps", "0", &["layer_norm_eps"]),
        ("base", "4294967295", &["base"]),
        ("vocab_size", "1", &["vocab_size"]),
    ] {
        let (_tmp, dir) = copy_case("prime_l2_tiny");
        set_config(&dir, key, value);
        let text = load_error(&dir).to_string();
        assert!(text.contains("config.json"), "{key}: {text}");
        for needle in needles {
            assert!(text.contains(needle), "{key} = {value}: {text}");
        }
    }
}

/// The estimate behind the limit: an official-size model fits, a batch too large for one call
/// does not, and no arithmetic on user sizes overflows.
#[test]
fn footprint_estimates() {
    let mut config = prime_core::ModelConfig::from_json(
        r#"{"model_class":"PerceiverDIT","vocab_size":50257,"subtokens":4,"hidden_size":768,"n_blocks":12,
            "n_heads":12,"cond_dim":128,"length":1024}"#,
    )
    .expect("official size is accepted");
    let footprint = config.footprint();
    let weights = footprint.total(0);
    // ℓ = 4 at official size: 131 M parameters (524 MB); the estimate counts the embedding
    // table at V rows instead of b + 1, an over-estimate of 38 MB.
    assert!((5.2e8..6.0e8).contains(&weights), "estimated {weights} B of weights");
    assert!(footprint.check(8).is_ok());
    let err = footprint.check(1 << 20).unwrap_err();
    assert!(err.contains("1048576 sequences"), "{err}");
    config.length = usize::MAX;
    assert!(config.validate().is_err());
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).unwrap();
    let err = model.forward(&[0; 32], usize::MAX).unwrap_err();
    assert!(err.to_string().contains("rows"), "{err}");
}

/// Step counts whose sampler work would take hours (and, in event-driven mode, a per-step plan
/// of gigabytes) are refused with the estimate; large but reasonable ones still run.
#[test]
fn absurd_step_counts_are_refused() {
    use prime_core::{GenerationRequest, SamplerSettings, sampler::SamplingMode};
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).unwrap();
    for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
        let settings = SamplerSettings { steps: 1_000_000_000, mode, ..Default::default() };
        let request = GenerationRequest { settings, ..Default::default() };
        let Err(err) = request.start(&model) else { panic!("{mode:?}: a billion steps must be refused") };
        let text = err.to_string();
        assert!(text.contains("between 1 and 1048576") && text.contains("got 1000000000"), "{text}");
    }
    // The largest official model (ℓ·L = 8192) at the most steps: the draw estimate refuses it.
    let settings = SamplerSettings { steps: 1 << 20, ..Default::default() };
    let text = settings.check_work(8192).unwrap_err().to_string();
    assert!(text.contains("steps = 1048576") && text.contains("estimated 8.6e9 reveal draws"), "{text}");
    assert!(settings.check_work(4096).is_ok());
    let settings = SamplerSettings { steps: 1_000_000, mode: SamplingMode::EventDriven, ..Default::default() };
    let request = GenerationRequest { settings, ..Default::default() };
    let mut run = request.start(&model).expect("a million event-driven steps are fine");
    let outcome = run.run(&model, |_| std::ops::ControlFlow::Continue(())).unwrap().unwrap();
    assert_eq!(outcome.steps, 1_000_000);
}

/// A UTF-8 byte-order mark (as Windows editors write) is accepted in config.json and
/// tokenizer.json.
#[test]
fn byte_order_marks_are_accepted() {
    let dir = TempDir::new("bom");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/prime");
    for name in ["config.json", "model.safetensors", "tokenizer.json"] {
        let mut bytes = std::fs::read(shipped.join(name)).unwrap();
        if name.ends_with(".json") {
            bytes.splice(0..0, [0xEF, 0xBB, 0xBF]);
        }
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let model = Model::load_dir(dir.path(), &Device::flex()).expect("BOM accepted");
    assert!(model.text().is_some());
}

/// Conflicts are not resolved in silence: a tensor under both names, or weights with more
/// blocks than the config, are errors naming what conflicts; unused extras load (with a warning).
#[test]
fn conflicting_weights_are_errors() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    rewrite_weights(&dir, |t| {
        let copy = t.iter().find(|(n, _, _)| n == "blocks.0.norm1.weight").unwrap().clone();
        t.push((format!("backbone.{}", copy.0), copy.1, copy.2));
    });
    let text = load_error(&dir).to_string();
    assert!(text.contains("`backbone.blocks.0.norm1.weight` and `blocks.0.norm1.weight`"), "{text}");

    let (_tmp, dir) = copy_case("prime_l2_tiny");
    set_config(&dir, "n_blocks", "1");
    let text = load_error(&dir).to_string();
    assert!(text.contains("n_blocks = 1") && text.contains("blocks.1."), "{text}");

    let (_tmp, dir) = copy_case("prime_l2_tiny");
    rewrite_weights(&dir, |t| t.push(("some_extra_buffer".into(), vec![1], vec![0; 4])));
    Model::load_dir(&dir, &Device::flex()).expect("an unused tensor is only a warning");
}

/// Every weight-file failure names the file, and the tensor where one is at fault.
#[test]
fn weight_errors_name_the_tensor() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    // Claim a larger shape for one tensor without changing its byte range.
    let edited = header.replacen("\"shape\":[19,32]", "\"shape\":[20,32]", 1);
    assert_ne!(edited, header, "fixture header holds the embedding's shape");
    let mut broken = bytes.clone();
    broken.splice(8..8 + n, edited.bytes());
    std::fs::write(&path, &broken).unwrap();
    let text = load_error(&dir).to_string();
    assert!(text.contains("model.safetensors") && text.contains("vocab_embed.embedding"), "{text}");
    for cut in [3, 8 + n / 2] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let text = load_error(&dir).to_string();
        assert!(text.contains("model.safetensors: truncated"), "cut at {cut}: {text}");
    }
}

/// Tokenizer failures name tokenizer.json; a model path that is a file says so; OS errors
/// appear once.
#[test]
fn file_errors_name_the_file() {
    let (_tmp, dir) = copy_case("prime_l2_tiny");
    std::fs::write(dir.join("tokenizer.json"), "garbage").unwrap();
    let text = load_error(&dir).to_string();
    assert!(text.contains("tokenizer.json:"), "{text}");
    let text = load_error(&dir.join("config.json")).to_string();
    assert!(text.contains("is a file"), "{text}");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let text = load_error(&dir).to_string();
    assert!(text.contains("config.json") && text.matches("os error 2").count() == 1, "{text}");
}

/// Malformed JSON inside the tokenizer's decoder made the `tokenizers` library panic (found by
/// the fuzzer); it is now an error naming tokenizer.json.
#[test]
fn malformed_tokenizer_json_is_an_error() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/prime/tokenizer.json");
    let text = std::fs::read_to_string(shipped).unwrap();
    // Break the string after the decoder's "type" (however the file is spaced) into `"ByteL"x`.
    let decoder = text.find(r#""decoder""#).expect("the shipped tokenizer has a decoder");
    let at = decoder + text[decoder..].find(r#""ByteLevel""#).expect("a ByteLevel decoder");
    let broken = format!("{}\"ByteL\"x{}", &text[..at], &text[at + r#""ByteLevel""#.len()..]);
    let err = prime_core::text::TextCodec::from_bytes(broken.as_bytes(), 4096).unwrap_err().to_string();
    assert!(err.starts_with("tokenizer.json: not valid JSON"), "{err}");
}

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
    assert!(matches!(load_error(&dir), PrimeError::Weights(_)));
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
    assert!(matches!(load_error(&dir), PrimeError::Weights(_)));
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
    assert!(matches!(err, PrimeError::TensorShape { .. }), "{err}");
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

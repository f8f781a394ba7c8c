//! The demo models in `assets/`: they load, match their recorded config and training report,
//! and their tokenizer round-trips text.

use std::path::PathBuf;

use burn::tensor::Device;
use prime_core::text::TextCodec;
use prime_core::{Model, ModelClass, ModelConfig};

fn asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets").join(name)
}

fn read_json(path: PathBuf) -> serde_json::Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn shipped_models_load_and_match_their_records() {
    for (name, class, ell) in [("prime", ModelClass::PerceiverDIT, 2), ("mdlm", ModelClass::DIT, 1)] {
        let dir = asset(name);
        let config_text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
        let config = ModelConfig::from_json(&config_text).expect("config parses");
        assert_eq!((config.model_class, config.subtokens, config.vocab_size), (class, ell, 4096), "{name}");
        let model = Model::load_dir(&dir, &Device::flex()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.config(), &config);
        let report = read_json(dir.join("training.json"));
        assert_eq!(report["parameters"].as_u64(), Some(model.parameters() as u64), "{name}");
        assert_eq!(report["length"].as_u64(), Some(config.length as u64), "{name}");
        let bound = report["validation"]["nll_per_token"].as_f64().expect("validation bound");
        // Better than uniform (ln 4096 = 8.32), and a bound, so not below zero.
        assert!(bound > 0.0 && bound < (4096f64).ln(), "{name}: {bound}");
        let text = model.text().expect("tokenizer.json");
        assert_eq!(text.vocab_size(), 4096);
    }
}

#[test]
fn shipped_tokenizer_round_trips_text() {
    let bytes = std::fs::read(asset("prime").join("tokenizer.json")).expect("tokenizer.json");
    let codec = TextCodec::from_bytes(&bytes, 4096).expect("tokenizer parses");
    for text in [
        "It is a truth universally acknowledged, that a single man in possession of a good fortune",
        "“Mr. Knightley!” cried Emma — naïve, 1815.\n\nNew paragraph;  two spaces",
        "",
    ] {
        let ids = codec.encode(text).expect("encode");
        assert!(ids.iter().all(|&i| i < 4096));
        assert_eq!(codec.decode(&ids).expect("decode"), text);
    }
    let common = codec.encode(" the").expect("encode");
    assert_eq!(common.len(), 1, "a frequent word is one token");
}

/// The image models (Fashion-MNIST at 14 × 14, `prime-train train --images`): they load, match
/// their recorded config and training report (both legs of their training), have a position
/// embedding and the ten classes, carry no tokenizer, and are small enough for the page.
#[test]
fn shipped_image_models_load_and_match_their_records() {
    for (name, class, ell) in [("fashion-prime", ModelClass::PerceiverDIT, 2), ("fashion-mdlm", ModelClass::DIT, 1)] {
        let dir = asset(name);
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).expect("config.json"))
            .expect("config parses");
        assert_eq!((config.model_class, config.subtokens, config.vocab_size), (class, ell, 256), "{name}");
        let shape = config.image.expect("an image model names its grid");
        assert_eq!((shape.width, shape.height, config.length), (14, 14, 196), "{name}");
        assert!(config.position_embedding, "{name}: an image model needs to know where a pixel is");
        // Conditioned on Fashion-MNIST's ten classes, in label order, with the guidance its
        // judge figures were measured at.
        assert_eq!(config.classes.len(), 10, "{name}");
        assert_eq!((config.classes[0].as_str(), config.classes[9].as_str()), ("T-shirt/top", "Ankle boot"), "{name}");
        assert_eq!(config.sampling.guidance, Some(1.0), "{name}");
        let weights = std::fs::metadata(dir.join("model.safetensors")).expect("weights").len();
        assert!(weights <= 10_000_000, "{name}: {weights} bytes is too large for the page");
        let model = Model::load_dir(&dir, &Device::flex()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.config(), &config);
        assert!(model.text().is_none(), "{name}: an image model has no tokenizer");
        let report = read_json(dir.join("training.json"));
        assert_eq!(report["parameters"].as_u64(), Some(model.parameters() as u64), "{name}");
        assert_eq!(report["length"].as_u64(), Some(196), "{name}");
        // Trained in two legs: the second started from the first one's snapshot.
        let first = &report["initialised_from"]["training"];
        assert!(first["snapshot_step"].as_u64().is_some_and(|s| s > 0), "{name}: {report}");
        let bound = report["validation"]["nll_per_token"].as_f64().expect("validation bound");
        // Better than uniform grey levels (ln 256 = 5.55 nats per pixel), and a bound.
        assert!(bound > 0.0 && bound < (256f64).ln(), "{name}: {bound}");
    }
}

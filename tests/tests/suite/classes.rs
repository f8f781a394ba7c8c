//! Class conditioning: a class-conditioned network adds its class's embedding row to every
//! position. Its table starts at zero (the network starts as the one without classes), the
//! backends agree on it, a tiny image model learns to draw the class it is asked for (through
//! the trainer, the sampler and both executors), and bad class requests are refused.

use std::ops::ControlFlow;

use burn::tensor::{Device, Int, Tensor, TensorData};
use prime_core::image::ImageShape;
use prime_core::network::{CLASS_EMBEDDING, Network};
use prime_core::readback::read_f32;
use prime_core::train::{LearningRateSchedule, TokenCorpus, TrainSettings, Trainer, initial_weights};
use prime_core::weights::WeightFile;
use prime_core::{
    Denoiser, ExecutorChoice, GenerationRequest, Logits, Model, ModelConfig, NetworkInput, SamplerSettings, Tokens,
};
use prime_tests::{backends, filled_tensors, max_abs_diff, tiny_config};

/// A 4 × 4 image model (ℓ = 2) conditioned on two classes.
fn conditioned(subtokens: usize) -> ModelConfig {
    let mut config = tiny_config(subtokens, 256).into_image(ImageShape { width: 4, height: 4 });
    config.classes = vec!["top".into(), "bottom".into()];
    config.validate().expect("valid");
    config
}

/// `config`'s model with every weight filled ([`filled_tensors`]) on `device`.
fn filled_model(config: &ModelConfig, device: &Device) -> Model {
    Model::from_weights(config.clone(), WeightFile::from_tensors(filled_tensors(config)), device).expect("model")
}

/// A sequence's logits, its row blocks read back in turn.
fn read_logits(logits: &Logits) -> Vec<f32> {
    logits.blocks().flat_map(|b| read_f32(b.rows.clone(), "logits").expect("read")).collect()
}

/// Settings of the tiny runs here: no decay, clipping at 1, a fast EMA.
fn train_settings(batch_size: usize, schedule: LearningRateSchedule, seed: u64) -> TrainSettings {
    TrainSettings { batch_size, schedule, weight_decay: 0.0, grad_clip: 1.0, ema_decay: 0.5, seed }
}

/// The logits of a fully masked sequence of the filled model for each class row in `rows` (one
/// sequence each).
fn masked_logits(config: &ModelConfig, rows: &[u32]) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let model = filled_model(config, &device);
    let n = config.sequence_subtokens();
    let mask = config.codec().expect("codec").mask_id() as i32;
    let inputs = rows
        .iter()
        .map(|&class| NetworkInput {
            state: Tensor::<1, Int>::from_data(TensorData::new(vec![mask; n], [n]), &device),
            rows: (0..config.length as u32).collect(),
            class: (class < config.classes.len() as u32).then_some(class),
            guidance: 0.0,
        })
        .collect();
    model.logits_batch(inputs).expect("logits").iter().map(read_logits).collect()
}

#[test]
fn a_class_embedding_starts_at_zero_and_changes_the_logits_once_trained() {
    let config = conditioned(2);
    let mut init = initial_weights(&config, 3).expect("init");
    let table = init.take(CLASS_EMBEDDING, &[3, 32]).expect("a (classes + 1) × D table").into_host();
    assert!(table.data.iter().all(|&v| v == 0.0), "the class embedding starts at zero");
    // With filled (trained-like) weights every class row, "no class" included, gives other logits.
    let logits = masked_logits(&config, &[0, 1, 2]);
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let diff = max_abs_diff(&logits[a], &logits[b]);
        assert!(diff > 1e-3, "class rows {a} and {b} give the same logits (differ by {diff})");
    }
    // The same logits on every backend.
    let mut weights = WeightFile::from_tensors(filled_tensors(&config));
    let flex = Network::load(&config, &mut weights, &Device::flex(), usize::MAX).expect("load");
    let n = config.sequence_subtokens();
    let ids = |device: &Device| Tensor::<2, Int>::from_data(TensorData::new(vec![16i32; 2 * n], [2, n]), device);
    let hidden = |network: &Network, device: &Device| {
        let k = network.constants();
        read_f32(network.head(network.hidden(&k, ids(device), &[1, 2], None)), "logits").expect("read")
    };
    let reference = hidden(&flex, &Device::flex());
    for (name, device) in backends() {
        let mut weights = WeightFile::from_tensors(filled_tensors(&config));
        let network = Network::load(&config, &mut weights, &device, usize::MAX).expect("load");
        let diff = max_abs_diff(&hidden(&network, &device), &reference);
        assert!(diff <= 1e-4, "{name}: class-conditioned logits off by {diff}");
    }
}

/// Classifier-free guidance: a guided sequence's logits are `cond + w · (cond − uncond)` of its
/// own calls with and without its class, whatever else shares the batch; a sequence without a
/// class is not changed by a scale.
#[test]
fn guided_logits_are_the_conditioned_ones_pushed_away_from_the_unconditioned() {
    let device = Device::flex();
    let config = conditioned(2);
    let model = filled_model(&config, &device);
    let n = config.sequence_subtokens();
    let input = |seed: i32, class: Option<u32>, guidance: f32| NetworkInput {
        state: Tensor::<1, Int>::from_data(
            TensorData::new((0..n as i32).map(|i| (i * seed) % 17).collect::<Vec<_>>(), [n]),
            &device,
        ),
        rows: vec![1, 5, 9],
        class,
        guidance,
    };
    let alone = |seed, class| read_logits(&model.logits(input(seed, class, 0.0)).expect("logits"));
    let batch = model
        .logits_batch(vec![input(3, Some(0), 2.0), input(5, None, 2.0), input(7, Some(1), 0.5), input(2, Some(1), 0.0)])
        .expect("batch");
    let expect = |seed, class, w: f32| -> Vec<f32> {
        let (c, u) = (alone(seed, Some(class)), alone(seed, None));
        c.iter().zip(&u).map(|(c, u)| c + w * (c - u)).collect()
    };
    for (k, want) in [expect(3, 0, 2.0), alone(5, None), expect(7, 1, 0.5), alone(2, Some(1))].into_iter().enumerate() {
        let diff = max_abs_diff(&read_logits(&batch[k]), &want);
        assert!(diff <= 1e-4, "sequence {k}: guided logits off by {diff}");
    }
    assert!(max_abs_diff(&read_logits(&batch[0]), &alone(3, Some(0))) > 1e-2, "guidance changed nothing");
}

/// Two classes of 4 × 4 images: class 0 has its top half lit, class 1 its bottom half.
fn two_class_images(n: u32) -> (Vec<u32>, Vec<u32>) {
    let pixels = (0..n)
        .flat_map(|i| {
            (0..16u32).map(move |p| if (p < 8) == (i % 2 == 0) { 200 + (i * 7 + p) % 40 } else { (i + p) % 9 })
        })
        .collect();
    (pixels, (0..n).map(|i| i % 2).collect())
}

/// Mean grey level of the top half minus that of the bottom half.
fn top_minus_bottom(tokens: &[u32]) -> f32 {
    let sum = |range: std::ops::Range<usize>| tokens[range].iter().map(|&t| t as f32).sum::<f32>() / 8.0;
    sum(0..8) - sum(8..16)
}

#[test]
fn a_conditioned_image_model_draws_the_class_it_is_asked_for() {
    let device = Device::flex();
    for subtokens in [2, 1] {
        let config = conditioned(subtokens);
        let (pixels, labels) = two_class_images(400);
        let corpus = TokenCorpus::records(pixels, 16, 256).expect("records").with_labels(labels, 2).expect("labels");
        let schedule = LearningRateSchedule { peak: 3e-3, warmup: 5, total: 600, floor: 0.1 };
        let settings = train_settings(16, schedule, 2);
        let mut trainer = Trainer::new(config.clone(), settings, &device).expect("trainer");
        for _ in 0..600 {
            trainer.train_step(&corpus).expect("step");
        }
        let weights = WeightFile::from_tensors(trainer.ema().export().expect("export"));
        let model = Model::from_weights(config.clone(), weights, &device).expect("model");
        for executor in [ExecutorChoice::Host, ExecutorChoice::Twin] {
            let request = GenerationRequest {
                settings: SamplerSettings { steps: 16, ..Default::default() },
                executor,
                class: Some("each".into()),
                ..GenerationRequest::default()
            };
            let mut runs = request.start_seeds(&model, 0..16).expect("start");
            let outcomes = prime_core::sampler::run_together(&mut runs, &model, |_, _, _| ControlFlow::Continue(()))
                .expect("run")
                .expect("not stopped");
            let right = outcomes
                .iter()
                .enumerate()
                .filter(|(i, o)| (top_minus_bottom(&o.tokens) > 0.0) == (i % 2 == 0))
                .count();
            assert!(right >= 15, "ℓ={subtokens} {executor:?}: {right} of 16 samples show the class asked for");
        }
    }
}

#[test]
fn bad_class_requests_are_refused_with_the_classes_named() {
    let device = Device::flex();
    let config = conditioned(2);
    let model = filled_model(&config, &device);
    let request = |class: &str| GenerationRequest { class: Some(class.into()), ..GenerationRequest::default() };
    assert_eq!(request("each").class_of(&model, 3).expect("each"), Some(1));
    let mut seeded = request("each");
    seeded.settings.seed = 7;
    assert_eq!(seeded.class_of(&model, 0).expect("each by seed"), Some(1), "the seed picks the class");
    assert_eq!(request("Bottom").class_of(&model, 0).expect("by name"), Some(1));
    assert_eq!(GenerationRequest::default().class_of(&model, 0).expect("none"), None);
    for bad in ["2", "left", ""] {
        let err = request(bad).start(&model).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("top, bottom"), "{bad:?}: {err}");
    }
    let n = config.sequence_subtokens();
    let input = |class| NetworkInput {
        state: Tensor::<1, Int>::from_data(TensorData::new(vec![0i32; n], [n]), &device),
        rows: vec![0],
        class,
        guidance: 0.0,
    };
    let err = model.logits(input(Some(2))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not one of this model's 2 classes"), "{err}");
    // A model without classes takes no class.
    let plain = tiny_config(2, 64);
    let model = filled_model(&plain, &device);
    let err = model.logits(input(Some(0))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not conditioned on classes"), "{err}");
    let err = request("each").start(&model).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("not conditioned on classes"), "{err}");
    assert!(GenerationRequest { prompt: Tokens::Ids(vec![1]), ..Default::default() }.start(&model).is_ok());
}

#[test]
fn a_conditioned_run_needs_labelled_data() {
    let config = conditioned(2);
    let (pixels, _) = two_class_images(40);
    let corpus = TokenCorpus::records(pixels, 16, 256).expect("records");
    let settings = train_settings(4, LearningRateSchedule { peak: 1e-3, warmup: 1, total: 2, floor: 0.1 }, 0);
    let mut trainer = Trainer::new(config, settings, &Device::flex()).expect("trainer");
    let err = trainer.train_step(&corpus).expect_err("trained without labels").to_string();
    assert!(err.contains("no labels"), "{err}");
}

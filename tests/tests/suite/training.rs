//! Training: the objective and bound on a known case, loss reduction, exact resume, export.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use prime_core::network::{Network, parameter_shapes};
use prime_core::rng::{CounterRng, Stream};
use prime_core::train::{
    LearningRateSchedule, NoiseSchedule, NoisedBatch, Objective, TokenCorpus, TrainSettings, Trainer, initial_weights,
    validation_bound,
};
use prime_core::weights::{WeightFile, to_safetensors};
use prime_core::{ModelClass, ModelConfig};
use prime_tests::{TempDir, tiny_config};

/// The tiny model with `class` (MDLM's DiT for ℓ = 1 in every case here, Prime's otherwise).
fn config(class: ModelClass, subtokens: usize, vocab: u32) -> ModelConfig {
    ModelConfig { model_class: class, ..tiny_config(subtokens, vocab) }
}

fn settings(steps: usize, seed: u64) -> TrainSettings {
    TrainSettings {
        batch_size: 8,
        schedule: LearningRateSchedule { peak: 3e-3, warmup: 2, total: steps, floor: 0.1 },
        weight_decay: 0.0,
        grad_clip: 1.0,
        ema_decay: 0.5,
        seed,
    }
}

/// A corpus with structure to learn: a repeated phrase of 12 tokens with a few variants.
fn patterned_corpus(vocab: u32, n: usize) -> Vec<u32> {
    let phrase = [5u32, 17, 3, 42, 8, 8, 23, 61, 11, 2, 30, 49];
    (0..n).map(|i| (phrase[i % phrase.len()] + (i / 97 % 3) as u32) % vocab).collect()
}

fn weights_of(network: &Network) -> Vec<(String, Vec<f32>)> {
    network.export().expect("export").into_iter().map(|(n, t)| (n, t.data)).collect()
}

/// The training loss on random logits equals the loss computed here position by position, in
/// f64, from its definition: mean over positions of (log Σ_{v consistent} e^{z_v} − z_clean)/t,
/// where v is consistent when it agrees with every revealed digit of the clean token.
#[test]
fn the_training_loss_is_its_definition() {
    let rng = CounterRng::new(5);
    for (ell, vocab) in [(2, 64u32), (3, 100), (1, 50)] {
        let class = if ell == 1 { ModelClass::DIT } else { ModelClass::PerceiverDIT };
        let config = config(class, ell, vocab);
        let codec = config.codec().unwrap();
        let device = Device::flex().autodiff();
        let objective = Objective::new(&config).unwrap();
        let corpus = patterned_corpus(vocab, 4 * 16);
        let windows: Vec<&[u32]> = corpus.chunks(16).collect();
        let batch = NoisedBatch::draw(&windows, &codec, &rng, 3, NoiseSchedule::Training);
        let width = config.output_width();
        let values: Vec<f32> =
            (0..4 * 16 * width as u32).map(|i| 4.0 * rng.uniform(Stream::Init, 9, 9, i) - 2.0).collect();
        let logits = Tensor::<3>::from_data(TensorData::new(values.clone(), [4, 16, width]), &device);
        let got = objective.training_loss(logits, &batch).into_data().try_to_vec::<f32>().unwrap()[0];
        let mut want = 0.0f64;
        for p in 0..4 * 16 {
            let clean = batch.clean[p];
            let revealed = |j: usize| !batch.masked[p * ell + j];
            let consistent = |v: u32| (0..ell).all(|j| !revealed(j) || codec.digit(v, j) == codec.digit(clean, j));
            let z = |v: u32| f64::from(values[p * width + v as usize]);
            let lse = (0..vocab).filter(|&v| consistent(v)).map(|v| z(v).exp()).sum::<f64>().ln();
            want += (lse - z(clean)) / f64::from(batch.times[p / 16]);
        }
        want /= 64.0;
        assert!((f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0), "ℓ={ell}: {got} vs {want}");
    }
}

#[test]
fn untrained_bound_is_log_v_for_prime_and_mdlm() {
    // adaLN-zero init gives all-zero logits: the carry-over output is uniform on the consistent
    // set, so each masked digit costs log b and the bound's expectation is exactly log V.
    let device = Device::flex();
    for (class, ell, vocab) in
        [(ModelClass::PerceiverDIT, 2, 64), (ModelClass::DIT, 1, 64), (ModelClass::PerceiverDIT, 4, 81)]
    {
        let config = config(class, ell, vocab);
        let network = Network::load(&config, &mut initial_weights(&config, 1).unwrap(), &device, usize::MAX).unwrap();
        let corpus = TokenCorpus::new(patterned_corpus(vocab, 16 * 400), 16, vocab).unwrap();
        let bound = validation_bound(&network, &config, &corpus, 16, 9).unwrap();
        let expected = f64::from(vocab).ln();
        assert_eq!(bound.sequences, 400);
        assert!(
            (bound.nll_per_token - expected).abs() < 4.0 * bound.std_error + 1e-6,
            "{class:?} ℓ={ell}: {} ± {} vs {expected}",
            bound.nll_per_token,
            bound.std_error
        );
    }
}

#[test]
fn a_few_steps_reduce_the_validation_bound() {
    let device = Device::flex();
    let vocab = 64;
    let config = config(ModelClass::PerceiverDIT, 2, vocab);
    let corpus = TokenCorpus::new(patterned_corpus(vocab, 4000), 16, vocab).unwrap();
    let mut trainer = Trainer::new(config.clone(), settings(40, 3), &device).unwrap();
    let before = validation_bound(trainer.ema(), &config, &corpus, 16, 5).unwrap();
    let mut losses = Vec::new();
    for _ in 0..40 {
        losses.push(trainer.train_step(&corpus).unwrap());
    }
    let after = validation_bound(trainer.ema(), &config, &corpus, 16, 5).unwrap();
    assert!(losses.iter().all(|l| l.is_finite() && *l >= 0.0), "{losses:?}");
    assert!(
        after.nll_per_token < before.nll_per_token - 0.5,
        "bound {} → {} nats/token",
        before.nll_per_token,
        after.nll_per_token
    );
    let early: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let late: f32 = losses[35..].iter().sum::<f32>() / 5.0;
    assert!(late < early, "loss {early} → {late}");
}

/// An image model (4 × 4 grey pixels, V = 256) trained on whole-image records: two patterns,
/// the top or the bottom half lit, with a little noise.
#[test]
fn a_few_steps_on_images_reduce_the_validation_bound() {
    let device = Device::flex();
    let mut config = config(ModelClass::PerceiverDIT, 2, 256);
    config.image = Some(prime_core::image::ImageShape { width: 4, height: 4 });
    config.validate().unwrap();
    let pixels: Vec<u32> = (0..300u32)
        .flat_map(|i| {
            (0..16u32).map(move |p| if (p < 8) == (i % 2 == 0) { 200 + (i * 7 + p) % 40 } else { (i + p) % 9 })
        })
        .collect();
    let corpus = TokenCorpus::records(pixels, 16, 256).unwrap();
    let mut trainer = Trainer::new(config.clone(), settings(40, 4), &device).unwrap();
    let before = validation_bound(trainer.ema(), &config, &corpus, 16, 5).unwrap();
    for _ in 0..40 {
        trainer.train_step(&corpus).unwrap();
    }
    let after = validation_bound(trainer.ema(), &config, &corpus, 16, 5).unwrap();
    assert!(
        after.nll_per_token < before.nll_per_token - 0.5,
        "bound {} → {} nats/pixel",
        before.nll_per_token,
        after.nll_per_token
    );
}

#[test]
fn a_resumed_run_equals_an_uninterrupted_one() {
    let device = Device::flex();
    let vocab = 64;
    let config = config(ModelClass::PerceiverDIT, 2, vocab);
    let corpus = TokenCorpus::new(patterned_corpus(vocab, 2000), 16, vocab).unwrap();

    let mut straight = Trainer::new(config.clone(), settings(6, 11), &device).unwrap();
    for _ in 0..6 {
        straight.train_step(&corpus).unwrap();
    }

    let dir = TempDir::new("resume");
    let mut first = Trainer::new(config.clone(), settings(6, 11), &device).unwrap();
    for _ in 0..3 {
        first.train_step(&corpus).unwrap();
    }
    first.save(dir.path()).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(dir.path(), &device).unwrap();
    assert_eq!(resumed.step(), 3);
    for _ in 0..3 {
        resumed.train_step(&corpus).unwrap();
    }
    let (a, b) = (weights_of(straight.ema()), weights_of(resumed.ema()));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let diff = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "{name}: resumed run differs by {diff}");
    }
    // A fresh run with another seed does differ, so the comparison above can fail.
    let mut other = Trainer::new(config, settings(6, 12), &device).unwrap();
    other.train_step(&corpus).unwrap();
    assert_ne!(weights_of(other.ema()), weights_of(resumed.ema()));
}

#[test]
fn export_round_trips_through_the_loader() {
    let device = Device::flex();
    let plain = config(ModelClass::DIT, 1, 50);
    let placed = ModelConfig { position_embedding: true, ..config(ModelClass::PerceiverDIT, 2, 64) };
    for config in [plain, placed] {
        // The output head stored in blocks of 7 vocabulary rows exports as one tensor.
        let network = Network::load(&config, &mut initial_weights(&config, 4).unwrap(), &device, 7).unwrap();
        let exported = network.export().unwrap();
        let names: Vec<&str> = exported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.contains(&"position_embedding"), config.position_embedding, "{names:?}");
        let bytes = to_safetensors(&exported).unwrap();
        let mut file = WeightFile::from_bytes(&bytes).unwrap();
        let reloaded = Network::load(&config, &mut file, &device, usize::MAX).unwrap();
        assert_eq!(weights_of(&network), weights_of(&reloaded));
        let expected: usize = parameter_shapes(&config).unwrap().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(reloaded.num_params(), expected);
    }
}

#[test]
fn bad_training_inputs_are_errors() {
    assert!(TokenCorpus::new(vec![1, 2, 3], 16, 64).is_err());
    assert!(TokenCorpus::new(vec![70; 32], 16, 64).is_err());
    let mut s = settings(4, 0);
    s.batch_size = 0;
    assert!(Trainer::new(config(ModelClass::PerceiverDIT, 2, 64), s, &Device::flex()).is_err());
    let dir = TempDir::new("no-checkpoint");
    assert!(Trainer::resume(dir.path(), &Device::flex()).is_err());
    std::fs::write(dir.path().join("trainer.json"), "{ not json").unwrap();
    assert!(Trainer::resume(dir.path(), &Device::flex()).is_err());
}

/// Training settings outside their domain, or a batch too large for memory, are refused before
/// anything is allocated.
#[test]
fn bad_training_settings_are_refused() {
    let config = config(ModelClass::PerceiverDIT, 2, 50);
    type Edit = fn(&mut TrainSettings);
    let cases: [(Edit, &str); 6] = [
        (|s| s.batch_size = 0, "batch_size"),
        (|s| s.batch_size = usize::MAX, "batch_size = 18446744073709551615"),
        (|s| s.schedule.peak = f64::NAN, "learning rate"),
        (|s| s.schedule.peak = -1.0, "learning rate"),
        (|s| s.schedule.total = 0, "steps"),
        (|s| s.ema_decay = 1.0, "EMA"),
    ];
    for (edit, needle) in cases {
        let mut s = settings(4, 0);
        edit(&mut s);
        let err = s.validate(&config).expect_err(needle).to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(Trainer::new(config.clone(), s, &Device::flex()).is_err(), "{needle}");
    }
    settings(4, 0).validate(&config).expect("the test settings are valid");
}

//! Sampler statistics, NFE accounting, carry-over validity and determinism across backends.

use std::cell::Cell;
use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor, TensorData};
use prime_core::sampler::FinalRule;
use prime_core::schedule::{expected_idle_ratio, expected_nfe};
use prime_core::{
    Conditioning, Denoiser, Logits, Model, NetworkInput, Result, Run, Sampler, SamplerSettings, SamplerShape, StepEvent,
};
use prime_tests::{backends, case_dir};

/// Fixed logits held on a device, counting the calls.
struct FixedLogits {
    logits: Tensor<2>,
    device: Device,
    calls: Cell<usize>,
}

impl FixedLogits {
    fn new(values: Vec<f32>, length: usize, width: usize, device: &Device) -> Self {
        let logits = Tensor::from_data(TensorData::new(values, [length, width]), device);
        Self { logits, device: device.clone(), calls: Cell::new(0) }
    }
}

impl Denoiser for FixedLogits {
    fn device(&self) -> &Device {
        &self.device
    }

    fn logits(&self, _input: NetworkInput) -> Result<Logits> {
        self.calls.set(self.calls.get() + 1);
        Ok(Logits::whole(self.logits.clone()))
    }
}

/// Counts the calls a real model receives.
struct Counted<'a> {
    model: &'a Model,
    calls: Cell<usize>,
}

impl Denoiser for Counted<'_> {
    fn device(&self) -> &Device {
        self.model.device()
    }

    fn logits(&self, input: NetworkInput) -> Result<Logits> {
        self.calls.set(self.calls.get() + 1);
        self.model.logits(input)
    }
}

fn collect(sampler: Sampler, denoiser: &dyn Denoiser) -> (Vec<StepEvent>, prime_core::Outcome) {
    let mut events = Vec::new();
    let outcome = Run::on_host(sampler)
        .run(denoiser, |e| {
            events.push(e.clone());
            ControlFlow::Continue(())
        })
        .expect("sampling succeeds")
        .expect("not aborted");
    (events, outcome)
}

/// Checks the official caching rule on an event sequence: a network call at step 0, at every
/// step that follows a changed one, and at the final step — and nowhere else.
fn assert_official_nfe(events: &[StepEvent], nfe: usize) {
    let mut expected = 0;
    for (k, e) in events.iter().enumerate() {
        let should_call = k == 0 || e.is_final || !events[k - 1].idle;
        assert_eq!(e.network_called, should_call, "step {k}");
        expected += usize::from(should_call);
        assert_eq!(e.idle, e.revealed.is_empty() && !e.is_final, "step {k}");
    }
    assert_eq!(nfe, expected);
}

#[test]
fn idle_step_ratio_and_nfe_match_the_closed_form() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).unwrap();
    let shape = SamplerShape::from_config(model.config()).unwrap();
    let steps = 48;
    let runs = 120;
    let mut ratios = Vec::new();
    let mut nfe_total = 0.0;
    for seed in 0..runs {
        let settings = SamplerSettings { steps, seed, ..Default::default() };
        let sampler = Sampler::new(shape.clone(), settings, &Conditioning::default()).unwrap();
        let counted = Counted { model: &model, calls: Cell::new(0) };
        let (events, outcome) = collect(sampler, &counted);
        assert_eq!(counted.calls.get(), outcome.nfe, "reported NFE equals real calls");
        assert_official_nfe(&events, outcome.nfe);
        assert!(outcome.tokens.iter().all(|&t| t < 300), "carry-over keeps ids below V");
        ratios.push(outcome.idle_steps as f64 / steps as f64);
        nfe_total += outcome.nfe as f64;
    }
    let n = ratios.len() as f64;
    let mean = ratios.iter().sum::<f64>() / n;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    let want = expected_idle_ratio(steps, 32);
    assert!((mean - want).abs() <= 3.0 * se, "ISR {mean:.4} vs closed form {want:.4} (se {se:.4})");
    let nfe_want = expected_nfe(steps, 32);
    let nfe_mean = nfe_total / n;
    // NFE = 2 + (T−1)(1 − ISR) varies with the same per-run noise, scaled by (T−1).
    assert!((nfe_mean - nfe_want).abs() <= 3.0 * se * (steps as f64 - 1.0) + 1e-9, "NFE {nfe_mean} vs {nfe_want}");
}

#[test]
fn same_seed_gives_identical_tokens() {
    let model = Model::load_dir(&case_dir("prime_l4_small"), &Device::flex()).unwrap();
    let shape = SamplerShape::from_config(model.config()).unwrap();
    let settings = SamplerSettings { steps: 32, seed: 11, top_p: 0.9, ..Default::default() };
    let a = collect(Sampler::new(shape.clone(), settings.clone(), &Conditioning::default()).unwrap(), &model);
    let b = collect(Sampler::new(shape.clone(), settings.clone(), &Conditioning::default()).unwrap(), &model);
    assert_eq!(a.0, b.0, "every event identical");
    assert_eq!(a.1, b.1);
    let other = SamplerSettings { seed: 12, ..settings };
    let c = collect(Sampler::new(shape, other, &Conditioning::default()).unwrap(), &model);
    assert_ne!(a.1.tokens, c.1.tokens, "another seed gives another sample");
}

#[test]
fn fixed_probabilities_give_identical_runs_on_every_backend() {
    let (length, vocab, l) = (24usize, 300u32, 2usize);
    let codec = prime_core::SubTokenCodec::new(vocab, l).unwrap();
    let shape = SamplerShape { codec, length, output_width: vocab as usize, final_rule: FinalRule::Sample };
    let values: Vec<f32> = (0..length * vocab as usize).map(|i| ((i * 7919) % 101) as f32 / 25.0).collect();
    let settings = SamplerSettings {
        steps: 40,
        seed: 5,
        temperature: 0.8,
        top_k: Some(50),
        record_guesses: true,
        ..Default::default()
    };
    let conditioning = Conditioning { prefix: vec![1, 2], suffix: vec![299], pinned: vec![(10, 42)], class: None };
    let mut runs = Vec::new();
    for (name, device) in backends() {
        let fixed = FixedLogits::new(values.clone(), length, vocab as usize, &device);
        let sampler = Sampler::new(shape.clone(), settings.clone(), &conditioning).unwrap();
        let (events, outcome) = collect(sampler, &fixed);
        assert_eq!(fixed.calls.get(), outcome.nfe);
        assert_eq!(&outcome.tokens[..2], &[1, 2]);
        assert_eq!(outcome.tokens[length - 1], 299);
        assert_eq!(outcome.tokens[10], 42);
        runs.push((name, events, outcome));
    }
    for w in runs.windows(2) {
        assert_eq!(w[0].1, w[1].1, "{} and {} emit the same events", w[0].0, w[1].0);
        assert_eq!(w[0].2, w[1].2);
    }
}

#[test]
fn partial_states_occur_and_revealed_digits_never_change() {
    let model = Model::load_dir(&case_dir("prime_l4_small"), &Device::flex()).unwrap();
    let shape = SamplerShape::from_config(model.config()).unwrap();
    let mask = shape.codec.mask_id();
    let settings = SamplerSettings { steps: 64, seed: 3, record_guesses: true, ..Default::default() };
    let (events, outcome) = collect(Sampler::new(shape, settings, &Conditioning::default()).unwrap(), &model);
    let mut partial = false;
    for pair in events.windows(2) {
        for (a, b) in pair[0].state.iter().zip(&pair[1].state) {
            assert!(*a == mask || a == b, "a revealed digit changed");
        }
        for (i, token) in pair[1].state.chunks(4).enumerate() {
            let k = token.iter().filter(|&&d| d != mask).count();
            partial |= k > 0 && k < 4;
            // With carry-over, the guess agrees with every digit revealed so far.
            if let Some(g) = pair[1].guesses[i] {
                assert!(model.codec().is_consistent(g, token), "guess {g} contradicts {token:?}");
            }
        }
    }
    assert!(partial, "some token passed through a partial state");
    assert!(events.last().unwrap().is_final);
    assert!(!events.last().unwrap().state.contains(&mask));
    assert_eq!(outcome.tokens.len(), 32);
}

#[test]
fn mdlm_final_step_is_greedy_and_never_emits_the_mask() {
    let model = Model::load_dir(&case_dir("mdlm_l1_tiny"), &Device::flex()).unwrap();
    let shape = SamplerShape::from_config(model.config()).unwrap();
    assert_eq!(shape.final_rule, FinalRule::Argmax);
    for seed in 0..5 {
        let settings = SamplerSettings { steps: 8, seed, ..Default::default() };
        let (_, outcome) = collect(Sampler::new(shape.clone(), settings, &Conditioning::default()).unwrap(), &model);
        assert!(outcome.tokens.iter().all(|&t| t < 300), "mask id 300 never emitted");
    }
}

#[test]
fn prompt_longer_than_the_model_is_rejected() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).unwrap();
    let shape = SamplerShape::from_config(model.config()).unwrap();
    let conditioning = Conditioning { prefix: vec![1; 17], ..Default::default() };
    let err = Sampler::new(shape.clone(), SamplerSettings::default(), &conditioning).unwrap_err();
    assert!(err.to_string().contains("do not fit the model length of 16"), "{err}");
    let conditioning = Conditioning { pinned: vec![(3, 300)], ..Default::default() };
    let err = Sampler::new(shape, SamplerSettings::default(), &conditioning).unwrap_err();
    assert!(err.to_string().contains("token id 300"), "{err}");
}

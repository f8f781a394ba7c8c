//! Batch sampling: generations run together with their network calls batched draw what each
//! would draw alone (sample i equals the single run with seed s + i), on every backend, with
//! both executors and in both modes, and the network is called once per batch, not per sample.

use std::cell::Cell;
use std::ops::ControlFlow;

use burn::tensor::Device;
use prime_core::sampler::{SamplingMode, run_together};
use prime_core::{Denoiser, ExecutorChoice, GenerationRequest, Logits, Model, NetworkInput, SamplerSettings, Tokens};
use prime_tests::{backends, case_dir};

/// Counts the network calls and the sequences they carried.
struct Counting<'a> {
    model: &'a Model,
    calls: Cell<usize>,
    sequences: Cell<usize>,
}

impl Denoiser for Counting<'_> {
    fn device(&self) -> &Device {
        self.model.device()
    }

    fn logits(&self, input: NetworkInput) -> prime_core::Result<Logits> {
        let mut out = self.logits_batch(vec![input])?;
        Ok(out.remove(0))
    }

    fn logits_batch(&self, states: Vec<NetworkInput>) -> prime_core::Result<Vec<Logits>> {
        self.calls.set(self.calls.get() + 1);
        self.sequences.set(self.sequences.get() + states.len());
        self.model.logits_batch(states)
    }
}

#[test]
fn batched_samples_equal_single_runs() {
    const SAMPLES: usize = 3;
    const STEPS: usize = 20;
    for case in ["prime_l2_tiny", "prime_l4_small", "mdlm_l1_tiny"] {
        for (backend, device) in backends() {
            let model = Model::load_dir(&case_dir(case), &device).expect("model");
            for executor in [ExecutorChoice::Host, ExecutorChoice::Auto] {
                for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
                    let tag = format!("{case}/{backend}/{executor:?}/{mode:?}");
                    let request = GenerationRequest {
                        prompt: Tokens::Ids(vec![3, 1]),
                        settings: SamplerSettings {
                            steps: STEPS,
                            seed: 40,
                            mode,
                            temperature: 0.9,
                            ..Default::default()
                        },
                        executor,
                        ..GenerationRequest::default()
                    };
                    let counting = Counting { model: &model, calls: Cell::new(0), sequences: Cell::new(0) };
                    let mut runs = request.start_seeds(&model, 0..SAMPLES).expect("start");
                    let mut events = [0; SAMPLES];
                    let batched = run_together(&mut runs, &counting, |i, _, _| {
                        events[i] += 1;
                        ControlFlow::Continue(())
                    })
                    .expect("batched sampling")
                    .expect("not aborted");
                    assert_eq!(batched.len(), SAMPLES, "{tag}");
                    for (i, together) in batched.iter().enumerate() {
                        let mut single = request.clone();
                        single.settings.seed = 40 + i as u64;
                        let mut run = single.start(&model).expect("single start");
                        let alone = run.run(&model, |_| ControlFlow::Continue(())).expect("single").expect("done");
                        assert_eq!(together, &alone, "{tag}: sample {i}");
                        assert_eq!(events[i], STEPS + 1, "{tag}: sample {i} reported every step");
                    }
                    assert_ne!(batched[0].tokens, batched[1].tokens, "{tag}: the samples have their own seeds");
                    let nfe: usize = batched.iter().map(|o| o.nfe).sum();
                    let most = batched.iter().map(|o| o.nfe).max().unwrap_or(0);
                    assert_eq!(counting.sequences.get(), nfe, "{tag}: every network call carried");
                    assert!(
                        counting.calls.get() >= most && counting.calls.get() < nfe,
                        "{tag}: {} batched calls for NFE {:?}",
                        counting.calls.get(),
                        batched.iter().map(|o| o.nfe).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

#[test]
fn seeds_that_overflow_are_refused() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).expect("model");
    let request = GenerationRequest {
        settings: SamplerSettings { steps: 4, seed: u64::MAX, ..Default::default() },
        ..GenerationRequest::default()
    };
    assert!(request.start_seeds(&model, 0..1).is_ok());
    let err = request.start_seeds(&model, 0..2).expect_err("seed u64::MAX + 1").to_string();
    assert!(err.contains("overflows"), "{err}");
}

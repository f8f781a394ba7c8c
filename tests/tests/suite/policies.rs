//! Adaptive reveal policies: each loop step reveals by its rule (confidence ≥ τ, summed entropy
//! ≤ γ) and at least the minimum that ends the loop within T steps; the degenerate τ = 1 and
//! γ = 0 reveal only the minimum (and what is certain); batched runs equal single runs; the
//! device executors choose and draw what the host executor does; event-driven mode and bad
//! parameters are refused with a message naming them.

use std::ops::ControlFlow;

use burn::tensor::Device;
use prime_core::kernels::KernelPath;
use prime_core::sampler::{RevealPolicy, SamplingMode, run_together};
use prime_core::{ExecutorChoice, GenerationRequest, Model, SamplerSettings, StepEvent, Tokens};
use prime_tests::{backends, case_dir};

fn request(policy: RevealPolicy, steps: usize, seed: u64) -> GenerationRequest {
    GenerationRequest {
        prompt: Tokens::Ids(vec![5]),
        settings: SamplerSettings { steps, seed, policy, ..Default::default() },
        executor: ExecutorChoice::Host,
        ..GenerationRequest::default()
    }
}

/// The events of one run and its outcome's (tokens, NFE).
fn events(model: &Model, request: &GenerationRequest) -> (Vec<StepEvent>, Vec<u32>, usize) {
    let mut run = request.start(model).expect("start");
    let mut events = Vec::new();
    let outcome = run
        .run(model, |e| {
            events.push(e.clone());
            ControlFlow::Continue(())
        })
        .expect("run")
        .expect("not aborted");
    (events, outcome.tokens, outcome.nfe)
}

/// Checks every step of `events` against the policy's rule; `mask` is the mask id, `masked`
/// the sub-tokens masked at the start, T = `steps`.
fn check_rule(events: &[StepEvent], policy: RevealPolicy, mask: u32, mut masked: usize, steps: usize, tag: &str) {
    for e in events.iter().filter(|e| !e.is_final) {
        let minimum = masked.div_ceil(steps - e.step);
        let n = e.revealed.len();
        assert!(n >= minimum, "{tag} step {}: {n} reveals, fewer than the minimum {minimum}", e.step);
        assert_eq!(e.scores.len(), n, "{tag} step {}: one score per reveal", e.step);
        assert!(e.network_called && !e.idle, "{tag} step {}: an adaptive step calls the network", e.step);
        if n > minimum {
            match policy {
                RevealPolicy::Confidence { threshold } => assert!(
                    e.scores.iter().all(|&c| c >= threshold),
                    "{tag} step {}: beyond the minimum, every reveal clears τ = {threshold}: {:?}",
                    e.step,
                    e.scores
                ),
                RevealPolicy::Entropy { budget } => assert!(
                    e.scores.iter().sum::<f32>() <= budget + 1e-6,
                    "{tag} step {}: beyond the minimum, the entropies stay within γ = {budget}: {:?}",
                    e.step,
                    e.scores
                ),
                RevealPolicy::Schedule => unreachable!(),
            }
        }
        masked -= n;
        assert_eq!(e.state.iter().filter(|&&d| d == mask).count(), masked, "{tag} step {}: the state", e.step);
    }
    assert_eq!(masked, 0, "{tag}: the loop revealed everything");
    let last = events.last().expect("a final step");
    assert!(last.is_final && last.revealed.is_empty() && !last.network_called, "{tag}: the final step is empty");
}

#[test]
fn adaptive_policies_reveal_by_their_rule_within_t_steps() {
    for case in ["prime_l2_tiny", "prime_l4_small", "mdlm_l1_tiny"] {
        for (backend, device) in backends() {
            let model = Model::load_dir(&case_dir(case), &device).expect("model");
            let codec = model.codec();
            let l = codec.digits();
            let masked = (model.config().length - 1) * l;
            for policy in [
                RevealPolicy::Confidence { threshold: 0.5 },
                RevealPolicy::Confidence { threshold: 1.0 },
                RevealPolicy::Entropy { budget: 1.0 },
                RevealPolicy::Entropy { budget: 0.0 },
            ] {
                for steps in [4, 64] {
                    let tag = format!("{case}/{backend}/{policy}/T={steps}");
                    let (events, tokens, nfe) = events(&model, &request(policy, steps, 11));
                    check_rule(&events, policy, codec.mask_id(), masked, steps, &tag);
                    assert!(nfe <= steps && nfe == events.len() - 1, "{tag}: NFE {nfe} over {} steps", events.len());
                    assert!(tokens.iter().all(|&t| t < model.config().vocab_size), "{tag}: {tokens:?}");
                    assert_eq!(tokens[0], 5, "{tag}: the prompt stays");
                    let again = events_tokens(&model, &request(policy, steps, 11));
                    assert_eq!(again, tokens, "{tag}: the same seed draws the same tokens");
                }
            }
        }
    }
}

fn events_tokens(model: &Model, request: &GenerationRequest) -> Vec<u32> {
    events(model, request).1
}

#[test]
fn adaptive_runs_batched_equal_single_runs() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).expect("model");
    let request = request(RevealPolicy::Confidence { threshold: 0.6 }, 24, 70);
    let mut runs = request.start_seeds(&model, 0..4).expect("start");
    let together = run_together(&mut runs, &model, |_, _, _| ControlFlow::Continue(())).expect("run").expect("done");
    for (i, outcome) in together.iter().enumerate() {
        let mut single = request.start_offset(&model, i).expect("start");
        let alone = single.run(&model, |_| ControlFlow::Continue(())).expect("run").expect("done");
        assert_eq!((&outcome.tokens, outcome.nfe), (&alone.tokens, alone.nfe), "sample {i}");
    }
    assert!(together.iter().all(|o| o.nfe <= 24), "NFE within T");
}

/// The device executors (the scores shader on wgpu, its twin everywhere) choose the slots the
/// host executor chooses, with the same scores, and draw the same tokens: with and without
/// truncation and recording, on ℓ = 2, 4 and 1. `auto` picks the shader executor on wgpu.
#[test]
fn device_executors_choose_and_draw_what_the_host_does() {
    for case in ["prime_l2_tiny", "prime_l4_small", "mdlm_l1_tiny"] {
        for (backend, device) in backends() {
            let model = Model::load_dir(&case_dir(case), &device).expect("model");
            let on_wgpu = KernelPath::for_device(&device) == KernelPath::Shader;
            let executors: &[ExecutorChoice] =
                if on_wgpu { &[ExecutorChoice::Shader, ExecutorChoice::Twin] } else { &[ExecutorChoice::Twin] };
            for (policy, top_p, record) in [
                (RevealPolicy::Confidence { threshold: 0.3 }, 1.0, false),
                (RevealPolicy::Entropy { budget: 2.0 }, 0.8, false),
                (RevealPolicy::Confidence { threshold: 0.5 }, 0.9, true),
            ] {
                let mut host = request(policy, 16, 23);
                host.settings.top_p = top_p;
                host.settings.record_guesses = record;
                let (want, want_tokens, want_nfe) = events(&model, &host);
                for &executor in executors {
                    let tag = format!("{case}/{backend}/{executor:?}/{policy}/top-p {top_p}/record {record}");
                    let mut device_request = host.clone();
                    device_request.executor = executor;
                    let (got, tokens, nfe) = events(&model, &device_request);
                    assert_eq!((&tokens, nfe), (&want_tokens, want_nfe), "{tag}: tokens and NFE");
                    assert_eq!(got.len(), want.len(), "{tag}: steps");
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!(g.revealed, w.revealed, "{tag} step {}: the chosen slots", w.step);
                        assert_eq!(g.scores.len(), w.scores.len(), "{tag} step {}", w.step);
                        for (a, b) in g.scores.iter().zip(&w.scores) {
                            assert!((a - b).abs() <= 1e-5, "{tag} step {}: score {a} vs {b}", w.step);
                        }
                        if record {
                            assert_eq!(g.guesses, w.guesses, "{tag} step {}: guesses", w.step);
                        }
                    }
                }
            }
            let mut auto = request(RevealPolicy::Entropy { budget: 0.5 }, 8, 1);
            auto.executor = ExecutorChoice::Auto;
            let want = if on_wgpu { ExecutorChoice::Shader } else { ExecutorChoice::Host };
            assert_eq!(auto.resolve_executor(&model).expect("resolves"), want, "{backend}");
        }
    }
}

#[test]
fn event_driven_mode_and_bad_parameters_are_refused_by_name() {
    let model = Model::load_dir(&case_dir("prime_l2_tiny"), &Device::flex()).expect("model");
    let mut event_driven = request(RevealPolicy::Confidence { threshold: 0.9 }, 8, 1);
    event_driven.settings.mode = SamplingMode::EventDriven;
    let message = event_driven.start(&model).map(|_| ()).expect_err("refused").to_string();
    assert!(message.contains("confidence:0.9") && message.contains("event-driven"), "{message}");
    for (bad, words) in [
        (r#"{"settings": {"policy": {"confidence": {"threshold": 1.5}}}}"#, "threshold"),
        (r#"{"settings": {"policy": {"entropy": {"budget": -1}}}}"#, "budget"),
    ] {
        let request: GenerationRequest = serde_json::from_str(bad).expect("parses");
        let message = request.start(&model).map(|_| ()).expect_err(bad).to_string();
        assert!(message.contains(words), "{bad}: {message}");
    }
}

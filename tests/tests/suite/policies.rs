//! Adaptive reveal policies: each loop step reveals by its rule (confidence ≥ τ, summed entropy
//! ≤ γ) and at least the minimum that ends the loop within T steps; the degenerate τ = 1 and
//! γ = 0 reveal only the minimum (and what is certain); batched runs equal single runs; the
//! kernels' executors and event-driven mode are refused with a message naming the policy.

use std::ops::ControlFlow;

use burn::tensor::Device;
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

#[test]
fn the_kernel_executors_and_event_driven_mode_refuse_adaptive_policies() {
    for (backend, device) in backends() {
        let model = Model::load_dir(&case_dir("prime_l2_tiny"), &device).expect("model");
        let policy = RevealPolicy::Entropy { budget: 0.5 };
        for executor in [ExecutorChoice::Shader, ExecutorChoice::Twin] {
            let mut request = request(policy, 8, 1);
            request.executor = executor;
            let message = request.start(&model).map(|_| ()).expect_err("refused").to_string();
            assert!(message.contains("entropy:0.5") && message.contains("host"), "{backend}/{executor:?}: {message}");
        }
        let mut auto = request(policy, 8, 1);
        auto.executor = ExecutorChoice::Auto;
        assert_eq!(auto.resolve_executor(&model).expect("resolves"), ExecutorChoice::Host, "{backend}");
        let host = events_tokens(&model, &request(policy, 8, 1));
        assert_eq!(events_tokens(&model, &auto), host, "{backend}: auto runs the host executor");
    }
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

//! The device executor takes the host executor's steps: same tokens, same states, same NFE and
//! idle steps, same recorded guesses and candidates, in both sampling modes, with no read-back
//! during the loop unless one is asked for.

use std::ops::ControlFlow;

use prime_core::kernels::KernelPath;
use prime_core::sampler::SamplingMode;
use prime_core::{Conditioning, Model, Run, Sampler, SamplerSettings, SamplerShape, StepEvent};
use prime_tests::{backends, case_dir};

fn sampler(model: &Model, settings: &SamplerSettings, conditioning: &Conditioning) -> Sampler {
    let shape = SamplerShape::from_config(model.config()).expect("shape");
    Sampler::new(shape, settings.clone(), conditioning).expect("sampler")
}

fn events(mut run: Run, model: &Model) -> (Vec<StepEvent>, Run) {
    let mut events = Vec::new();
    run.run(model, |e| {
        events.push(e.clone());
        ControlFlow::Continue(())
    })
    .expect("sampling")
    .expect("not aborted");
    (events, run)
}

#[test]
fn device_executor_takes_the_host_executors_steps() {
    for case in ["prime_l2_tiny", "prime_l4_small", "mdlm_l1_tiny"] {
        for (backend, device) in backends() {
            let model = Model::load_dir(&case_dir(case), &device).expect("model");
            let conditioning = Conditioning { prefix: vec![3, 1], suffix: vec![7], pinned: vec![], class: None };
            for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
                for (seed, top_k, record_guesses) in [(1u64, None, false), (2, Some(5), false), (3, None, true)] {
                    let settings = SamplerSettings {
                        steps: 24,
                        seed,
                        mode,
                        top_k,
                        record_guesses,
                        temperature: 0.9,
                        ..Default::default()
                    };
                    let (host, _) = events(Run::on_host(sampler(&model, &settings, &conditioning)), &model);
                    let path = KernelPath::for_device(&device);
                    let run = Run::on_device(sampler(&model, &settings, &conditioning), path, &device, true)
                        .expect("device run");
                    let (on_device, run) = events(run, &model);
                    let tag = format!("{case}/{backend}/{mode:?}/seed {seed}/top-k {top_k:?}/record {record_guesses}");
                    assert_eq!(on_device.len(), host.len(), "{tag}");
                    for (d, h) in on_device.iter().zip(&host) {
                        let step = format!("{tag}: step {}", d.step);
                        assert_eq!(
                            (d.step, &d.state, d.idle, d.network_called, d.nfe, d.idle_steps),
                            (h.step, &h.state, h.idle, h.network_called, h.nfe, h.idle_steps),
                            "{step}"
                        );
                        assert_eq!(d.revealed, h.revealed, "{step}");
                        assert_eq!(d.guesses, h.guesses, "{step}");
                        assert_eq!(d.candidates.len(), h.candidates.len(), "{step}");
                        for (dc, hc) in d.candidates.iter().zip(&h.candidates) {
                            assert_eq!((dc.position, dc.count), (hc.position, hc.count), "{step}");
                            assert_eq!(dc.top.len(), hc.top.len(), "{step}");
                            for (a, b) in dc.top.iter().zip(&hc.top) {
                                assert_eq!(a.0, b.0, "{step}: position {}", dc.position);
                                assert!((a.1 - b.1).abs() < 1e-5, "{step}: {a:?} vs {b:?}");
                            }
                        }
                    }
                    if record_guesses && case != "mdlm_l1_tiny" {
                        assert!(host.iter().any(|e| !e.candidates.is_empty()), "{tag}: no candidates recorded");
                    }
                    let stats = run.stats();
                    assert_eq!(stats.steps, settings.steps + 1, "{tag}");
                    if !record_guesses {
                        let revealing = host.iter().filter(|e| !e.revealed.is_empty()).count();
                        assert_eq!(stats.draw_steps, revealing, "{tag}: only steps that reveal draw");
                    }
                }
            }
        }
    }
}

#[test]
fn device_executor_reads_back_only_the_final_state() {
    for (backend, device) in backends() {
        let model = Model::load_dir(&case_dir("prime_l2_tiny"), &device).expect("model");
        for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
            let settings = SamplerSettings { steps: 32, seed: 4, mode, ..Default::default() };
            let sampler = sampler(&model, &settings, &Conditioning::default());
            let mut run = Run::on_device(sampler, KernelPath::for_device(&device), &device, false).expect("run");
            run.run(&model, |e| {
                assert!(e.state.is_empty() != e.is_final, "only the final state is read back");
                ControlFlow::Continue(())
            })
            .expect("device sampling")
            .expect("not aborted");
            // The host knows which slots each step reveals (the reveal rule does not depend on
            // the network), so only the final state (ℓL = 32 ids) is read.
            assert_eq!(run.stats().readbacks, 1, "{backend}/{mode:?}");
            assert_eq!(run.stats().bytes_read, 32 * 4, "{backend}/{mode:?}");
        }
    }
}

#[test]
fn recording_reads_back_a_few_numbers_not_the_logits() {
    for (backend, device) in backends() {
        let model = Model::load_dir(&case_dir("prime_l4_small"), &device).expect("model");
        let (length, l, vocab) = (model.config().length, model.config().subtokens, model.config().vocab_size as usize);
        let settings = SamplerSettings { steps: 16, seed: 9, record_guesses: true, ..Default::default() };
        let host = Run::on_host(sampler(&model, &settings, &Conditioning::default()));
        let (_, host) = events(host, &model);
        let on_device = Run::on_device(
            sampler(&model, &settings, &Conditioning::default()),
            KernelPath::for_device(&device),
            &device,
            false,
        )
        .expect("run");
        let (events, on_device) = events(on_device, &model);
        let logits_bytes = length * vocab * 4;
        // The host reads the logits of the rows still masked at each call: all L rows at the
        // first (nothing is known yet), at least one row at each later one.
        let least = logits_bytes + (host.sampler().nfe() - 1) * vocab * 4;
        assert!(host.stats().bytes_read >= least, "{backend}: the host reads logits");
        // Per step at most: the state, x0, and 2k + 1 numbers per partly revealed token.
        for e in &events {
            let bound = 4 * (length * l + length + e.candidates.len() * 11);
            assert!(bound < logits_bytes, "{backend}");
        }
        let per_step = on_device.stats().bytes_read / on_device.stats().steps;
        println!("{backend}: host executor {} B/step, device executor {per_step} B/step", host.stats().bytes_read / 17);
        assert!(per_step * 10 < logits_bytes, "{backend}: {per_step} bytes per step");
    }
}

//! The sampler driven on the device with the sub-token kernels takes the same steps as the
//! host sampler: same tokens, same states, same NFE and idle steps, in both sampling modes,
//! with no readback during the loop.

use std::ops::ControlFlow;

use prime_core::kernels::KernelPath;
use prime_core::sampler::{DeviceOptions, SamplingMode, run};
use prime_core::{Conditioning, Model, Sampler, SamplerSettings, SamplerShape, StepEvent};
use prime_tests::{backends, case_dir};

fn host_run(model: &mut Model, settings: &SamplerSettings, conditioning: &Conditioning) -> Vec<StepEvent> {
    let shape = SamplerShape::from_config(model.config()).expect("shape");
    let mut sampler = Sampler::new(shape, settings.clone(), conditioning).expect("sampler");
    let mut events = Vec::new();
    run(&mut sampler, model, |e| {
        events.push(e.clone());
        ControlFlow::Continue(())
    })
    .expect("host sampling")
    .expect("not aborted");
    events
}

#[test]
fn device_loop_takes_the_host_samplers_steps() {
    for case in ["prime_l2_tiny", "mdlm_l1_tiny"] {
        for (backend, device) in backends() {
            let mut model = Model::load_dir(&case_dir(case), &device).expect("model");
            let conditioning = Conditioning { prefix: vec![3, 1], suffix: vec![7], pinned: vec![] };
            for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
                for (seed, top_k) in [(1u64, None), (2, Some(5))] {
                    let settings =
                        SamplerSettings { steps: 24, seed, mode, top_k, temperature: 0.9, ..Default::default() };
                    let host = host_run(&mut model, &settings, &conditioning);
                    let shape = SamplerShape::from_config(model.config()).expect("shape");
                    let mut sampler = Sampler::new(shape, settings.clone(), &conditioning).expect("sampler");
                    let mut events = Vec::new();
                    let options = DeviceOptions { path: KernelPath::for_device(&device), sync_states: true };
                    let (outcome, stats) = sampler
                        .run_on_device(&mut model, options, |e| {
                            events.push(e.clone());
                            ControlFlow::Continue(())
                        })
                        .expect("device sampling")
                        .expect("not aborted");
                    let tag = format!("{case}/{backend}/{mode:?}/seed {seed}/top-k {top_k:?}");
                    assert_eq!(events.len(), host.len(), "{tag}");
                    for (d, h) in events.iter().zip(&host) {
                        assert_eq!(
                            (d.step, &d.state, d.idle, d.network_called),
                            (h.step, &h.state, h.idle, h.network_called),
                            "{tag}"
                        );
                        assert_eq!(d.revealed, h.revealed, "{tag}: step {}", d.step);
                    }
                    let last = host.last().expect("events");
                    assert_eq!(outcome.nfe, last.nfe, "{tag}");
                    assert_eq!(outcome.idle_steps, last.idle_steps, "{tag}");
                    assert_eq!(stats.steps, settings.steps + 1, "{tag}");
                    if mode == SamplingMode::EventDriven {
                        assert_eq!(
                            stats.kernel_steps,
                            settings.steps + 1 - outcome.idle_steps,
                            "{tag}: idle steps launch nothing"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn device_loop_reads_back_only_the_final_state() {
    for (backend, device) in backends() {
        let mut model = Model::load_dir(&case_dir("prime_l2_tiny"), &device).expect("model");
        for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
            let settings = SamplerSettings { steps: 32, seed: 4, mode, ..Default::default() };
            let shape = SamplerShape::from_config(model.config()).expect("shape");
            let mut sampler = Sampler::new(shape, settings, &Conditioning::default()).expect("sampler");
            let options = DeviceOptions { path: KernelPath::for_device(&device), sync_states: false };
            let (_, stats) = sampler
                .run_on_device(&mut model, options, |e| {
                    assert!(e.state.is_empty() != e.is_final, "only the final state is read back");
                    ControlFlow::Continue(())
                })
                .expect("device sampling")
                .expect("not aborted");
            // The host knows which slots each step reveals (the reveal rule does not depend on
            // the network), so only the final state is read.
            assert_eq!(stats.readbacks, 1, "{backend}/{mode:?}");
        }
    }
}

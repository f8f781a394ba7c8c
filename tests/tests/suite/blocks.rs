//! Network outputs in row blocks. Models cut to a binding limit (what lets an official-size
//! model run where one storage binding holds at most 128 MiB): the output head in vocabulary
//! blocks and the logits in row blocks give the logits of the whole model. Outputs of only the
//! rows still masked (what every network call now computes) hold those rows' logits. Either
//! way a generation draws exactly what it draws with every row computed, on every backend,
//! with both executors, in both modes, truncated and recorded. Models that cannot fit are
//! refused with the tensor named.

use std::ops::ControlFlow;

use burn::tensor::{Int, Tensor, TensorData};
use prime_core::device::ModelSource;
use prime_core::logits::HostLogits;
use prime_core::readback::read_f32;
use prime_core::sampler::SamplingMode;
use prime_core::weights::{HostTensor, WeightFile, to_safetensors_as};
use prime_core::{
    Denoiser, ExecutorChoice, GenerationRequest, Logits, Model, ModelClass, ModelConfig, NetworkInput, SamplerSettings,
    StepEvent, Tokens,
};
use prime_tests::{backends, filled_tensors, tiny_config};
use safetensors::Dtype;

/// A small model with a large vocabulary, so that a small limit cuts its head and logits.
fn config(class: ModelClass, subtokens: usize, length: usize) -> ModelConfig {
    ModelConfig { model_class: class, hidden_size: 16, length, ..tiny_config(subtokens, 1000) }
}

/// (name, config, limit): ℓ = 2 with 8 KB (head in 8 blocks, logits in rows of 2), MDLM with
/// 70 KB (its (V + 1)-row embedding fits; logits in rows of 17).
fn cases() -> Vec<(&'static str, ModelConfig, u64)> {
    vec![("prime-l2", config(ModelClass::PerceiverDIT, 2, 16), 8192), ("mdlm", config(ModelClass::DIT, 1, 64), 70_000)]
}

fn weights(config: &ModelConfig) -> WeightFile {
    WeightFile::from_tensors(filled_tensors(config))
}

fn load(config: &ModelConfig, device: &burn::tensor::Device, limit: Option<u64>) -> prime_core::Result<Model> {
    Model::load(ModelSource::Weights(config.clone(), weights(config)), device, limit)
}

/// A model stored as f16 (what the page downloads) computes exactly what the same values stored
/// as f32 compute: on wgpu the `unpack` shader expands the weights on the device, elsewhere the
/// host does; whole and with the head cut into blocks (rows of an f16 tensor).
#[test]
fn f16_weights_load_as_their_values() {
    for (name, config, limit) in cases() {
        let tensors = filled_tensors(&config);
        let f16 = to_safetensors_as(&tensors, Dtype::F16).expect("f16 file");
        let rounded: Vec<(String, HostTensor)> = tensors
            .into_iter()
            .map(|(n, t)| {
                let data = t.data.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
                (n, HostTensor { shape: t.shape, data })
            })
            .collect();
        let n = config.sequence_subtokens();
        let mask = i64::from(config.codec().expect("codec").mask_id());
        let ids: Vec<i64> = (0..n as i64).map(|i| i % (mask + 1)).collect();
        for (backend, device) in backends() {
            for limit in [None, Some(limit)] {
                let from_f16 = WeightFile::from_bytes(&f16).expect("parse f16");
                let from_f16 = Model::load(ModelSource::Weights(config.clone(), from_f16), &device, limit);
                let from_f32 = WeightFile::from_tensors(rounded.clone());
                let from_f32 = Model::load(ModelSource::Weights(config.clone(), from_f32), &device, limit);
                let (a, b) = (from_f16.expect("f16 model"), from_f32.expect("f32 model"));
                let mut rows = (0..config.length as u32).collect::<Vec<_>>();
                rows.retain(|r| r % 2 == 1);
                let state = Tensor::<1, Int>::from_data(
                    TensorData::new(ids.iter().map(|&v| v as i32).collect::<Vec<_>>(), [n]),
                    &device,
                );
                let read = |m: &Model| -> Vec<u32> {
                    let logits = m
                        .logits(NetworkInput { state: state.clone(), rows: rows.clone(), class: None, guidance: 0.0 })
                        .expect("logits");
                    let values = logits.flat_blocks().into_iter().flat_map(|t| read_f32(t, "logits").expect("read"));
                    values.map(f32::to_bits).collect()
                };
                assert_eq!(read(&a), read(&b), "{name}/{backend}/{limit:?}: f16 and f32 loads differ");
            }
        }
    }
}

#[test]
fn blocked_logits_equal_the_whole_logits() {
    for (name, config, limit) in cases() {
        for (backend, device) in backends() {
            let whole = load(&config, &device, None).expect("whole");
            let blocked = load(&config, &device, Some(limit)).expect("blocked");
            let b = blocked.blocking();
            assert!(b.logits_rows < config.length, "{name}: the limit cuts the logits");
            if name == "prime-l2" {
                assert!(b.head_rows < config.output_width(), "{name}: the limit cuts the head");
            }
            let n = config.sequence_subtokens();
            let mask = i64::from(whole.codec().mask_id());
            let ids: Vec<i64> = (0..n as i64).map(|i| if i % 3 == 0 { mask } else { i % mask }).collect();
            let want = whole.forward(&ids, 1).expect("whole forward");
            let state = Tensor::<1, Int>::from_data(
                TensorData::new(ids.iter().map(|&v| v as i32).collect::<Vec<_>>(), [n]),
                &device,
            );
            let every_row = (0..config.length as u32).collect();
            let logits = blocked
                .logits(NetworkInput { state: state.clone(), rows: every_row, class: None, guidance: 0.0 })
                .expect("blocked logits");
            assert!(logits.block_count() > 1, "{name}/{backend}");
            assert_eq!(logits.layout().rows(), config.length);
            let got: Vec<f32> =
                logits.flat_blocks().into_iter().flat_map(|t| read_f32(t, "logits").expect("read")).collect();
            assert_eq!(got.len(), want.len());
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{name}/{backend}: blocked logits differ by {worst}");
            // Asked for a few rows, both models compute those (and short gaps), nothing else,
            // with the values of the whole output.
            let rows = vec![1, 2, 9, (config.length - 1) as u32];
            for model in [&whole, &blocked] {
                let logits = model
                    .logits(NetworkInput { state: state.clone(), rows: rows.clone(), class: None, guidance: 0.0 })
                    .expect("rows");
                let layout = logits.layout();
                assert!(layout.rows() < config.length, "{name}/{backend}: {} rows computed", layout.rows());
                let w = config.output_width();
                let host = HostLogits::new(
                    logits.flat_blocks().into_iter().flat_map(|t| read_f32(t, "logits").expect("read")).collect(),
                    w,
                    layout,
                    config.length,
                )
                .expect("host logits");
                for &i in &rows {
                    let i = i as usize;
                    let row = host.row(i).expect("an asked row");
                    let worst =
                        row.iter().zip(&want[i * w..(i + 1) * w]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                    assert!(worst <= 1e-5, "{name}/{backend}: row {i} differs by {worst}");
                }
            }
        }
    }
}

/// The model, made to compute the logits of every row whatever a call asks for.
struct EveryRow<'a>(&'a Model);

impl Denoiser for EveryRow<'_> {
    fn device(&self) -> &burn::tensor::Device {
        self.0.device()
    }

    fn logits(&self, input: NetworkInput) -> prime_core::Result<Logits> {
        let rows = (0..self.0.config().length as u32).collect();
        self.0.logits(NetworkInput { rows, ..input })
    }
}

fn events(model: &Model, denoiser: &dyn Denoiser, request: &GenerationRequest) -> Vec<StepEvent> {
    let mut run = request.start(model).expect("start");
    let mut events = Vec::new();
    run.run(denoiser, |e| {
        events.push(e.clone());
        ControlFlow::Continue(())
    })
    .expect("run")
    .expect("done");
    events
}

/// The events are equal, but for the recorded probabilities, which may differ in the last
/// bits: a head cut into blocks runs other matrix-product kernels (on burn-flex, 2.4e-7 here).
fn assert_same_events(got: &[StepEvent], want: &[StepEvent], tag: &str) {
    assert_eq!(got.len(), want.len(), "{tag}");
    for (g, w) in got.iter().zip(want) {
        let step = format!("{tag}: step {}", w.step);
        let strip = |e: &StepEvent| StepEvent { candidates: Vec::new(), ..e.clone() };
        assert_eq!(strip(g), strip(w), "{step}");
        assert_eq!(g.candidates.len(), w.candidates.len(), "{step}");
        for (a, b) in g.candidates.iter().zip(&w.candidates) {
            assert_eq!((a.position, a.count, a.top.len()), (b.position, b.count, b.top.len()), "{step}");
            for ((ta, pa), (tb, pb)) in a.top.iter().zip(&b.top) {
                assert!(ta == tb && (pa - pb).abs() <= 1e-6, "{step}: candidate {ta} {pa} vs {tb} {pb}");
            }
        }
    }
}

#[test]
fn blocked_generations_draw_what_whole_ones_draw() {
    for (name, config, limit) in cases() {
        for (backend, device) in backends() {
            let whole = load(&config, &device, None).expect("whole");
            let blocked = load(&config, &device, Some(limit)).expect("blocked");
            for executor in [ExecutorChoice::Host, ExecutorChoice::Auto] {
                for mode in [SamplingMode::Ancestral, SamplingMode::EventDriven] {
                    for (top_k, record_guesses) in [(None, true), (Some(40), false)] {
                        let request = GenerationRequest {
                            prompt: Tokens::Ids(vec![7, 900]),
                            settings: SamplerSettings {
                                steps: 12,
                                seed: 3,
                                mode,
                                top_k,
                                record_guesses,
                                temperature: 0.8,
                                ..Default::default()
                            },
                            executor,
                            ..GenerationRequest::default()
                        };
                        let tag = format!("{name}/{backend}/{executor:?}/{mode:?}/top_k {top_k:?}");
                        // The whole output of every row, against only the rows still masked
                        // (the models' default), whole and in blocks.
                        let want = events(&whole, &EveryRow(&whole), &request);
                        assert_same_events(&events(&whole, &whole, &request), &want, &format!("{tag}, masked rows"));
                        assert_same_events(&events(&blocked, &blocked, &request), &want, &format!("{tag}, blocked"));
                    }
                }
            }
        }
    }
}

#[test]
fn models_that_cannot_fit_the_binding_are_refused() {
    let (_, device) = backends().into_iter().next().expect("a backend");
    let message = |r: prime_core::Result<Model>| r.err().map(|e| e.to_string()).unwrap_or_default();
    // MDLM's embedding has V + 1 rows and is not cut.
    let refused = message(load(&config(ModelClass::DIT, 1, 16), &device, Some(8192)));
    assert!(refused.contains("vocab_embed.embedding"), "{refused}");
    // Not even one row of the head (D floats) fits.
    let refused = message(load(&config(ModelClass::PerceiverDIT, 2, 16), &device, Some(32)));
    assert!(refused.contains("largest storage binding"), "{refused}");
    // A blocked model refuses a batch whose activations exceed the limit, and a whole forward.
    let prime = config(ModelClass::PerceiverDIT, 2, 16);
    let model = load(&prime, &device, Some(8192)).expect("blocked");
    let n = prime.sequence_subtokens();
    let state = || NetworkInput {
        state: Tensor::<1, Int>::from_data(TensorData::new(vec![32i32; n], [n]), &device),
        rows: (0..prime.length as u32).collect(),
        class: None,
        guidance: 0.0,
    };
    let refused =
        model.logits_batch((0..5).map(|_| state()).collect()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("5 sequences at once"), "{refused}");
    assert!(model.logits_batch((0..2).map(|_| state()).collect()).is_ok());
    let refused = model.forward(&vec![32; n], 1).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("whole forward pass"), "{refused}");
}

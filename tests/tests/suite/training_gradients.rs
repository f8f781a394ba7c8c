//! The training step's own gradients: the fused head + loss pass against its Burn-ops twin, the
//! head + loss gradient against autodiff through the loss and against finite differences, and
//! a batch run as slices side by side against the same batch in one piece.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use prime_core::ModelConfig;
use prime_core::network::{Network, training_ops};
use prime_core::rng::{CounterRng, Stream};
use prime_core::train::{
    LearningRateSchedule, NoiseSchedule, NoisedBatch, Objective, RowTargets, TokenCorpus, TrainSettings, Trainer,
    head_loss, initial_weights,
};
use prime_tests::{backends, max_abs_diff, tiny_config};

/// The tiny model, with the position embedding at ℓ ≥ 2 (so its gradient is checked too).
fn config(subtokens: usize, vocab: u32) -> ModelConfig {
    ModelConfig { position_embedding: subtokens >= 2, ..tiny_config(subtokens, vocab) }
}

fn uniform(seed: u64, position: u32, n: usize, scale: f32) -> Vec<f32> {
    let rng = CounterRng::new(seed);
    (0..n as u32).map(|i| scale * (2.0 * rng.uniform(Stream::Init, 77, position, i) - 1.0)).collect()
}

/// A noised batch of `rows` windows of 16 tokens from a fixed pseudo-random text.
fn batch(config: &ModelConfig, rows: usize, step: u32) -> NoisedBatch {
    let text: Vec<u32> = (0..rows as u32 * 16).map(|i| (i * 7919 + i / 5) % config.vocab_size).collect();
    let windows: Vec<&[u32]> = text.chunks(16).collect();
    NoisedBatch::draw(&windows, &config.codec().unwrap(), &CounterRng::new(3), step, NoiseSchedule::Training)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Adds `scale`·δ to every parameter, δ uniform in [−1, 1] from `seed` (the same δ for the same
/// seed, parameter by parameter in visiting order).
struct Shift {
    seed: u64,
    scale: f32,
    index: u32,
}

impl ModuleMapper for Shift {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.index += 1;
        let (seed, index, scale) = (self.seed, self.index, self.scale);
        param.map(|t| {
            let dims = t.dims();
            let n = dims.iter().product();
            let delta = Tensor::<D>::from_data(TensorData::new(uniform(seed, index, n, scale), dims), &t.device());
            // A new leaf (on autodiff devices, one that takes gradients).
            let shifted = (t + delta).detach();
            if shifted.is_autodiff() { shifted.require_grad() } else { shifted }
        })
    }
}

/// Σ over parameters of ⟨gradient, δ⟩ for the δ of [`Shift`] with `seed` and scale 1.
struct Directional<'a> {
    grads: &'a GradientsParams,
    seed: u64,
    index: u32,
    total: f64,
}

impl ModuleVisitor for Directional<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.index += 1;
        let n = param.val().dims().iter().product();
        let delta = uniform(self.seed, self.index, n, 1.0);
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.total += to_vec(g).iter().zip(&delta).map(|(&g, &d)| f64::from(g) * f64::from(d)).sum::<f64>();
        }
    }
}

/// Every parameter's gradient, in visiting order (zeros where a parameter got none).
struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n: usize = param.val().dims().iter().product();
        self.out.push(self.grads.get::<D>(param.id).map_or_else(|| vec![0.0; n], to_vec));
    }
}

fn gradients(network: &Network, grads: &GradientsParams) -> Vec<Vec<f32>> {
    let mut c = Collect { grads, out: Vec::new() };
    network.visit(&mut c);
    c.out
}

/// A network at a generic point (the initial weights zero the modulation and the head, so
/// every parameter is moved off them) on `device`.
fn network(config: &ModelConfig, device: &Device) -> Network {
    let base = Network::load(config, &mut initial_weights(config, 8).unwrap(), device, usize::MAX).unwrap();
    base.map(&mut Shift { seed: 21, scale: 0.2, index: 0 })
}

/// The fused pass (burn-flex) and its Burn-ops twin give the same loss and gradient, padding
/// columns included, for ℓ = 1, 2, 3; the dispatching entry point agrees on every backend.
#[test]
fn the_fused_loss_pass_equals_its_twin() {
    for (ell, vocab, width) in [(2usize, 64u32, 70usize), (3, 100, 100), (1, 50, 56)] {
        let config = config(ell, vocab);
        let objective = Objective::new(&config).unwrap();
        let targets: RowTargets = objective.row_targets(&batch(&config, 4, 5));
        let rows = targets.clean.len();
        let values = uniform(5, ell as u32, rows * width, 6.0);
        let logits = |d: &Device| Tensor::<2>::from_data(TensorData::new(values.clone(), [rows, width]), d);
        let flex = Device::flex();
        let (want_loss, want_grad) = head_loss::twin::nll_gradient(logits(&flex), &targets, &objective);
        let (want_loss, want_grad) = (to_vec(want_loss)[0], to_vec(want_grad));
        let (loss, grad) =
            head_loss::host::nll_gradient(logits(&flex), &targets, objective.digit_tables(), objective.vocab())
                .unwrap_or_else(|_| panic!("the fused pass refused plain burn-flex logits"));
        let (loss, grad) = (to_vec(loss)[0], to_vec(grad));
        assert!((loss - want_loss).abs() <= 1e-5 * want_loss.abs(), "ℓ={ell}: loss {loss} vs {want_loss}");
        assert!(
            max_abs_diff(&grad, &want_grad) <= 1e-6,
            "ℓ={ell}: gradient off by {}",
            max_abs_diff(&grad, &want_grad)
        );
        // Revealed digits exclude tokens, so some gradients are exactly 0 besides the padding.
        let zeros = grad.iter().enumerate().filter(|(i, g)| i % width < vocab as usize && **g == 0.0).count();
        assert!(zeros > 0, "ℓ={ell}: no token was excluded");
        for (name, device) in backends() {
            let (loss, grad) = head_loss::nll_gradient(logits(&device), &targets, &objective);
            let (loss, grad) = (to_vec(loss)[0], to_vec(grad));
            assert!((loss - want_loss).abs() <= 1e-4 * want_loss.abs(), "{name}, ℓ={ell}: loss {loss} vs {want_loss}");
            let diff = max_abs_diff(&grad, &want_grad);
            assert!(diff <= 1e-5, "{name}, ℓ={ell}: gradient off by {diff}");
        }
    }
}

/// Every parameter's gradient from the head + loss with its own gradient (which skips fully
/// revealed positions, and on burn-flex scores some on their consistent tokens alone) equals autodiff's through the network's logits and
/// [`Objective::training_loss`], on every backend.
#[test]
fn the_head_loss_gradient_equals_autodiff_through_the_loss() {
    for (name, device) in backends() {
        for ell in [2usize, 1] {
            let config = config(ell, 60);
            let device = device.clone().autodiff();
            let objective = Objective::new(&config).unwrap();
            let b = batch(&config, 4, 7);
            // Fully revealed positions are skipped by the head: the batch has both kinds.
            let targets = objective.row_targets(&b);
            let live = targets.live_rows();
            assert!(!live.is_empty() && live.len() < b.clean.len(), "ℓ={ell}: {} positions live", live.len());
            // At ℓ = 2, burn-flex scores positions with a revealed digit on their few
            // consistent tokens alone: the batch has those and full ones.
            let narrow = head_loss::narrow_rows(&targets, &live, &objective).len();
            assert!(ell == 1 || (0 < narrow && narrow < live.len()), "ℓ={ell}: {narrow} narrow positions");
            let net = network(&config, &device);
            let k = net.constants();
            let reference = objective.training_loss(net.forward(&k, b.input(&device), None), &b);
            let want = gradients(&net, &GradientsParams::from_grads(reference.backward(), &net));
            let net = net.fork(&device);
            let k = net.constants();
            let loss = objective.head_loss(net.output_head(), net.hidden(&k, b.input(&device), &[], None), &b, 1.0);
            let got = gradients(&net, &GradientsParams::from_grads(loss.backward(), &net));
            assert_eq!(got.len(), want.len());
            let scale = want.iter().flatten().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(scale > 1e-3, "{name}, ℓ={ell}: the reference gradient is all but zero");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let diff = max_abs_diff(g, w);
                assert!(diff <= 2e-5 * scale.max(1.0), "{name}, ℓ={ell}: parameter {i} off by {diff} (scale {scale})");
            }
        }
    }
}

/// The head + loss gradient, dotted with a random direction over all parameters, equals the
/// loss's central finite difference along that direction.
#[test]
fn the_head_loss_gradient_matches_finite_differences() {
    let config = config(2, 60);
    let b = batch(&config, 4, 9);
    let objective = Objective::new(&config).unwrap();
    let loss_at = |net: &Network| {
        let device = net.device();
        let k = net.constants();
        f64::from(
            to_vec(objective.head_loss(net.output_head(), net.hidden(&k, b.input(&device), &[], None), &b, 1.0))[0],
        )
    };
    let autodiff = Device::flex().autodiff();
    let net = network(&config, &autodiff);
    let k = net.constants();
    let loss = objective.head_loss(net.output_head(), net.hidden(&k, b.input(&autodiff), &[], None), &b, 1.0);
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let mut directional = Directional { grads: &grads, seed: 99, index: 0, total: 0.0 };
    net.visit(&mut directional);

    let plain = network(&config, &Device::flex());
    let eps = 2e-3;
    let up = loss_at(&plain.clone().map(&mut Shift { seed: 99, scale: eps, index: 0 }));
    let down = loss_at(&plain.map(&mut Shift { seed: 99, scale: -eps, index: 0 }));
    let numeric = (up - down) / (2.0 * f64::from(eps));
    let analytic = directional.total;
    assert!(analytic.abs() > 1e-2, "the directional derivative {analytic} is too small to test");
    assert!((numeric - analytic).abs() <= 0.02 * analytic.abs(), "finite difference {numeric} vs gradient {analytic}");
}

/// A batch run as 2 or 3 slices side by side (3 slices of 8 rows are uneven) trains the same
/// weights as the batch in one piece, up to rounding.
#[test]
fn a_sliced_batch_trains_like_a_whole_one() {
    let vocab = 64;
    let config = config(2, vocab);
    let text: Vec<u32> = (0..2000u32).map(|i| (i * 31 + i / 7) % vocab).collect();
    let corpus = TokenCorpus::new(text, 16, vocab).unwrap();
    let settings = TrainSettings {
        batch_size: 8,
        schedule: LearningRateSchedule { peak: 3e-3, warmup: 1, total: 3, floor: 0.1 },
        weight_decay: 0.0,
        grad_clip: 1.0,
        ema_decay: 0.0,
        seed: 4,
    };
    let run = |shards: usize| {
        let mut t = Trainer::new(config.clone(), settings.clone(), &Device::flex()).unwrap().with_shards(shards);
        let losses: Vec<f32> = (0..3).map(|_| t.train_step(&corpus).unwrap()).collect();
        let weights: Vec<f32> = t.ema().export().unwrap().into_iter().flat_map(|(_, w)| w.data).collect();
        (losses, weights)
    };
    let (whole_loss, whole) = run(1);
    for shards in [2, 3] {
        let (loss, weights) = run(shards);
        for (a, b) in loss.iter().zip(&whole_loss) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "{shards} slices: loss {a} vs {b}");
        }
        let diff = max_abs_diff(&weights, &whole);
        assert!(diff <= 1e-5, "{shards} slices: weights differ by {diff}");
    }
}

fn random4(seed: u64, dims: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(uniform(seed, 1, dims.iter().product(), 1.5), dims), device)
}

/// Attention's backward pass: burn-flex's per-head loops equal the composed twin, and on every
/// backend the custom node's gradients of q, k and v equal autodiff's through Burn's attention.
#[test]
fn the_attention_backward_pass_equals_autodiff_and_its_twin() {
    let dims = [2, 3, 20, 8];
    let flex = Device::flex();
    let inputs = |device: &Device| [1, 2, 3, 4].map(|s| random4(s, dims, device));
    let [q, k, v, grad] = inputs(&flex);
    let fused = training_ops::attention_backward(q.clone(), k.clone(), v.clone(), grad.clone());
    let twin = training_ops::composed_attention_backward(q, k, v, grad);
    for (name, (a, b)) in ["q", "k", "v"].iter().zip(fused.into_iter().zip(twin)) {
        let (a, b) = (to_vec(a), to_vec(b));
        assert!(b.iter().any(|x| x.abs() > 1e-2), "∂{name} is all but zero");
        assert!(max_abs_diff(&a, &b) <= 1e-5, "∂{name}: loops and twin differ by {}", max_abs_diff(&a, &b));
    }
    for (name, device) in backends() {
        let device = device.autodiff();
        let grads_of = |custom: bool| {
            let [q, k, v, weights] = inputs(&device);
            let [q, k, v] = [q, k, v].map(Tensor::require_grad);
            let out = match custom {
                true => training_ops::attention(q.clone(), k.clone(), v.clone()),
                false => prime_core::network::fused::twin::attention(q.clone(), k.clone(), v.clone()),
            };
            let g = (out * weights.inner()).sum().backward();
            [q, k, v].map(|t| to_vec(t.grad(&g).expect("a gradient")))
        };
        let (got, want) = (grads_of(true), grads_of(false));
        for (which, (a, b)) in ["q", "k", "v"].iter().zip(got.iter().zip(&want)) {
            let diff = max_abs_diff(a, b);
            assert!(diff <= 1e-5, "{name}: ∂{which} differs from autodiff's by {diff}");
        }
    }
}

/// The MLP's bias + GELU: burn-flex's backward loop equals the composed twin, and on every
/// backend the custom node's gradients of x and the bias equal autodiff's through the Burn ops.
#[test]
fn the_bias_gelu_backward_pass_equals_autodiff_and_its_twin() {
    let (n, w) = (37, 24);
    let inputs = |device: &Device| {
        let x = Tensor::<2>::from_data(TensorData::new(uniform(6, 1, n * w, 3.0), [n, w]), device);
        let bias = Tensor::<1>::from_data(TensorData::new(uniform(6, 2, w, 1.0), [w]), device);
        let grad = Tensor::<2>::from_data(TensorData::new(uniform(6, 3, n * w, 1.0), [n, w]), device);
        (x, bias, grad)
    };
    let (x, bias, grad) = inputs(&Device::flex());
    let fused = to_vec(training_ops::bias_gelu_backward(x.clone(), bias.clone(), grad.clone()));
    let twin = to_vec(training_ops::composed_bias_gelu_backward(x, bias, grad));
    assert!(twin.iter().any(|g| g.abs() > 1e-2), "the gradient is all but zero");
    assert!(max_abs_diff(&fused, &twin) <= 1e-5, "loop and twin differ by {}", max_abs_diff(&fused, &twin));
    for (name, device) in backends() {
        let device = device.autodiff();
        let grads_of = |custom: bool| {
            let (x, bias, weights) = inputs(&device);
            let (x, bias) = (x.require_grad(), bias.require_grad());
            let out = match custom {
                true => training_ops::bias_gelu(x.clone(), bias.clone()),
                false => prime_core::network::fused::twin::bias_gelu(x.clone(), Some(&bias)),
            };
            let g = (out * weights.inner()).sum().backward();
            (to_vec(x.grad(&g).expect("∂x")), to_vec(bias.grad(&g).expect("∂b")))
        };
        let ((gx, gb), (wx, wb)) = (grads_of(true), grads_of(false));
        assert!(max_abs_diff(&gx, &wx) <= 1e-5, "{name}: ∂x differs by {}", max_abs_diff(&gx, &wx));
        assert!(max_abs_diff(&gb, &wb) <= 1e-4, "{name}: ∂b differs by {}", max_abs_diff(&gb, &wb));
    }
}

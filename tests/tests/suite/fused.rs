//! The network's fused CPU steps (`prime_core::network::fused`) against their Burn-ops twins,
//! and the vectorisable exponential they use against the standard library's.

use burn::tensor::{Device, Distribution, Tensor};
use prime_core::network::RopeTables;
use prime_core::network::fused::{self, host, twin};

fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let device = Device::flex();
    device.seed(seed);
    Tensor::random(shape, Distribution::Normal(0.0, 2.0), &device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 values")
}

/// Largest |a − b| / (1 + |b|) over two equally long vectors.
fn max_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0, f32::max)
}

#[test]
fn the_exponential_is_within_a_few_ulps_of_the_standard_one() {
    let mut worst = 0.0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let (ours, std) = (f64::from(fused::exp(x)), f64::from(x.exp()));
        worst = worst.max((ours - std).abs() / std);
        x += 0.001_37;
    }
    assert!(worst < 5e-7, "relative error {worst:e}");
    // Clamped at the ends of the normal range, never NaN or infinite.
    assert!(fused::exp(-1000.0) > 0.0 && fused::exp(-1000.0) < 1e-37);
    assert!(fused::exp(1000.0).is_finite() && fused::exp(1000.0) > 1e38);
    assert_eq!(fused::exp(0.0), 1.0);
}

#[test]
fn gelu_matches_the_tanh_formula() {
    for i in -400..=400 {
        let x = i as f32 * 0.025;
        let z = 0.797_884_560_802_865_4 * (f64::from(x) + 0.044715 * f64::from(x).powi(3));
        let expected = 0.5 * f64::from(x) * (1.0 + z.tanh());
        let got = f64::from(fused::gelu(x));
        assert!((got - expected).abs() <= 1e-6 * (1.0 + expected.abs()), "gelu({x}) = {got}, expected {expected}");
    }
}

#[test]
fn the_fused_row_passes_match_their_twins() {
    let (n, w) = (67, 45);
    let y = random([n, w], 1);
    let x = random([n, w], 2);
    let gate = random([1, w], 3);
    let bias = random([w], 4);
    let fused_or_panic =
        |r: Result<Tensor<2>, Box<Tensor<2>>>| r.unwrap_or_else(|_| panic!("burn-flex tensors take the fused pass"));
    let cases: Vec<(&str, Tensor<2>, Tensor<2>)> = vec![
        (
            "bias + gelu",
            fused_or_panic(host::rows(y.clone(), Some(&bias), None, host::Op::BiasGelu)),
            twin::bias_gelu(y.clone(), Some(&bias)),
        ),
        (
            "gelu",
            fused_or_panic(host::rows(y.clone(), None, None, host::Op::BiasGelu)),
            twin::bias_gelu(y.clone(), None),
        ),
        (
            "bias",
            fused_or_panic(host::rows(y.clone(), Some(&bias), None, host::Op::AddBias)),
            twin::add_bias(y.clone(), &bias),
        ),
        (
            "gated residual with bias",
            fused_or_panic(host::rows(y.clone(), Some(&bias), Some((&x, &gate)), host::Op::GatedResidual)),
            twin::gated_residual(x.clone(), &gate, y.clone(), Some(&bias)),
        ),
        (
            "gated residual",
            fused_or_panic(host::rows(y.clone(), None, Some((&x, &gate)), host::Op::GatedResidual)),
            twin::gated_residual(x.clone(), &gate, y.clone(), None),
        ),
    ];
    for (name, fused, twin) in cases {
        assert_eq!(fused.dims(), [n, w], "{name}");
        let error = max_error(&values(fused), &values(twin));
        assert!(error < 2e-6, "{name}: error {error:e}");
    }
    // `y` was shared with the cases above, so each pass wrote a copy: y itself is unchanged.
    let before = values(y.clone());
    let _ = fused::bias_gelu(y.clone(), Some(&bias));
    assert_eq!(values(y), before);
}

#[test]
fn a_pass_on_tensors_of_the_wrong_shape_is_left_to_the_burn_ops() {
    let y = random([4, 6], 5);
    let wrong_bias = random([5], 6);
    assert!(host::rows(y.clone(), Some(&wrong_bias), None, host::Op::AddBias).is_err());
    let gate = random([1, 6], 7);
    let wrong_x = random([3, 6], 8);
    assert!(host::rows(y, None, Some((&wrong_x, &gate)), host::Op::GatedResidual).is_err());
}

#[test]
fn the_cpu_attention_matches_burns_op() {
    let (b, h, l, dh) = (2, 3, 37, 16);
    let q = random([b, h, l, dh], 9);
    let k = random([b, h, l, dh], 10);
    // v as the block makes it: a transposed view, not contiguous.
    let v = random([b, l, h, dh], 11).swap_dims(1, 2);
    let ours = host::attention(&q, &k, &v).expect("burn-flex tensors take the CPU attention");
    let theirs = twin::attention(q, k, v);
    assert_eq!(ours.dims(), [b, h, l, dh]);
    let error = max_error(&values(ours), &values(theirs));
    assert!(error < 2e-6, "attention error {error:e}");
}

#[test]
fn the_split_and_rotation_of_qkv_match_the_burn_ops() {
    let (b, h, l, dh) = (2, 3, 11, 8);
    let inv_freq: Vec<f32> = (0..dh / 2).map(|i| 10_000f32.powf(-2.0 * i as f32 / dh as f32)).collect();
    let rope = RopeTables::new(&inv_freq, l, &Device::flex());
    let qkv = random([b * l, 3 * h * dh], 12);
    let ours =
        host::split_rotate(qkv.clone(), b, h, &rope).unwrap_or_else(|_| panic!("burn-flex tensors take the pass"));
    let theirs = twin::split_rotate(qkv.clone(), b, h, &rope);
    for (name, (ours, theirs)) in ["q", "k", "v"].into_iter().zip(ours.into_iter().zip(theirs)) {
        assert_eq!(ours.dims(), [b, h, l, dh], "{name}");
        let error = max_error(&values(ours), &values(theirs));
        assert!(error < 1e-6, "{name} error {error:e}");
    }
    // v is copied as it is; q at position 0 is unrotated (cos 1, sin 0).
    let [q, _, v] = host::split_rotate(qkv.clone(), b, h, &rope).unwrap_or_else(|_| panic!("fused"));
    let rows = values(qkv.clone());
    let (first_q, first_v) = (&rows[..dh], &rows[2 * h * dh..2 * h * dh + dh]);
    assert_eq!(&values(v)[..dh], first_v);
    assert_eq!(&values(q)[..dh], first_q);
    // Tables for another length, or a width that is not 3·H·Dh, are left to the Burn ops.
    let short = RopeTables::new(&inv_freq, l - 1, &Device::flex());
    assert!(host::split_rotate(qkv, b, h, &short).is_err());
    assert!(host::split_rotate(random([b * l, 3 * h * dh + 1], 13), b, h, &rope).is_err());
}

#[test]
fn autodiff_tensors_take_the_burn_ops() {
    let device = Device::flex().autodiff();
    let q = Tensor::<4>::random([1, 2, 5, 4], Distribution::Normal(0.0, 1.0), &device);
    assert!(host::attention(&q, &q, &q).is_none());
    let y = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
    assert!(host::rows(y.clone(), None, None, host::Op::BiasGelu).is_err());
    // The public function still runs (as Burn ops) and keeps the graph.
    let out = fused::bias_gelu(y.clone(), None);
    let grads = out.sum().backward();
    assert!(y.grad(&grads).is_some());
}

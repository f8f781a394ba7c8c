//! The block's elementwise steps, each in one pass: a bias with GELU-tanh after the MLP's first
//! product, a bias on the output head, the gated residual `x + gate·(y + b)`, and the split of
//! the qkv product into q, k, v with the rotary embedding of q and k.
//!
//! On burn-flex outside autodiff (the native CPU path) each runs as one loop over the rows on
//! all cores, vectorised for the CPU it finds (AVX-512, AVX2 + FMA, or baseline), with an
//! exponential that the compiler can vectorise (see [`exp`]). burn-flex runs its elementwise
//! ops on one core and one op at a time: GELU alone took seven passes and a scalar `expf` per
//! element, 17 % of the trunk's time at L = 512. Elsewhere (wgpu, the browser's CPU build,
//! training under autodiff) the same functions are Burn ops: [`twin`], which the tests compare
//! with the fused loops.

use burn::tensor::Tensor;

use super::RopeTables;

/// `√(2/π)·2`: GELU-tanh's `½(1 + tanh z)` is `σ(2z)`.
pub(crate) const TWO_SQRT_2_OVER_PI: f32 = 2.0 * 0.797_884_6;
/// The cubic coefficient of GELU-tanh.
pub(crate) const GELU_CUBIC: f32 = 0.044_715;

/// `gelu_tanh(x + b)` for x (N, W) and an optional bias (W).
pub fn bias_gelu(x: Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
    #[cfg(not(target_family = "wasm"))]
    let x = match host::rows(x, bias, None, host::Op::BiasGelu) {
        Ok(out) => return out,
        Err(x) => *x,
    };
    #[cfg(feature = "train")]
    if let (true, Some(b)) = (x.is_autodiff(), bias) {
        return super::training_ops::bias_gelu(x, b.clone());
    }
    twin::bias_gelu(x, bias)
}

/// `x + b` for x (N, W) and a bias (W).
pub fn add_bias(x: Tensor<2>, bias: &Tensor<1>) -> Tensor<2> {
    #[cfg(not(target_family = "wasm"))]
    let x = match host::rows(x, Some(bias), None, host::Op::AddBias) {
        Ok(out) => return out,
        Err(x) => *x,
    };
    twin::add_bias(x, bias)
}

/// The gated residual `x + gate·(y + b)` for x, y (N, W), gate (1, W) and an optional bias (W).
pub fn gated_residual(x: Tensor<2>, gate: &Tensor<2>, y: Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
    #[cfg(not(target_family = "wasm"))]
    let y = match host::rows(y, bias, Some((&x, gate)), host::Op::GatedResidual) {
        Ok(out) => return out,
        Err(y) => *y,
    };
    twin::gated_residual(x, gate, y, bias)
}

/// Attention `softmax(q·kᵀ/√dh)·v` over (B, H, L, dh) tensors: on burn-flex, per (sequence,
/// head) on all cores, two matrix products with one vectorised softmax pass between them (the
/// score matrix of one head at a time, L × L); under autodiff (training) one node with its own
/// backward pass (`training_ops`); elsewhere Burn's `attention` op. burn-flex's own
/// op takes `exp` from libm one value at a time, a quarter of the block's time at L = 512.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_family = "wasm"))]
    if let Some(out) = host::attention(&q, &k, &v) {
        return out;
    }
    #[cfg(feature = "train")]
    if q.is_autodiff() {
        return super::training_ops::attention(q, k, v);
    }
    twin::attention(q, k, v)
}

/// Attention's q, k and v from the qkv product (B·L, 3·H·Dh), whose columns run over (3, H, Dh):
/// each (B, H, L, Dh), q and k rotated by `rope`. On burn-flex one pass on all cores writes the
/// three tensors contiguous; elsewhere they are views of the product, q and k rotated by Burn
/// ops (and the CPU attention would have had to copy v out of its view).
pub fn split_rotate(qkv: Tensor<2>, batch: usize, heads: usize, rope: &RopeTables) -> [Tensor<4>; 3] {
    #[cfg(not(target_family = "wasm"))]
    let qkv = match host::split_rotate(qkv, batch, heads, rope) {
        Ok(out) => return out,
        Err(qkv) => *qkv,
    };
    twin::split_rotate(qkv, batch, heads, rope)
}

/// The same steps as Burn ops, on any device (and under autodiff).
pub mod twin {
    use burn::tensor::Tensor;
    use burn::tensor::activation::sigmoid;

    use super::{GELU_CUBIC, RopeTables, TWO_SQRT_2_OVER_PI};

    /// See [`super::split_rotate`]: views of the product, q and k through [`RopeTables::apply`].
    pub fn split_rotate(qkv: Tensor<2>, batch: usize, heads: usize, rope: &RopeTables) -> [Tensor<4>; 3] {
        let [rows, width] = qkv.dims();
        let (length, dh) = (rows / batch.max(1), width / (3 * heads).max(1));
        let qkv = qkv.reshape([batch, length, 3, heads, dh]);
        let part = |s: usize| qkv.clone().narrow(2, s, 1).reshape([batch, length, heads, dh]).swap_dims(1, 2);
        [rope.apply(part(0)), rope.apply(part(1)), part(2)]
    }

    fn plus_bias(x: Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
        match bias {
            Some(b) => x + b.clone().unsqueeze::<2>(),
            None => x,
        }
    }

    /// GELU with the tanh approximation, `½x(1 + tanh(z))` with `z = √(2/π)(x + 0.044715x³)`,
    /// computed as `x·σ(2z)` (the same function, since ½(1 + tanh z) = σ(2z)): one exponential
    /// instead of a tanh, and no cancellation in `1 + tanh z` for large negative z.
    pub fn bias_gelu(x: Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
        let x = plus_bias(x, bias);
        let two_z =
            (x.clone() * x.clone() * x.clone() * f64::from(GELU_CUBIC) + x.clone()) * f64::from(TWO_SQRT_2_OVER_PI);
        sigmoid(two_z) * x
    }

    /// Burn's attention op with its default options (scale 1/√dh, no mask, bias or softcap),
    /// which backends run fused.
    pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        burn::tensor::module::attention(q, k, v, None, None, burn::tensor::ops::AttentionModuleOptions::default())
    }

    /// `x + b`.
    pub fn add_bias(x: Tensor<2>, bias: &Tensor<1>) -> Tensor<2> {
        plus_bias(x, Some(bias))
    }

    /// `x + gate·(y + b)`.
    pub fn gated_residual(x: Tensor<2>, gate: &Tensor<2>, y: Tensor<2>, bias: Option<&Tensor<1>>) -> Tensor<2> {
        x + gate.clone() * plus_bias(y, bias)
    }
}

/// `eˣ` in f32 as straight-line arithmetic the compiler vectorises: `x = n·ln 2 + r` with
/// `|r| ≤ ½ln 2` (ln 2 in two parts), `eʳ` by its degree-6 Taylor polynomial, and `2ⁿ` put into
/// the exponent bits: within 5·10⁻⁷ of the standard library's `exp` (relative; tested). `x` is clamped to
/// `[-87.3, 88.3]`, where `eˣ` is a normal f32 and n stays below 128.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer without a branch.
    const ROUND: f32 = 12_582_912.0;
    // 2²³ + 127: n + this holds n + 127 in its low mantissa bits, which the shift moves into
    // the exponent field (an integer conversion without the saturating `as` cast, which
    // does not vectorise).
    const BIAS: f32 = 8_388_735.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits((n + BIAS).to_bits() << 23) * p
}

/// `x·σ(2z)`, GELU-tanh of one value with [`exp`].
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * gelu_gate(x)
}

/// `σ(2z)`, `2z = 2√(2/π)(x + 0.044715x³)`: the factor GELU-tanh multiplies x by.
#[inline(always)]
pub(crate) fn gelu_gate(x: f32) -> f32 {
    let two_z = (x * x * x * GELU_CUBIC + x) * TWO_SQRT_2_OVER_PI;
    1.0 / (1.0 + exp(-two_z))
}

/// The fused loops on burn-flex tensors (native builds), which the functions above try first.
#[cfg(not(target_family = "wasm"))]
pub mod host {
    use burn::tensor::{DType, Shape, Tensor};
    use burn_flex::{Flex, FlexTensor};
    use rayon::prelude::*;

    #[cfg(feature = "train")]
    use super::{GELU_CUBIC, TWO_SQRT_2_OVER_PI};
    use super::{RopeTables, gelu};

    /// Which pass [`rows`] makes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        /// `gelu(y + b)` (the bias optional).
        BiasGelu,
        /// `y + b`.
        AddBias,
        /// `x + gate·(y + b)` (the bias optional).
        GatedResidual,
    }

    /// Elements per parallel task (rounded to whole rows).
    const TASK: usize = 1 << 15;

    /// The tensor's burn-flex primitive when it is a plain contiguous f32 burn-flex tensor (the
    /// conversion refuses autodiff ones).
    pub(crate) fn flex<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
        flex_any(t).filter(FlexTensor::is_contiguous)
    }

    /// [`flex_any`] made contiguous (copied only where it is not).
    pub(crate) fn flex_contiguous<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
        flex_any(t).map(|t| contiguous(&t))
    }

    /// `t` itself where it is contiguous, else a contiguous copy.
    pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
        if t.is_contiguous() { t.clone() } else { t.to_contiguous() }
    }

    /// [`flex`] in any layout.
    pub(crate) fn flex_any<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
        let t = t.clone().try_into_primitive::<Flex>().ok()?;
        (t.dtype() == DType::F32).then_some(t)
    }

    /// See [`super::attention`]; `None` where the tensors are not plain f32 burn-flex ones of
    /// shapes (B, H, L, dh).
    pub fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Option<Tensor<4>> {
        let dims = q.dims();
        if k.dims() != dims || v.dims() != dims {
            return None;
        }
        let [batch, heads, length, dh] = dims;
        let (q, k, v) = (flex_contiguous(q)?, flex_contiguous(k)?, flex_contiguous(v)?);
        let (q, k, v) = (values(&q), values(&k), values(&v));
        let head = length * dh;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut out = FlexTensor::empty(Shape::new(dims), DType::F32);
        out.storage_mut::<f32>()[..batch * heads * head].par_chunks_mut(head).enumerate().for_each_init(
            || vec![0.0f32; length * (length + 1)],
            |scratch, (i, out)| {
                let at = i * head..(i + 1) * head;
                attention_head(AttentionHead {
                    q: &q[at.clone()],
                    k: &k[at.clone()],
                    v: &v[at],
                    out,
                    scratch,
                    length,
                    dh,
                    scale,
                })
            },
        );
        Some(Tensor::from_primitive::<Flex>(out))
    }

    /// The gradients of attention's q, k and v (B, H, L, dh) for the output gradient `grad`, per
    /// (sequence, head) on all cores: the probabilities recomputed (one product and the
    /// vectorised softmax), then four products and one vectorised pass (see
    /// `training_ops::composed_backward`, the twin). `None` where a tensor is not an f32
    /// burn-flex one of the same shape.
    #[cfg(feature = "train")]
    pub fn attention_backward(
        q: &FlexTensor,
        k: &FlexTensor,
        v: &FlexTensor,
        grad: &FlexTensor,
    ) -> Option<[FlexTensor; 3]> {
        let shape = q.layout().shape().clone();
        let dims: [usize; 4] = shape.dims::<4>();
        let fitting =
            |t: &FlexTensor| (t.dtype() == DType::F32 && t.layout().shape().dims::<4>() == dims).then(|| contiguous(t));
        let (q, k, v, grad) = (fitting(q)?, fitting(k)?, fitting(v)?, fitting(grad)?);
        let (q, k, v, grad) = (values(&q), values(&k), values(&v), values(&grad));
        let [batch, heads, length, dh] = dims;
        let head = length * dh;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut outs = [0; 3].map(|_| FlexTensor::empty(shape.clone(), DType::F32));
        let [out_q, out_k, out_v] = &mut outs;
        let n = batch * heads * head;
        out_q.storage_mut::<f32>()[..n]
            .par_chunks_mut(head.max(1))
            .zip(out_k.storage_mut::<f32>()[..n].par_chunks_mut(head.max(1)))
            .zip(out_v.storage_mut::<f32>()[..n].par_chunks_mut(head.max(1)))
            .enumerate()
            .for_each_init(
                || vec![0.0f32; 2 * length * length],
                |scratch, (i, ((d_q, d_k), d_v))| {
                    let at = i * head..(i + 1) * head;
                    let (p, d_p) = scratch.split_at_mut(length * length);
                    let inputs = [&q[at.clone()], &k[at.clone()], &v[at.clone()], &grad[at]];
                    attention_head_backward(inputs, [d_q, d_k, d_v], p, d_p, length, dh, scale);
                },
            );
        Some(outs)
    }

    /// `dst = a·b` for row-major or transposed operands, each given as (values, column stride,
    /// row stride): dst (m × n, row-major), a (m × k), b (k × n).
    #[cfg(feature = "train")]
    fn product(
        dst: &mut [f32],
        [m, n, k]: [usize; 3],
        a: (&[f32], usize, usize),
        b: (&[f32], usize, usize),
        beta: f32,
    ) {
        assert!(dst.len() >= m * n && a.0.len() >= m * k && b.0.len() >= k * n, "product operands too short");
        // SAFETY: the slices hold the m × n, m × k and k × n values the strides address (checked
        // just above for the row-major and transposed layouts used here), and dst overlaps
        // neither operand.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.0.as_ptr(),
                a.1 as isize,
                a.2 as isize,
                b.0.as_ptr(),
                b.1 as isize,
                b.2 as isize,
                0.0,
                beta,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// One head's backward pass: `inputs` q, k, v, ∂out (L × dh each), `outputs` ∂q, ∂k, ∂v,
    /// scratch for P and ∂P (L × L each).
    #[cfg(feature = "train")]
    fn attention_head_backward(
        [q, k, v, grad]: [&[f32]; 4],
        [d_q, d_k, d_v]: [&mut [f32]; 3],
        p: &mut [f32],
        d_p: &mut [f32],
        l: usize,
        dh: usize,
        scale: f32,
    ) {
        // Row-major X (r × c) is (X, 1, c); its transpose (X, c, 1).
        product(p, [l, l, dh], (q, 1, dh), (k, dh, 1), scale);
        for row in p.chunks_exact_mut(l) {
            let sum = vectorised(SoftmaxRow(row));
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|x| *x *= inv);
        }
        product(d_v, [l, dh, l], (p, l, 1), (grad, 1, dh), 1.0);
        product(d_p, [l, l, dh], (grad, 1, dh), (v, dh, 1), 1.0);
        for (dp, p) in d_p.chunks_exact_mut(l).zip(p.chunks_exact(l)) {
            vectorised(SoftmaxGrad { d_p: dp, p, scale });
        }
        product(d_q, [l, dh, l], (d_p, 1, l), (k, 1, dh), 1.0);
        product(d_k, [l, dh, l], (d_p, l, 1), (q, 1, dh), 1.0);
    }

    /// The gradient of x in `gelu_tanh(x + b)` for the output gradient `grad`, x and grad
    /// (N, W), b (W): one vectorised pass on all cores (see
    /// `training_ops::composed_gelu_backward`, the twin). `None` where a tensor is not an f32
    /// burn-flex one of those shapes.
    #[cfg(feature = "train")]
    pub fn bias_gelu_backward(x: &FlexTensor, bias: &FlexTensor, grad: &FlexTensor) -> Option<FlexTensor> {
        let shape = x.layout().shape().clone();
        let [n, w] = shape.dims::<2>();
        let fits = |t: &FlexTensor, dims: &[usize]| t.dtype() == DType::F32 && t.layout().shape().as_slice() == dims;
        if !(fits(x, &[n, w]) && fits(grad, &[n, w]) && fits(bias, &[w])) {
            return None;
        }
        let (x, bias, grad) = (contiguous(x), contiguous(bias), contiguous(grad));
        let (x, bias, grad) = (values(&x), values(&bias), values(&grad));
        let mut out = FlexTensor::empty(shape, DType::F32);
        let chunk = (TASK / w.max(1)).max(1) * w.max(1);
        out.storage_mut::<f32>()[..n * w].par_chunks_mut(chunk).enumerate().for_each(|(i, rows)| {
            let at = i * chunk..i * chunk + rows.len();
            vectorised(GeluGrad { out: rows, x: &x[at.clone()], grad: &grad[at], bias, width: w });
        });
        Some(out)
    }

    /// Rows of the GELU's backward pass: `out = grad·(σ + u·σ(1 − σ)·2z'(u))`, `u = x + b`.
    #[cfg(feature = "train")]
    struct GeluGrad<'a> {
        out: &'a mut [f32],
        x: &'a [f32],
        grad: &'a [f32],
        bias: &'a [f32],
        width: usize,
    }

    #[cfg(feature = "train")]
    impl Kernel for GeluGrad<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self) {
            let GeluGrad { out, x, grad, bias, width } = self;
            for ((out, x), grad) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)).zip(grad.chunks_exact(width))
            {
                for (((o, &x), &g), &b) in out.iter_mut().zip(x).zip(grad).zip(bias) {
                    let u = x + b;
                    let sigma = super::gelu_gate(u);
                    let slope = TWO_SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * u * u);
                    *o = g * (sigma + u * sigma * (1.0 - sigma) * slope);
                }
            }
        }
    }

    /// One row of the softmax's backward pass, in place: `∂S = s·P∘(∂P − Σ ∂P∘P)`.
    #[cfg(feature = "train")]
    struct SoftmaxGrad<'a> {
        d_p: &'a mut [f32],
        p: &'a [f32],
        scale: f32,
    }

    #[cfg(feature = "train")]
    impl Kernel for SoftmaxGrad<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self) {
            let SoftmaxGrad { d_p, p, scale } = self;
            let row: f32 = d_p.iter().zip(p).map(|(&d, &p)| d * p).sum();
            d_p.iter_mut().zip(p).for_each(|(d, &p)| *d = scale * p * (*d - row));
        }
    }

    /// One head's inputs (L, dh each), its output and scratch space (L × L scores, then L row
    /// sums), reused by the heads a thread runs.
    struct AttentionHead<'a> {
        q: &'a [f32],
        k: &'a [f32],
        v: &'a [f32],
        out: &'a mut [f32],
        scratch: &'a mut [f32],
        length: usize,
        dh: usize,
        scale: f32,
    }

    /// `softmax(q·kᵀ·scale)·v` for one head: scores by one product, each row turned into
    /// `exp(s − max)` in place (vectorised), the output by a second product, each output row
    /// divided by its row's sum.
    fn attention_head(h: AttentionHead<'_>) {
        let AttentionHead { q, k, v, out, scratch, length: l, dh, scale } = h;
        let (scores, sums) = scratch.split_at_mut(l * l);
        let (li, dhi) = (l as isize, dh as isize);
        // SAFETY: q, k, v and out hold l × dh values and scores l × l, row-major, as the
        // strides below describe; the destinations do not overlap the sources.
        unsafe {
            gemm::gemm(
                l,
                l,
                dh,
                scores.as_mut_ptr(),
                1,
                li,
                false,
                q.as_ptr(),
                1,
                dhi,
                k.as_ptr(),
                dhi,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (row, sum) in scores.chunks_exact_mut(l).zip(sums.iter_mut()) {
            *sum = vectorised(SoftmaxRow(row));
        }
        // SAFETY: as above.
        unsafe {
            gemm::gemm(
                l,
                dh,
                l,
                out.as_mut_ptr(),
                1,
                dhi,
                false,
                scores.as_ptr(),
                1,
                li,
                v.as_ptr(),
                1,
                dhi,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (row, sum) in out.chunks_exact_mut(dh).zip(sums.iter()) {
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|o| *o *= inv);
        }
    }

    /// Replaces a row of scores by `exp(s − max)` and returns their sum.
    #[inline(always)]
    fn softmax_numerators(row: &mut [f32]) -> f32 {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        row.iter_mut().for_each(|s| *s = super::exp(*s - max));
        row.iter().sum()
    }

    /// One row of scores for [`softmax_numerators`].
    struct SoftmaxRow<'a>(&'a mut [f32]);

    impl Kernel for SoftmaxRow<'_> {
        type Output = f32;
        #[inline(always)]
        fn run(self) -> f32 {
            softmax_numerators(self.0)
        }
    }

    /// See [`super::split_rotate`]; gives `qkv` back where it or the tables are not plain
    /// contiguous f32 burn-flex tensors of matching shapes.
    pub fn split_rotate(
        qkv: Tensor<2>,
        batch: usize,
        heads: usize,
        rope: &RopeTables,
    ) -> Result<[Tensor<4>; 3], Box<Tensor<2>>> {
        let [rows, width] = qkv.dims();
        let (Some(src), Some(cos), Some(sin)) = (flex(&qkv), flex(&rope.cos), flex(&rope.sin)) else {
            return Err(Box::new(qkv));
        };
        let (length, dh) = (rows / batch.max(1), width / (3 * heads).max(1));
        let half = dh / 2;
        let (src, cos, sin) = (values(&src), values(&cos), values(&sin));
        if batch * length != rows || 3 * heads * dh != width || 2 * half != dh || cos.len() != length * half {
            return Err(Box::new(qkv));
        }
        let part = |which: usize| {
            let mut out = FlexTensor::empty(Shape::new([batch, heads, length, dh]), DType::F32);
            let head = length * dh;
            out.storage_mut::<f32>()[..batch * heads * head].par_chunks_mut(head.max(1)).enumerate().for_each(
                |(bh, dst)| {
                    let (b, h) = (bh / heads, bh % heads);
                    for (l, row) in dst.chunks_exact_mut(dh).enumerate() {
                        let start = (b * length + l) * width + (which * heads + h) * dh;
                        let x = &src[start..start + dh];
                        if which == 2 {
                            row.copy_from_slice(x);
                            continue;
                        }
                        let (c, s) = (&cos[l * half..(l + 1) * half], &sin[l * half..(l + 1) * half]);
                        let ((x1, x2), (r1, r2)) = (x.split_at(half), row.split_at_mut(half));
                        for i in 0..half {
                            r1[i] = x1[i] * c[i] - x2[i] * s[i];
                            r2[i] = x2[i] * c[i] + x1[i] * s[i];
                        }
                    }
                },
            );
            Tensor::from_primitive::<Flex>(out)
        };
        Ok([part(0), part(1), part(2)])
    }

    /// The values of a contiguous f32 burn-flex tensor.
    pub(crate) fn values(t: &FlexTensor) -> &[f32] {
        let start = t.layout().start_offset();
        &t.storage::<f32>()[start..start + t.layout().num_elements()]
    }

    /// Runs `op` over the rows of `y` (N, W), in place where `y` holds its buffer alone, with
    /// `bias` (W) and, for the gated residual, the residual x (N, W) and the gate (1, W). Gives
    /// `y` back where any of them is not a plain contiguous f32 burn-flex tensor of that shape,
    /// so that the caller runs the Burn ops instead (boxed: a tensor handle is 640 bytes).
    pub fn rows(
        y: Tensor<2>,
        bias: Option<&Tensor<1>>,
        gated: Option<(&Tensor<2>, &Tensor<2>)>,
        op: Op,
    ) -> Result<Tensor<2>, Box<Tensor<2>>> {
        let [n, w] = y.dims();
        let bias = match bias.map(flex) {
            Some(None) => return Err(Box::new(y)),
            b => b.flatten(),
        };
        let gated = match gated.map(|(x, g)| flex(x).zip(flex(g))) {
            Some(None) => return Err(Box::new(y)),
            g => g.flatten(),
        };
        let (b, g) = (bias.as_ref().map(values), gated.as_ref().map(|(x, g)| (values(x), values(g))));
        if b.is_some_and(|b| b.len() != w) || g.is_some_and(|(x, g)| x.len() != n * w || g.len() != w) {
            return Err(Box::new(y));
        }
        let mut out = owned(y)?;
        let chunk = (TASK / w.max(1)).max(1) * w.max(1);
        out.storage_mut::<f32>()[..n * w].par_chunks_mut(chunk).enumerate().for_each(|(i, rows)| {
            let residual = g.map(|(x, g)| (&x[i * chunk..i * chunk + rows.len()], g));
            vectorised(Task { op, rows, bias: b, residual, width: w });
        });
        Ok(Tensor::from_primitive::<Flex>(out))
    }

    /// The buffer of `t` to write in place: its own where `t` is a plain contiguous f32
    /// burn-flex tensor that holds its buffer alone, else a copy; `t` back where it is not a
    /// plain f32 burn-flex tensor.
    pub(crate) fn owned(t: Tensor<2>) -> Result<FlexTensor, Box<Tensor<2>>> {
        let Some(mut out) = flex(&t) else { return Err(Box::new(t)) };
        // With `t` gone, `out` holds the buffer alone unless another tensor shares it.
        let dims = t.dims();
        drop(t);
        if out.try_storage_mut::<f32>().is_none() || out.layout().start_offset() != 0 {
            let mut fresh = FlexTensor::empty(Shape::new(dims), DType::F32);
            fresh.storage_mut::<f32>()[..dims[0] * dims[1]].copy_from_slice(values(&out));
            out = fresh;
        }
        Ok(out)
    }

    /// One parallel task: rows of the output, in place, and what the pass reads beside them.
    struct Task<'a> {
        op: Op,
        rows: &'a mut [f32],
        bias: Option<&'a [f32]>,
        residual: Option<(&'a [f32], &'a [f32])>,
        width: usize,
    }

    /// One task's rows, in place.
    #[inline(always)]
    fn pass(Task { op, rows, bias, residual, width: w }: Task<'_>) {
        for (r, row) in rows.chunks_exact_mut(w).enumerate() {
            match (op, bias, residual) {
                (Op::BiasGelu, Some(b), _) => row.iter_mut().zip(b).for_each(|(y, &b)| *y = gelu(*y + b)),
                (Op::BiasGelu, None, _) => row.iter_mut().for_each(|y| *y = gelu(*y)),
                (Op::AddBias, Some(b), _) => row.iter_mut().zip(b).for_each(|(y, &b)| *y += b),
                (Op::GatedResidual, Some(b), Some((x, g))) => {
                    let x = &x[r * w..(r + 1) * w];
                    row.iter_mut().zip(b).zip(x.iter().zip(g)).for_each(|((y, &b), (&x, &g))| *y = x + g * (*y + b));
                }
                (Op::GatedResidual, None, Some((x, g))) => {
                    let x = &x[r * w..(r + 1) * w];
                    row.iter_mut().zip(x.iter().zip(g)).for_each(|(y, (&x, &g))| *y = x + g * *y);
                }
                (Op::AddBias, None, _) | (Op::GatedResidual, _, None) => {}
            }
        }
    }

    impl Kernel for Task<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self) {
            pass(self)
        }
    }

    /// A loop to compile for the widest vector unit the CPU has: [`vectorised`] inlines `run`
    /// into a function built for that unit, so the loop's arithmetic is vectorised for it.
    pub(crate) trait Kernel {
        /// What the loop returns.
        type Output;
        /// The loop.
        fn run(self) -> Self::Output;
    }

    /// Runs `kernel` built for AVX-512, AVX2 + FMA or the baseline, whichever this CPU has.
    pub(crate) fn vectorised<K: Kernel>(kernel: K) -> K::Output {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked above).
                return unsafe { avx512(kernel) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { avx2(kernel) };
            }
        }
        kernel.run()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }
}

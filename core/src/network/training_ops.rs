//! Attention and the MLP's bias + GELU with their own backward passes, for training (feature
//! `train`).
//!
//! Under autodiff, Burn's attention decomposes into a product, a softmax of five elementwise ops
//! and a second product, each recorded on the graph, each elementwise step on one core with a
//! scalar `exp`; their backward passes add as many again. GELU-tanh is seven elementwise nodes.
//! [`attention`] and [`bias_gelu`] record one node each instead: on burn-flex their forward
//! passes are the fused loops of [`super::fused`], and their backward passes loops on all cores
//! (attention's per (sequence, head): the probabilities recomputed, then the four products of
//! the gradient). Elsewhere (wgpu) both passes are Burn ops: the trait's default bodies, the twin
//! the tests compare the loops with.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, Dispatch, ExtensionType, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Tensor};

use super::fused::{GELU_CUBIC, TWO_SQRT_2_OVER_PI};
use burn::tensor::ops::AttentionModuleOptions;

/// The gradients of attention's three inputs.
#[derive(ExtensionType)]
pub struct AttentionGrads<B: Backend> {
    /// ∂/∂q, (B, H, L, dh).
    pub q: FloatTensor<B>,
    /// ∂/∂k, (B, H, L, dh).
    pub k: FloatTensor<B>,
    /// ∂/∂v, (B, H, L, dh).
    pub v: FloatTensor<B>,
}

/// Attention `softmax(q·kᵀ/√dh)·v` over (B, H, L, dh) tensors and `gelu_tanh(x + b)`, each
/// with its backward pass.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait TrainingOps: Backend {
    /// The forward pass: Burn's attention op with its default options.
    fn training_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::attention(q, k, v, None, None, AttentionModuleOptions::default())
    }

    /// The gradients of q, k and v given the output's gradient `grad`: [`composed_backward`].
    fn training_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> AttentionGrads<Self> {
        composed_backward::<Self>(q, k, v, grad)
    }

    /// `gelu_tanh(x + b)` for x (N, W) and a bias (W): `u·σ(2z)`, `z = c(u + a·u³)`.
    fn training_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_bias_gelu::<Self>(x, bias)
    }

    /// The gradient of x for the output gradient `grad`: `grad·(σ + u·σ(1 − σ)·2c(1 + 3a·u²))`
    /// with σ = σ(2z); the bias's is its sum over rows.
    fn training_bias_gelu_backward(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed_gelu_backward::<Self>(x, bias, grad)
    }
}

/// `gelu_tanh(x + b)` as Burn ops: `u·σ(2z)`, `z = c(u + a·u³)`.
fn composed_bias_gelu<B: Backend>(x: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let u = plus_bias::<B>(x, bias);
    B::float_mul(u.clone(), B::sigmoid(two_z::<B>(u)))
}

/// The gradient of x in `gelu_tanh(x + b)` as Burn ops: `grad·(σ + u·σ(1 − σ)·2c(1 + 3a·u²))`.
pub fn composed_gelu_backward<B: Backend>(
    x: FloatTensor<B>,
    bias: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let u = plus_bias::<B>(x, bias);
    let sigma = B::sigmoid(two_z::<B>(u.clone()));
    let one_minus = B::float_add_scalar(B::float_neg(sigma.clone()), 1.0.into());
    let slope = B::float_mul_scalar(
        B::float_add_scalar(
            B::float_mul_scalar(B::float_mul(u.clone(), u.clone()), (3.0 * f64::from(GELU_CUBIC)).into()),
            1.0.into(),
        ),
        f64::from(TWO_SQRT_2_OVER_PI).into(),
    );
    let tail = B::float_mul(B::float_mul(u, B::float_mul(sigma.clone(), one_minus)), slope);
    B::float_mul(grad, B::float_add(sigma, tail))
}

/// `x + b` for x (N, W) and b (W).
fn plus_bias<B: Backend>(x: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let width = bias.shape().dims::<1>()[0];
    B::float_add(x, B::float_reshape(bias, Shape::new([1, width])))
}

/// `2z = 2c(u + a·u³)`.
fn two_z<B: Backend>(u: FloatTensor<B>) -> FloatTensor<B> {
    let cube = B::float_mul(B::float_mul(u.clone(), u.clone()), u.clone());
    B::float_mul_scalar(
        B::float_add(B::float_mul_scalar(cube, f64::from(GELU_CUBIC).into()), u),
        f64::from(TWO_SQRT_2_OVER_PI).into(),
    )
}

/// Attention's backward pass as Burn ops, with P = softmax(S), S = q·kᵀ·s: ∂v = Pᵀ·grad,
/// ∂P = grad·vᵀ, ∂S = P∘(∂P − rowsum(∂P∘P)), ∂q = ∂S·k·s, ∂k = ∂Sᵀ·q·s.
pub fn composed_backward<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> AttentionGrads<B> {
    let dh = q.shape().dims::<4>()[3];
    let scale = 1.0 / (dh as f64).sqrt();
    let scores = B::float_mul_scalar(B::float_matmul(q.clone(), B::float_swap_dims(k.clone(), 2, 3)), scale.into());
    let max = B::float_max_dim(scores.clone(), 3);
    let e = B::float_exp(B::float_sub(scores, max));
    let p = B::float_div(e.clone(), B::float_sum_dim(e, 3));
    let d_v = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), grad.clone());
    let d_p = B::float_matmul(grad, B::float_swap_dims(v, 2, 3));
    let row = B::float_sum_dim(B::float_mul(d_p.clone(), p.clone()), 3);
    let d_s = B::float_mul_scalar(B::float_mul(p, B::float_sub(d_p, row)), scale.into());
    AttentionGrads { q: B::float_matmul(d_s.clone(), k), k: B::float_matmul(B::float_swap_dims(d_s, 2, 3), q), v: d_v }
}

impl TrainingOps for Cube {}

impl TrainingOps for Flex {
    fn training_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        let wrap = |t: FloatTensor<Self>| Tensor::<4>::from_primitive::<Flex>(t);
        match super::fused::host::attention(&wrap(q.clone()), &wrap(k.clone()), &wrap(v.clone()))
            .and_then(|out| out.try_into_primitive::<Flex>().ok())
        {
            Some(out) => out,
            None => Self::attention(q, k, v, None, None, AttentionModuleOptions::default()),
        }
    }

    fn training_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> AttentionGrads<Self> {
        match super::fused::host::attention_backward(&q, &k, &v, &grad) {
            Some([q, k, v]) => AttentionGrads { q, k, v },
            None => composed_backward::<Self>(q, k, v, grad),
        }
    }

    fn training_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        // The input stays alive for the backward pass, so the loop writes a new buffer.
        let b = Tensor::<1>::from_primitive::<Flex>(bias.clone());
        let wrapped = Tensor::<2>::from_primitive::<Flex>(x.clone());
        super::fused::host::rows(wrapped, Some(&b), None, super::fused::host::Op::BiasGelu)
            .ok()
            .and_then(|out| out.try_into_primitive::<Flex>().ok())
            .unwrap_or_else(|| composed_bias_gelu::<Self>(x, bias))
    }

    fn training_bias_gelu_backward(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match super::fused::host::bias_gelu_backward(&x, &bias, &grad) {
            Some(out) => out,
            None => composed_gelu_backward::<Self>(x, bias, grad),
        }
    }
}

impl<B: Backend + TrainingOps, C: CheckpointStrategy> TrainingOps for Autodiff<B, C> {
    fn training_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl<B: Backend + TrainingOps> Backward<B, 3> for AttentionBackward {
            type State = (NodeId, NodeId, NodeId);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_q, node_k, node_v] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (q, k, v) = ops.state;
                let q: FloatTensor<B> = checkpointer.retrieve_node_output(q);
                let k: FloatTensor<B> = checkpointer.retrieve_node_output(k);
                let v: FloatTensor<B> = checkpointer.retrieve_node_output(v);
                let d = B::training_attention_backward(q, k, v, grad);
                for (node, d) in [(node_q, d.q), (node_k, d.k), (node_v, d.v)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, d);
                    }
                }
            }
        }

        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&q), prep.checkpoint(&k), prep.checkpoint(&v));
                let out = B::training_attention(q.into_primitive(), k.into_primitive(), v.into_primitive());
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::training_attention(q.into_primitive(), k.into_primitive(), v.into_primitive()))
            }
        }
    }

    fn training_bias_gelu(x: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BiasGeluBackward;

        impl<B: Backend + TrainingOps> Backward<B, 2> for BiasGeluBackward {
            type State = (NodeId, NodeId);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, bias) = ops.state;
                let x: FloatTensor<B> = checkpointer.retrieve_node_output(x);
                let bias: FloatTensor<B> = checkpointer.retrieve_node_output(bias);
                let width = bias.shape().dims::<1>()[0];
                let d_x = B::training_bias_gelu_backward(x, bias, grad);
                if let Some(node) = node_bias {
                    let d_bias = B::float_reshape(B::float_sum_dim(d_x.clone(), 0), Shape::new([width]));
                    grads.register::<B>(node.id, d_bias);
                }
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, d_x);
                }
            }
        }

        match BiasGeluBackward.prepare::<C>([x.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&bias));
                let out = B::training_bias_gelu(x.into_primitive(), bias.into_primitive());
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::training_bias_gelu(x.into_primitive(), bias.into_primitive())),
        }
    }
}

/// `gelu_tanh(x + b)` for x (N, W) and a bias (W) as one node of the autodiff graph (see the
/// module).
pub fn bias_gelu(x: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::training_bias_gelu(x.into_dispatch(), bias.into_dispatch()))
}

/// The backward pass of [`bias_gelu`] on its own: the gradient of x for the output gradient
/// `grad` (on burn-flex its loop; for the tests).
pub fn bias_gelu_backward(x: Tensor<2>, bias: Tensor<1>, grad: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::training_bias_gelu_backward(
        x.into_dispatch(),
        bias.into_dispatch(),
        grad.into_dispatch(),
    ))
}

/// [`composed_gelu_backward`] (the twin) on tensors of any device.
pub fn composed_bias_gelu_backward(x: Tensor<2>, bias: Tensor<1>, grad: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(composed_gelu_backward::<Dispatch>(
        x.into_dispatch(),
        bias.into_dispatch(),
        grad.into_dispatch(),
    ))
}

/// Attention over (B, H, L, dh) tensors as one node of the autodiff graph (see the module).
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::training_attention(q.into_dispatch(), k.into_dispatch(), v.into_dispatch()))
}

/// The backward pass of [`attention`] on its own: the gradients of q, k and v for the output
/// gradient `grad` (on burn-flex its loops; for the tests).
pub fn attention_backward(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, grad: Tensor<4>) -> [Tensor<4>; 3] {
    let d = Dispatch::training_attention_backward(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        grad.into_dispatch(),
    );
    [Tensor::from_dispatch(d.q), Tensor::from_dispatch(d.k), Tensor::from_dispatch(d.v)]
}

/// [`composed_backward`] (the twin) on tensors of any device.
pub fn composed_attention_backward(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, grad: Tensor<4>) -> [Tensor<4>; 3] {
    let d =
        composed_backward::<Dispatch>(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), grad.into_dispatch());
    [Tensor::from_dispatch(d.q), Tensor::from_dispatch(d.k), Tensor::from_dispatch(d.v)]
}

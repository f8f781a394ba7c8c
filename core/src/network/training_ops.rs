//! Attention with its own backward pass, for training (feature `train`).
//!
//! Under autodiff, Burn's attention decomposes into a product, a softmax of five elementwise ops
//! and a second product, each recorded on the graph, each elementwise step on one core with a
//! scalar `exp`; their backward passes add as many again. [`attention`] records one node
//! instead: on burn-flex its forward pass is the fused per-head loop of [`super::fused`], and its
//! backward pass one loop per (sequence, head) on all cores that recomputes the probabilities and
//! takes the four products of the gradient. Elsewhere (wgpu) both passes are Burn ops: the trait's
//! default bodies, the twin the tests compare the loops with.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, Dispatch, ExtensionType, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
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

/// Attention `softmax(q·kᵀ/√dh)·v` over (B, H, L, dh) tensors and its backward pass.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait AttentionOps: Backend {
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

impl AttentionOps for Cube {}

impl AttentionOps for Flex {
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
}

impl<B: Backend + AttentionOps, C: CheckpointStrategy> AttentionOps for Autodiff<B, C> {
    fn training_attention(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl<B: Backend + AttentionOps> Backward<B, 3> for AttentionBackward {
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

//! Exponential moving average of a module's weights, kept off the autodiff graph.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Collects every float parameter, flattened, in visiting order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// Replaces each parameter p by `decay·p + (1 − decay)·source`, sources in visiting order.
struct Blend {
    sources: std::vec::IntoIter<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(source) = self.sources.next() else { return param };
        let decay = self.decay;
        param.map(|p| {
            let shape = p.shape();
            p * decay + source.reshape(shape) * (1.0 - decay)
        })
    }
}

/// Moves `average` towards `current` (same structure; `current` detached from autodiff).
pub fn update<M: Module>(average: M, current: &M, decay: f64) -> M {
    let mut collect = Collect(Vec::new());
    current.visit(&mut collect);
    average.map(&mut Blend { sources: collect.0.into_iter(), decay })
}

//! Every integration test of the runtime, in one test binary: each module was its own binary
//! before, and each of those linked the whole Burn/wgpu stack (eight links of a large binary on
//! two cores, and several GB of disk in CI). Run one group with `cargo test -p prime-tests kernels::`.

mod bad_input;
mod batch;
mod blocks;
mod classes;
mod device_sampler;
mod event_driven;
mod fused;
mod fuzz_loaders;
mod fuzz_pickle;
mod golden_parity;
mod kernels;
mod module_graph;
mod policies;
mod positions;
mod sampler;
mod shipped_models;
mod training;
mod training_gradients;

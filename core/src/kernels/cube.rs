//! Between Burn's tensors and the cubecl tensors (`CubeTensor`) that the WGSL kernels bind.
//!
//! Without the `fusion` feature a wgpu tensor's primitive *is* a `CubeTensor`. With it, a wgpu
//! tensor is a lazy fusion tensor: an input is resolved first (the fusion stream runs the
//! operations queued up to it, on the device; nothing is read back), and an output is handed
//! to the fusion client as an initialised tensor, as Burn does for a tensor made from data.

use burn::backend::Cube;
use burn::backend::wgpu::CubeTensor;
use burn::tensor::{Device, Int, Tensor};

use crate::error::{PrimeError, Result};

/// Whether `device` is a burn-wgpu (cubecl) device.
pub fn is_wgpu(device: &Device) -> bool {
    Tensor::<1, Int>::zeros([1], device).try_into_primitive::<Cube>().is_ok()
}

fn not_wgpu(e: impl std::fmt::Debug) -> PrimeError {
    PrimeError::Device(format!("not a wgpu tensor: {e:?}"))
}

/// The cubecl tensor behind a float tensor (its queued work submitted first under fusion).
pub fn float_in<const D: usize>(t: Tensor<D>) -> Result<CubeTensor> {
    let t = t.try_into_primitive::<Cube>().map_err(not_wgpu)?;
    Ok(inner::resolve_float(t))
}

/// The cubecl tensor behind an int tensor (its queued work submitted first under fusion).
pub fn int_in(t: Tensor<1, Int>) -> Result<CubeTensor> {
    let t = t.try_into_primitive::<Cube>().map_err(not_wgpu)?;
    Ok(inner::resolve_int(t))
}

/// A kernel's f32 output as a Burn tensor.
pub fn float_out(t: CubeTensor) -> Tensor<1> {
    Tensor::from_primitive::<Cube>(inner::adopt_float(t))
}

/// A kernel's integer output as a Burn tensor.
pub fn int_out(t: CubeTensor) -> Tensor<1, Int> {
    Tensor::from_primitive::<Cube>(inner::adopt_int(t))
}

/// Without fusion the primitives are the cubecl tensors themselves.
#[cfg(not(feature = "fusion"))]
mod inner {
    use burn::backend::wgpu::CubeTensor;

    pub fn resolve_float(t: CubeTensor) -> CubeTensor {
        t
    }

    pub fn resolve_int(t: CubeTensor) -> CubeTensor {
        t
    }

    pub fn adopt_float(t: CubeTensor) -> CubeTensor {
        t
    }

    pub fn adopt_int(t: CubeTensor) -> CubeTensor {
        t
    }
}

/// Under fusion: resolve inputs through the fusion client, register outputs with it.
#[cfg(feature = "fusion")]
mod inner {
    use burn::backend::TensorMetadata;
    use burn::backend::fusion::custom::{OperationIr, OperationOutput, StreamId};
    use burn::backend::fusion::{FusionBackend, FusionTensor, NoOp, get_client};
    use burn::backend::wgpu::{CubeBackend, CubeTensor};
    use burn_ir::{BackendIr, InitOperationIr};

    type Handle = <CubeBackend as BackendIr>::Handle;
    type Lazy = FusionTensor<<CubeBackend as FusionBackend>::FusionRuntime>;

    pub fn resolve_float(t: Lazy) -> CubeTensor {
        t.client.clone().resolve_tensor_float::<CubeBackend>(t)
    }

    pub fn resolve_int(t: Lazy) -> CubeTensor {
        t.client.clone().resolve_tensor_int::<CubeBackend>(t)
    }

    pub fn adopt_float(t: CubeTensor) -> Lazy {
        adopt(t, CubeBackend::float_tensor_handle)
    }

    pub fn adopt_int(t: CubeTensor) -> Lazy {
        adopt(t, CubeBackend::int_tensor_handle)
    }

    /// Registers `t` with its device's fusion client as an initialised tensor.
    fn adopt(t: CubeTensor, handle: fn(CubeTensor) -> Handle) -> Lazy {
        let client = get_client::<CubeBackend>(&t.device);
        let (shape, dtype) = (t.shape(), t.dtype);
        let init = InitOperationIr::create(shape, dtype, || client.register_tensor_handle(handle(t)));
        client.register(StreamId::current(), OperationIr::Init(init), NoOp::<CubeBackend>::new()).output()
    }
}

//! Launching the WGSL kernels of `wgsl/` on burn-wgpu (raw WGSL through Burn's `template`
//! feature). Inputs stay on the device; outputs are new device tensors; nothing is read back.

use burn::backend::wgpu::{
    CubeBackend, CubeDim, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::tensor::{DType, Device, Int, Shape, Tensor};
use cubecl::CubeCount;
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;

use super::params::{KernelParams, Launch};
use super::{DrawRequest, Normaliser, Revealed};
use crate::error::{PrimeError, Result};

const COMMON: &str = include_str!("../../../wgsl/common.wgsl");
const CONSISTENT: &str = include_str!("../../../wgsl/consistent.wgsl");
const ENCODE: &str = include_str!("../../../wgsl/encode.wgsl");
const DECODE: &str = include_str!("../../../wgsl/decode.wgsl");
const NORMALISER: &str = include_str!("../../../wgsl/normaliser.wgsl");
const DRAW: &str = include_str!("../../../wgsl/draw.wgsl");
const REVEAL: &str = include_str!("../../../wgsl/reveal.wgsl");

/// Threads of a per-position (reduction) workgroup.
const REDUCE_WG: u32 = 256;
/// Threads of an element-wise workgroup.
const ELEMENT_WG: u32 = 64;
/// Most workgroups along one dispatch dimension (WebGPU's default limit).
const MAX_GROUPS: u32 = 65_535;

/// Whether `device` is a burn-wgpu device.
pub fn is_wgpu(device: &Device) -> bool {
    Tensor::<1, Int>::zeros([1], device).try_into_primitive::<CubeBackend>().is_ok()
}

/// One WGSL kernel: its body plus the shared helpers, with the integer type filled in.
struct Wgsl {
    name: &'static str,
    body: &'static str,
    consistent: bool,
    workgroup: u32,
    /// The binding index of `params` in the WGSL (the other buffers fill the rest in order).
    params_slot: usize,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        let mut template = SourceTemplate::new(self.body).add_template(COMMON);
        if self.consistent {
            template = template.add_template(CONSISTENT);
        }
        template.register("int", "i32").register("workgroup", self.workgroup.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.workgroup))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

fn float_primitive<const D: usize>(t: Tensor<D>) -> Result<CubeTensor> {
    let t =
        t.try_into_primitive::<CubeBackend>().map_err(|e| PrimeError::Device(format!("not a wgpu tensor: {e:?}")))?;
    if t.dtype != DType::F32 {
        return Err(PrimeError::Device(format!("the kernels take f32 tensors, got {:?}", t.dtype)));
    }
    Ok(into_contiguous(t))
}

fn int_primitive(t: Tensor<1, Int>) -> Result<CubeTensor> {
    let t = if t.dtype() == DType::I32 { t } else { t.cast(burn::tensor::IntDType::I32) };
    let t =
        t.try_into_primitive::<CubeBackend>().map_err(|e| PrimeError::Device(format!("not a wgpu tensor: {e:?}")))?;
    Ok(into_contiguous(t))
}

fn new_output(like: &CubeTensor, len: usize, dtype: DType) -> CubeTensor {
    let handle = like.client.empty(len * 4);
    CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), Shape::new([len]), handle, dtype)
}

/// Workgroup counts covering `groups` groups within the per-dimension limit.
fn grid(groups: u32) -> CubeCount {
    let x = groups.clamp(1, MAX_GROUPS);
    CubeCount::Static(x, groups.div_ceil(x).max(1), 1)
}

fn launch(kernel: Wgsl, count: CubeCount, client_of: &CubeTensor, buffers: Vec<&CubeTensor>, params: &[u32]) {
    let params: Vec<u8> = params.iter().flat_map(|w| w.to_le_bytes()).collect();
    let params = client_of.client.create_from_slice(&params);
    let mut bindings: Vec<_> = buffers.iter().map(|t| t.handle.clone().binding()).collect();
    bindings.insert(kernel.params_slot, params.binding());
    let cube_dim = CubeDim::new_1d(kernel.workgroup);
    client_of.client.launch(
        Box::new(SourceKernel::new(kernel, cube_dim)),
        count,
        KernelArguments::new().with_buffers(bindings),
    );
}

fn int_tensor(t: CubeTensor) -> Tensor<1, Int> {
    Tensor::from_primitive::<CubeBackend>(t)
}

fn float_tensor(t: CubeTensor) -> Tensor<1> {
    Tensor::from_primitive::<CubeBackend>(t)
}

/// See [`super::SubTokenKernels::encode`].
pub fn encode(p: &KernelParams, tokens: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
    let tokens = int_primitive(tokens)?;
    let n = p.length() * p.digits();
    let out = new_output(&tokens, n, DType::I32);
    let words = p.words(&Launch::default());
    let kernel = Wgsl { name: "encode", body: ENCODE, consistent: false, workgroup: ELEMENT_WG, params_slot: 1 };
    launch(kernel, grid((n as u32).div_ceil(ELEMENT_WG)), &tokens, vec![&tokens, &out], &words);
    Ok(int_tensor(out))
}

/// See [`super::SubTokenKernels::decode`].
pub fn decode(p: &KernelParams, state: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
    let state = int_primitive(state)?;
    let out = new_output(&state, p.length(), DType::I32);
    let words = p.words(&Launch::default());
    let kernel = Wgsl { name: "decode", body: DECODE, consistent: false, workgroup: ELEMENT_WG, params_slot: 1 };
    launch(kernel, grid((p.length() as u32).div_ceil(ELEMENT_WG)), &state, vec![&state, &out], &words);
    Ok(int_tensor(out))
}

/// See [`super::SubTokenKernels::normaliser`].
pub fn normaliser(p: &KernelParams, words: &[u32], logits: Tensor<2>, state: Tensor<1, Int>) -> Result<Normaliser> {
    let logits = float_primitive(logits)?;
    let state = int_primitive(state)?;
    let max = new_output(&logits, p.length(), DType::F32);
    let lse = new_output(&logits, p.length(), DType::F32);
    let count = new_output(&logits, p.length(), DType::I32);
    let kernel = Wgsl { name: "normaliser", body: NORMALISER, consistent: true, workgroup: REDUCE_WG, params_slot: 2 };
    launch(kernel, grid(p.length() as u32), &logits, vec![&logits, &state, &max, &lse, &count], words);
    Ok(Normaliser { max: float_tensor(max), log_normaliser: float_tensor(lse), count: int_tensor(count) })
}

/// See [`super::SubTokenKernels::draw`].
pub fn draw(
    p: &KernelParams,
    words: &[u32],
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    request: &DrawRequest,
) -> Result<Tensor<1, Int>> {
    let logits = float_primitive(logits)?;
    let state = int_primitive(state)?;
    let active = int_primitive(request.active.clone())?;
    let (score, token) = match &request.cutoffs {
        Some(c) => (float_primitive(c.score.clone())?, int_primitive(c.token.clone())?),
        // Unread without the cutoff flag, but every binding needs a buffer.
        None => (new_output(&logits, p.length(), DType::F32), new_output(&logits, p.length(), DType::I32)),
    };
    let out = new_output(&logits, p.length(), DType::I32);
    let kernel = Wgsl { name: "draw", body: DRAW, consistent: true, workgroup: REDUCE_WG, params_slot: 2 };
    launch(kernel, grid(p.length() as u32), &logits, vec![&logits, &state, &active, &score, &token, &out], words);
    Ok(int_tensor(out))
}

/// See [`super::SubTokenKernels::reveal`].
pub fn reveal(
    p: &KernelParams,
    words: &[u32],
    state: Tensor<1, Int>,
    x0: Tensor<1, Int>,
    plan: Option<Tensor<1, Int>>,
) -> Result<Revealed> {
    let state = int_primitive(state)?;
    let x0 = int_primitive(x0)?;
    let n = p.length() * p.digits();
    let plan = match plan {
        Some(plan) => int_primitive(plan)?,
        // Unread without the planned flag.
        None => new_output(&state, n, DType::I32),
    };
    let next = new_output(&state, n, DType::I32);
    let changed = CubeTensor::new_contiguous(
        state.client.clone(),
        state.device.clone(),
        Shape::new([1]),
        state.client.create_from_slice(&[0u8; 4]),
        DType::I32,
    );
    let kernel = Wgsl { name: "reveal", body: REVEAL, consistent: false, workgroup: ELEMENT_WG, params_slot: 1 };
    launch(kernel, grid((n as u32).div_ceil(ELEMENT_WG)), &state, vec![&state, &x0, &plan, &next, &changed], words);
    Ok(Revealed { state: int_tensor(next), changed: int_tensor(changed) })
}

//! Launching the WGSL kernels of `wgsl/` on burn-wgpu (raw WGSL through Burn's `template`
//! feature). Inputs stay on the device; outputs are new device tensors; nothing is read back.
//!
//! The kernel interface exists once, on this side: each kernel's binding list generates its
//! WGSL declarations and orders the buffers of a launch (named, so a launch that passes other
//! buffers fails), and `params.rs` generates the parameter block's constants.

use burn::backend::wgpu::{CubeDim, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::tensor::{DType, Device, Int, Shape, Tensor, TensorData};
use cubecl::CubeCount;
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;

#[cfg(feature = "diagnostics")]
use super::Normaliser;
use super::cube::{float_in, float_out, int_in, int_out};
#[cfg(feature = "diagnostics")]
use super::params::Launch;
use super::params::{KernelParams, wgsl_constants};
use super::{Cutoffs, DigitScores, DrawRequest, Revealed};
use crate::error::{PrimeError, Result};

const COMMON: &str = include_str!("../../../wgsl/common.wgsl");
const CONSISTENT: &str = include_str!("../../../wgsl/consistent.wgsl");
#[cfg(feature = "diagnostics")]
const ENCODE: &str = include_str!("../../../wgsl/encode.wgsl");
#[cfg(feature = "diagnostics")]
const DECODE: &str = include_str!("../../../wgsl/decode.wgsl");
#[cfg(feature = "diagnostics")]
const NORMALISER: &str = include_str!("../../../wgsl/normaliser.wgsl");
const DRAW: &str = include_str!("../../../wgsl/draw.wgsl");
const REVEAL: &str = include_str!("../../../wgsl/reveal.wgsl");
const SCORES: &str = include_str!("../../../wgsl/scores.wgsl");
const CUTOFF: &str = include_str!("../../../wgsl/cutoff.wgsl");
const REDUCE: &str = include_str!("../../../wgsl/reduce.wgsl");
const UNPACK: &str = include_str!("../../../wgsl/unpack.wgsl");

/// Threads of a per-position (reduction) workgroup.
const REDUCE_WG: u32 = 256;
/// Threads of an element-wise workgroup.
const ELEMENT_WG: u32 = 64;
/// Most workgroups along one dispatch dimension (WebGPU's default limit).
const MAX_GROUPS: u32 = 65_535;

/// What a binding holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    /// f32 values.
    F32,
    /// Integers (ids, −1 for none).
    Int,
    /// The parameter block (u32 words).
    Params,
    /// One atomic u32 flag.
    Flag,
    /// Packed data (u32 words).
    Words,
}

/// A binding: its WGSL name and element type.
type Binding = (&'static str, Elem);

/// Bindings of each kernel, in binding order (what each holds: see the launch functions).
#[cfg(feature = "diagnostics")]
const ENCODE_BINDINGS: &[Binding] = &[("tokens", Elem::Int), ("params", Elem::Params), ("out", Elem::Int)];
#[cfg(feature = "diagnostics")]
const DECODE_BINDINGS: &[Binding] = &[("state", Elem::Int), ("params", Elem::Params), ("out", Elem::Int)];
#[cfg(feature = "diagnostics")]
const NORMALISER_BINDINGS: &[Binding] = &[
    ("logits", Elem::F32),
    ("state", Elem::Int),
    ("params", Elem::Params),
    ("out_max", Elem::F32),
    ("out_lse", Elem::F32),
    ("out_count", Elem::Int),
];
const DRAW_BINDINGS: &[Binding] = &[
    ("logits", Elem::F32),
    ("state", Elem::Int),
    ("params", Elem::Params),
    ("draw_mask", Elem::Int),
    ("cut_score", Elem::F32),
    ("cut_token", Elem::Int),
    ("key_positions", Elem::Int),
    ("out", Elem::Int),
];
const SCORES_BINDINGS: &[Binding] = &[
    ("logits", Elem::F32),
    ("state", Elem::Int),
    ("params", Elem::Params),
    ("cut_score", Elem::F32),
    ("cut_token", Elem::Int),
    ("out_confidence", Elem::F32),
    ("out_entropy", Elem::F32),
];
const CUTOFF_BINDINGS: &[Binding] = &[
    ("logits", Elem::F32),
    ("state", Elem::Int),
    ("params", Elem::Params),
    ("out_score", Elem::F32),
    ("out_token", Elem::Int),
];
const REVEAL_BINDINGS: &[Binding] = &[
    ("state", Elem::Int),
    ("params", Elem::Params),
    ("x0", Elem::Int),
    ("plan", Elem::Int),
    ("next", Elem::Int),
    ("changed", Elem::Flag),
];

const UNPACK_BINDINGS: &[Binding] = &[("packed", Elem::Words), ("params", Elem::Params), ("out", Elem::F32)];

/// The WGSL declarations of `bindings`.
fn declarations(bindings: &[Binding]) -> String {
    let mut out = String::from("// Generated from core/src/kernels/shader.rs.\n");
    for (slot, (name, elem)) in bindings.iter().enumerate() {
        let ty = match elem {
            Elem::F32 => "f32",
            Elem::Int => "{{ int }}",
            Elem::Params | Elem::Words => "u32",
            Elem::Flag => "atomic<u32>",
        };
        out.push_str(&format!("@group(0) @binding({slot}) var<storage, read_write> {name}: array<{ty}>;\n"));
    }
    out
}

/// One WGSL kernel: its body plus the generated interface and the shared helpers, with the
/// integer type filled in.
struct Wgsl {
    name: &'static str,
    body: &'static str,
    consistent: bool,
    /// Appends the workgroup reductions (reduce.wgsl).
    reduce: bool,
    workgroup: u32,
    bindings: &'static [Binding],
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        let mut template = SourceTemplate::new(self.body)
            .add_template(declarations(self.bindings))
            .add_template(wgsl_constants())
            .add_template(COMMON);
        if self.consistent {
            template = template.add_template(CONSISTENT);
        }
        if self.reduce {
            template = template.add_template(REDUCE);
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
    let t = float_in(t)?;
    if t.dtype != DType::F32 {
        return Err(PrimeError::Device(format!("the kernels take f32 tensors, got {:?}", t.dtype)));
    }
    Ok(into_contiguous(t))
}

fn int_primitive(t: Tensor<1, Int>) -> Result<CubeTensor> {
    let t = if t.dtype() == DType::I32 { t } else { t.cast(burn::tensor::IntDType::I32) };
    Ok(into_contiguous(int_in(t)?))
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

/// Launches `kernel` with `buffers` (named, in the kernel's binding order, without `params`)
/// and the parameter block `params`.
fn launch(
    kernel: Wgsl,
    count: CubeCount,
    client_of: &CubeTensor,
    buffers: &[(&str, &CubeTensor)],
    params: &[u32],
) -> Result<()> {
    let params: Vec<u8> = params.iter().flat_map(|w| w.to_le_bytes()).collect();
    let params = client_of.client.create_from_slice(&params);
    let mut given = buffers.iter();
    let mut bindings = Vec::with_capacity(kernel.bindings.len());
    for &(name, elem) in kernel.bindings {
        if elem == Elem::Params {
            bindings.push(params.clone().binding());
            continue;
        }
        match given.next() {
            Some((n, t)) if *n == name => bindings.push(t.handle.clone().binding()),
            other => {
                return Err(PrimeError::Device(format!(
                    "kernel {}: binding `{name}` got {:?}",
                    kernel.name,
                    other.map(|(n, _)| *n)
                )));
            }
        }
    }
    if let Some((extra, _)) = given.next() {
        return Err(PrimeError::Device(format!("kernel {}: no binding for buffer `{extra}`", kernel.name)));
    }
    let cube_dim = CubeDim::new_1d(kernel.workgroup);
    client_of.client.launch(
        Box::new(SourceKernel::new(kernel, cube_dim)),
        count,
        KernelArguments::new().with_buffers(bindings),
    );
    Ok(())
}

/// f16 values given by their bits, expanded to an f32 tensor on the wgpu `device` by the
/// `unpack` kernel (the host twin is [`crate::weights::f16_to_f32`]).
pub fn unpack_f16(bits: &[u16], device: &Device) -> Result<Tensor<1>> {
    let words: Vec<i32> = bits
        .chunks(2)
        .map(|pair| (u32::from(pair[0]) | u32::from(pair.get(1).copied().unwrap_or(0)) << 16) as i32)
        .collect();
    let n = words.len();
    let packed = int_primitive(Tensor::<1, Int>::from_data(TensorData::new(words, [n]), device))?;
    let count = u32::try_from(bits.len())
        .map_err(|_| PrimeError::Device(format!("cannot unpack {} values in one launch", bits.len())))?;
    let out = new_output(&packed, bits.len(), DType::F32);
    let kernel = Wgsl {
        name: "unpack",
        body: UNPACK,
        consistent: false,
        reduce: false,
        workgroup: ELEMENT_WG,
        bindings: UNPACK_BINDINGS,
    };
    let groups = (n as u32).div_ceil(ELEMENT_WG);
    launch(kernel, grid(groups), &packed, &[("packed", &packed), ("out", &out)], &[count])?;
    Ok(float_out(out))
}

/// See [`super::SubTokenKernels::encode`].
#[cfg(feature = "diagnostics")]
pub fn encode(p: &KernelParams, tokens: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
    let tokens = int_primitive(tokens)?;
    let n = p.length() * p.digits();
    let out = new_output(&tokens, n, DType::I32);
    let words = p.words(&Launch::default());
    let kernel = Wgsl {
        name: "encode",
        body: ENCODE,
        consistent: false,
        reduce: false,
        workgroup: ELEMENT_WG,
        bindings: ENCODE_BINDINGS,
    };
    launch(kernel, grid((n as u32).div_ceil(ELEMENT_WG)), &tokens, &[("tokens", &tokens), ("out", &out)], &words)?;
    Ok(int_out(out))
}

/// See [`super::SubTokenKernels::decode`].
#[cfg(feature = "diagnostics")]
pub fn decode(p: &KernelParams, state: Tensor<1, Int>) -> Result<Tensor<1, Int>> {
    let state = int_primitive(state)?;
    let out = new_output(&state, p.length(), DType::I32);
    let words = p.words(&Launch::default());
    let kernel = Wgsl {
        name: "decode",
        body: DECODE,
        consistent: false,
        reduce: false,
        workgroup: ELEMENT_WG,
        bindings: DECODE_BINDINGS,
    };
    let count = grid((p.length() as u32).div_ceil(ELEMENT_WG));
    launch(kernel, count, &state, &[("state", &state), ("out", &out)], &words)?;
    Ok(int_out(out))
}

/// See [`super::SubTokenKernels::normaliser`].
#[cfg(feature = "diagnostics")]
pub fn normaliser(p: &KernelParams, words: &[u32], logits: Tensor<2>, state: Tensor<1, Int>) -> Result<Normaliser> {
    let logits = float_primitive(logits)?;
    let state = int_primitive(state)?;
    let max = new_output(&logits, p.length(), DType::F32);
    let lse = new_output(&logits, p.length(), DType::F32);
    let count = new_output(&logits, p.length(), DType::I32);
    let kernel = Wgsl {
        name: "normaliser",
        body: NORMALISER,
        consistent: true,
        reduce: true,
        workgroup: REDUCE_WG,
        bindings: NORMALISER_BINDINGS,
    };
    let buffers = [("logits", &logits), ("state", &state), ("out_max", &max), ("out_lse", &lse), ("out_count", &count)];
    launch(kernel, grid(p.length() as u32), &logits, &buffers, words)?;
    Ok(Normaliser { max: float_out(max), log_normaliser: float_out(lse), count: int_out(count) })
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
    let (score, token) = cutoff_buffers(p, request.cutoffs.as_ref(), &logits)?;
    let positions: Vec<i32> = if request.positions.is_empty() {
        (0..p.length() as i32).collect()
    } else {
        request.positions.iter().map(|&i| i as i32).collect()
    };
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [p.length()]), &request.active.device());
    let positions = int_primitive(positions)?;
    let out = new_output(&logits, p.length(), DType::I32);
    let kernel = Wgsl {
        name: "draw",
        body: DRAW,
        consistent: true,
        reduce: false,
        workgroup: REDUCE_WG,
        bindings: DRAW_BINDINGS,
    };
    let buffers = [
        ("logits", &logits),
        ("state", &state),
        ("draw_mask", &active),
        ("cut_score", &score),
        ("cut_token", &token),
        ("key_positions", &positions),
        ("out", &out),
    ];
    launch(kernel, grid(p.length() as u32), &logits, &buffers, words)?;
    Ok(int_out(out))
}

/// The cutoff buffers of a launch: `cutoffs`, or unread placeholders (every binding needs a
/// buffer; without the cutoff flag the kernel never reads them).
fn cutoff_buffers(p: &KernelParams, cutoffs: Option<&Cutoffs>, like: &CubeTensor) -> Result<(CubeTensor, CubeTensor)> {
    Ok(match cutoffs {
        Some(c) => (float_primitive(c.score.clone())?, int_primitive(c.token.clone())?),
        None => (new_output(like, p.length(), DType::F32), new_output(like, p.length(), DType::I32)),
    })
}

/// See [`super::SubTokenKernels::cutoffs`].
pub fn cutoffs(p: &KernelParams, words: &[u32], logits: Tensor<2>, state: Tensor<1, Int>) -> Result<Cutoffs> {
    let logits = float_primitive(logits)?;
    let state = int_primitive(state)?;
    let score = new_output(&logits, p.length(), DType::F32);
    let token = new_output(&logits, p.length(), DType::I32);
    let kernel = Wgsl {
        name: "cutoff",
        body: CUTOFF,
        consistent: true,
        reduce: true,
        workgroup: REDUCE_WG,
        bindings: CUTOFF_BINDINGS,
    };
    let buffers = [("logits", &logits), ("state", &state), ("out_score", &score), ("out_token", &token)];
    launch(kernel, grid(p.length() as u32), &logits, &buffers, words)?;
    Ok(Cutoffs { score: float_out(score), token: int_out(token) })
}

/// See [`super::SubTokenKernels::digit_scores`].
pub fn digit_scores(
    p: &KernelParams,
    words: &[u32],
    logits: Tensor<2>,
    state: Tensor<1, Int>,
    cutoffs: Option<&Cutoffs>,
) -> Result<DigitScores> {
    let logits = float_primitive(logits)?;
    let state = int_primitive(state)?;
    let (score, token) = cutoff_buffers(p, cutoffs, &logits)?;
    let n = p.length() * p.digits();
    let confidence = new_output(&logits, n, DType::F32);
    let entropy = new_output(&logits, n, DType::F32);
    let kernel = Wgsl {
        name: "scores",
        body: SCORES,
        consistent: true,
        reduce: true,
        workgroup: REDUCE_WG,
        bindings: SCORES_BINDINGS,
    };
    let buffers = [
        ("logits", &logits),
        ("state", &state),
        ("cut_score", &score),
        ("cut_token", &token),
        ("out_confidence", &confidence),
        ("out_entropy", &entropy),
    ];
    launch(kernel, grid(p.length() as u32), &logits, &buffers, words)?;
    Ok(DigitScores { confidence: float_out(confidence), entropy: float_out(entropy) })
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
    let kernel = Wgsl {
        name: "reveal",
        body: REVEAL,
        consistent: false,
        reduce: false,
        workgroup: ELEMENT_WG,
        bindings: REVEAL_BINDINGS,
    };
    let buffers = [("state", &state), ("x0", &x0), ("plan", &plan), ("next", &next), ("changed", &changed)];
    launch(kernel, grid((n as u32).div_ceil(ELEMENT_WG)), &state, &buffers, words)?;
    Ok(Revealed { state: int_out(next), changed: int_out(changed) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel uses each binding its list declares, and declares none of its own: the
    /// interface really comes from the Rust side.
    #[test]
    fn kernel_bodies_use_the_generated_interface() {
        let kernels = [
            #[cfg(feature = "diagnostics")]
            ("encode", ENCODE, ENCODE_BINDINGS),
            #[cfg(feature = "diagnostics")]
            ("decode", DECODE, DECODE_BINDINGS),
            #[cfg(feature = "diagnostics")]
            ("normaliser", NORMALISER, NORMALISER_BINDINGS),
            ("draw", DRAW, DRAW_BINDINGS),
            ("reveal", REVEAL, REVEAL_BINDINGS),
            ("scores", SCORES, SCORES_BINDINGS),
            ("cutoff", CUTOFF, CUTOFF_BINDINGS),
            ("unpack", UNPACK, UNPACK_BINDINGS),
        ];
        for (name, body, bindings) in kernels {
            assert!(!body.contains("@binding"), "{name} declares its own bindings");
            for (binding, _) in bindings {
                let used = [body, COMMON, CONSISTENT].iter().any(|w| w.contains(&format!("{binding}[")));
                assert!(used, "{name} never uses `{binding}`");
            }
        }
        let constants = wgsl_constants();
        #[cfg(feature = "diagnostics")]
        let diagnostics = [ENCODE, DECODE, NORMALISER];
        #[cfg(not(feature = "diagnostics"))]
        let diagnostics: [&str; 0] = [];
        for wgsl in [COMMON, CONSISTENT, REDUCE, DRAW, REVEAL, SCORES, CUTOFF, UNPACK].into_iter().chain(diagnostics) {
            assert!(!wgsl.contains("const P_") && !wgsl.contains("const FLAG_") && !wgsl.contains("const STREAM_"));
        }
        for used in ["P_L", "P_POWERS", "P_REVEAL_P", "P_TOP_K", "P_TOP_P", "FLAG_PLANNED", "STREAM_REVEAL"] {
            assert!(constants.contains(&format!("const {used}: u32")), "{used} is not generated");
        }
    }
}

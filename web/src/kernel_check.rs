//! The browser's check of the WGSL sub-token kernels against their Burn-ops twins: both paths
//! run on the page's device with the same inputs, and every output is read back without
//! blocking. The cutoff kernel is checked against the sampler's own truncation rule instead
//! (its twin sorts, which Burn's wgpu backend does with a blocking read). Integer outputs must be equal; floats within 1e-6 of max(|x|, 1) (the digit
//! scores, whose sums run in other orders, within 1e-5).

use burn::tensor::{Device, Int, Tensor, TensorData};
use prime_core::distribution::consistent_tokens;
use prime_core::kernels::{DrawRequest, KernelPath, RevealRule, SubTokenKernels};
use prime_core::readback::{read_f32_async, read_i32_async};
use prime_core::sampler::cutoff;
use prime_core::{Result, SubTokenCodec};
use serde::Serialize;

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Kernel name.
    pub kernel: &'static str,
    /// Codec and sizes.
    pub case: String,
    /// Whether the shader equals the twin.
    pub equal: bool,
    /// What was compared, and the largest difference.
    pub detail: String,
}

/// Every comparison made.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The comparisons, kernel by kernel and case by case.
    pub checks: Vec<Check>,
}

/// A deterministic input generator (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn int_check(kernel: &'static str, case: &str, a: &[i32], b: &[i32]) -> Check {
    let differing = a.iter().zip(b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
    Check { kernel, case: case.into(), equal: differing == 0, detail: format!("{} ids, {differing} differ", a.len()) }
}

fn float_check(kernel: &'static str, case: &str, a: &[f32], b: &[f32], tolerance: f32) -> Check {
    let rel = a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1.0)).fold(0.0f32, f32::max);
    let equal = a.len() == b.len() && rel <= tolerance;
    Check { kernel, case: case.into(), equal, detail: format!("{} values, max relative difference {rel:.1e}", a.len()) }
}

/// Inputs of one case on the host: tied logits (multiples of ½), a state mixing fully masked,
/// fully revealed and partly revealed tokens, and the tokens behind the state.
fn host_inputs(codec: &SubTokenCodec, length: usize, width: usize) -> (Vec<f32>, Vec<u32>, Vec<u32>) {
    let mut r = Lcg(7);
    let logits: Vec<f32> = (0..length * width).map(|_| (r.next() % 16) as f32 * 0.5 - 4.0).collect();
    let (l, mask) = (codec.digits(), codec.mask_id());
    let tokens: Vec<u32> = (0..length).map(|_| r.next() % codec.vocab()).collect();
    let mut state = Vec::new();
    for (i, &token) in tokens.iter().enumerate() {
        for j in 0..l {
            state.push(match i % 3 {
                0 => mask,
                1 => codec.digit(token, j),
                _ if j == 0 => codec.digit(token, j),
                _ => mask,
            });
        }
    }
    (logits, state, tokens)
}

/// Host logits (L × `width`) and state on `device`.
fn upload(logits: &[f32], state: &[u32], width: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    let logits = Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [logits.len() / width, width]), device);
    let state: Vec<i32> = state.iter().map(|&d| d as i32).collect();
    let n = state.len();
    (logits, Tensor::<1, Int>::from_data(TensorData::new(state, [n]), device))
}

/// One path's outputs, named.
struct Outputs {
    ints: Vec<(&'static str, Vec<i32>)>,
    /// Name, values and the tolerance of the comparison.
    floats: Vec<(&'static str, Vec<f32>, f32)>,
}

async fn run_path(path: KernelPath, codec: &SubTokenCodec, width: usize, device: &Device) -> Result<Outputs> {
    let length = codec_length(codec);
    let (host_logits, host_state, tokens) = host_inputs(codec, length, width);
    let (logits, state) = upload(&host_logits, &host_state, width, device);
    let k = SubTokenKernels::new(codec, length, width, path, device)?;
    let token_ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    let encoded = k.encode(Tensor::from_data(TensorData::new(token_ids, [length]), device))?;
    let decoded = k.decode(state.clone())?;
    let norm = k.normaliser(logits.clone(), state.clone(), 1.25, true)?;
    let active = Tensor::<1, Int>::from_data(TensorData::new(vec![1i32; length], [length]), device);
    let request = DrawRequest {
        seed: 11,
        step: 3,
        inv_temperature: 1.25,
        noise: true,
        active,
        cutoffs: None,
        positions: Vec::new(),
    };
    let scores = k.digit_scores(logits.clone(), state.clone(), 1.25, None, true)?;
    let drawn = k.draw(logits, state.clone(), &request, true)?;
    let revealed = k.reveal(state, drawn.clone(), 11, 3, RevealRule::Probability(0.5))?;
    Ok(Outputs {
        ints: vec![
            ("encode", read_i32_async(encoded, "encode").await?),
            ("decode", read_i32_async(decoded, "decode").await?),
            ("count", read_i32_async(norm.count, "count").await?),
            ("draw", read_i32_async(drawn, "draw").await?),
            ("reveal", read_i32_async(revealed.state, "reveal").await?),
            ("changed", read_i32_async(revealed.changed, "changed").await?),
        ],
        floats: vec![
            ("max", read_f32_async(norm.max, "max").await?, 1e-6),
            ("normaliser", read_f32_async(norm.log_normaliser, "log-normaliser").await?, 1e-6),
            ("confidence", read_f32_async(scores.confidence, "confidence").await?, 1e-5),
            ("entropy", read_f32_async(scores.entropy, "entropy").await?, 1e-5),
        ],
    })
}

/// Sequence length of a case: a few tokens more than there are digit patterns of interest.
fn codec_length(codec: &SubTokenCodec) -> usize {
    6 + 3 * codec.digits()
}

/// The cutoff shader against the sampler's rule over each position's consistent candidates.
async fn check_cutoffs(name: &str, codec: &SubTokenCodec, width: usize, device: &Device) -> Result<Vec<Check>> {
    let length = codec_length(codec);
    let (logits, state, _) = host_inputs(codec, length, width);
    let (tensor, state_tensor) = upload(&logits, &state, width, device);
    let k = SubTokenKernels::new(codec, length, width, KernelPath::Shader, device)?;
    let (top_k, top_p, inv_t) = (Some(5), 0.8f32, 1.25f32);
    let cut = k.cutoffs(tensor, state_tensor, inv_t, top_k, top_p, true)?;
    let l = codec.digits();
    let want: Vec<(i32, f32)> = (0..length)
        .map(|i| {
            let candidates = consistent_tokens(codec, &state[i * l..(i + 1) * l], true)
                .into_iter()
                .map(|v| (v, logits[i * width + v as usize] * inv_t))
                .collect();
            cutoff(candidates, top_k, top_p).map_or((-1, f32::MAX), |c| (c.token as i32, c.score))
        })
        .collect();
    let tokens = read_i32_async(cut.token, "cutoff tokens").await?;
    let scores = read_f32_async(cut.score, "cutoff scores").await?;
    let want_tokens: Vec<i32> = want.iter().map(|w| w.0).collect();
    let want_scores: Vec<f32> = want.iter().map(|w| w.1).collect();
    Ok(vec![
        int_check("cutoff", name, &tokens, &want_tokens),
        float_check("cutoff score", name, &scores, &want_scores, 0.0),
    ])
}

async fn check_case(name: &str, codec: SubTokenCodec, width: usize, device: &Device) -> Result<Vec<Check>> {
    let shader = run_path(KernelPath::Shader, &codec, width, device).await?;
    let twin = run_path(KernelPath::Twin, &codec, width, device).await?;
    let mut checks: Vec<Check> =
        shader.ints.iter().zip(&twin.ints).map(|((k, a), (_, b))| int_check(k, name, a, b)).collect();
    checks.extend(
        shader.floats.iter().zip(&twin.floats).map(|((k, a, tol), (_, b, _))| float_check(k, name, a, b, *tol)),
    );
    checks.extend(check_cutoffs(name, &codec, width, device).await?);
    Ok(checks)
}

/// Runs every kernel on both paths on `device` (which must be a wgpu device) and compares.
pub async fn run(device: &Device) -> Result<Report> {
    let cases = [
        // V not a power of b (invalid codes), ℓ = 2.
        ("V300-l2", SubTokenCodec::new(300, 2)?, 300),
        // ℓ = 1: the logits carry MDLM's mask class.
        ("V50-l1", SubTokenCodec::new(50, 1)?, 51),
        // V a power of b, ℓ = 3.
        ("V64-l3", SubTokenCodec::new(64, 3)?, 64),
    ];
    let mut checks = Vec::new();
    for (name, codec, width) in cases {
        checks.extend(check_case(name, codec, width, device).await?);
    }
    Ok(Report { checks })
}

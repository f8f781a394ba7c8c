//! The official network's outputs (CPU fp32 goldens) reproduced on burn-flex and on wgpu.

use prime_core::distribution::{carry_over_log_probs, log_softmax, logsumexp_over, subs_log_probs};
use prime_core::{Model, ModelClass, SubTokenCodec};
use prime_tests::{backends, case_dir, golden_dir, max_abs_diff, read_golden};

const LOGIT_TOL: f32 = 5e-5;
const INTERMEDIATE_TOL: f32 = 2e-5;

fn check_case(case: &str) {
    let golden = read_golden(&case_dir(case).join("cases.safetensors"));
    let ids = golden["input_ids"].i64().to_vec();
    let batch = golden["input_ids"].shape()[0];
    for (backend, device) in backends() {
        let model = Model::load_dir(&case_dir(case), &device).expect("golden folder loads");
        let (logits, trace) = model.forward_traced(&ids, batch).expect("forward runs");
        let d = max_abs_diff(&logits, golden["logits"].f32());
        eprintln!("{case}/{backend}: max |Δ logits| = {d:.2e}");
        assert!(d <= LOGIT_TOL, "{case}/{backend}: logits differ by {d}");

        // Intermediates: every one the golden file has, so a failure says where.
        let mut compared = 0;
        for (name, want) in &golden {
            if let Some(got) = trace.get(name) {
                assert_eq!(got.shape, want.shape(), "{case}/{backend}: shape of {name}");
                let d = max_abs_diff(&got.data, want.f32());
                assert!(d <= INTERMEDIATE_TOL, "{case}/{backend}: {name} differs by {d}");
                compared += 1;
            }
        }
        assert!(compared >= 8, "{case}/{backend}: only {compared} intermediates compared");

        let config = model.config();
        let (length, width) = (config.length, config.output_width());
        let l = config.subtokens;
        let codec = model.codec();
        let mut logprobs = Vec::new();
        let mut filtered = Vec::new();
        let mut subs = Vec::new();
        let mut lse = Vec::new();
        let mut lse_co = Vec::new();
        let mut n_consistent = Vec::new();
        for row in 0..batch {
            for i in 0..length {
                let at = (row * length + i) * width;
                let logit_row = &golden["logits"].f32()[at..at + width];
                // The output distribution is checked on the official logits, so it is tested
                // separately from the network.
                logprobs.extend(log_softmax(logit_row));
                lse.push(logsumexp_over(logit_row, 0..width as u32).unwrap());
                let pattern: Vec<u32> =
                    ids[row * length * l + i * l..row * length * l + (i + 1) * l].iter().map(|&v| v as u32).collect();
                match config.model_class {
                    ModelClass::PerceiverDIT => {
                        filtered.extend(carry_over_log_probs(codec, logit_row, &pattern, i).unwrap());
                        let mut members = Vec::new();
                        codec.for_each_consistent(&pattern, |v| members.push(v));
                        lse_co.push(logsumexp_over(logit_row, members.iter().copied()).unwrap());
                        n_consistent.push(members.len() as i64);
                    }
                    ModelClass::DIT => subs.extend(subs_log_probs(logit_row, pattern[0], codec.mask_id())),
                }
            }
        }
        let d = max_abs_diff(&logprobs, golden["logprobs"].f32());
        assert!(d <= LOGIT_TOL, "{case}: logprobs differ by {d}");
        let d = max_abs_diff(&lse, golden["logsumexp"].f32());
        assert!(d <= LOGIT_TOL, "{case}: logsumexp differs by {d}");
        if config.model_class == ModelClass::PerceiverDIT {
            let d = max_abs_diff(&filtered, golden["logprobs_carry_over"].f32());
            assert!(d <= LOGIT_TOL, "{case}: carry-over logprobs differ by {d}");
            let d = max_abs_diff(&lse_co, golden["logsumexp_carry_over"].f32());
            assert!(d <= LOGIT_TOL, "{case}: carry-over logsumexp differs by {d}");
            assert_eq!(n_consistent, golden["n_consistent"].i64(), "{case}: n_consistent");
        } else {
            let d = max_abs_diff(&subs, golden["logprobs_subs"].f32());
            assert!(d <= LOGIT_TOL, "{case}: SUBS logprobs differ by {d}");
        }
    }
}

#[test]
fn prime_l2_tiny_matches_official() {
    check_case("prime_l2_tiny");
}

#[test]
fn prime_l4_small_matches_official() {
    check_case("prime_l4_small");
}

#[test]
fn mdlm_l1_tiny_matches_official() {
    check_case("mdlm_l1_tiny");
}

#[test]
fn gpt2_sized_encoding_matches_official_encoder() {
    let golden = read_golden(&golden_dir().join("encode.safetensors"));
    let vocab = golden["vocab_size"].i64()[0] as u32;
    for l in [2usize, 3, 4, 6, 8] {
        let codec = SubTokenCodec::new(vocab, l).unwrap();
        assert_eq!(i64::from(codec.base()), golden[&format!("base_l{l}")].i64()[0], "base for ℓ = {l}");
        let tokens: Vec<u32> = golden[&format!("tokens_l{l}")].i64().iter().map(|&t| t as u32).collect();
        let digits: Vec<u32> = golden[&format!("digits_l{l}")].i64().iter().map(|&d| d as u32).collect();
        assert_eq!(codec.encode(&tokens).unwrap(), digits, "encode ℓ = {l}");
        assert_eq!(codec.decode(&digits).unwrap(), tokens, "decode ℓ = {l}");
    }
}

/// Logits written block by block (as `prime forward` streams them) are the official logits,
/// whatever the block size: one row, a size that splits sequences unevenly, more than all.
#[test]
fn logits_in_blocks_are_the_official_logits() {
    let golden = read_golden(&case_dir("prime_l4_small").join("cases.safetensors"));
    let ids = golden["input_ids"].i64().to_vec();
    let batch = golden["input_ids"].shape()[0];
    for (backend, device) in backends() {
        let model = Model::load_dir(&case_dir("prime_l4_small"), &device).expect("golden folder loads");
        let width = model.config().output_width();
        for rows in [1, 7, 10_000] {
            let (mut logits, mut blocks) = (Vec::new(), 0);
            model
                .forward_blocks(&ids, batch, rows, |block| {
                    assert!(
                        block.len() <= rows * width && block.len() % width == 0,
                        "{backend}: block of {}",
                        block.len()
                    );
                    logits.extend_from_slice(block);
                    blocks += 1;
                    Ok(())
                })
                .expect("forward runs");
            assert_eq!(blocks, (batch * model.config().length).div_ceil(rows), "{backend}: blocks of {rows}");
            let d = max_abs_diff(&logits, golden["logits"].f32());
            assert!(d <= LOGIT_TOL, "{backend}, blocks of {rows}: logits differ by {d}");
        }
        assert!(model.forward_blocks(&ids[1..], batch, 4, |_| Ok(())).is_err(), "{backend}: a short input is refused");
    }
}

//! The learned position embedding image models add. With RoPE alone, attention on a fully
//! masked input averages identical values, so every position gets the same logits and nothing
//! tells a pixel where in the picture it is; with the embedding the positions differ. Both on
//! every backend, with the backends agreeing.

use burn::tensor::{Device, Int, Tensor, TensorData};
use prime_core::network::{Network, POSITION_EMBEDDING};
use prime_core::readback::read_f32;
use prime_core::weights::WeightFile;
use prime_core::{ModelClass, ModelConfig};
use prime_tests::{backends, filled_tensors, max_abs_diff, tiny_config};

/// The logits (L rows of V_out) of a fully masked sequence.
fn all_masked_logits(config: &ModelConfig, device: &Device) -> Vec<Vec<f32>> {
    let mut weights = WeightFile::from_tensors(filled_tensors(config));
    let network = Network::load(config, &mut weights, device, usize::MAX).expect("load");
    let n = config.sequence_subtokens();
    let mask = config.codec().expect("codec").mask_id() as i32;
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![mask; n], [1, n]), device);
    let logits = read_f32(network.forward(&network.constants(), ids, None), "logits").expect("read");
    logits.chunks(config.output_width()).map(<[f32]>::to_vec).collect()
}

/// The largest difference between any position's logits and the first position's.
fn spread(rows: &[Vec<f32>]) -> f32 {
    rows.iter().map(|row| max_abs_diff(row, &rows[0])).fold(0.0, f32::max)
}

#[test]
fn a_position_embedding_tells_positions_apart_where_rope_cannot() {
    for (class, ell) in [(ModelClass::PerceiverDIT, 2usize), (ModelClass::DIT, 1)] {
        let plain = ModelConfig { model_class: class, ..tiny_config(ell, 256) };
        let placed = ModelConfig { position_embedding: true, ..plain.clone() };
        assert!(filled_tensors(&placed).iter().any(|(name, t)| name == POSITION_EMBEDDING && t.shape == [16, 32]));
        let flex = Device::flex();
        let (plain_flex, placed_flex) = (all_masked_logits(&plain, &flex), all_masked_logits(&placed, &flex));
        assert!(spread(&plain_flex) <= 1e-5, "ℓ={ell}: RoPE alone told positions apart by {}", spread(&plain_flex));
        assert!(spread(&placed_flex) > 1e-2, "ℓ={ell}: positions differ by only {}", spread(&placed_flex));
        for (name, device) in backends() {
            let got: Vec<f32> = all_masked_logits(&placed, &device).concat();
            let diff = max_abs_diff(&got, &placed_flex.concat());
            assert!(diff <= 1e-4, "{name}, ℓ={ell}: logits off by {diff}");
        }
    }
}

/// A weight file without the embedding the config asks for is refused with the tensor named.
#[test]
fn a_missing_position_embedding_is_named() {
    let plain = tiny_config(2, 256);
    let placed = ModelConfig { position_embedding: true, ..plain.clone() };
    let mut weights = WeightFile::from_tensors(filled_tensors(&plain));
    let err = Network::load(&placed, &mut weights, &Device::flex(), usize::MAX).expect_err("loaded without it");
    assert!(err.to_string().contains(POSITION_EMBEDDING), "{err}");
}

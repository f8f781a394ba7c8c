//! The event-driven sampler has the ancestral sampler's law, with fewer network calls.

use std::cell::Cell;
use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor, TensorData};
use prime_core::readback::read_i32;
use prime_core::sampler::SamplingMode;
use prime_core::schedule::expected_idle_ratio;
use prime_core::{
    Conditioning, Denoiser, Logits, ModelClass, ModelConfig, NetworkInput, Result, Run, Sampler, SamplerSettings,
    SamplerShape,
};

/// A toy network whose logits depend on the whole sub-token state, so that the order in which
/// digits are revealed matters for the law of the final tokens.
struct Toy {
    length: usize,
    vocab: usize,
    calls: Cell<usize>,
    device: Device,
}

impl Denoiser for Toy {
    fn device(&self) -> &Device {
        &self.device
    }

    fn logits(&self, input: NetworkInput) -> Result<Logits> {
        self.calls.set(self.calls.get() + 1);
        let state = read_i32(input.state, "the toy's state")?;
        let key: u32 = state.iter().enumerate().map(|(s, &d)| (s as u32 + 1) * (d as u32 + 1)).sum();
        let values: Vec<f32> = (0..self.length * self.vocab)
            .map(|n| {
                let (i, v) = ((n / self.vocab) as u32, (n % self.vocab) as u32);
                (((key * 7 + i * 3 + v * 5 + v * v * key) % 11) as f32) * 0.35
            })
            .collect();
        Ok(Logits::whole(Tensor::from_data(TensorData::new(values, [self.length, self.vocab]), &self.device)))
    }
}

fn shape() -> SamplerShape {
    let config = ModelConfig {
        model_class: ModelClass::PerceiverDIT,
        vocab_size: 9,
        subtokens: 2,
        base: None,
        hidden_size: 8,
        n_blocks: 1,
        n_heads: 1,
        cond_dim: 8,
        length: 2,
        mlp_ratio: 1,
        layer_norm_eps: 1e-5,
        rope_base: 10000.0,
        frequency_embedding_size: 8,
        carry_over: true,
        image: None,
        position_embedding: false,
        classes: Vec::new(),
        sampling: Default::default(),
    };
    SamplerShape::from_config(&config).expect("valid shape")
}

/// Final-token histogram (81 outcomes), mean NFE and mean idle ratio over `runs` seeds.
fn histogram(mode: SamplingMode, temperature: f32, runs: u64, seed_base: u64) -> (Vec<u64>, f64, f64) {
    let steps = 4;
    let mut counts = vec![0u64; 81];
    let (mut nfe, mut idle) = (0usize, 0usize);
    for seed in seed_base..seed_base + runs {
        let settings = SamplerSettings { steps, seed, temperature, mode, ..Default::default() };
        let sampler = Sampler::new(shape(), settings, &Conditioning::default()).expect("sampler");
        let toy = Toy { length: 2, vocab: 9, calls: Cell::new(0), device: Device::flex() };
        let mut calls_expected = 0;
        let outcome = Run::on_host(sampler)
            .run(&toy, |e| {
                if mode == SamplingMode::EventDriven {
                    // A call happens exactly at the steps that reveal something, and at the end.
                    assert_eq!(e.network_called, !e.idle || e.is_final, "step {}", e.step);
                }
                calls_expected += usize::from(e.network_called);
                ControlFlow::Continue(())
            })
            .expect("sampling succeeds")
            .expect("not aborted");
        assert_eq!(toy.calls.get(), outcome.nfe);
        assert_eq!(outcome.nfe, calls_expected);
        counts[(outcome.tokens[0] * 9 + outcome.tokens[1]) as usize] += 1;
        nfe += outcome.nfe;
        idle += outcome.idle_steps;
    }
    (counts, nfe as f64 / runs as f64, idle as f64 / (runs as f64 * steps as f64))
}

/// Two-sample chi-square statistic on equal-size samples, and its degrees of freedom.
fn chi_square(a: &[u64], b: &[u64]) -> (f64, f64) {
    let mut stat = 0.0;
    let mut cells = 0;
    for (&x, &y) in a.iter().zip(b) {
        if x + y > 0 {
            stat += (x as f64 - y as f64).powi(2) / (x + y) as f64;
            cells += 1;
        }
    }
    (stat, f64::from(cells - 1))
}

/// The 0.999 quantile of χ²(df), Wilson–Hilferty.
fn critical(df: f64) -> f64 {
    let z = 3.09;
    let c = 2.0 / (9.0 * df);
    df * (1.0 - c + z * c.sqrt()).powi(3)
}

#[test]
fn event_driven_mode_has_the_ancestral_law() {
    let runs = 6000;
    let (ancestral, nfe_a, idle_a) = histogram(SamplingMode::Ancestral, 1.0, runs, 0);
    let (event, nfe_e, idle_e) = histogram(SamplingMode::EventDriven, 1.0, runs, 100_000);
    let (stat, df) = chi_square(&ancestral, &event);
    assert!(stat < critical(df), "chi-square {stat:.1} on {df} df exceeds {:.1}", critical(df));

    // The test has power: a different law (temperature 2) is rejected.
    let (hot, _, _) = histogram(SamplingMode::EventDriven, 2.0, runs, 200_000);
    let (stat_hot, df_hot) = chi_square(&ancestral, &hot);
    assert!(stat_hot > critical(df_hot), "temperature 2 not detected: {stat_hot:.1} on {df_hot} df");

    // Same idle-step law (closed form (1 − dt)^N), and fewer calls: none before an idle step.
    let want = expected_idle_ratio(4, 4);
    for (name, idle) in [("ancestral", idle_a), ("event-driven", idle_e)] {
        assert!((idle - want).abs() < 0.02, "{name}: idle ratio {idle:.4} vs {want:.4}");
    }
    assert!(nfe_e < nfe_a, "event-driven NFE {nfe_e} vs ancestral {nfe_a}");
}

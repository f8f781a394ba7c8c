//! The browser's session logic, run natively on burn-flex with the shipped Prime model: it takes
//! exactly the core sampler's steps, and its views describe the state faithfully.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::Device;
use prime_core::sampler::run;
use prime_core::{Conditioning, Model, Sampler, SamplerSettings, SamplerShape};
use prime_web::session::advance;
use prime_web::{Request, Session, StepView};

fn shipped_prime() -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/prime");
    Model::load_dir(&dir, &Device::flex()).expect("the shipped model loads")
}

fn views(model: &Model, request: &Request) -> Vec<StepView> {
    let session = RefCell::new(Session::new(model, request).expect("session starts"));
    let mut out = Vec::new();
    while !session.borrow().is_done() {
        out.push(pollster::block_on(advance(model, &session)).expect("step runs"));
    }
    out
}

#[test]
fn session_takes_the_core_samplers_steps_and_describes_them() {
    let mut model = shipped_prime();
    let request: Request =
        serde_json::from_str(r#"{"prompt": "It was", "settings": {"steps": 24, "seed": 5}}"#).expect("request parses");
    let views = views(&model, &request);

    // The core sampler, driven by the blocking denoiser, without recorded guesses.
    let prefix = model.encode_text("It was", "prompt").expect("prompt encodes");
    let settings = SamplerSettings { steps: 24, seed: 5, ..SamplerSettings::default() };
    let shape = SamplerShape::from_config(model.config()).expect("shape");
    let mut sampler =
        Sampler::new(shape, settings, &Conditioning { prefix: prefix.clone(), ..Conditioning::default() })
            .expect("sampler starts");
    let mut events = Vec::new();
    let outcome = run(&mut sampler, &mut model, |e| {
        events.push(e.clone());
        ControlFlow::Continue(())
    })
    .expect("core sampler runs")
    .expect("not aborted");

    assert_eq!(views.len(), events.len());
    let codec = model.codec();
    let l = codec.digits();
    let mut partial_cells = 0;
    for (view, event) in views.iter().zip(&events) {
        assert_eq!(
            (view.step, view.idle, view.nfe, view.idle_steps),
            (event.step, event.idle, event.nfe, event.idle_steps)
        );
        assert_eq!(view.revealed, event.revealed);
        for (i, cell) in view.cells.iter().enumerate() {
            let pattern = &event.state[i * l..(i + 1) * l];
            let digits: Vec<Option<u32>> = pattern.iter().map(|&d| (d != codec.mask_id()).then_some(d)).collect();
            assert_eq!(cell.digits, digits, "step {} cell {i}", view.step);
            assert_eq!(cell.known, digits.iter().flatten().count());
            assert_eq!(cell.fixed, i < prefix.len());
            if cell.known == l {
                assert_eq!(cell.token, Some(codec.decode_token(pattern).expect("valid code")));
            } else {
                assert!(cell.guess.is_some(), "step {} cell {i} has no guess", view.step);
            }
            if cell.known > 0 && cell.known < l {
                let c = cell.consistent.as_ref().expect("partly revealed cells list their consistent set");
                assert_eq!(c.count, codec.count_consistent(pattern));
                assert!(!c.top.is_empty() && c.top.len() <= 5);
                assert!(c.top.windows(2).all(|w| w[0].p >= w[1].p));
                assert!(c.top.iter().all(|t| codec.is_consistent(t.token, pattern)));
                assert!(c.top.iter().map(|t| t.p).sum::<f32>() <= 1.0 + 1e-5);
                partial_cells += 1;
            } else {
                assert!(cell.consistent.is_none());
            }
        }
    }
    assert!(partial_cells > 0, "no partly revealed token in the whole run");
    let last = views.last().expect("steps");
    assert_eq!(last.tokens.as_ref(), Some(&outcome.tokens));
    let text = model.text().expect("tokenizer").decode(&outcome.tokens).expect("decodes");
    assert_eq!(last.text.as_deref(), Some(text.as_str()));
    assert!(text.starts_with("It was"), "{text}");
}

#[test]
fn bad_requests_are_errors() {
    let model = shipped_prime();
    assert!(serde_json::from_str::<Request>(r#"{"promt": "typo"}"#).is_err(), "unknown keys are rejected");
    let too_long = Request { prompt: "word ".repeat(400), ..Request::default() };
    let err = Session::new(&model, &too_long).expect_err("a prompt longer than L is an error");
    assert!(err.to_string().contains("do not fit"), "{err}");
    let zero_steps =
        Request { settings: SamplerSettings { steps: 0, ..SamplerSettings::default() }, ..Request::default() };
    assert!(Session::new(&model, &zero_steps).is_err());
}

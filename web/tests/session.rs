//! The browser's session logic, run natively on burn-flex with the shipped Prime model: it takes
//! exactly the core sampler's steps, its records describe the state faithfully, and they make a
//! trajectory that reads back as written; and the page's backend names parse.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::Device;
use prime_core::trajectory::{Ending, Trajectory};
use prime_core::{GenerationRequest, Model, SamplerSettings, Tokens};
use prime_web::{Session, StepMessage};

fn shipped_prime() -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/prime");
    Model::load_dir(&dir, &Device::flex()).expect("the shipped model loads")
}

fn messages(model: &Model, session: &mut Session) -> Vec<StepMessage> {
    let mut out = Vec::new();
    while !session.is_done() {
        out.push(pollster::block_on(session.step(model)).expect("step runs"));
    }
    out
}

#[test]
fn session_takes_the_core_samplers_steps_and_records_them() {
    let model = shipped_prime();
    let request: GenerationRequest =
        serde_json::from_str(r#"{"prompt": "It was", "settings": {"steps": 24, "seed": 5}}"#).expect("request parses");
    let mut session = Session::new(&model, &request, "burn-flex").expect("session starts");
    let header = session.header().clone();
    let messages = messages(&model, &mut session);

    // The core generation layer without recording: recording changes nothing sampled.
    let mut run = request.start(&model).expect("run starts");
    let mut events = Vec::new();
    let outcome = run
        .run(&model, |e| {
            events.push(e.clone());
            ControlFlow::Continue(())
        })
        .expect("core sampler runs")
        .expect("not aborted");

    let prefix = model.encode_text("It was", "prompt").expect("prompt encodes");
    assert_eq!(header.executor, "host");
    assert_eq!(header.fixed.iter().filter(|&&f| f).count(), prefix.len());
    assert!(header.fixed[..prefix.len()].iter().all(|&f| f));
    assert_eq!(messages.len(), events.len());
    let codec = model.codec();
    let l = codec.digits();
    let mut labels: HashMap<u32, String> = HashMap::new();
    let mut partial_cells = 0;
    for (message, event) in messages.iter().zip(&events) {
        let e = &message.record.event;
        assert_eq!(
            (e.step, e.idle, e.nfe, e.idle_steps, &e.state, &e.revealed),
            (event.step, event.idle, event.nfe, event.idle_steps, &event.state, &event.revealed)
        );
        labels.extend(message.record.labels.iter().cloned());
        for (i, guess) in e.guesses.iter().enumerate() {
            let pattern = &e.state[i * l..(i + 1) * l];
            let guess = guess.expect("every token has a guess");
            assert!(codec.is_consistent(guess, pattern), "step {} guess {guess} contradicts {pattern:?}", e.step);
            assert!(labels.contains_key(&guess), "step {}: guess {guess} has no label", e.step);
        }
        let partly: Vec<u32> = (0..e.guesses.len())
            .filter(|&i| {
                let known = e.state[i * l..(i + 1) * l].iter().filter(|&&d| d != codec.mask_id()).count();
                known > 0 && known < l
            })
            .map(|i| i as u32)
            .collect();
        assert_eq!(e.candidates.iter().map(|c| c.position).collect::<Vec<_>>(), partly, "step {}", e.step);
        for c in &e.candidates {
            let i = c.position as usize;
            let pattern = &e.state[i * l..(i + 1) * l];
            assert_eq!(c.count as usize, codec.count_consistent(pattern));
            assert!(!c.top.is_empty() && c.top.len() <= 5);
            assert!(c.top.windows(2).all(|w| w[0].1 >= w[1].1));
            assert!(c.top.iter().all(|&(t, _)| codec.is_consistent(t, pattern) && labels.contains_key(&t)));
            assert!(c.top.iter().map(|t| t.1).sum::<f32>() <= 1.0 + 1e-5);
            partial_cells += 1;
        }
        assert_eq!(message.ending.is_some(), e.is_final);
    }
    assert!(partial_cells > 0, "no partly revealed token in the whole run");
    let ending = messages.last().and_then(|m| m.ending.clone()).expect("an ending");
    assert_eq!(ending.outcome.tokens, outcome.tokens);
    let text = model.text().expect("tokenizer").decode(&outcome.tokens).expect("decodes");
    assert_eq!(ending.text.as_deref(), Some(text.as_str()));
    assert!(text.starts_with("It was"), "{text}");

    // As a trajectory file: header, records, ending; it reads back as written.
    let mut lines = vec![serde_json::to_string(&header).expect("header")];
    lines.extend(messages.iter().map(|m| serde_json::to_string(&m.record).expect("record")));
    lines.push(serde_json::to_string(&ending).expect("ending"));
    let read = Trajectory::parse(&lines.join("\n")).expect("the trajectory parses");
    assert_eq!(read.header, header);
    assert_eq!(read.steps, messages.iter().map(|m| m.record.clone()).collect::<Vec<_>>());
    assert_eq!(read.ending, Ending { outcome, text: Some(text) });
    let wrong = lines[0].replace("\"version\":1", "\"version\":2");
    assert!(Trajectory::parse(&[wrong, lines[1].clone()].join("\n")).is_err(), "another version is refused");

    // A record that does not fit the header's model is refused, naming its line and why.
    let refused = |line: usize, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut edited = lines.clone();
        let mut record: serde_json::Value = serde_json::from_str(&edited[line - 1]).expect("json");
        edit(&mut record);
        edited[line - 1] = record.to_string();
        Trajectory::parse(&edited.join("\n")).expect_err("a record that does not fit is refused").to_string()
    };
    let short_state = refused(3, &|r| {
        r["state"].as_array_mut().expect("state").pop();
    });
    assert!(short_state.contains("line 3") && short_state.contains("digit slots"), "{short_state}");
    let above_mask = refused(2, &|r| r["state"][0] = serde_json::json!(10_000));
    assert!(above_mask.contains("line 2") && above_mask.contains("mask id"), "{above_mask}");
    let guesses = refused(4, &|r| {
        r["guesses"].as_array_mut().expect("guesses").push(serde_json::Value::Null);
    });
    assert!(guesses.contains("line 4") && guesses.contains("guesses"), "{guesses}");
    let slot = refused(2, &|r| r["revealed"] = serde_json::json!([1_000_000]));
    assert!(slot.contains("revealed slot"), "{slot}");
    let header_only = Trajectory::parse(&[lines[0].clone(), lines[lines.len() - 1].clone()].join("\n"));
    assert!(header_only.is_err(), "a trajectory without steps is refused");
}

#[test]
fn bad_requests_are_errors() {
    let model = shipped_prime();
    assert!(serde_json::from_str::<GenerationRequest>(r#"{"promt": "typo"}"#).is_err(), "unknown keys are rejected");
    assert!(
        serde_json::from_str::<GenerationRequest>(r#"{"settings": {"stepz": 3}}"#).is_err(),
        "unknown settings are rejected"
    );
    let too_long = GenerationRequest { prompt: Tokens::Text("word ".repeat(400)), ..GenerationRequest::default() };
    let err = Session::new(&model, &too_long, "cpu").expect_err("a prompt longer than L is an error");
    assert!(err.to_string().contains("do not fit"), "{err}");
    let zero_steps = GenerationRequest {
        settings: SamplerSettings { steps: 0, ..SamplerSettings::default() },
        ..GenerationRequest::default()
    };
    assert!(Session::new(&model, &zero_steps, "cpu").is_err());
    let shader = GenerationRequest { executor: prime_core::ExecutorChoice::Shader, ..GenerationRequest::default() };
    let err = Session::new(&model, &shader, "cpu").expect_err("no shaders on the CPU");
    assert!(err.to_string().contains("wgpu"), "{err}");
}

/// The page's `?backend=` values (kept here: the library has no unit-test binary).
#[test]
fn the_page_names_three_backends() {
    use prime_web::backend::BackendChoice;
    assert_eq!(BackendChoice::parse("auto"), Ok(BackendChoice::Auto));
    assert_eq!(BackendChoice::parse("webgpu"), Ok(BackendChoice::WebGpu));
    assert_eq!(BackendChoice::parse("gpu"), Ok(BackendChoice::WebGpu));
    assert_eq!(BackendChoice::parse("cpu"), Ok(BackendChoice::Cpu));
    assert!(BackendChoice::parse("vulkan").unwrap_err().contains("expected auto, webgpu or cpu"));
}

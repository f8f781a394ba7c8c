//! The library's front door: load a model folder, generate with a request, and write the run
//! as a trajectory (the JSON Lines format `prime generate --trajectory` writes and the page
//! replays).
//!
//! ```text
//! cargo run -p prime-core --example generate -- [MODEL_DIR] [TRAJECTORY]
//! ```
//! (defaults: `assets/prime` and `trajectory.jsonl`; run from the repository's root).

use std::io::Write;
use std::path::PathBuf;

use burn::tensor::Device;
use prime_core::model::ModelSource;
use prime_core::output::FileOutput;
use prime_core::trajectory::{Ending, Header, Recorder};
use prime_core::{GenerationRequest, Model, SamplerSettings, Tokens};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "assets/prime".into()));
    let path = PathBuf::from(args.next().unwrap_or_else(|| "trajectory.jsonl".into()));

    // The CPU backend; `prime_core::device::ComputeDevice` picks a GPU where there is one.
    let device = Device::flex();
    let model = Model::load(ModelSource::Dir(&dir), &device, None)?;

    // A text model continues a prompt; an image model starts from the all-masked image.
    let prompt = match model.text() {
        Some(_) => Tokens::Text("It was".into()),
        None => Tokens::default(),
    };
    let request = GenerationRequest {
        prompt,
        settings: SamplerSettings { steps: 64, seed: 7, record_guesses: true, ..SamplerSettings::default() },
        ..GenerationRequest::default()
    };
    let mut run = request.start(&model)?;

    // Header, one record per step, ending; the file appears at its path once whole.
    let mut out = FileOutput::create(&path)?;
    let executor = request.resolve_executor(&model)?.name();
    writeln!(out, "{}", serde_json::to_string(&Header::new(&model, &request, &run, executor, "burn-flex (CPU)"))?)?;
    let mut recorder = Recorder::default();
    while !run.is_done() {
        let event = run.step(&model)?;
        let record = recorder.record(&model, &event, run.stats().last_step_bytes)?;
        writeln!(out, "{}", serde_json::to_string(&record)?)?;
    }
    let ending = Ending::of(&model, &run)?;
    writeln!(out, "{}", serde_json::to_string(&ending)?)?;
    out.commit()?;

    let outcome = &ending.outcome;
    println!("{} steps, NFE {}, {} idle steps → {}", outcome.steps, outcome.nfe, outcome.idle_steps, path.display());
    if let Some(text) = &ending.text {
        println!("{text}");
    }
    Ok(())
}

//! The wasm-bindgen API (wasm32 only): [`Engine`] (a loaded model) and [`Generation`].

use std::cell::RefCell;
use std::rc::Rc;

use prime_core::device::{ComputeDevice, ModelSource};
use prime_core::trajectory::{ModelSummary, Trajectory};
use prime_core::{GenerationRequest, Model, ModelConfig};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::{self, BackendChoice, BackendReport};
use crate::session::Session;
use crate::{golden, kernel_check};

/// Sets up readable panic messages in the browser console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// Checks the contents of a `config.json` before anything else is downloaded.
#[wasm_bindgen]
pub fn check_config(config: &str) -> Result<(), JsValue> {
    ModelConfig::from_json(config).and_then(|c| c.codec()).map(|_| ()).map_err(js_error)
}

/// Reads a trajectory file (JSON Lines) with prime-core's reader — format, version, and every
/// record checked against the header's model — and returns it as one JSON object `{header,
/// steps, ending}` for the page to replay.
#[wasm_bindgen]
pub fn parse_trajectory(text: &str) -> Result<String, JsValue> {
    let trajectory = Trajectory::parse(text).map_err(js_error)?;
    serde_json::to_string(&trajectory).map_err(js_error)
}

struct Loaded {
    model: Model,
    device: ComputeDevice,
}

/// A model loaded on a device.
#[wasm_bindgen]
pub struct Engine {
    loaded: Rc<Loaded>,
}

#[derive(Serialize)]
struct EngineInfo {
    model: ModelSummary,
    device: BackendReport,
    blocking: BlockingReport,
}

/// How the model's large tensors are cut for the device (see `prime_core::binding`).
#[derive(Serialize)]
struct BlockingReport {
    /// The binding limit in bytes (the adapter's, or lower where the page asked); none on the CPU.
    limit: Option<u64>,
    /// Blocks of the output head.
    head_blocks: usize,
    /// Row blocks of one sequence's logits.
    logits_blocks: usize,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a model from the contents of `config.json`, `model.safetensors` and (optionally)
    /// `tokenizer.json`. `backend` is `auto` (WebGPU on a hardware adapter, else the CPU with a
    /// notice), `webgpu` (any WebGPU adapter, software ones included) or `cpu`.
    /// On WebGPU, `max_binding` (bytes) lowers the adapter's largest storage binding that
    /// tensors are cut to (e.g. to keep each buffer small on a device short of memory).
    pub async fn load(
        config: String,
        weights: Vec<u8>,
        tokenizer: Option<Vec<u8>>,
        backend: String,
        max_binding: Option<u32>,
    ) -> Result<Engine, JsValue> {
        let choice = BackendChoice::parse(&backend).map_err(js_error)?;
        let device = backend::open(choice).await;
        let source = ModelSource::Parts { config: &config, weights: &weights, tokenizer: tokenizer.as_deref() };
        let model = device.load_within(source, max_binding.map(u64::from)).map_err(js_error)?;
        Ok(Engine { loaded: Rc::new(Loaded { model, device }) })
    }

    /// The model and the device, as JSON.
    pub fn info(&self) -> Result<String, JsValue> {
        let model = &self.loaded.model;
        let blocking = model.blocking();
        let (head_blocks, logits_blocks) = blocking.block_counts(model.config());
        let info = EngineInfo {
            model: ModelSummary::of(model),
            device: backend::report(&self.loaded.device),
            blocking: BlockingReport { limit: blocking.limit(), head_blocks, logits_blocks },
        };
        serde_json::to_string(&info).map_err(js_error)
    }

    /// Starts a generation; `request` is the JSON of a `prime-core` `GenerationRequest`
    /// (unknown keys are an error; the settings it leaves out are the model's recommended
    /// ones, `info().model.sampling`, else the official defaults).
    pub fn start(&self, request: &str) -> Result<Generation, JsValue> {
        let bad = |e: serde_json::Error| js_error(format!("bad request: {e}"));
        let mut request: serde_json::Value = serde_json::from_str(request).map_err(bad)?;
        self.loaded.model.config().sampling.fill_request(&mut request);
        let request: GenerationRequest = serde_json::from_value(request).map_err(bad)?;
        let device = backend::describe(&self.loaded.device);
        let session = Session::new(&self.loaded.model, &request, &device).map_err(js_error)?;
        Ok(Generation { loaded: self.loaded.clone(), session: Rc::new(RefCell::new(Some(session))) })
    }

    /// Largest |Δ| between this model's logits and the official ones in a golden
    /// `cases.safetensors` (resolves to a number).
    pub fn logits_deviation(&self, cases: Vec<u8>) -> js_sys::Promise {
        let loaded = self.loaded.clone();
        future_to_promise(async move {
            let d = golden::logits_deviation(&loaded.model, &cases).await.map_err(js_error)?;
            Ok(JsValue::from_f64(f64::from(d)))
        })
    }

    /// Runs the WGSL sub-token kernels and their Burn-ops twins on this engine's device with
    /// the same inputs and compares them (resolves to a JSON report; needs WebGPU).
    pub fn check_kernels(&self) -> js_sys::Promise {
        let loaded = self.loaded.clone();
        future_to_promise(async move {
            let report = kernel_check::run(&loaded.device.device).await.map_err(js_error)?;
            serde_json::to_string(&report).map(|s| JsValue::from_str(&s)).map_err(js_error)
        })
    }
}

/// A generation in progress; the worker steps it and forwards each step to the page.
#[wasm_bindgen]
#[derive(Clone)]
pub struct Generation {
    loaded: Rc<Loaded>,
    /// The session, taken out while a step runs (a second step meanwhile is an error, never a
    /// double borrow).
    session: Rc<RefCell<Option<Session>>>,
}

impl Generation {
    async fn next(&self) -> Result<String, JsValue> {
        let mut session = self.session.borrow_mut().take().ok_or_else(|| js_error("a step is already running"))?;
        let step = session.step(&self.loaded.model).await;
        *self.session.borrow_mut() = Some(session);
        serde_json::to_string(&step.map_err(js_error)?).map_err(js_error)
    }
}

#[wasm_bindgen]
impl Generation {
    /// Takes one step; resolves to its record as JSON (see `prime-core`'s `trajectory`).
    pub fn step(&self) -> js_sys::Promise {
        let this = self.clone();
        future_to_promise(async move { this.next().await.map(|json| JsValue::from_str(&json)) })
    }

    /// The trajectory header of this generation, as JSON.
    pub fn header(&self) -> Result<String, JsValue> {
        let session = self.session.borrow();
        let session = session.as_ref().ok_or_else(|| js_error("a step is running"))?;
        serde_json::to_string(session.header()).map_err(js_error)
    }

    /// Whether the final step has been taken (false while a step runs).
    pub fn is_done(&self) -> bool {
        self.session.borrow().as_ref().is_some_and(Session::is_done)
    }
}

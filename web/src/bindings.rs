//! The wasm-bindgen API (wasm32 only): [`Engine`] (a loaded model) and [`Generation`].

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use prime_core::device::ComputeDevice;
use prime_core::{Model, ModelClass, ModelConfig};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::{self, BackendChoice, BackendReport};
use crate::session::{self, Request, Session};
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
struct ModelSummary {
    model_class: ModelClass,
    vocab_size: u32,
    subtokens: usize,
    base: u32,
    mask_id: u32,
    length: usize,
    parameters: usize,
    tokenizer: bool,
}

#[derive(Serialize)]
struct EngineInfo {
    model: ModelSummary,
    device: BackendReport,
}

#[wasm_bindgen]
impl Engine {
    /// Loads a model from the contents of `config.json`, `model.safetensors` and (optionally)
    /// `tokenizer.json`. `backend` is `auto` (WebGPU, else the CPU with a notice) or `cpu`.
    pub async fn load(
        config: String,
        weights: Vec<u8>,
        tokenizer: Option<Vec<u8>>,
        backend: String,
    ) -> Result<Engine, JsValue> {
        let choice = BackendChoice::parse(&backend).map_err(js_error)?;
        let device = backend::open(choice).await;
        let model = Model::from_parts(&config, &weights, tokenizer.as_deref(), &device.device).map_err(js_error)?;
        device.check_logits_fit(model.config()).map_err(js_error)?;
        Ok(Engine { loaded: Rc::new(Loaded { model, device }) })
    }

    /// The model and the device, as JSON.
    pub fn info(&self) -> Result<String, JsValue> {
        let model = &self.loaded.model;
        let config = model.config();
        let info = EngineInfo {
            model: ModelSummary {
                model_class: config.model_class,
                vocab_size: config.vocab_size,
                subtokens: config.subtokens,
                base: model.codec().base(),
                mask_id: model.codec().mask_id(),
                length: config.length,
                parameters: model.parameters(),
                tokenizer: model.text().is_some(),
            },
            device: backend::report(&self.loaded.device),
        };
        serde_json::to_string(&info).map_err(js_error)
    }

    /// Starts a generation; `request` is the JSON of a [`Request`].
    pub fn start(&self, request: &str) -> Result<Generation, JsValue> {
        let request: Request = serde_json::from_str(request).map_err(|e| js_error(format!("bad request: {e}")))?;
        let session = Session::new(&self.loaded.model, &request).map_err(js_error)?;
        Ok(Generation { loaded: self.loaded.clone(), session: Rc::new(RefCell::new(session)), busy: Rc::default() })
    }

    /// Runs a whole generation, calling `on_step` with each step's JSON; `on_step` returning
    /// `false` aborts. Resolves to the final step's JSON, or `null` when aborted.
    pub fn generate(&self, request: &str, on_step: js_sys::Function) -> Result<js_sys::Promise, JsValue> {
        let generation = self.start(request)?;
        Ok(future_to_promise(async move {
            loop {
                let json = generation.next().await?;
                let done = generation.is_done();
                let go_on = on_step.call1(&JsValue::NULL, &JsValue::from_str(&json))?;
                if done {
                    return Ok(JsValue::from_str(&json));
                }
                if go_on == JsValue::FALSE {
                    return Ok(JsValue::NULL);
                }
            }
        }))
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
    session: Rc<RefCell<Session>>,
    busy: Rc<Cell<bool>>,
}

impl Generation {
    async fn next(&self) -> Result<String, JsValue> {
        if self.busy.replace(true) {
            return Err(js_error("a step is already running"));
        }
        let step = session::advance(&self.loaded.model, &self.session).await;
        self.busy.set(false);
        serde_json::to_string(&step.map_err(js_error)?).map_err(js_error)
    }
}

#[wasm_bindgen]
impl Generation {
    /// Takes one step; resolves to its [`StepView`] as JSON.
    pub fn step(&self) -> js_sys::Promise {
        let this = self.clone();
        future_to_promise(async move { this.next().await.map(|json| JsValue::from_str(&json)) })
    }

    /// Whether the final step has been taken.
    pub fn is_done(&self) -> bool {
        self.session.borrow().is_done()
    }
}

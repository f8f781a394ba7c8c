//! A model's own sampling defaults: the settings its `config.json` recommends (key `sampling`),
//! used wherever a request leaves them out. The sampler turns them into settings and checks
//! them (`sampler::defaults`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Settings a model folder recommends in place of the official defaults (T = 256, τ = 1,
/// nucleus and top-k off): e.g. a small demo model that reads better with top-p 0.9. Every
/// field is optional; a request or a flag that names a setting wins over it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingDefaults {
    /// Loop steps T.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Top-k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Classifier-free guidance scale (class-conditioned models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f32>,
}

impl SamplingDefaults {
    /// Whether the model recommends nothing (the official defaults apply).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Fills the settings a generation request (as JSON, before it is parsed) leaves out with
    /// this model's recommendations, so that a request without `top_p` gets the model's top-p.
    /// A value that is not an object, or whose `settings` is not one, is left for the parser
    /// to refuse.
    pub fn fill_request(&self, request: &mut Value) {
        let Value::Object(request) = request else { return };
        let recommended = match serde_json::to_value(self) {
            Ok(Value::Object(map)) if !map.is_empty() => map,
            _ => return,
        };
        let settings = request.entry("settings").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(settings) = settings {
            for (key, value) in recommended {
                settings.entry(key).or_insert(value);
            }
        }
    }
}

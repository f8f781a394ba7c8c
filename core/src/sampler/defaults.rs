//! A model's recommended settings ([`SamplingDefaults`], from its `config.json`) as sampler
//! settings, checked as a request's would be.

use crate::error::{PrimeError, Result};
use crate::recommended::SamplingDefaults;
use crate::sampler::SamplerSettings;

impl SamplingDefaults {
    /// The official defaults with this model's recommendations in their place.
    pub fn settings(&self) -> SamplerSettings {
        let official = SamplerSettings::default();
        SamplerSettings {
            steps: self.steps.unwrap_or(official.steps),
            temperature: self.temperature.unwrap_or(official.temperature),
            top_p: self.top_p.unwrap_or(official.top_p),
            top_k: self.top_k.or(official.top_k),
            guidance: self.guidance.unwrap_or(official.guidance),
            ..official
        }
    }

    /// Checks each recommendation as a request's setting would be checked; the message names
    /// the `sampling` key of `config.json`.
    pub fn validate(&self) -> Result<()> {
        self.settings().validate().map_err(|e| match e {
            PrimeError::Input(m) => PrimeError::Config(format!("sampling: {m}")),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenerationRequest;

    fn recommends() -> SamplingDefaults {
        SamplingDefaults { steps: Some(64), top_p: Some(0.9), ..SamplingDefaults::default() }
    }

    #[test]
    fn a_request_gets_what_it_leaves_out() {
        let mut request = serde_json::json!({ "prompt": [1], "settings": { "steps": 8, "seed": 3 } });
        recommends().fill_request(&mut request);
        let request: GenerationRequest = serde_json::from_value(request).expect("a request");
        assert_eq!(request.settings.steps, 8, "the request's own steps win");
        assert_eq!(request.settings.seed, 3);
        assert_eq!(request.settings.top_p, 0.9, "the model's top-p fills the gap");
        assert_eq!(request.settings.temperature, 1.0, "what neither names stays official");

        let mut bare = serde_json::json!({});
        recommends().fill_request(&mut bare);
        let bare: GenerationRequest = serde_json::from_value(bare).expect("a request");
        assert_eq!(bare.settings, recommends().settings());
        assert_eq!((bare.settings.steps, bare.settings.top_p), (64, 0.9));
    }

    #[test]
    fn nothing_recommended_changes_nothing() {
        let mut request = serde_json::json!({ "settings": { "seed": 1 } });
        let before = request.clone();
        SamplingDefaults::default().fill_request(&mut request);
        assert_eq!(request, before);
        assert_eq!(SamplingDefaults::default().settings(), SamplerSettings::default());
        let mut not_an_object = serde_json::json!([1, 2]);
        recommends().fill_request(&mut not_an_object);
        assert_eq!(not_an_object, serde_json::json!([1, 2]));
    }

    #[test]
    fn bad_recommendations_name_the_key() {
        for (bad, words) in [
            (SamplingDefaults { top_p: Some(1.5), ..SamplingDefaults::default() }, "top-p"),
            (SamplingDefaults { steps: Some(0), ..SamplingDefaults::default() }, "steps"),
            (SamplingDefaults { temperature: Some(-1.0), ..SamplingDefaults::default() }, "temperature"),
            (SamplingDefaults { top_k: Some(0), ..SamplingDefaults::default() }, "top-k"),
        ] {
            let message = bad.validate().expect_err("refused").to_string();
            assert!(message.contains("sampling: ") && message.contains(words), "{message}");
        }
        recommends().validate().expect("valid");
        let unknown = serde_json::from_str::<SamplingDefaults>(r#"{"top_q": 0.9}"#);
        assert!(unknown.is_err(), "an unknown key is refused");
    }
}

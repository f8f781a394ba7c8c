//! Reveal policies: which masked sub-tokens a loop step reveals. The official sampler reveals
//! at random times fixed by the schedule; the adaptive policies decide from the network output
//! of the step, by how sure the model is of each masked digit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{PrimeError, Result};

/// Which masked sub-tokens a loop step reveals. Every adaptive policy also reveals, at loop
/// step k of T, at least ⌈masked / (T − k)⌉ sub-tokens (the surest first), so that the loop
/// ends within its T steps: T is the budget of network calls, the policy spends less of it
/// where the model is sure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevealPolicy {
    /// The schedule's random reveal times (the official sampler; `mode` says how they are
    /// drawn).
    #[default]
    Schedule,
    /// Every masked sub-token whose most likely digit has probability ≥ `threshold` under the
    /// distribution the step draws from (carry-over filtered, temperature-scaled, truncated),
    /// and at least the minimum, most confident first. `threshold` = 1 reveals only what
    /// confidence 1 or the minimum asks for.
    Confidence {
        /// τ in (0, 1].
        threshold: f32,
    },
    /// Masked sub-tokens in order of increasing digit entropy (nats) while their summed
    /// entropy stays ≤ `budget`, and at least the minimum. `budget` = 0 reveals only the
    /// minimum (and sub-tokens of zero entropy).
    Entropy {
        /// γ ≥ 0, in nats.
        budget: f32,
    },
}

/// What an adaptive policy knows of one masked sub-token under the step's network output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DigitScore {
    /// The flat slot (token i, digit j at i·ℓ + j).
    pub slot: u32,
    /// The probability of its most likely digit.
    pub confidence: f32,
    /// The entropy of its digit distribution, in nats.
    pub entropy: f32,
}

impl RevealPolicy {
    /// Whether the policy decides from the network output (not the schedule).
    pub fn is_adaptive(self) -> bool {
        self != Self::Schedule
    }

    /// Rejects parameters outside their domain, naming them.
    pub fn validate(self) -> Result<()> {
        match self {
            Self::Schedule => Ok(()),
            Self::Confidence { threshold } if !(threshold > 0.0 && threshold <= 1.0) => {
                Err(PrimeError::Input(format!("the confidence policy's threshold must be in (0, 1], got {threshold}")))
            }
            Self::Entropy { budget } if !(budget >= 0.0 && budget.is_finite()) => Err(PrimeError::Input(format!(
                "the entropy policy's budget must be a finite number ≥ 0 (nats), got {budget}"
            ))),
            _ => Ok(()),
        }
    }

    /// The slots to reveal, ascending, each with the score that chose it (its confidence or
    /// its entropy): the policy's choice among `scores` (one per masked slot), and at least
    /// `minimum` of them. Ties go to the lower slot.
    pub fn select(self, scores: &[DigitScore], minimum: usize) -> Vec<(u32, f32)> {
        let mut order: Vec<&DigitScore> = scores.iter().collect();
        let (count, value): (usize, fn(&DigitScore) -> f32) = match self {
            Self::Schedule => return Vec::new(),
            Self::Confidence { threshold } => {
                order.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.slot.cmp(&b.slot)));
                (order.iter().take_while(|s| s.confidence >= threshold).count(), |s| s.confidence)
            }
            Self::Entropy { budget } => {
                order.sort_by(|a, b| a.entropy.total_cmp(&b.entropy).then(a.slot.cmp(&b.slot)));
                let mut spent = 0.0f32;
                let within = order
                    .iter()
                    .take_while(|s| {
                        spent += s.entropy.max(0.0);
                        spent <= budget
                    })
                    .count();
                (within, |s| s.entropy)
            }
        };
        let mut chosen: Vec<(u32, f32)> =
            order.iter().take(count.max(minimum).min(order.len())).map(|s| (s.slot, value(s))).collect();
        chosen.sort_by_key(|&(slot, _)| slot);
        chosen
    }
}

/// `schedule`, `confidence:0.9`, `entropy:0.5` (the CLI's and the sweep's form).
impl fmt::Display for RevealPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Schedule => write!(f, "schedule"),
            Self::Confidence { threshold } => write!(f, "confidence:{threshold}"),
            Self::Entropy { budget } => write!(f, "entropy:{budget}"),
        }
    }
}

impl FromStr for RevealPolicy {
    type Err = PrimeError;

    fn from_str(text: &str) -> Result<Self> {
        let (name, value) = text.split_once(':').map_or((text, None), |(n, v)| (n, Some(v)));
        let number = |what: &str| -> Result<f32> {
            let v = value.ok_or_else(|| PrimeError::Input(format!("{name} needs its {what}: {name}:VALUE")))?;
            v.trim().parse().map_err(|_| PrimeError::Input(format!("{name}'s {what} {v:?} is not a number")))
        };
        let policy = match name.trim() {
            "schedule" if value.is_none() => Self::Schedule,
            "confidence" => Self::Confidence { threshold: number("threshold")? },
            "entropy" => Self::Entropy { budget: number("budget")? },
            _ => {
                return Err(PrimeError::Input(format!(
                    "unknown reveal policy {text:?}: schedule, confidence:THRESHOLD or entropy:BUDGET"
                )));
            }
        };
        policy.validate()?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> Vec<DigitScore> {
        [(0, 0.99, 0.05), (1, 0.5, 0.9), (4, 0.95, 0.2), (5, 0.7, 0.6), (7, 0.95, 0.2)]
            .iter()
            .map(|&(slot, confidence, entropy)| DigitScore { slot, confidence, entropy })
            .collect()
    }

    #[test]
    fn confidence_reveals_what_clears_the_threshold_and_at_least_the_minimum() {
        let slots = |p: RevealPolicy, m| p.select(&scores(), m).iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(slots(RevealPolicy::Confidence { threshold: 0.9 }, 1), [0, 4, 7]);
        assert_eq!(slots(RevealPolicy::Confidence { threshold: 0.9 }, 4), [0, 4, 5, 7], "the minimum adds the surest");
        assert_eq!(slots(RevealPolicy::Confidence { threshold: 1.0 }, 1), [0], "τ = 1: only the minimum");
        assert_eq!(slots(RevealPolicy::Confidence { threshold: 0.96 }, 2), [0, 4], "ties go to the lower slot");
        assert_eq!(slots(RevealPolicy::Confidence { threshold: 0.9 }, 9).len(), 5, "never more than there are");
        let chosen = RevealPolicy::Confidence { threshold: 0.9 }.select(&scores(), 1);
        assert_eq!(chosen[0], (0, 0.99), "each with its confidence");
    }

    #[test]
    fn entropy_reveals_the_surest_within_the_budget() {
        let slots = |p: RevealPolicy, m| p.select(&scores(), m).iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(slots(RevealPolicy::Entropy { budget: 0.45 }, 1), [0, 4, 7]);
        assert_eq!(slots(RevealPolicy::Entropy { budget: 0.3 }, 1), [0, 4]);
        assert_eq!(slots(RevealPolicy::Entropy { budget: 0.0 }, 1), [0], "γ = 0: only the minimum");
        assert_eq!(slots(RevealPolicy::Entropy { budget: 100.0 }, 1).len(), 5);
        assert!(RevealPolicy::Schedule.select(&scores(), 3).is_empty());
    }

    #[test]
    fn parses_and_refuses_parameters_by_name() {
        assert_eq!("confidence:0.9".parse::<RevealPolicy>().unwrap(), RevealPolicy::Confidence { threshold: 0.9 });
        assert_eq!("entropy:0".parse::<RevealPolicy>().unwrap(), RevealPolicy::Entropy { budget: 0.0 });
        assert_eq!("schedule".parse::<RevealPolicy>().unwrap(), RevealPolicy::Schedule);
        for p in [
            RevealPolicy::Schedule,
            RevealPolicy::Confidence { threshold: 0.75 },
            RevealPolicy::Entropy { budget: 1.5 },
        ] {
            assert_eq!(p.to_string().parse::<RevealPolicy>().unwrap(), p);
        }
        for (bad, words) in [
            ("confidence:1.5", "threshold"),
            ("confidence:0", "threshold"),
            ("confidence", "threshold"),
            ("entropy:-1", "budget"),
            ("entropy:x", "budget"),
            ("margin:0.1", "unknown reveal policy"),
        ] {
            let message = bad.parse::<RevealPolicy>().expect_err(bad).to_string();
            assert!(message.contains(words), "{bad}: {message}");
        }
        let json: RevealPolicy = serde_json::from_str(r#"{"confidence": {"threshold": 0.8}}"#).unwrap();
        assert_eq!(json, RevealPolicy::Confidence { threshold: 0.8 });
        assert_eq!(serde_json::to_string(&RevealPolicy::Schedule).unwrap(), r#""schedule""#);
    }
}

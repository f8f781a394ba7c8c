//! Training on Burn autodiff with the same network code as inference (feature `train`).
//!
//! The objective is the official one (spec §5.1): mask every sub-token independently with
//! probability (1−ε)t, score the clean token under the carry-over-filtered output, weight by 1/t.
//! Validation reports the marginalised sub-token bound (spec §5.3), a valid upper bound on the
//! NLL, never the joint one the paper first used.

mod corpus;
mod ema;
pub mod head_loss;
mod init;
mod noise;
mod objective;
mod schedule;
mod trainer;

pub use corpus::TokenCorpus;
pub use init::initial_weights;
pub use noise::{NoiseSchedule, NoisedBatch};
pub use objective::{BoundEstimate, Objective, RowTargets, validation_bound};
pub use schedule::LearningRateSchedule;
pub use trainer::{StepTimes, TrainSettings, Trainer};

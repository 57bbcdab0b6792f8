//! The telemetry world simulator and the synthetic prior.
//!
//! The simulator is loopcast's source of truth for counterfactuals: a [`World`] is one
//! simulated service (drawn from a seed), and every [`ActionPlan`] played against it is an
//! exact twin of every other — same demand, same noise, same failures — so the difference
//! between two runs is exactly the effect of the plans. [`sre_episode`] packages that as
//! (history, K plans, K true futures) for training and evaluation. The [`prior`] generates
//! plain telemetry shapes.
//!
//! ```
//! use loopcast_core::Frequency;
//! use loopcast_sim::{ActionPlan, ParamRanges, World};
//!
//! let params = ParamRanges::default().draw(42);
//! let world = World::new(42, params, Frequency::minutes(5), 288).unwrap();
//! let mut scaled = ActionPlan::constant(288, 4);
//! scaled.replicas[144..].fill(8);
//! let twins = world.twins(&[ActionPlan::constant(288, 4), scaled]).unwrap();
//! assert_eq!(twins[0].truth.arrived, twins[1].truth.arrived);
//! assert!(twins[1].truth.utilisation[200] <= twins[0].truth.utilisation[200]);
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

mod downstream;
mod episode;
mod error;
mod params;
mod plan;
pub mod policy;
pub mod prior;
mod rng;
mod world;

pub use downstream::{Downstream, Topology};
pub use episode::{Episode, EpisodeSpec, sre_episode};
pub use error::SimError;
pub use params::{ParamInfo, ParamRanges, Range, Scale, ServiceParams};
pub use plan::ActionPlan;
pub use world::{
    ACTION_CHANNELS, COVARIATE_CHANNELS, Run, TARGET_CHANNELS, TARGETS, Truth, World, channel_specs,
};

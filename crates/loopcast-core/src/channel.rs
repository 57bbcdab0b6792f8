//! Channel roles and per-channel aggregation.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// What a channel is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A channel to forecast (cpu, latency, request rate, ...).
    Target,
    /// A controllable input, known in the future because we choose it (replicas, rate limit, ...).
    Action,
    /// An exogenous input (calendar, planned events, weather, ...).
    Covariate,
}

impl Role {
    /// All roles, in the order channels are laid out in model arrays.
    pub const ALL: [Role; 3] = [Role::Target, Role::Action, Role::Covariate];

    /// The lower-case name used in files, flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Target => "target",
            Role::Action => "action",
            Role::Covariate => "covariate",
        }
    }

    /// The aggregation used when several observations fall into one grid cell and the
    /// mapping does not name one: the last value for actions (a set-point holds until it
    /// changes), the mean for gauges.
    pub fn default_aggregation(self) -> Aggregation {
        match self {
            Role::Action => Aggregation::Last,
            Role::Target | Role::Covariate => Aggregation::Mean,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "target" => Ok(Role::Target),
            "action" => Ok(Role::Action),
            "covariate" => Ok(Role::Covariate),
            other => Err(CoreError::InvalidRole(other.to_string())),
        }
    }
}

/// How observations that fall into the same grid cell are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Arithmetic mean (gauges: cpu, latency, memory).
    Mean,
    /// Sum (counters already expressed per interval: requests, errors).
    Sum,
    /// The value with the latest timestamp (actions, set-points).
    Last,
    /// The maximum (peaks: queue depth, p99 latency).
    Max,
}

impl Aggregation {
    /// The lower-case name used in files and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Sum => "sum",
            Aggregation::Last => "last",
            Aggregation::Max => "max",
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Aggregation {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mean" => Ok(Aggregation::Mean),
            "sum" => Ok(Aggregation::Sum),
            "last" => Ok(Aggregation::Last),
            "max" => Ok(Aggregation::Max),
            other => Err(CoreError::InvalidAggregation(other.to_string())),
        }
    }
}

/// A named channel with its role and how it is regularised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// Channel name as it appears in the data (`cpu_util`, `replicas`, ...).
    pub name: String,
    /// What the channel is to the model.
    pub role: Role,
    /// How observations within one grid cell are combined.
    pub aggregation: Aggregation,
    /// Whether future values are known at forecast time. Always true for actions.
    pub known_future: bool,
}

impl ChannelSpec {
    /// A channel with the defaults of its role: the role's aggregation, and future values
    /// known only for actions.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            aggregation: role.default_aggregation(),
            known_future: role == Role::Action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_text() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("targets".parse::<Role>().is_err());
    }

    #[test]
    fn aggregations_round_trip_through_text() {
        for agg in [Aggregation::Mean, Aggregation::Sum, Aggregation::Last, Aggregation::Max] {
            assert_eq!(agg.as_str().parse::<Aggregation>().unwrap(), agg);
        }
        assert!(matches!(
            "median".parse::<Aggregation>(),
            Err(CoreError::InvalidAggregation(s)) if s == "median"
        ));
    }

    #[test]
    fn actions_default_to_last_and_known_future() {
        let spec = ChannelSpec::new("replicas", Role::Action);
        assert_eq!(spec.aggregation, Aggregation::Last);
        assert!(spec.known_future);
        let spec = ChannelSpec::new("temperature", Role::Covariate);
        assert_eq!(spec.aggregation, Aggregation::Mean);
        assert!(!spec.known_future);
    }
}

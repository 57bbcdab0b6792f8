//! Action plans: what an operator (or a planner) sets at every step.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The actions in force at each step of a run: desired replica count, the service's share
/// of traffic, deploys, and an admission rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionPlan {
    /// Desired replicas at each step (at least 1). Scale-ups become ready after the
    /// service's start-up delay; scale-downs take effect at once.
    pub replicas: Vec<u32>,
    /// Multiplier on the service's nominal demand (1 = its usual share; 0.5 = half of its
    /// traffic moved elsewhere), in `[0, 10]`.
    pub traffic_weight: Vec<f64>,
    /// A deploy starts at this step (new per-request cost, restart, brief error bump).
    pub deploy: Vec<bool>,
    /// Requests per second admitted at most; `None` leaves only the load balancer's
    /// ceiling.
    pub rate_limit_rps: Vec<Option<f64>>,
}

impl ActionPlan {
    /// `len` steps at a fixed replica count, full traffic, no deploy, no rate limit.
    pub fn constant(len: usize, replicas: u32) -> Self {
        Self {
            replicas: vec![replicas; len],
            traffic_weight: vec![1.0; len],
            deploy: vec![false; len],
            rate_limit_rps: vec![None; len],
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether the plan has no steps.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Checks lengths and values; the error names the field and the step.
    pub fn validate(&self) -> Result<(), SimError> {
        let len = self.len();
        for (name, other) in [
            ("traffic_weight", self.traffic_weight.len()),
            ("deploy", self.deploy.len()),
            ("rate_limit_rps", self.rate_limit_rps.len()),
        ] {
            if other != len {
                return Err(SimError::Plan(format!("`{name}` has {other} steps, `replicas` has {len}")));
            }
        }
        if let Some(step) = self.replicas.iter().position(|r| *r == 0) {
            return Err(SimError::Plan(format!("`replicas` is 0 at step {step} (at least 1)")));
        }
        if let Some(step) = self.traffic_weight.iter().position(|w| !(0.0..=10.0).contains(w)) {
            return Err(SimError::Plan(format!(
                "`traffic_weight` is {} at step {step} (expected 0 to 10)",
                self.traffic_weight[step]
            )));
        }
        if let Some(step) =
            self.rate_limit_rps.iter().position(|l| l.is_some_and(|l| !(l.is_finite() && l > 0.0)))
        {
            return Err(SimError::Plan(format!(
                "`rate_limit_rps` is {:?} at step {step} (expected a positive number)",
                self.rate_limit_rps[step]
            )));
        }
        Ok(())
    }

    /// The first step at which the two plans set different actions.
    pub fn first_difference(&self, other: &ActionPlan) -> Option<usize> {
        (0..self.len().max(other.len())).find(|&t| {
            self.replicas.get(t) != other.replicas.get(t)
                || self.traffic_weight.get(t) != other.traffic_weight.get(t)
                || self.deploy.get(t) != other.deploy.get(t)
                || self.rate_limit_rps.get(t) != other.rate_limit_rps.get(t)
        })
    }

    /// Steps `range` of the plan.
    pub fn slice(&self, range: std::ops::Range<usize>) -> ActionPlan {
        ActionPlan {
            replicas: self.replicas[range.clone()].to_vec(),
            traffic_weight: self.traffic_weight[range.clone()].to_vec(),
            deploy: self.deploy[range.clone()].to_vec(),
            rate_limit_rps: self.rate_limit_rps[range].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_field_and_step() {
        let mut plan = ActionPlan::constant(5, 2);
        assert!(plan.validate().is_ok());
        plan.replicas[3] = 0;
        assert!(plan.validate().unwrap_err().to_string().contains("step 3"));
        let mut plan = ActionPlan::constant(5, 2);
        plan.rate_limit_rps[1] = Some(f64::NAN);
        assert!(plan.validate().unwrap_err().to_string().contains("rate_limit_rps"));
        let mut plan = ActionPlan::constant(5, 2);
        plan.deploy.pop();
        assert!(plan.validate().unwrap_err().to_string().contains("deploy"));
    }

    #[test]
    fn first_difference_finds_the_step() {
        let a = ActionPlan::constant(10, 3);
        let mut b = a.clone();
        assert_eq!(a.first_difference(&b), None);
        b.deploy[7] = true;
        assert_eq!(a.first_difference(&b), Some(7));
        assert_eq!(a.slice(2..5).len(), 3);
    }
}

//! The second world, held out from training: the SRE service in front of a shared
//! downstream (a database, a dependency) whose capacity does not grow with the replicas
//! and whose connection pool the replicas contend for.
//!
//! It shares the SRE world's demand, operator, channels and noise, and changes the
//! physics where a model that only learned the SRE world's formulas would go wrong: once
//! the downstream binds, more replicas no longer lower latency or the backlog, and past
//! the pool they raise both (each replica's connections slow the downstream down), while
//! CPU still falls with every replica. `docs/SIMULATOR.md` ("The two-tier world") has the
//! equations.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ServiceParams;
use crate::rng::stream;

/// Which world a simulated service lives in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// The SRE world (`sre`): the replicas are the service's only capacity. Training
    /// draws from it.
    #[default]
    #[serde(rename = "sre")]
    Single,
    /// The two-tier world (`two-tier`): the replicas call a [`Downstream`] of fixed
    /// capacity. Never trained on.
    TwoTier,
}

impl Topology {
    /// The name in flags and reports (`sre`, `two-tier`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "sre",
            Self::TwoTier => "two-tier",
        }
    }
}

impl std::str::FromStr for Topology {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sre" => Ok(Self::Single),
            "two-tier" => Ok(Self::TwoTier),
            other => Err(format!("unknown world `{other}`: expected `sre` or `two-tier`")),
        }
    }
}

/// The downstream of a two-tier service, drawn from the service's seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Downstream {
    /// Requests per second the downstream serves without contention: 0.6–1.6 times the
    /// service's mean daily peak (log-uniform), so at many peaks it binds before the
    /// replicas do.
    pub capacity_rps: f64,
    /// Time a request spends in the idle downstream, ms (2–40, log-uniform).
    pub service_ms: f64,
    /// Ready replicas the connection pool serves without contention: 1–2.5 times the
    /// replicas that serve the mean daily peak at full CPU.
    pub pool_replicas: f64,
    /// Share of capacity lost per pool's worth of replicas beyond the pool (0.2–0.8).
    pub contention: f64,
}

impl Downstream {
    /// The downstream of the service `params` drawn with `seed`, from streams of its own
    /// (the SRE world's draws are unchanged).
    pub fn draw(seed: u64, params: &ServiceParams) -> Self {
        let uniform = |name: &str, lo: f64, hi: f64| lo + stream(seed, name).random::<f64>() * (hi - lo);
        let log_uniform = |name: &str, lo: f64, hi: f64| uniform(name, f64::ln(lo), f64::ln(hi)).exp();
        let peak_replicas = params.peak_rps() / params.replica_capacity_rps();
        Self {
            capacity_rps: log_uniform("downstream/capacity", 0.6, 1.6) * params.peak_rps(),
            service_ms: log_uniform("downstream/service-ms", 2.0, 40.0),
            pool_replicas: (uniform("downstream/pool", 1.0, 2.5) * peak_replicas).max(1.0),
            contention: uniform("downstream/contention", 0.2, 0.8),
        }
    }

    /// Requests per second the downstream serves while `replicas` front replicas are
    /// ready: `capacity / (1 + contention · max(0, replicas / pool − 1))`.
    pub fn capacity_with(&self, replicas: f64) -> f64 {
        self.capacity_rps / (1.0 + self.contention * (replicas / self.pool_replicas - 1.0).max(0.0))
    }

    /// The downstream's servers (concurrent requests at full speed) at capacity
    /// `capacity_rps`: Little's law, capacity times service time, at least 1.
    pub fn servers(&self, capacity_rps: f64) -> f64 {
        (capacity_rps * self.service_ms / 1000.0).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamRanges;

    #[test]
    fn draws_lie_in_their_ranges_and_the_pool_contends_past_its_size() {
        for seed in 0..50 {
            let params = ParamRanges::default().draw(seed);
            let d = Downstream::draw(seed, &params);
            let ratio = d.capacity_rps / params.peak_rps();
            assert!((0.6..=1.6).contains(&ratio), "seed {seed}: capacity ratio {ratio}");
            assert!((2.0..=40.0).contains(&d.service_ms) && (0.2..=0.8).contains(&d.contention));
            assert_eq!(d, Downstream::draw(seed, &params));
            assert_eq!(d.capacity_with(d.pool_replicas * 0.5), d.capacity_rps);
            let twice = d.capacity_with(d.pool_replicas * 2.0);
            assert!((twice - d.capacity_rps / (1.0 + d.contention)).abs() < 1e-9);
        }
        assert_eq!("two-tier".parse::<Topology>(), Ok(Topology::TwoTier));
        assert!("three-tier".parse::<Topology>().unwrap_err().contains("two-tier"));
    }
}

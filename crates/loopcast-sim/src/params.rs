//! Parameters of a simulated service, the ranges they are drawn from, and the TOML file
//! that pins or narrows any of them.

use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::rng::stream;

/// A parameter's range: one value (pinned) or an interval `[lo, hi]` to draw from.
///
/// In TOML: `base_rps = 400` pins, `base_rps = [100, 800]` narrows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Range {
    /// Always this value.
    Fixed(f64),
    /// Drawn from `[lo, hi]`, uniformly or log-uniformly depending on the parameter.
    Between([f64; 2]),
}

/// How a parameter is drawn from its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Uniform in the value.
    Linear,
    /// Uniform in the logarithm (for quantities spanning orders of magnitude).
    Log,
}

/// One row of the parameter table (for docs and `--help`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamInfo {
    /// Field name, as in the TOML file.
    pub name: &'static str,
    /// Default lower bound.
    pub low: f64,
    /// Default upper bound.
    pub high: f64,
    /// How it is drawn.
    pub scale: Scale,
    /// Unit, empty for ratios.
    pub unit: &'static str,
    /// What it means.
    pub doc: &'static str,
}

impl Range {
    fn bounds(self) -> (f64, f64) {
        match self {
            Range::Fixed(v) => (v, v),
            Range::Between([lo, hi]) => (lo, hi),
        }
    }

    fn draw(self, rng: &mut impl Rng, scale: Scale) -> f64 {
        let (lo, hi) = self.bounds();
        if lo == hi {
            return lo;
        }
        let u: f64 = rng.random();
        match scale {
            Scale::Linear => lo + u * (hi - lo),
            Scale::Log => (lo.ln() + u * (hi.ln() - lo.ln())).exp(),
        }
    }
}

macro_rules! service_params {
    ($( $(#[doc = $doc:literal])+ $name:ident : [$lo:expr, $hi:expr], $scale:ident, $unit:literal; )*) => {
        /// The parameters of one simulated service. Each seed draws a different service
        /// from [`ParamRanges`]; see `docs/SIMULATOR.md` for the equations they enter.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct ServiceParams {
            $( $(#[doc = $doc])+ pub $name: f64, )*
        }

        /// The ranges service parameters are drawn from. Every field defaults to the
        /// documented range; a TOML file can pin (`x = 1.0`) or narrow (`x = [a, b]`) any
        /// of them.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ParamRanges {
            $( $(#[doc = $doc])+ pub $name: Range, )*
        }

        impl Default for ParamRanges {
            fn default() -> Self {
                Self { $( $name: Range::Between([$lo, $hi]), )* }
            }
        }

        impl ParamRanges {
            /// Draws the service of `seed`. Each parameter has its own random stream, so
            /// pinning one leaves the draws of all the others unchanged.
            pub fn draw(&self, seed: u64) -> ServiceParams {
                ServiceParams {
                    $( $name: self.$name.draw(&mut stream(seed, concat!("param/", stringify!($name))), Scale::$scale), )*
                }
            }

            /// The table of parameters with their default ranges.
            pub fn table() -> Vec<ParamInfo> {
                vec![ $( ParamInfo {
                    name: stringify!($name),
                    low: $lo,
                    high: $hi,
                    scale: Scale::$scale,
                    unit: $unit,
                    doc: concat!($($doc),+).trim_ascii(),
                }, )* ]
            }

            fn named(&self) -> Vec<(&'static str, Range, Scale)> {
                vec![ $( (stringify!($name), self.$name, Scale::$scale), )* ]
            }
        }
    };
}

service_params! {
    /// Mean demand over a day, before seasonality and trend.
    base_rps: [20.0, 5000.0], Log, "req/s";
    /// Relative amplitude of the daily cycle.
    daily_amplitude: [0.1, 0.7], Linear, "";
    /// Hour of the daily demand peak.
    peak_hour: [9.0, 21.0], Linear, "h UTC";
    /// Demand multiplier on Saturdays and Sundays.
    weekend_factor: [0.5, 1.05], Linear, "";
    /// Relative demand growth per week (negative: decline).
    trend_per_week: [-0.03, 0.08], Linear, "";
    /// Coefficient of variation of the slow multiplicative demand noise.
    noise_cv: [0.02, 0.12], Linear, "";
    /// Correlation time of the demand noise (AR(1)).
    noise_corr_minutes: [5.0, 120.0], Log, "min";
    /// Expected demand bursts per day.
    bursts_per_day: [0.0, 4.0], Linear, "";
    /// Peak extra demand of a burst, relative to the current level.
    burst_size: [0.2, 1.5], Linear, "";
    /// Decay time of a burst.
    burst_minutes: [5.0, 60.0], Log, "min";
    /// Probability that a day is a holiday.
    holiday_prob: [0.0, 0.05], Linear, "";
    /// Demand multiplier on a holiday.
    holiday_factor: [0.3, 0.8], Linear, "";
    /// Expected flash crowds per week.
    flash_crowds_per_week: [0.0, 1.0], Linear, "";
    /// Peak demand multiplier of a flash crowd.
    flash_crowd_size: [1.5, 4.0], Linear, "";
    /// Duration of a flash crowd.
    flash_crowd_minutes: [20.0, 180.0], Log, "min";
    /// CPU time per request.
    cpu_ms_per_request: [2.0, 40.0], Log, "ms";
    /// CPU cores per replica.
    cores_per_replica: [1.0, 4.0], Linear, "cores";
    /// Non-CPU service time per request (I/O, downstream calls).
    io_ms_per_request: [5.0, 100.0], Log, "ms";
    /// Time a new replica takes to become ready.
    startup_seconds: [30.0, 600.0], Log, "s";
    /// Age after which a waiting request is dropped (its client gave up or its TTL expired).
    queue_ttl_minutes: [5.0, 120.0], Log, "min";
    /// Share of served requests that fail when nothing is wrong.
    base_error_rate: [0.0002, 0.01], Log, "";
    /// CPU utilisation of an idle replica.
    idle_cpu: [0.02, 0.1], Linear, "";
    /// Resident memory of a fresh replica.
    memory_base_mb: [200.0, 2000.0], Log, "MiB";
    /// Memory leaked per hour since the last restart.
    memory_leak_mb_per_hour: [0.0, 40.0], Linear, "MiB/h";
    /// Memory limit as a multiple of `memory_base_mb`; reaching it restarts a replica.
    memory_limit_factor: [1.5, 3.0], Linear, "";
    /// Standard deviation of the log per-request cost of each deployed version, around the base.
    deploy_cost_spread: [0.0, 0.3], Linear, "";
    /// Extra error rate right after a deploy (decays with a 15 min time constant).
    deploy_error_rate: [0.0, 0.05], Linear, "";
    /// Coefficient of variation of measurement noise on the observed gauges.
    measurement_noise: [0.005, 0.05], Linear, "";
    /// Probability that one channel's scrape is missing at a step.
    scrape_miss_prob: [0.0, 0.03], Linear, "";
    /// Expected scraper outages per day (every channel missing).
    scrape_outages_per_day: [0.0, 1.0], Linear, "";
    /// Duration of a scraper outage.
    scrape_outage_minutes: [5.0, 60.0], Log, "min";
    /// Admission ceiling of the load balancer when no rate limit is set, as a multiple
    /// of the mean daily peak demand.
    lb_ceiling_factor: [3.0, 10.0], Linear, "";
}

impl ParamRanges {
    /// Reads ranges from a TOML file; absent fields keep their defaults.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, SimError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| SimError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses ranges from TOML text and checks them.
    pub fn from_toml_str(text: &str) -> Result<Self, SimError> {
        let ranges: Self = toml::from_str(text).map_err(|e| SimError::Config(e.to_string()))?;
        ranges.validate()?;
        Ok(ranges)
    }

    /// Checks that every range is finite, ordered, and positive where drawn on a log scale.
    pub fn validate(&self) -> Result<(), SimError> {
        for (name, range, scale) in self.named() {
            let (lo, hi) = range.bounds();
            if !lo.is_finite() || !hi.is_finite() || lo > hi {
                return Err(SimError::Config(format!("parameter `{name}`: invalid range [{lo}, {hi}]")));
            }
            if scale == Scale::Log && lo <= 0.0 {
                return Err(SimError::Config(format!(
                    "parameter `{name}`: must be positive (drawn on a log scale), got {lo}"
                )));
            }
            if name == "trend_per_week" {
                if lo <= -1.0 {
                    return Err(SimError::Config(format!("parameter `{name}`: must be above -1, got {lo}")));
                }
            } else if lo < 0.0 {
                return Err(SimError::Config(format!("parameter `{name}`: must not be negative, got {lo}")));
            }
            if name.ends_with("_prob") && hi > 1.0 {
                return Err(SimError::Config(format!("parameter `{name}`: a probability, got {hi}")));
            }
        }
        Ok(())
    }
}

impl ServiceParams {
    /// Requests per second one replica serves at full CPU, at the base per-request cost.
    pub fn replica_capacity_rps(&self) -> f64 {
        self.cores_per_replica * 1000.0 / self.cpu_ms_per_request
    }

    /// Mean daily peak demand, before trend, bursts and noise.
    pub fn peak_rps(&self) -> f64 {
        self.base_rps * (1.0 + self.daily_amplitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lie_in_their_ranges_and_depend_on_the_seed() {
        let ranges = ParamRanges::default();
        let a = ranges.draw(1);
        let b = ranges.draw(2);
        assert_ne!(a, b);
        assert_eq!(a, ranges.draw(1));
        let values = serde_json::to_value(&a).unwrap();
        for info in ParamRanges::table() {
            let v = values[info.name].as_f64().unwrap();
            assert!(v >= info.low && v <= info.high, "{}: {v}", info.name);
        }
    }

    #[test]
    fn pinning_one_parameter_keeps_the_others() {
        let ranges = ParamRanges::from_toml_str("base_rps = 400\ncpu_ms_per_request = [10, 20]").unwrap();
        let pinned = ranges.draw(5);
        let free = ParamRanges::default().draw(5);
        assert_eq!(pinned.base_rps, 400.0);
        assert!((10.0..=20.0).contains(&pinned.cpu_ms_per_request));
        assert_eq!(pinned.daily_amplitude, free.daily_amplitude);
        assert_eq!(pinned.startup_seconds, free.startup_seconds);
    }

    #[test]
    fn bad_config_names_the_parameter() {
        let err = ParamRanges::from_toml_str("base_rps = [10, 1]").unwrap_err();
        assert!(err.to_string().contains("base_rps"), "{err}");
        let err = ParamRanges::from_toml_str("cpu_ms_per_request = 0").unwrap_err();
        assert!(err.to_string().contains("cpu_ms_per_request"), "{err}");
        let err = ParamRanges::from_toml_str("replicaz = 3").unwrap_err();
        assert!(err.to_string().contains("replicaz"), "{err}");
    }
}

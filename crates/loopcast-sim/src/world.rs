//! The SRE service world: demand, replicas, a FIFO backlog, queueing latency, errors,
//! memory, deploys and scrapes, stepped at a fixed frequency.
//!
//! A [`World`] is one service (a seed and its [`ServiceParams`]) over a fixed window of
//! time. Everything that does not depend on the actions — demand, bursts, holidays,
//! measurement noise, dropped scrapes — is drawn once when the world is built; each
//! [`World::run`] then plays one [`ActionPlan`] against it. Runs of one world are exact
//! counterfactual twins. The equations are in `docs/SIMULATOR.md`.

use std::collections::VecDeque;
use std::f64::consts::PI;

use loopcast_core::{Aggregation, ChannelSpec, ChannelValues, Frequency, RegularSeries, Role};
use rand::Rng;
use rand_distr::{Distribution, Exp, StandardNormal};

use crate::rng::{stream, stream_at};
use crate::{ActionPlan, Downstream, ServiceParams, SimError, Topology};

const MICROS_PER_SECOND: f64 = 1e6;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// 2024-01-01T00:00:00Z, the earliest start a seed draws.
const EPOCH_2024_MICROS: i64 = 1_704_067_200_000_000;
/// Utilisation at which the queueing formula is capped (overload shows up as backlog).
const RHO_CAP: f64 = 0.98;
/// Time constant of the error bump after a deploy, in minutes.
const DEPLOY_ERROR_MINUTES: f64 = 15.0;

/// Observed target channels, in the order of the series' channels.
pub const TARGET_CHANNELS: [&str; 7] =
    ["rps", "cpu_util", "latency_p50_ms", "latency_p95_ms", "error_rate", "queue_depth", "memory_mb"];
/// Action channels.
pub const ACTION_CHANNELS: [&str; 4] = ["replicas", "traffic_weight", "deploy", "rate_limit_rps"];
/// Calendar covariates (known in the future).
pub const COVARIATE_CHANNELS: [&str; 3] = ["hour_of_day", "day_of_week", "holiday"];

/// Number of observed target channels.
pub const TARGETS: usize = TARGET_CHANNELS.len();

/// The channel specs of the SRE world's series: targets, actions, covariates.
pub fn channel_specs() -> Vec<ChannelSpec> {
    let spec = |name: &str, role: Role, aggregation: Aggregation| ChannelSpec {
        aggregation,
        known_future: role != Role::Target,
        ..ChannelSpec::new(name, role)
    };
    vec![
        spec("rps", Role::Target, Aggregation::Mean),
        spec("cpu_util", Role::Target, Aggregation::Mean),
        spec("latency_p50_ms", Role::Target, Aggregation::Mean),
        spec("latency_p95_ms", Role::Target, Aggregation::Max),
        spec("error_rate", Role::Target, Aggregation::Mean),
        spec("queue_depth", Role::Target, Aggregation::Max),
        spec("memory_mb", Role::Target, Aggregation::Mean),
        spec("replicas", Role::Action, Aggregation::Last),
        spec("traffic_weight", Role::Action, Aggregation::Last),
        spec("deploy", Role::Action, Aggregation::Max),
        spec("rate_limit_rps", Role::Action, Aggregation::Last),
        spec("hour_of_day", Role::Covariate, Aggregation::Last),
        spec("day_of_week", Role::Covariate, Aggregation::Last),
        spec("holiday", Role::Covariate, Aggregation::Max),
    ]
}

/// What does not depend on the actions: drawn once per world, shared by all its runs.
#[derive(Debug, Clone)]
struct Exogenous {
    /// Nominal demand at traffic weight 1, requests per second.
    demand_rps: Vec<f64>,
    /// Whether the step falls on a holiday.
    holiday: Vec<bool>,
    /// Hour of day (UTC, fractional) and day of week (0 = Monday).
    hour: Vec<f64>,
    weekday: Vec<u8>,
    /// Standard normal measurement noise per target channel.
    noise: Vec<[f64; TARGETS]>,
    /// Whether each target channel's scrape arrived.
    scraped: Vec<[bool; TARGETS]>,
    /// Whether a flash crowd is under way at the step.
    flash_crowd: Vec<bool>,
}

/// The unobserved state of a run, step by step (noise-free, nothing missing): what the
/// tests and the evaluation compare against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// Requests that arrived at the service in the step.
    pub arrived: Vec<f64>,
    /// Admission limit in force, requests per second: the plan's rate limit, capped by the
    /// load balancer's ceiling (the ceiling alone when the plan sets none).
    pub limit_rps: Vec<f64>,
    /// Requests let in by the rate limit / load balancer ceiling.
    pub admitted: Vec<f64>,
    /// Requests served.
    pub served: Vec<f64>,
    /// Requests shed: refused by the rate limit, or dropped after waiting past the TTL.
    pub shed: Vec<f64>,
    /// Requests waiting at the end of the step.
    pub backlog: Vec<f64>,
    /// Requests that left the backlog (served or dropped) in the step.
    pub departed: Vec<f64>,
    /// Sum over departing requests of the whole steps each spent in the backlog.
    pub departed_wait_steps: Vec<f64>,
    /// Replicas ready and not restarting (fractional while one restarts).
    pub effective_replicas: Vec<f64>,
    /// Requests per second the service can serve: the ready replicas' capacity, or in a
    /// two-tier world the downstream's where that is lower.
    pub capacity_rps: Vec<f64>,
    /// Busy share of the ready replicas' CPU, `served` over what the replicas alone could
    /// serve, in `[0, 1]`.
    pub utilisation: Vec<f64>,
    /// Mean response time of a request arriving now, in ms.
    pub mean_latency_ms: Vec<f64>,
    /// Median response time, ms.
    pub latency_p50_ms: Vec<f64>,
    /// 95th percentile response time, ms.
    pub latency_p95_ms: Vec<f64>,
    /// CPU utilisation including the idle floor, in `[0, 1]`.
    pub cpu_util: Vec<f64>,
    /// Failed or shed requests over arrived requests.
    pub error_rate: Vec<f64>,
    /// Requests waiting: the backlog plus those queued at the servers.
    pub queue_depth: Vec<f64>,
    /// Resident memory per replica (leak plus working set), MiB.
    pub memory_mb: Vec<f64>,
    /// Whether a replica restarted (out of memory) at this step.
    pub oom_restart: Vec<bool>,
    /// Whether a flash crowd (a sudden wave of demand) is under way: incidents that
    /// anomaly detection is scored on, with the restarts above and deploys.
    pub flash_crowd: Vec<bool>,
}

/// One run of a plan: the observed series (with noise and dropped scrapes) and the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Observed telemetry: targets with measurement noise and masks, actions and calendar.
    pub series: RegularSeries,
    /// The noise-free state behind it.
    pub truth: Truth,
}

/// One simulated service over a window of time.
#[derive(Debug, Clone)]
pub struct World {
    seed: u64,
    params: ServiceParams,
    frequency: Frequency,
    first_cell: i64,
    step_seconds: f64,
    exogenous: Exogenous,
    redraw: Option<Redraw>,
    /// The shared downstream of a two-tier service (`None`: the SRE world's one tier).
    downstream: Option<Downstream>,
}

/// Where a world's future is drawn again ([`World::redrawn`]): from step `from` on, the
/// unforeseeable randomness comes from the streams of `seed` instead of the world's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Redraw {
    from: usize,
    seed: u64,
}

impl World {
    /// The service of `seed` with `params`, over `length` steps of `frequency` (a fixed
    /// step from 10 s to 1 h), starting on a day of 2024 drawn from the seed.
    pub fn new(
        seed: u64,
        params: ServiceParams,
        frequency: Frequency,
        length: usize,
    ) -> Result<Self, SimError> {
        let day = stream(seed, "start-day").random_range(0..365i64);
        let start = EPOCH_2024_MICROS + day * (SECONDS_PER_DAY * MICROS_PER_SECOND) as i64;
        Self::starting_at(seed, params, frequency, length, frequency.cell(start))
    }

    /// Like [`World::new`] with the first grid cell given.
    pub fn starting_at(
        seed: u64,
        params: ServiceParams,
        frequency: Frequency,
        length: usize,
        first_cell: i64,
    ) -> Result<Self, SimError> {
        let step_seconds = match frequency {
            Frequency::Fixed(micros) if (10_000_000..=3_600_000_000).contains(&micros) => {
                micros as f64 / MICROS_PER_SECOND
            }
            other => {
                return Err(SimError::Frequency(format!("the SRE world steps at 10s to 1h, not `{other}`")));
            }
        };
        if length == 0 {
            return Err(SimError::Length("a world needs at least one step".into()));
        }
        let exogenous = Exogenous::draw(seed, &params, frequency, first_cell, length, step_seconds, None);
        Ok(Self {
            seed,
            params,
            frequency,
            first_cell,
            step_seconds,
            exogenous,
            redraw: None,
            downstream: None,
        })
    }

    /// The same service with its future from step `from` on drawn again (draw number
    /// `draw`): everything up to `from` is as in this world, and so is what is known in
    /// advance (the calendar, holidays, which scrapes arrive), but the demand noise, bursts,
    /// flash crowds, measurement noise and the cost of any version deployed from `from` on
    /// are new draws, continuing the state the history left (the demand noise's AR(1)
    /// level, a burst still decaying, a flash crowd under way). Runs of the same plans in
    /// many redrawn worlds are what a forecaster that knew the service exactly, but not its
    /// future, could expect.
    pub fn redrawn(&self, from: usize, draw: u64) -> Self {
        let redraw = Redraw { from, seed: stream_at(self.seed, "redraw", draw).random() };
        let exogenous = Exogenous::draw(
            self.seed,
            &self.params,
            self.frequency,
            self.first_cell,
            self.len(),
            self.step_seconds,
            Some(redraw),
        );
        Self { exogenous, redraw: Some(redraw), ..self.clone() }
    }

    /// The same service in `topology`: for [`Topology::TwoTier`], in front of a
    /// [`Downstream`] drawn from the seed (the demand, noise and scrapes stay the same).
    pub fn with_topology(self, topology: Topology) -> Self {
        let downstream = match topology {
            Topology::Single => None,
            Topology::TwoTier => Some(Downstream::draw(self.seed, &self.params)),
        };
        Self { downstream, ..self }
    }

    /// The world the service lives in.
    pub fn topology(&self) -> Topology {
        if self.downstream.is_some() { Topology::TwoTier } else { Topology::Single }
    }

    /// The downstream of a two-tier service.
    pub fn downstream(&self) -> Option<&Downstream> {
        self.downstream.as_ref()
    }

    /// The service's parameters.
    pub fn params(&self) -> &ServiceParams {
        &self.params
    }

    /// The seed the world was drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.exogenous.demand_rps.len()
    }

    /// Whether the world has no steps (never: construction requires one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The grid step.
    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// Seconds per step.
    pub fn step_seconds(&self) -> f64 {
        self.step_seconds
    }

    /// Nominal demand (traffic weight 1) at each step, requests per second.
    pub fn demand_rps(&self) -> &[f64] {
        &self.exogenous.demand_rps
    }

    /// Which target scrapes arrived, per step, in the order of [`TARGET_CHANNELS`]: the
    /// observation masks of every run of this world.
    pub fn scraped(&self) -> &[[bool; TARGETS]] {
        &self.exogenous.scraped
    }

    /// Per-request cost, relative to the service's base, of the version a deploy at step
    /// `t` brings: each version has its own cost around the base, drawn from the step.
    fn deploy_cost_factor(&self, t: usize) -> f64 {
        let seed = match self.redraw {
            Some(redraw) if t >= redraw.from => redraw.seed,
            _ => self.seed,
        };
        let z: f64 = stream_at(seed, "deploy-cost", t as u64).sample(StandardNormal);
        (self.params.deploy_cost_spread * z).exp()
    }

    /// Per-request cost factor in force at each step when deploys happen at `deploy`.
    pub fn cost_factors(&self, deploy: &[bool]) -> Vec<f64> {
        let mut factor = 1.0;
        deploy
            .iter()
            .enumerate()
            .map(|(t, d)| {
                if *d {
                    factor = self.deploy_cost_factor(t);
                }
                factor
            })
            .collect()
    }

    /// Steps a new replica takes to become ready.
    pub fn startup_steps(&self) -> usize {
        (self.params.startup_seconds / self.step_seconds).ceil() as usize
    }

    /// Plays `plan` (one action per step of the world) and returns what would be observed
    /// and the state behind it.
    pub fn run(&self, plan: &ActionPlan) -> Result<Run, SimError> {
        plan.validate()?;
        if plan.len() != self.len() {
            return Err(SimError::Plan(format!(
                "the plan has {} steps, the world {}",
                plan.len(),
                self.len()
            )));
        }
        let truth = self.step_all(plan);
        let series = self.observe(plan, &truth);
        Ok(Run { series, truth })
    }

    /// Plays every plan against the same world: counterfactual twins, identical up to the
    /// first step where their plans differ.
    pub fn twins(&self, plans: &[ActionPlan]) -> Result<Vec<Run>, SimError> {
        plans.iter().map(|plan| self.run(plan)).collect()
    }

    fn step_all(&self, plan: &ActionPlan) -> Truth {
        let p = &self.params;
        let dt = self.step_seconds;
        let dt_hours = dt / 3600.0;
        let delay = self.startup_steps();
        let ttl_seconds = p.queue_ttl_minutes * 60.0;
        let ceiling_rps = p.lb_ceiling_factor * p.peak_rps();
        let memory_limit = p.memory_base_mb * p.memory_limit_factor;

        let mut truth = Truth::default();
        let mut queue: VecDeque<(usize, f64)> = VecDeque::new();
        let cost_factors = self.cost_factors(&plan.deploy);
        let mut memory_age_hours = 0.0;
        let mut restart_countdown = 0usize;
        let mut minutes_since_deploy = f64::INFINITY;

        for (t, cost_factor) in cost_factors.into_iter().enumerate() {
            // Actions.
            let arrived = self.exogenous.demand_rps[t] * plan.traffic_weight[t] * dt;
            let limit = plan.rate_limit_rps[t].unwrap_or(ceiling_rps).min(ceiling_rps);
            let admitted = arrived.min(limit * dt);
            let refused = arrived - admitted;
            // A replica requested at step s is ready from step s + delay; scale-downs are
            // immediate, so the ready count is the smallest request over the delay window.
            let ready = plan.replicas[t.saturating_sub(delay)..=t].iter().min().copied().unwrap_or(1);

            // Deploys and memory.
            let mut oom = false;
            if plan.deploy[t] {
                memory_age_hours = 0.0;
                restart_countdown = delay.max(1);
                minutes_since_deploy = 0.0;
            } else if p.memory_base_mb + p.memory_leak_mb_per_hour * memory_age_hours >= memory_limit {
                oom = true;
                memory_age_hours = 0.0;
                restart_countdown = delay.max(1);
            }
            let memory = p.memory_base_mb + p.memory_leak_mb_per_hour * memory_age_hours;
            // While a replica restarts it serves nothing; a single replica is half-there
            // (requests retried onto the new one), so more replicas never serve less.
            let ready = f64::from(ready);
            let effective = if restart_countdown > 0 { ready - (ready / 2.0).min(1.0) } else { ready };
            let cpu_ms = p.cpu_ms_per_request * cost_factor;
            let replica_rps = effective * p.cores_per_replica * 1000.0 / cpu_ms;
            // Two tiers: every request also passes the downstream, whose capacity the
            // replicas do not raise (and lower past its pool).
            let downstream_rps = self.downstream.map(|d| d.capacity_with(effective));
            let capacity_rps = downstream_rps.map_or(replica_rps, |d| d.min(replica_rps));
            let capacity = capacity_rps * dt;

            // FIFO backlog: serve the oldest first, then drop what would outlive the TTL.
            queue.push_back((t, admitted));
            let (mut served, mut dropped, mut wait_steps) = (0.0, 0.0, 0.0);
            let mut budget = capacity;
            while budget > 0.0 {
                let Some(front) = queue.front_mut() else { break };
                let take = front.1.min(budget);
                served += take;
                wait_steps += take * (t - front.0) as f64;
                budget -= take;
                front.1 -= take;
                if front.1 <= 0.0 {
                    queue.pop_front();
                }
            }
            while let Some(&(arrival, count)) = queue.front() {
                if (t + 1 - arrival) as f64 * dt <= ttl_seconds {
                    break;
                }
                dropped += count;
                wait_steps += count * (t - arrival) as f64;
                queue.pop_front();
            }
            let backlog: f64 = queue.iter().map(|c| c.1).sum();

            // Queueing latency: an M/M/c wait (Sakasegawa's approximation) for the servers
            // plus the time to drain the backlog ahead of a new request.
            let utilisation = if replica_rps > 0.0 { (served / (replica_rps * dt)).min(1.0) } else { 1.0 };
            let servers = (effective * p.cores_per_replica).max(1.0);
            let mut wait_ms = queue_wait_ms(cpu_ms, servers, utilisation);
            let drain_seconds =
                if capacity_rps > 0.0 { (backlog / capacity_rps).min(ttl_seconds) } else { ttl_seconds };
            let mut service_ms = cpu_ms + p.io_ms_per_request;
            if let (Some(d), Some(rps)) = (&self.downstream, downstream_rps) {
                let busy = if rps > 0.0 { (served / (rps * dt)).min(1.0) } else { 1.0 };
                wait_ms += queue_wait_ms(d.service_ms, d.servers(rps), busy);
                service_ms += d.service_ms;
            }

            let deploy_errors = p.deploy_error_rate * (-minutes_since_deploy / DEPLOY_ERROR_MINUTES).exp();
            let errors = refused + dropped + served * (p.base_error_rate + deploy_errors);

            truth.arrived.push(arrived);
            truth.limit_rps.push(limit);
            truth.admitted.push(admitted);
            truth.served.push(served);
            truth.shed.push(refused + dropped);
            truth.backlog.push(backlog);
            truth.departed.push(served + dropped);
            truth.departed_wait_steps.push(wait_steps);
            truth.effective_replicas.push(effective);
            truth.capacity_rps.push(capacity_rps);
            truth.utilisation.push(utilisation);
            truth.mean_latency_ms.push(service_ms + wait_ms + drain_seconds * 1000.0);
            truth
                .latency_p50_ms
                .push(0.9 * service_ms + std::f64::consts::LN_2 * wait_ms + drain_seconds * 1000.0);
            truth.latency_p95_ms.push(1.6 * service_ms + 3.0 * wait_ms + drain_seconds * 1000.0);
            truth.cpu_util.push(p.idle_cpu + (1.0 - p.idle_cpu) * utilisation);
            truth.error_rate.push(if arrived > 0.0 { (errors / arrived).min(1.0) } else { 0.0 });
            truth.queue_depth.push(backlog + served / dt * wait_ms / 1000.0);
            truth.memory_mb.push(memory + 0.1 * p.memory_base_mb * utilisation);
            truth.oom_restart.push(oom);
            truth.flash_crowd.push(self.exogenous.flash_crowd[t]);

            memory_age_hours += dt_hours;
            restart_countdown = restart_countdown.saturating_sub(1);
            minutes_since_deploy += dt / 60.0;
        }
        truth
    }

    fn observe(&self, plan: &ActionPlan, truth: &Truth) -> RegularSeries {
        let p = &self.params;
        let n = self.len();
        let dt = self.step_seconds;
        let mut channels: Vec<ChannelValues> = channel_specs()
            .into_iter()
            .map(|spec| ChannelValues {
                spec,
                values: Vec::with_capacity(n),
                observed: Vec::with_capacity(n),
            })
            .collect();
        for t in 0..n {
            let clean = [
                truth.arrived[t] / dt,
                truth.cpu_util[t],
                truth.latency_p50_ms[t],
                truth.latency_p95_ms[t],
                truth.error_rate[t],
                truth.queue_depth[t],
                truth.memory_mb[t],
            ];
            let noise = &self.exogenous.noise[t];
            let sd = p.measurement_noise;
            let mut noisy: [f64; TARGETS] =
                std::array::from_fn(|c| clean[c] * (sd * noise[c] - 0.5 * sd * sd).exp());
            noisy[1] = noisy[1].min(1.0);
            noisy[3] = noisy[3].max(noisy[2]);
            noisy[4] = noisy[4].min(1.0);
            for (c, channel) in channels.iter_mut().take(TARGETS).enumerate() {
                let observed = self.exogenous.scraped[t][c];
                channel.values.push(if observed { noisy[c] } else { 0.0 });
                channel.observed.push(observed);
            }
            let known = [
                f64::from(plan.replicas[t]),
                plan.traffic_weight[t],
                f64::from(u8::from(plan.deploy[t])),
                truth.limit_rps[t],
                self.exogenous.hour[t],
                f64::from(self.exogenous.weekday[t]),
                f64::from(u8::from(self.exogenous.holiday[t])),
            ];
            for (channel, value) in channels.iter_mut().skip(TARGETS).zip(known) {
                channel.values.push(value);
                channel.observed.push(true);
            }
        }
        RegularSeries::new(format!("sre-{}", self.seed), self.frequency, self.first_cell, channels)
            .expect("every channel has one value per step")
    }
}

/// Mean wait in an M/M/c queue of `servers` with service time `service_ms` at
/// utilisation `utilisation` (capped at [`RHO_CAP`]), Sakasegawa's approximation, ms.
fn queue_wait_ms(service_ms: f64, servers: f64, utilisation: f64) -> f64 {
    let rho = utilisation.min(RHO_CAP);
    service_ms * rho.powf((2.0 * (servers + 1.0)).sqrt() - 1.0) / (servers * (1.0 - rho))
}

impl Exogenous {
    fn draw(
        seed: u64,
        p: &ServiceParams,
        frequency: Frequency,
        first_cell: i64,
        length: usize,
        dt: f64,
        redraw: Option<Redraw>,
    ) -> Self {
        let dt_days = dt / SECONDS_PER_DAY;
        let mut noise_rng = stream(seed, "demand-noise");
        let mut burst_rng = stream(seed, "bursts");
        let mut crowd_rng = stream(seed, "flash-crowds");
        let mut measure_rng = stream(seed, "measurement-noise");
        let mut scrape_rng = stream(seed, "scrapes");
        let mut outage_rng = stream(seed, "scrape-outages");
        let phi = (-dt / (p.noise_corr_minutes * 60.0)).exp();
        let innovation = p.noise_cv * (1.0 - phi * phi).sqrt();
        let burst_decay = (-dt / (p.burst_minutes * 60.0)).exp();
        let burst_size = Exp::new(1.0 / p.burst_size).expect("burst size is positive");
        let crowd_steps = (p.flash_crowd_minutes * 60.0 / dt).ceil().max(1.0);
        let outage_steps = (p.scrape_outage_minutes * 60.0 / dt).ceil() as usize;

        let mut exo = Exogenous {
            demand_rps: Vec::with_capacity(length),
            holiday: Vec::with_capacity(length),
            hour: Vec::with_capacity(length),
            weekday: Vec::with_capacity(length),
            noise: Vec::with_capacity(length),
            scraped: Vec::with_capacity(length),
            flash_crowd: Vec::with_capacity(length),
        };
        let start_micros = frequency.cell_start(first_cell);
        let (mut log_noise, mut burst, mut crowd_age) = (0.0f64, 0.0f64, f64::INFINITY);
        let mut outage_left = 0usize;
        let mut holiday_cache: Option<(i64, bool)> = None;
        for t in 0..length {
            if let Some(redraw) = redraw.filter(|r| r.from == t) {
                noise_rng = stream(redraw.seed, "demand-noise");
                burst_rng = stream(redraw.seed, "bursts");
                crowd_rng = stream(redraw.seed, "flash-crowds");
                measure_rng = stream(redraw.seed, "measurement-noise");
            }
            let micros = frequency.cell_start(first_cell + t as i64);
            let seconds = micros as f64 / MICROS_PER_SECOND;
            let day = micros.div_euclid((SECONDS_PER_DAY * MICROS_PER_SECOND) as i64);
            let hour = (seconds - day as f64 * SECONDS_PER_DAY) / 3600.0;
            // 1970-01-01 was a Thursday: day 0 is weekday 3 with Monday = 0.
            let weekday = (day + 3).rem_euclid(7) as u8;
            let holiday = match holiday_cache {
                Some((d, h)) if d == day => h,
                _ => {
                    let h = stream_at(seed, "holiday", day as u64).random::<f64>() < p.holiday_prob;
                    holiday_cache = Some((day, h));
                    h
                }
            };

            let theta = 2.0 * PI * (hour - p.peak_hour) / 24.0;
            let daily = 1.0 + p.daily_amplitude * (0.8 * theta.cos() + 0.2 * (2.0 * theta).cos());
            let weekly = if weekday >= 5 { p.weekend_factor } else { 1.0 };
            let weeks = (micros - start_micros) as f64 / MICROS_PER_SECOND / (7.0 * SECONDS_PER_DAY);
            let trend = (1.0 + p.trend_per_week).max(0.05).powf(weeks);
            let seasonal_holiday = if holiday { p.holiday_factor } else { 1.0 };

            let z: f64 = noise_rng.sample(StandardNormal);
            log_noise = phi * log_noise + innovation * z;
            let noise = (log_noise - 0.5 * p.noise_cv * p.noise_cv).exp();

            let (u, size): (f64, f64) = (burst_rng.random(), burst_size.sample(&mut burst_rng));
            burst *= burst_decay;
            if u < p.bursts_per_day * dt_days {
                burst += size;
            }

            let u: f64 = crowd_rng.random();
            if crowd_age >= crowd_steps && u < p.flash_crowds_per_week * dt_days / 7.0 {
                crowd_age = 0.0;
            }
            let crowd = if crowd_age < crowd_steps {
                1.0 + (p.flash_crowd_size - 1.0) * (PI * (crowd_age + 0.5) / crowd_steps).sin()
            } else {
                1.0
            };
            crowd_age += 1.0;

            let demand =
                p.base_rps * daily * weekly * trend * seasonal_holiday * noise * (1.0 + burst) * crowd;

            let noise: [f64; TARGETS] = std::array::from_fn(|_| measure_rng.sample(StandardNormal));
            let u: f64 = outage_rng.random();
            if outage_left == 0 && u < p.scrape_outages_per_day * dt_days {
                outage_left = outage_steps;
            }
            let in_outage = outage_left > 0;
            outage_left = outage_left.saturating_sub(1);
            let scraped: [bool; TARGETS] =
                std::array::from_fn(|_| scrape_rng.random::<f64>() >= p.scrape_miss_prob && !in_outage);

            exo.demand_rps.push(demand);
            exo.flash_crowd.push(crowd > 1.0);
            exo.holiday.push(holiday);
            exo.hour.push(hour);
            exo.weekday.push(weekday);
            exo.noise.push(noise);
            exo.scraped.push(scraped);
        }
        exo
    }
}

//! `kind = "qlearn"`: tabular Q-learning over the IPA configuration space.
//!
//! The state is a server's configuration (variant, instances, batch size) on the grid IPA
//! searches ([`super::ipa`]); variants are ordered from smallest to largest (accuracy, then
//! energy), batch sizes ascending. The seven actions stay, or move one step (±1) along one axis;
//! a move off the grid stays put. The reward of reaching a state is IPA's objective there at
//! the predicted load, or `−penalty` when that state is infeasible (the same throughput and
//! latency checks). Rewards are thus computed from the operator's profiles, not measured.
//!
//! Learning is standard one-step Q-learning (Watkins & Dayan 1992):
//! `Q(s, a) ← Q(s, a) + α·(r + γ·max_a' Q(s', a') − Q(s, a))` with α = `learning_rate`,
//! γ = `discount`, ε-greedy exploration with ε = max(`epsilon_min`, `epsilon`·`epsilon_decay`^t),
//! t counting decisions (ticks online, episodes in [`train`]); greedy ties go to the first
//! action in the order above (stay first). Q starts at 0.
//!
//! Online, each tick (every `interval_s`) the controller rewards the previous decision with the
//! objective of the configuration that ran during the interval (at the load just predicted),
//! performs `planning_steps` extra model-based updates from random states (Dyna-style; 0 by
//! default), then takes an ε-greedy step and emits it. The state space holds no load, so the
//! table is relearned as the load moves — the limitation of the formulation in the issue.
//!
//! Randomness: one [`StreamRng`] handed to [`QLearn::new`]: the run's named stream "qlearn"
//! (so the run seed reaches it and seeds of a sweep explore differently), or, when the `seed`
//! key is set, `RngStreams::new(seed).stream("qlearn")` whatever the run seed.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::ipa::{IpaConfig, Planner, PredictorKind, Problem, rank_variants, reconfigure};
use super::{Controller, ControllerContext, Decision, GatewayView, Reconfig, RequestView};
use crate::core::{RngStreams, SimDuration, StreamRng};

fn default_discount() -> f64 {
    0.9
}
fn default_epsilon() -> f64 {
    1.0
}
fn default_epsilon_decay() -> f64 {
    0.99
}
fn default_epsilon_min() -> f64 {
    0.05
}
fn default_learning_rate() -> f64 {
    0.5
}
fn default_penalty() -> f64 {
    10.0
}

/// `[controller] kind = "qlearn"`. The keys shared with `kind = "ipa"` mean the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QLearnConfig {
    #[serde(default = "super::defaults::interval_s")]
    pub interval_s: f64,
    #[serde(default = "super::defaults::a")]
    pub a: f64,
    #[serde(default = "super::defaults::b")]
    pub b: f64,
    #[serde(default = "super::defaults::c")]
    pub c: f64,
    #[serde(default)]
    pub predictor: PredictorKind,
    #[serde(default = "super::defaults::window_s")]
    pub window_s: f64,
    #[serde(default = "super::defaults::bucket_s")]
    pub bucket_s: f64,
    #[serde(default = "super::defaults::ewma_alpha")]
    pub ewma_alpha: f64,
    #[serde(default = "super::defaults::headroom")]
    pub headroom: f64,
    #[serde(default = "super::defaults::min_load_rps")]
    pub min_load_rps: f64,
    #[serde(default)]
    pub drain_backlog_s: f64,
    #[serde(default)]
    pub batch_sizes: Vec<u32>,
    #[serde(default = "super::defaults::max_instances")]
    pub max_instances: u32,
    #[serde(default)]
    pub instance_static_power_w: Option<f64>,
    #[serde(default)]
    pub warmup_s: Option<f64>,
    #[serde(default)]
    pub warmup_energy_j: Option<f64>,
    #[serde(default)]
    pub energy_ref_j: Option<f64>,
    #[serde(default)]
    pub servers: Vec<String>,
    /// α.
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// γ.
    #[serde(default = "default_discount")]
    pub discount: f64,
    /// Initial exploration probability.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// ε is multiplied by this after every decision.
    #[serde(default = "default_epsilon_decay")]
    pub epsilon_decay: f64,
    #[serde(default = "default_epsilon_min")]
    pub epsilon_min: f64,
    /// Reward of an infeasible state (negated).
    #[serde(default = "default_penalty")]
    pub penalty: f64,
    /// Extra model-based updates per tick.
    #[serde(default)]
    pub planning_steps: u32,
    /// Seed of the exploration stream (default: the run's "qlearn" stream).
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Default for QLearnConfig {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl QLearnConfig {
    /// The keys shared with `kind = "ipa"`.
    pub fn to_ipa(&self) -> IpaConfig {
        IpaConfig {
            interval_s: self.interval_s,
            a: self.a,
            b: self.b,
            c: self.c,
            predictor: self.predictor,
            window_s: self.window_s,
            bucket_s: self.bucket_s,
            ewma_alpha: self.ewma_alpha,
            headroom: self.headroom,
            min_load_rps: self.min_load_rps,
            drain_backlog_s: self.drain_backlog_s,
            batch_sizes: self.batch_sizes.clone(),
            max_instances: self.max_instances,
            instance_static_power_w: self.instance_static_power_w,
            warmup_s: self.warmup_s,
            warmup_energy_j: self.warmup_energy_j,
            energy_ref_j: self.energy_ref_j,
            servers: self.servers.clone(),
            fix_variant: None,
            fix_instances: None,
            fix_batch_size: None,
        }
    }

    pub fn params(&self) -> QParams {
        QParams {
            learning_rate: self.learning_rate,
            discount: self.discount,
            epsilon: self.epsilon,
            epsilon_decay: self.epsilon_decay,
            epsilon_min: self.epsilon_min,
            penalty: self.penalty,
        }
    }

    /// Checks parameter ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        use super::ipa::{check, non_negative};
        self.to_ipa().validate()?;
        check(self.learning_rate > 0.0 && self.learning_rate <= 1.0, "learning_rate", "in (0, 1]", self.learning_rate)?;
        check((0.0..1.0).contains(&self.discount), "discount", "in [0, 1)", self.discount)?;
        check((0.0..=1.0).contains(&self.epsilon), "epsilon", "in [0, 1]", self.epsilon)?;
        check(self.epsilon_decay > 0.0 && self.epsilon_decay <= 1.0, "epsilon_decay", "in (0, 1]", self.epsilon_decay)?;
        check((0.0..=1.0).contains(&self.epsilon_min), "epsilon_min", "in [0, 1]", self.epsilon_min)?;
        non_negative("penalty", self.penalty)
    }

    pub fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        self.to_ipa().check_context(ctx)
    }
}

/// The learning parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub learning_rate: f64,
    pub discount: f64,
    pub epsilon: f64,
    pub epsilon_decay: f64,
    pub epsilon_min: f64,
    pub penalty: f64,
}

impl Default for QParams {
    fn default() -> Self {
        QLearnConfig::default().params()
    }
}

/// Number of actions: stay, then −/+ on variant, instances, batch size.
pub const ACTIONS: usize = 7;

/// A state: indices along the three axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// Position in [`QAgent::variants`] (smallest first).
    pub variant: usize,
    /// Instances − `min_instances`.
    pub instances: usize,
    /// Position in the problem's `batch_sizes`.
    pub batch: usize,
}

/// The Q table of one server's problem.
#[derive(Clone, Debug)]
pub struct QAgent {
    /// Variant indices, smallest first.
    pub variants: Vec<usize>,
    dims: [usize; 3],
    q: Vec<f64>,
    params: QParams,
    /// Decisions taken so far (drives the ε decay).
    pub t: u64,
}

impl QAgent {
    pub fn new(p: &Problem, params: QParams) -> Self {
        let rank = rank_variants(&p.variants);
        let variants: Vec<usize> = rank.into_iter().filter(|v| p.allowed_variants.contains(v)).collect();
        let dims = [variants.len(), (p.max_instances - p.min_instances + 1) as usize, p.batch_sizes.len()];
        QAgent { variants, dims, q: vec![0.0; dims.iter().product::<usize>() * ACTIONS], params, t: 0 }
    }

    pub fn states(&self) -> usize {
        self.dims.iter().product()
    }

    fn index(&self, s: State) -> usize {
        (s.variant * self.dims[1] + s.instances) * self.dims[2] + s.batch
    }

    pub fn state_of(&self, i: usize) -> State {
        State { variant: i / (self.dims[1] * self.dims[2]), instances: (i / self.dims[2]) % self.dims[1], batch: i % self.dims[2] }
    }

    /// (variant, instances, batch size) of a state.
    pub fn config(&self, p: &Problem, s: State) -> (usize, u32, u32) {
        (self.variants[s.variant], p.min_instances + s.instances as u32, p.batch_sizes[s.batch])
    }

    /// The state of a configuration, when it is on the grid.
    pub fn locate(&self, p: &Problem, variant: usize, instances: u32, batch: u32) -> Option<State> {
        Some(State {
            variant: self.variants.iter().position(|&v| v == variant)?,
            instances: instances.checked_sub(p.min_instances).filter(|&i| i <= p.max_instances - p.min_instances)? as usize,
            batch: p.batch_sizes.iter().position(|&b| b == batch)?,
        })
    }

    /// Where action `a` leads from `s` (moves off the grid stay put).
    pub fn step(&self, s: State, a: usize) -> State {
        let mut x = [s.variant, s.instances, s.batch];
        if a > 0 {
            let axis = (a - 1) / 2;
            if a % 2 == 1 {
                x[axis] = x[axis].saturating_sub(1);
            } else if x[axis] + 1 < self.dims[axis] {
                x[axis] += 1;
            }
        }
        State { variant: x[0], instances: x[1], batch: x[2] }
    }

    /// The reward of being in `s`: the objective, or −penalty when infeasible.
    pub fn reward(&self, p: &Problem, s: State) -> f64 {
        let (v, n, b) = self.config(p, s);
        p.evaluate(v, n, b).unwrap_or(-self.params.penalty)
    }

    pub fn q(&self, s: State) -> &[f64] {
        let i = self.index(s) * ACTIONS;
        &self.q[i..i + ACTIONS]
    }

    /// The greedy action (ties: the first).
    pub fn greedy(&self, s: State) -> usize {
        let q = self.q(s);
        (1..ACTIONS).fold(0, |best, a| if q[a] > q[best] { a } else { best })
    }

    pub fn epsilon(&self) -> f64 {
        (self.params.epsilon * self.params.epsilon_decay.powf(self.t as f64)).max(self.params.epsilon_min)
    }

    /// An ε-greedy action.
    pub fn choose(&self, s: State, rng: &mut StreamRng) -> usize {
        if rng.random::<f64>() < self.epsilon() { rng.random_range(0..ACTIONS) } else { self.greedy(s) }
    }

    /// One Q-learning update.
    pub fn learn(&mut self, s: State, a: usize, r: f64, next: State) {
        let target = r + self.params.discount * self.q(next).iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let i = self.index(s) * ACTIONS + a;
        self.q[i] += self.params.learning_rate * (target - self.q[i]);
    }

    /// One model-based transition from `s`: choose, observe the reward, learn. Returns the
    /// next state.
    pub fn explore(&mut self, p: &Problem, s: State, rng: &mut StreamRng) -> State {
        let a = self.choose(s, rng);
        let next = self.step(s, a);
        let r = self.reward(p, next);
        self.learn(s, a, r, next);
        next
    }

    /// Follows the greedy policy from `s` until it stays put (or `max_steps`); returns the end.
    pub fn greedy_end(&self, mut s: State, max_steps: usize) -> State {
        for _ in 0..max_steps {
            let next = self.step(s, self.greedy(s));
            if next == s {
                break;
            }
            s = next;
        }
        s
    }
}

/// Trains a fresh agent offline on a fixed problem: `episodes` episodes of `steps` transitions,
/// each from a uniformly random state; ε decays once per episode.
pub fn train(p: &Problem, episodes: u32, steps: u32, params: QParams, rng: &mut StreamRng) -> QAgent {
    let mut agent = QAgent::new(p, params);
    for _ in 0..episodes {
        let mut s = agent.state_of(rng.random_range(0..agent.states()));
        for _ in 0..steps {
            s = agent.explore(p, s, rng);
        }
        agent.t += 1;
    }
    agent
}

struct ServerAgent {
    agent: QAgent,
    /// The last decision, rewarded at the next tick.
    pending: Option<(State, usize)>,
    state: State,
}

/// The online Q-learning controller.
pub struct QLearn {
    planner: Planner,
    agents: Vec<ServerAgent>,
    planning_steps: u32,
    rng: StreamRng,
}

impl QLearn {
    /// A controller drawing its exploration from `rng`.
    pub fn new(cfg: &QLearnConfig, ctx: &ControllerContext, rng: StreamRng) -> Self {
        let planner = cfg.to_ipa().planner(ctx);
        let agents = planner
            .problems
            .iter()
            .map(|(s, p)| {
                let agent = QAgent::new(p, cfg.params());
                let sp = &ctx.servers[*s];
                let state = agent.locate(p, sp.initial_variant, sp.instances, sp.max_batch_size).unwrap_or(State {
                    variant: 0,
                    instances: 0,
                    batch: 0,
                });
                ServerAgent { agent, pending: None, state }
            })
            .collect();
        QLearn { planner, agents, planning_steps: cfg.planning_steps, rng }
    }

    /// The Q table of the `i`-th controlled server.
    pub fn agent(&self, i: usize) -> &QAgent {
        &self.agents[i].agent
    }
}

impl Controller for QLearn {
    #[inline]
    fn decide(&mut self, req: &RequestView, _view: &GatewayView<'_>) -> Decision {
        self.planner.predictor.observe(req.arrival);
        Decision::Admit
    }

    fn tick_interval(&self) -> Option<SimDuration> {
        Some(self.planner.interval)
    }

    fn on_tick(&mut self, view: &GatewayView<'_>, out: &mut Vec<Reconfig>) {
        self.planner.update(view);
        for ((s, p), sa) in self.planner.problems.iter().zip(&mut self.agents) {
            // where the server really is (a clamp by the simulator may have moved it)
            if let Some(v) = view.servers.get(*s)
                && let Some(st) = sa.agent.locate(p, v.variant, v.instances, v.max_batch_size)
            {
                sa.state = st;
            }
            if let Some((prev, a)) = sa.pending.take() {
                let r = sa.agent.reward(p, sa.state);
                sa.agent.learn(prev, a, r, sa.state);
            }
            for _ in 0..self.planning_steps {
                let from = sa.agent.state_of(self.rng.random_range(0..sa.agent.states()));
                sa.agent.explore(p, from, &mut self.rng);
            }
            let a = sa.agent.choose(sa.state, &mut self.rng);
            sa.agent.t += 1;
            let next = sa.agent.step(sa.state, a);
            sa.pending = Some((sa.state, a));
            let (variant, instances, batch_size) = sa.agent.config(p, next);
            let c = super::ipa::Choice { variant, instances, batch_size, objective: 0.0, feasible: true };
            reconfigure(*s, &c, view, out);
            sa.state = next;
        }
    }
}

impl super::PolicyConfig for QLearnConfig {
    fn validate(&self) -> Result<(), String> {
        QLearnConfig::validate(self)
    }
    fn check_context(&self, ctx: &ControllerContext) -> Result<(), String> {
        QLearnConfig::check_context(self, ctx)
    }
    /// Exploration draws from the run's "qlearn" stream, or from the `seed` key's when it is set.
    fn build_controller(&self, ctx: &ControllerContext, streams: &RngStreams) -> Box<dyn super::Controller> {
        let rng = match self.seed {
            Some(seed) => RngStreams::new(seed).stream("qlearn"),
            None => streams.stream("qlearn"),
        };
        Box::new(QLearn::new(self, ctx, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{SimDuration, SimTime};
    use crate::model::controller::ServerView;
    use crate::model::controller::ipa::{optimize, tests::random_problem};

    /// Episodes and steps the tests allow.
    const EPISODES: u32 = 3000;
    const STEPS: u32 = 30;

    /// The greedy end state from each start of the same MDP, solved exactly by value iteration
    /// (deterministic moves, reward = objective of the next state).
    fn planned_ends(agent: &QAgent, p: &Problem) -> Vec<State> {
        let n = agent.states();
        let gamma = QParams::default().discount;
        let r: Vec<f64> = (0..n).map(|i| agent.reward(p, agent.state_of(i))).collect();
        let next = |i: usize, a: usize| agent.index(agent.step(agent.state_of(i), a));
        let mut v = vec![0.0; n];
        for _ in 0..1000 {
            v = (0..n).map(|i| (0..ACTIONS).map(|a| r[next(i, a)] + gamma * v[next(i, a)]).fold(f64::NEG_INFINITY, f64::max)).collect();
        }
        (0..n)
            .map(|start| {
                let mut i = start;
                for _ in 0..4 * n {
                    let q = |a: usize| r[next(i, a)] + gamma * v[next(i, a)];
                    let a = (1..ACTIONS).fold(0, |best, a| if q(a) > q(best) + 1e-9 { a } else { best });
                    if next(i, a) == i {
                        break;
                    }
                    i = next(i, a);
                }
                agent.state_of(i)
            })
            .collect()
    }

    /// Trains with `episodes` and checks that the greedy policy walks from every start to the
    /// end the exact solution of the MDP walks to, and stays there.
    fn learned(p: &Problem, seed: u64, episodes: u32) -> bool {
        let mut rng = RngStreams::new(seed).stream("qlearn-test");
        let agent = train(p, episodes, STEPS, QParams::default(), &mut rng);
        let ends = planned_ends(&agent, p);
        (0..agent.states()).all(|i| {
            let end = agent.greedy_end(agent.state_of(i), 4 * agent.states());
            end == ends[i] && agent.step(end, agent.greedy(end)) == end
        })
    }

    #[test]
    fn reaches_the_known_optimum_of_small_problems() {
        let mut rng = RngStreams::new(3).stream("qlearn-problems");
        let (mut tried, mut detours) = (0, 0);
        while tried < 40 {
            let mut p = random_problem(&mut rng);
            p.allowed_variants.truncate(3);
            // a clear optimum: feasible, at least 0.02 better than any other configuration
            let Some(best) = optimize(&p) else { continue };
            let second = p
                .space()
                .filter(|&(v, n, b)| (v, n, b) != (best.variant, best.instances, best.batch_size))
                .filter_map(|(v, n, b)| p.evaluate(v, n, b))
                .fold(f64::NEG_INFINITY, f64::max);
            if best.objective - second < 0.02 {
                continue;
            }
            tried += 1;
            let agent = QAgent::new(&p, QParams::default());
            let opt = agent.locate(&p, best.variant, best.instances, best.batch_size).unwrap();
            // Where the exact solution of the discounted MDP leads from every state to the
            // optimum, `learned` means Q-learning reaches the optimum from every state. Where it
            // does not (the way crosses infeasible states, whose penalty outweighs the
            // discounted gain), Q-learning is held to the MDP's answer.
            if planned_ends(&agent, &p).iter().any(|&e| e != opt) {
                detours += 1;
            }
            assert!(learned(&p, tried, EPISODES), "not learned in {EPISODES} episodes of {STEPS} steps: {p:?}");
        }
        assert!(detours < 20, "{detours} of 40 problems need detours: the generator is too hard");
    }

    #[test]
    fn moves_and_rewards() {
        let mut rng = RngStreams::new(1).stream("x");
        let mut p = random_problem(&mut rng);
        p.max_instances = 2;
        let agent = QAgent::new(&p, QParams::default());
        let s = State { variant: 0, instances: 0, batch: 0 };
        assert_eq!(agent.step(s, 0), s);
        assert_eq!(agent.step(s, 1), s, "off the grid stays put");
        assert_eq!(agent.step(s, 4), State { instances: 1, ..s });
        assert_eq!(agent.step(agent.step(s, 4), 4), State { instances: 1, ..s });
        p.slo_s = 0.0; // nothing feasible
        assert_eq!(agent.reward(&p, s), -QParams::default().penalty);
        for i in 0..agent.states() {
            let st = agent.state_of(i);
            assert_eq!(agent.index(st), i);
            let (v, n, b) = agent.config(&p, st);
            assert_eq!(agent.locate(&p, v, n, b), Some(st));
        }
    }

    #[test]
    fn online_controller_is_deterministic_and_learns() {
        use crate::model::controller::{ServerProfile, VariantProfile};
        let v = |m: &str, acc, lat: f64, e: f64| VariantProfile {
            model: m.into(),
            accuracy: Some(acc),
            latency_s: (1..=3).map(|b| lat * (1.0 + 0.5 * (b as f64 - 1.0))).collect(),
            energy_j: (1..=3).map(|b| e * (1.0 + 0.5 * (b as f64 - 1.0))).collect(),
        };
        let ctx = ControllerContext {
            servers: vec![ServerProfile {
                instance_standby_power_w: 0.0,
                name: "s".into(),
                variants: vec![v("big", 0.9, 0.02, 2.0), v("small", 0.7, 0.005, 0.4)],
                initial_variant: 0,
                instances: 1,
                max_batch_size: 1,
                idle_power_w: 0.0,
                warmup_s: 0.0,
                warmup_energy_j: 0.0,
            }],
            early_exit: None,
            slo: SimDuration::from_millis_f64(100.0),
        };
        let cfg = QLearnConfig {
            max_instances: 2,
            planning_steps: 20,
            interval_s: 1.0,
            instance_static_power_w: Some(1.0),
            ..Default::default()
        };
        cfg.validate().unwrap();
        let run = || {
            let mut c = QLearn::new(&cfg, &ctx, RngStreams::new(7).stream("qlearn"));
            let mut sv = ServerView {
                name: "s".into(),
                queue_len: 0,
                in_service: 0,
                busy_instances: 0,
                instances: 1,
                max_batch_size: 1,
                variant: 0,
                batch_service_s: 0.0,
            };
            let mut trace = Vec::new();
            let mut out = Vec::new();
            for t in 1..=300u64 {
                let view = GatewayView {
                    now: SimTime::from_secs(t),
                    servers: std::slice::from_ref(&sv),
                    carbon_g_per_kwh: 0.0,
                    power_w: 0.0,
                    slo: ctx.slo,
                };
                out.clear();
                c.on_tick(&view, &mut out);
                for r in &out {
                    match *r {
                        Reconfig::SetVariant { variant, .. } => sv.variant = variant,
                        Reconfig::SetInstances { instances, .. } => sv.instances = instances,
                        Reconfig::SetMaxBatchSize { max_batch_size, .. } => sv.max_batch_size = max_batch_size,
                    }
                }
                trace.push((sv.variant, sv.instances, sv.max_batch_size));
            }
            (trace, c)
        };
        let (a, c) = run();
        let (b, _) = run();
        assert_eq!(a, b, "same seed, same decisions");
        // no load: the greedy policy settles on the optimum of the idle problem
        let p = &c.planner.problems[0].1;
        let best = optimize(p).unwrap();
        let agent = c.agent(0);
        let end = agent.greedy_end(agent.state_of(0), 100);
        assert_eq!(agent.config(p, end), (best.variant, best.instances, best.batch_size));
    }

    #[test]
    fn config_keys_parse_and_validate() {
        let c: QLearnConfig = toml::from_str("learning_rate = 0.2\ndiscount = 0.5\nseed = 9\nmax_instances = 3").unwrap();
        assert_eq!((c.learning_rate, c.discount, c.seed, c.max_instances), (0.2, 0.5, Some(9), 3));
        c.validate().unwrap();
        assert!(QLearnConfig { discount: 1.0, ..c.clone() }.validate().unwrap_err().contains("controller.discount"));
        assert!(toml::from_str::<QLearnConfig>("fix_variant = \"x\"").is_err());
    }
}

//! Routing of admitted requests among servers (`[routing]` in an experiment file).

use serde::{Deserialize, Serialize};

use super::controller::ServerView;

/// How an admitted request picks its server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoutingConfig {
    /// Always the first server.
    #[default]
    First,
    /// Servers in turn.
    RoundRobin,
    /// The server with the fewest requests waiting or in service per instance (ties: first).
    ShortestQueue,
}

impl RoutingConfig {
    pub const KINDS: &'static [&'static str] = &["first", "round_robin", "shortest_queue"];
}

/// Routing state for one run.
#[derive(Clone, Debug)]
pub struct Router {
    config: RoutingConfig,
    next: usize,
}

impl Router {
    pub fn new(config: RoutingConfig) -> Self { Router { config, next: 0 } }

    #[inline]
    pub fn route(&mut self, servers: &[ServerView]) -> usize {
        match self.config {
            RoutingConfig::First => 0,
            RoutingConfig::RoundRobin => {
                let s = self.next % servers.len();
                self.next = self.next.wrapping_add(1);
                s
            }
            RoutingConfig::ShortestQueue => {
                let load = |s: &ServerView| (s.queue_len as f64 + s.in_service as f64) / s.instances.max(1) as f64;
                let mut best = 0;
                for (i, s) in servers.iter().enumerate() {
                    if load(s) < load(&servers[best]) {
                        best = i;
                    }
                }
                best
            }
        }
    }
}

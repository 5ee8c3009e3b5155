//! The energy ledger: where a run's joules go (docs: the metrics page, "Energy").
//!
//! Σ batch energy (active) + Σ over devices of idle power × time the device runs no batch +
//! instance standby power × time + early-exit and warm-up energy, all IT joules; the summary
//! multiplies by PUE. The ledger also knows the IT power drawn right now (what the time series
//! integrates and a controller reads as `power_w`).

use crate::core::SimTime;
use crate::metrics::EnergyBreakdown;
use crate::model::server::{Dispatch, Server};
use crate::spec::SimSpec;

struct DeviceState {
    idle_w: f64,
    busy: u32,
    active_w: f64,
    idle_since: SimTime,
    idle_ns: u64,
}

/// IT energy by cause, and the power drawn now.
pub struct EnergyLedger {
    devices: Vec<DeviceState>,
    /// Whether any server has instance standby power (skips the bookkeeping otherwise).
    has_standby: bool,
    standby_w: f64,
    standby_j: f64,
    standby_since: SimTime,
    /// Σ batch energy.
    pub active_j: f64,
    /// The cascade's early-exit model (and the gateway's own energy per arrival).
    pub early_exit_j: f64,
    /// Warm-up of instances added by reconfiguration.
    pub reconfig_j: f64,
    /// Energy attributed to requests (their `energy_j` in the records).
    pub attributed_j: f64,
}

impl EnergyLedger {
    pub fn new(spec: &SimSpec) -> Self {
        EnergyLedger {
            devices: spec
                .devices
                .iter()
                .map(|d| DeviceState { idle_w: d.idle_power_w, busy: 0, active_w: 0.0, idle_since: SimTime::ZERO, idle_ns: 0 })
                .collect(),
            has_standby: spec.servers.iter().any(|s| s.instance_standby_power_w > 0.0),
            standby_w: spec.servers.iter().map(|s| s.instance_standby_power_w * s.instances as f64).sum(),
            standby_j: 0.0,
            standby_since: SimTime::ZERO,
            active_j: 0.0,
            early_exit_j: 0.0,
            reconfig_j: 0.0,
            attributed_j: 0.0,
        }
    }

    /// IT power with every device idle and every instance on standby (the run's first level).
    pub fn idle_power_w(spec: &SimSpec) -> f64 {
        spec.devices.iter().map(|d| d.idle_power_w).sum::<f64>()
            + spec.servers.iter().map(|s| s.instance_standby_power_w * s.instances as f64).sum::<f64>()
    }

    #[inline]
    pub fn has_standby(&self) -> bool {
        self.has_standby
    }

    /// IT power drawn now.
    pub fn power_w(&self) -> f64 {
        let devices: f64 = self.devices.iter().map(|d| if d.busy == 0 { d.idle_w } else { d.active_w }).sum();
        devices + self.standby_w
    }

    /// Accrues instance standby energy up to `now`; call before instance states change, then
    /// [`EnergyLedger::update_standby`] after.
    #[inline]
    pub fn accrue_standby(&mut self, now: SimTime) {
        if self.standby_w > 0.0 {
            self.standby_j += self.standby_w * now.since(self.standby_since).as_secs_f64();
        }
        self.standby_since = now;
    }

    /// Re-reads the standby power from the servers' instance states.
    #[inline]
    pub fn update_standby(&mut self, servers: &[Server]) {
        if self.has_standby {
            self.standby_w = servers.iter().map(|s| s.spec.instance_standby_power_w * s.standby_instances() as f64).sum();
        }
    }

    /// A batch started on `device`. Returns the energy to book at once (a batch that takes no
    /// time has no power to integrate), if any.
    #[inline]
    pub fn batch_started(&mut self, device: usize, now: SimTime, d: &Dispatch) -> Option<f64> {
        let dev = &mut self.devices[device];
        if dev.busy == 0 {
            dev.idle_ns += now.since(dev.idle_since).0;
        }
        dev.busy += 1;
        self.active_j += d.energy.0;
        if d.service.0 > 0 {
            dev.active_w += d.energy.0 / d.service.as_secs_f64();
            None
        } else {
            Some(d.energy.0)
        }
    }

    /// A batch of `energy_j` that started at `start` finished on `device` at `now`.
    #[inline]
    pub fn batch_finished(&mut self, device: usize, now: SimTime, start: SimTime, energy_j: f64) {
        let service = now.since(start);
        let dev = &mut self.devices[device];
        dev.busy -= 1;
        if dev.busy == 0 {
            dev.active_w = 0.0;
            dev.idle_since = now;
        } else if service.0 > 0 {
            dev.active_w -= energy_j / service.as_secs_f64();
        }
    }

    /// Closes the books at `end`; returns idle IT energy (devices idle, instances on standby:
    /// not attributed to requests).
    pub fn close(&mut self, end: SimTime) -> f64 {
        self.accrue_standby(end);
        for d in &mut self.devices {
            if d.busy == 0 {
                d.idle_ns += end.since(d.idle_since).0;
                d.idle_since = end;
            }
        }
        let idle_j: f64 = self.devices.iter().map(|d| d.idle_w * d.idle_ns as f64 / 1e9).sum();
        idle_j + self.standby_j
    }

    /// The breakdown in facility joules.
    pub fn breakdown(&self, idle_j: f64, pue: f64, estimated: bool) -> EnergyBreakdown {
        EnergyBreakdown {
            active_j: self.active_j * pue,
            idle_j: idle_j * pue,
            early_exit_j: self.early_exit_j * pue,
            reconfig_j: self.reconfig_j * pue,
            attributed_j: self.attributed_j * pue,
            pue,
            estimated,
        }
    }

    /// Total IT energy given the idle part from [`EnergyLedger::close`].
    pub fn total_it_j(&self, idle_j: f64) -> f64 {
        self.active_j + idle_j + self.early_exit_j + self.reconfig_j
    }
}

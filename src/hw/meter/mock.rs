//! Deterministic test double: replays a recorded `(time, energy)` sequence, one sample per
//! read, or draws a constant power on a virtual clock that advances a fixed tick per read.
//! No wall clock, so tests of the calibration harness are exact. A replay that runs out
//! behaves like a meter that disappeared.

use std::time::Duration;

use super::{EnergyMeter, EnergyReading, MeterError, MeterInfo, MeterKind};

#[derive(Debug, Clone)]
enum Source {
    Replay { samples: Vec<(Duration, f64)>, next: usize },
    Constant { watts: f64, tick: Duration, reads: u32 },
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct MockMeter {
    info: MeterInfo,
    source: Source,
}

impl MockMeter {
    /// Replay `samples` (time since open, cumulative joules), one per `read`.
    pub fn replay(samples: Vec<(Duration, f64)>) -> Self {
        let info = Self::make_info(format!("mock:replay of {} samples", samples.len()));
        Self { info, source: Source::Replay { samples, next: 0 } }
    }

    /// Constant `watts`; the n-th read (from 0) is at `n × tick` with `watts × n × tick` joules.
    pub fn constant_power(watts: f64, tick: Duration) -> Self {
        let info = Self::make_info(format!("mock:constant {watts} W"));
        Self { info, source: Source::Constant { watts, tick, reads: 0 } }
    }

    /// Mark the mock as an estimate (to test that labels propagate).
    pub fn estimated(mut self, estimated: bool) -> Self {
        self.info.estimated = estimated;
        self
    }

    fn make_info(name: String) -> MeterInfo {
        MeterInfo { kind: MeterKind::Mock, name, estimated: false, domains: vec!["mock".into()] }
    }
}

impl EnergyMeter for MockMeter {
    fn info(&self) -> &MeterInfo {
        &self.info
    }

    fn read(&mut self) -> Result<EnergyReading, MeterError> {
        match &mut self.source {
            Source::Replay { samples, next } => {
                let &(at, energy_j) = samples.get(*next).ok_or_else(|| MeterError::Disappeared {
                    meter: "mock",
                    path: "replay".into(),
                    reason: format!("sequence ended after {} samples", samples.len()),
                })?;
                *next += 1;
                Ok(EnergyReading { energy_j, at })
            }
            Source::Constant { watts, tick, reads } => {
                let at = *tick * *reads;
                *reads += 1;
                Ok(EnergyReading { energy_j: *watts * at.as_secs_f64(), at })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_then_disappear() {
        let mut m = MockMeter::replay(vec![(Duration::ZERO, 0.0), (Duration::from_secs(1), 5.0)]);
        assert_eq!(m.read().unwrap().energy_j, 0.0);
        assert_eq!(m.read().unwrap(), EnergyReading { energy_j: 5.0, at: Duration::from_secs(1) });
        let msg = m.read().unwrap_err().to_string();
        assert_eq!(msg, "mock counter disappeared: replay: sequence ended after 2 samples");
    }

    #[test]
    fn constant_power_on_a_virtual_clock() {
        let mut m = MockMeter::constant_power(50.0, Duration::from_millis(100));
        let r: Vec<_> = (0..3).map(|_| m.read().unwrap()).collect();
        assert_eq!(r[2].at, Duration::from_millis(200));
        assert!((r[2].energy_j - 10.0).abs() < 1e-12);
        assert!(!m.info().estimated);
        assert!(m.clone().estimated(true).info().estimated);
    }
}

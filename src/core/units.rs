//! Physical quantities that cross module boundaries. Plain `f64` is used inside formulas;
//! what is stored or passed between components carries its unit in its type.

use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign, Mul, Sub};

use super::time::SimDuration;

/// Energy in joules.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Joules(pub f64);

/// Power in watts.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Watts(pub f64);

/// Grid carbon intensity in grams of CO2-equivalent per kWh.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct GramsPerKwh(pub f64);

/// Mass of CO2-equivalent in grams.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Grams(pub f64);

pub const JOULES_PER_KWH: f64 = 3.6e6;

impl Joules {
    pub fn kwh(self) -> f64 {
        self.0 / JOULES_PER_KWH
    }
    /// Carbon emitted by drawing this energy at `intensity`.
    pub fn carbon(self, intensity: GramsPerKwh) -> Grams {
        Grams(self.kwh() * intensity.0)
    }
}
impl Add for Joules {
    type Output = Joules;
    fn add(self, o: Joules) -> Joules {
        Joules(self.0 + o.0)
    }
}
impl Sub for Joules {
    type Output = Joules;
    fn sub(self, o: Joules) -> Joules {
        Joules(self.0 - o.0)
    }
}
impl AddAssign for Joules {
    fn add_assign(&mut self, o: Joules) {
        self.0 += o.0
    }
}
impl Add for Grams {
    type Output = Grams;
    fn add(self, o: Grams) -> Grams {
        Grams(self.0 + o.0)
    }
}
impl AddAssign for Grams {
    fn add_assign(&mut self, o: Grams) {
        self.0 += o.0
    }
}
impl Mul<SimDuration> for Watts {
    type Output = Joules;
    fn mul(self, d: SimDuration) -> Joules {
        Joules(self.0 * d.as_secs_f64())
    }
}

//! Serde defaults of the keys the IPA-family policies (`ipa`, the baselines, `qlearn`,
//! `carbon`) share, named after the key they fill.

pub fn a() -> f64 {
    1.0
}
pub fn b() -> f64 {
    0.1
}
pub fn bucket_s() -> f64 {
    1.0
}
pub fn c() -> f64 {
    0.01
}
pub fn ewma_alpha() -> f64 {
    0.5
}
pub fn headroom() -> f64 {
    1.0
}
pub fn interval_s() -> f64 {
    10.0
}
pub fn max_instances() -> u32 {
    4
}
pub fn min_load_rps() -> f64 {
    1.0
}
pub fn window_s() -> f64 {
    10.0
}

//! PURE service-model components: requests, arrivals, servers, cost and quality tables,
//! routing and controllers. They keep state and answer questions; the simulator (or the
//! replay driver) owns time and schedules what they return.

pub mod arrivals;
pub mod controller;
pub mod cost;
pub mod load;
pub mod quality;
pub mod request;
pub mod routing;
pub mod server;
pub mod transport;

/// A device with an idle power floor (SPEC: drawn whenever it runs no batch).
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSpec {
    pub name: String,
    pub idle_power_w: f64,
}

//! `kind = "open_loop"`: admit every request; the router places it.

use serde::{Deserialize, Serialize};

use super::{Controller, Decision, GatewayView, RequestView};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLoopConfig {}

impl OpenLoopConfig {
    pub fn build(&self) -> OpenLoop {
        OpenLoop
    }
}

/// Admits everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenLoop;

impl Controller for OpenLoop {
    #[inline]
    fn decide(&mut self, _req: &RequestView, _view: &GatewayView<'_>) -> Decision {
        Decision::Admit
    }
}

impl super::PolicyConfig for OpenLoopConfig {
    fn build_controller(&self, _: &super::ControllerContext, _: &crate::core::RngStreams) -> Box<dyn super::Controller> {
        Box::new(self.build())
    }
}

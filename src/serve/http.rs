//! The HTTP front door: the KServe v2 routes (health, model metadata, infer) and `/metrics`,
//! on axum. Handlers only parse, validate and wait: every request goes to the gateway thread
//! through its inbox, and the handler answers with what the gateway decided.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;

use super::Shared;
use super::driver::{Inbound, Reply};
use super::kserve::{self, Answer, HEADER_LENGTH};
use super::metrics::LiveMetrics;
use crate::replay::Msg;

pub fn router(shared: Arc<Shared>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(shared)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, kserve::error_body(message))
}

async fn server_metadata(State(s): State<Arc<Shared>>) -> Response {
    let body = serde_json::json!({ "name": "basin", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"], "models": s.models.keys().collect::<Vec<_>>() });
    json(StatusCode::OK, serde_json::to_vec(&body).expect("a JSON value serializes"))
}

fn readiness(s: &Shared) -> StatusCode {
    if s.ready.load(Ordering::Relaxed) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

async fn ready(State(s): State<Arc<Shared>>) -> StatusCode {
    readiness(&s)
}

async fn model_ready(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> StatusCode {
    if s.models.contains_key(&name) { readiness(&s) } else { StatusCode::NOT_FOUND }
}

fn unknown_model(s: &Shared, name: &str) -> Response {
    let known: Vec<&str> = s.models.keys().map(String::as_str).collect();
    error(StatusCode::NOT_FOUND, &format!("unknown model `{name}` (this gateway serves: {})", known.join(", ")))
}

async fn model_metadata(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match s.models.get(&name) {
        Some(m) => json(StatusCode::OK, serde_json::to_vec(&kserve::model_metadata(&name, &m.inputs, m.classes)).expect("serializes")),
        None => unknown_model(&s, &name),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(LiveMetrics::CONTENT_TYPE))], s.metrics.encode()).into_response()
}

async fn infer(State(s): State<Arc<Shared>>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let Some(meta) = s.models.get(&name) else { return unknown_model(&s, &name) };
    let header_len = match headers.get(HEADER_LENGTH).map(|v| v.to_str().ok().and_then(|t| t.trim().parse::<usize>().ok())) {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => return error(StatusCode::BAD_REQUEST, &format!("{HEADER_LENGTH} must be a byte count")),
    };
    let req = match kserve::parse_request(&name, &body, header_len, &meta.inputs) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let (tx, rx) = oneshot::channel();
    let inbound = Inbound { model: name.clone(), inputs: req.inputs, received, reply: tx };
    if s.inbox.send(inbound).is_err() || s.wake.send(Msg::wake()).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the gateway is shutting down");
    }
    match rx.await {
        Ok(Reply::Answer { probabilities, decision, answered_by, backend_us }) => {
            let a = Answer {
                model: &name,
                id: req.id.as_deref(),
                probabilities: &probabilities,
                decision,
                answered_by: &answered_by,
                backend_us,
            };
            let (bytes, head) = kserve::response(&a, req.binary_output);
            match head {
                None => json(StatusCode::OK, bytes),
                Some(n) => (
                    StatusCode::OK,
                    [
                        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
                        (header::HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(n)),
                    ],
                    bytes,
                )
                    .into_response(),
            }
        }
        Ok(Reply::Rejected(why)) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
        Ok(Reply::Failed(why)) => error(StatusCode::BAD_GATEWAY, &why),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the gateway is shutting down"),
    }
}

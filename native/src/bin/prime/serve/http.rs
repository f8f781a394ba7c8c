//! The HTTP side of `prime serve`: the routes, the request body and its limits, the bearer
//! token, CORS, and the event stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use futures_util::stream;
use prime_core::{GenerationRequest, SamplingDefaults};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::engine::{Job, Message, ModelInfo};

/// What one request may ask for.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Most sampling steps.
    pub max_steps: usize,
    /// Most samples.
    pub max_samples: usize,
    /// Most bytes of request body.
    pub max_body: usize,
    /// Seconds a request may take, queued and running.
    pub deadline_s: u64,
}

/// What every handler shares.
#[derive(Clone)]
pub struct Server {
    /// Where admitted jobs go (the engine thread).
    pub jobs: std::sync::mpsc::Sender<Job>,
    /// Places for requests running or queued; a request without one is refused.
    pub queue: Arc<Semaphore>,
    /// The queue's size, for the message.
    pub queue_size: usize,
    /// The model, for `/v1/models`.
    pub info: Arc<ModelInfo>,
    /// The per-request limits.
    pub limits: Limits,
    /// The bearer token every request must carry, if any.
    pub token: Option<Arc<str>>,
    /// Numbers requests for the log.
    pub next_id: Arc<AtomicU64>,
}

/// The routes, with the token check and the CORS rules (`allowed` origins; empty: loopback
/// origins only).
pub fn router(server: Server, allowed: &[String]) -> anyhow::Result<Router> {
    let origins = if allowed.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else if allowed.is_empty() {
        AllowOrigin::predicate(|origin: &HeaderValue, _| origin.to_str().is_ok_and(is_loopback_origin))
    } else {
        let list = allowed
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("--allow-origin {o:?} is not a valid origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let cors = CorsLayer::new().allow_origin(origins).allow_methods([Method::GET, Method::POST]).allow_headers([
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        header::ACCEPT,
    ]);
    Ok(Router::new()
        .route("/v1/models", get(models))
        .route("/v1/generate", post(generate))
        .fallback(|| async {
            error(StatusCode::NOT_FOUND, "no such endpoint: GET /v1/models and POST /v1/generate exist")
        })
        .layer(middleware::from_fn_with_state(server.clone(), authorise))
        .layer(cors)
        .with_state(server))
}

/// Whether a browser origin (`scheme://host[:port]`) is on this machine.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
        None => rest.split(':').next().unwrap_or(""),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A JSON error body `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Refuses a request without the bearer token (when the server has one).
async fn authorise(State(server): State<Server>, request: Request, next: Next) -> Response {
    if let Some(token) = &server.token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {token}");
        if !given.is_some_and(|g| same_secret(g.as_bytes(), expected.as_bytes())) {
            return error(StatusCode::UNAUTHORIZED, "this server needs `Authorization: Bearer <token>` (its --token)");
        }
    }
    next.run(request).await
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `GET /v1/models`: the model (the trajectory header's summary), its device and the limits.
async fn models(State(server): State<Server>) -> Response {
    #[derive(Serialize)]
    struct Models<'a> {
        #[serde(flatten)]
        info: &'a ModelInfo,
        limits: Limits,
    }
    Json(Models { info: &server.info, limits: server.limits }).into_response()
}

/// A request body: a `GenerationRequest` with two keys of the server's own.
#[derive(Debug)]
pub struct GenerateBody {
    /// The generation.
    pub request: GenerationRequest,
    /// `samples` (absent: one, answered as one ending rather than a list).
    pub samples: Option<usize>,
    /// `stream` (absent: what the Accept header asks for).
    pub stream: Option<bool>,
}

/// Reads a body: JSON, a `GenerationRequest` (unknown keys are errors; the settings it leaves
/// out are the model's `recommended` ones) plus `samples` and `stream`, within `limits`. The
/// error names the field.
pub fn parse_body(bytes: &[u8], limits: &Limits, recommended: &SamplingDefaults) -> Result<GenerateBody, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut map) = value else {
        return Err("the body must be a JSON object: a generation request".into());
    };
    let stream = match map.remove("stream") {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(v) => return Err(format!("stream: expected true or false, got {v}")),
    };
    let samples = match map.remove("samples") {
        None => None,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=limits.max_samples).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "samples: expected a whole number from 1 to {} (this server's --max-samples), got {v}",
                    limits.max_samples
                ));
            }
        },
    };
    let mut request = Value::Object(Map::from_iter(map));
    recommended.fill_request(&mut request);
    let request: GenerationRequest =
        serde_path_to_error::deserialize(request).map_err(|e| match e.path().to_string() {
            path if path == "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        })?;
    request.settings.validate().map_err(|e| e.to_string())?;
    if request.settings.steps > limits.max_steps {
        return Err(format!(
            "settings.steps: {} is above this server's limit of {} (--max-steps)",
            request.settings.steps, limits.max_steps
        ));
    }
    if stream == Some(true) && samples.is_some_and(|n| n > 1) {
        return Err("a stream records one sample: leave out `samples` or set \"stream\": false".into());
    }
    Ok(GenerateBody { request, samples, stream })
}

/// Whether the Accept header asks for JSON rather than an event stream.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/event-stream")
}

/// `POST /v1/generate`: queue the request, then stream its records or answer its endings.
async fn generate(State(server): State<Server>, headers: HeaderMap, body: Body) -> Response {
    let id = server.next_id.fetch_add(1, Ordering::Relaxed);
    let limit = server.limits.max_body;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body (this server takes at most {limit} bytes: --max-body): {e}"),
            );
        }
    };
    let parsed = match parse_body(&bytes, &server.limits, &server.info.model.sampling) {
        Ok(parsed) => parsed,
        Err(message) => {
            tracing::info!(id, "refused: {message}");
            return error(StatusCode::BAD_REQUEST, message);
        }
    };
    let stream = parsed.stream.unwrap_or(!wants_json(&headers)) && parsed.samples.is_none_or(|n| n == 1);
    let Ok(permit) = server.queue.clone().try_acquire_owned() else {
        tracing::info!(id, "refused: the queue is full");
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is busy: all {} places (--queue) are taken by running or waiting requests; try again",
                server.queue_size
            ),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let (out, mut records) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    let job = Job {
        id,
        request: parsed.request,
        samples: parsed.samples.unwrap_or(1),
        stream,
        deadline: Instant::now() + Duration::from_secs(server.limits.deadline_s),
        out,
        backlog: backlog.clone(),
        permit: Some(permit),
    };
    if server.jobs.send(job).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down");
    }
    // The first message decides the status: a refusal is a 400 before anything streams.
    let first = match taken(&backlog, records.recv().await) {
        None => return error(StatusCode::INTERNAL_SERVER_ERROR, "the engine dropped the request"),
        Some(Message::Refused(m) | Message::Failed(m)) => return error(StatusCode::BAD_REQUEST, m),
        Some(first) => first,
    };
    if stream {
        let rest = stream::unfold((records, backlog), |(mut rx, backlog)| async move {
            taken(&backlog, rx.recv().await).map(|m| (m, (rx, backlog)))
        });
        let events = stream::once(async move { first }).chain(rest).map(|m| Ok::<_, Infallible>(event(m)));
        return Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    }
    let mut endings = Vec::new();
    let mut next = Some(first);
    while let Some(message) = next {
        match message {
            Message::Line { json, .. } => endings.push(json),
            Message::Refused(m) | Message::Failed(m) => return error(StatusCode::BAD_REQUEST, m),
        }
        next = taken(&backlog, records.recv().await);
    }
    if endings.is_empty() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the engine ended the request without an ending");
    }
    let body = if parsed.samples.is_some() { format!("[{}]", endings.join(",")) } else { endings.swap_remove(0) };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A message the handler took from the engine: a record counts down the job's backlog.
fn taken(backlog: &AtomicUsize, message: Option<Message>) -> Option<Message> {
    if let Some(Message::Line { .. }) = message {
        backlog.fetch_sub(1, Ordering::Relaxed);
    }
    message
}

/// A message as a server-sent event: `header`, `step`, `ending`, or `error` with
/// `{"error": message}`.
fn event(message: Message) -> Event {
    match message {
        Message::Line { kind, json } => Event::default().event(kind).data(json),
        Message::Refused(m) | Message::Failed(m) => {
            Event::default().event("error").data(serde_json::json!({ "error": m }).to_string())
        }
    }
}

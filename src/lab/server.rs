//! The lab server: accepts HTTP/1.1 and h2c on one port and routes vLLM's endpoints.

use super::config::ServerConfig;
use super::generation::{self, Complete, FrameResult};
use super::metrics::Metrics;
use super::openai::{Api, GenerationRequest, Rejection, ResponseId, error_json};
use super::served::{Counters, Served, bump};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Largest request body read (prompts are small; this only bounds a bad client).
const MAX_REQUEST_BYTES: usize = 16 << 20;
/// How long a client may take to send its request body.
const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a cut body waits before dropping the connection, so its prefix is flushed.
const CUT_FLUSH_DELAY: Duration = Duration::from_millis(50);
/// Frames buffered between the generator and the connection.
const STREAM_BUFFER: usize = 64;

pub(crate) type Body = BoxBody<Bytes, io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot listen on {addr}: {source}; pick a free address or port")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// State shared by every connection of one server.
pub(crate) struct Lab {
    pub config: ServerConfig,
    pub metrics: Metrics,
    pub slots: Arc<Semaphore>,
    pub counters: Counters,
    dead: AtomicBool,
    warm_at: Mutex<Option<Instant>>,
    send_log: Mutex<Vec<Vec<std::time::Instant>>>,
    next_id: AtomicU64,
}

impl Lab {
    /// The instant the model is warm, set by the first request to ask; `None` without warm-up.
    pub(crate) fn warm_deadline(&self) -> Option<Instant> {
        if self.config.warmup_delay.is_zero() {
            return None;
        }
        let mut warm_at = self.warm_at.lock().unwrap_or_else(PoisonError::into_inner);
        Some(*warm_at.get_or_insert_with(|| Instant::now() + self.config.warmup_delay))
    }

    pub(crate) fn record_sends(&self, sends: Vec<std::time::Instant>) {
        self.send_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sends);
    }

    fn response_id(&self, api: Api) -> ResponseId {
        let serial = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let prefix = match api {
            Api::Completions => "cmpl",
            Api::Chat => "chatcmpl",
        };
        ResponseId {
            api,
            id: format!("{prefix}-{:016x}{serial:016x}", now.as_nanos() as u64),
            created: now.as_secs(),
            model: self.config.model.clone(),
        }
    }
}

/// A lab server running on a background task; stops when dropped.
pub struct RunningServer {
    addr: SocketAddr,
    lab: Arc<Lab>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &ServerConfig {
        &self.lab.config
    }

    pub fn served(&self) -> Served {
        self.lab.counters.snapshot()
    }

    /// Kill or revive the engine: `/health` 503 and generation 500 while dead.
    pub fn set_dead(&self, dead: bool) {
        self.lab.dead.store(dead, Ordering::Relaxed);
    }

    /// The instants each token was handed to the connection, one list per finished request, in
    /// finishing order (only with `record_send_times`).
    pub fn send_log(&self) -> Vec<Vec<std::time::Instant>> {
        self.lab
            .send_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current `/metrics` text.
    pub fn metrics_text(&self) -> String {
        render_metrics(&self.lab)
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a lab server on `config.addr` (default: a free loopback port).
pub async fn spawn(config: ServerConfig) -> Result<RunningServer, LabError> {
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| LabError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| LabError::Bind {
        addr: config.addr,
        source,
    })?;
    let lab = Arc::new(Lab {
        slots: Arc::new(Semaphore::new(config.max_num_seqs.max(1))),
        dead: AtomicBool::new(config.dead),
        config,
        metrics: Metrics::new(),
        counters: Counters::default(),
        warm_at: Mutex::new(None),
        send_log: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
    });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&lab), stopped));
    Ok(RunningServer {
        addr,
        lab,
        stop: Some(stop),
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, lab: Arc<Lab>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "lab server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        bump(&lab.counters.connections);
        let _ = stream.set_nodelay(true);
        if lab.config.reset_after_tokens.is_some() {
            // Closing with SO_LINGER 0 sends a TCP RST: an HTTP/1.1 reset, not a clean EOF.
            let _ = stream.set_zero_linger();
        }
        let lab = Arc::clone(&lab);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let lab = Arc::clone(&lab);
                async move { Ok::<_, Infallible>(route(lab, request).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "lab server: connection ended with an error");
            }
        });
    }
}

async fn route(lab: Arc<Lab>, request: Request<Incoming>) -> Response<Body> {
    bump(&lab.counters.requests);
    if request.version() == Version::HTTP_2 {
        bump(&lab.counters.http2_requests);
    }
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match (method, path.as_str()) {
        (Method::GET, "/health") => {
            if lab.dead.load(Ordering::Relaxed) {
                json(StatusCode::SERVICE_UNAVAILABLE, String::new())
            } else {
                json(StatusCode::OK, String::new())
            }
        }
        (Method::GET, "/version") => json(
            StatusCode::OK,
            format!("{{\"version\":\"lab-{}\"}}", env!("CARGO_PKG_VERSION")),
        ),
        (Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render_metrics(&lab),
        ),
        (Method::GET, "/v1/models") => {
            if authorized(&lab, &request) {
                json(StatusCode::OK, models_json(&lab))
            } else {
                unauthorized(&lab)
            }
        }
        (Method::POST, "/v1/completions") => generate(lab, Api::Completions, request).await,
        (Method::POST, "/v1/chat/completions") => generate(lab, Api::Chat, request).await,
        (_, "/health" | "/version" | "/metrics" | "/v1/models")
        | (_, "/v1/completions" | "/v1/chat/completions") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"detail":"Method Not Allowed"}"#.to_string(),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"detail":"Not Found"}"#.to_string(),
        ),
    }
}

fn render_metrics(lab: &Lab) -> String {
    lab.metrics.render(
        &lab.config.model,
        lab.config.max_num_seqs,
        lab.config.legacy_metric_names,
    )
}

/// `vllm --api-key` guards `/v1/*` only, answering 401 `{"error": "Unauthorized"}`.
fn authorized(lab: &Lab, request: &Request<Incoming>) -> bool {
    let Some(key) = &lab.config.api_key else {
        return true;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    presented == Some(key.as_str())
}

fn unauthorized(lab: &Lab) -> Response<Body> {
    bump(&lab.counters.unauthorized);
    json(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"Unauthorized"}"#.to_string(),
    )
}

fn models_json(lab: &Lab) -> String {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    let model = &lab.config.model;
    serde_json::json!({
        "object": "list",
        "data": [{
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": model,
            "parent": null,
            "max_model_len": lab.config.max_model_len,
        }]
    })
    .to_string()
}

async fn generate(lab: Arc<Lab>, api: Api, request: Request<Incoming>) -> Response<Body> {
    let arrival = Instant::now();
    bump(match api {
        Api::Completions => &lab.counters.completions,
        Api::Chat => &lab.counters.chat_completions,
    });
    if !authorized(&lab, &request) {
        return unauthorized(&lab);
    }
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(rejection) => return reject(&lab, &rejection),
    };
    let parsed: GenerationRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return reject(
                &lab,
                &super::openai::bad_request(&format!("invalid JSON body: {error}")),
            );
        }
    };
    let config = &lab.config;
    let plan = match parsed.plan(
        api,
        &config.model,
        config.max_model_len,
        config.eos_after_tokens,
    ) {
        Ok(plan) => plan,
        Err(rejection) => return reject(&lab, &rejection),
    };
    if lab.dead.load(Ordering::Relaxed) {
        return reject(
            &lab,
            &Rejection {
                status: 500,
                kind: "EngineDeadError",
                message:
                    "EngineCore encountered an issue. See stack trace (above) for the root cause."
                        .to_string(),
            },
        );
    }
    let id = lab.response_id(api);
    if parsed.stream {
        bump(&lab.counters.streaming);
        let (tx, rx) = mpsc::channel::<FrameResult>(STREAM_BUFFER);
        tokio::spawn(generation::stream(
            Arc::clone(&lab),
            plan,
            id,
            parsed.include_usage(),
            arrival,
            tx,
        ));
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item.map(Frame::data), rx))
        });
        return with_server(Response::builder())
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .body(StreamBody::new(frames).boxed())
            .unwrap_or_else(|_| internal_error());
    }
    match generation::complete(Arc::clone(&lab), plan, id, arrival).await {
        Complete::Body(body) => json(StatusCode::OK, body),
        Complete::EngineError(body) => json(StatusCode::INTERNAL_SERVER_ERROR, body),
        Complete::Truncated { body, prefix } => {
            let full_length = body.len();
            let mut bytes = Bytes::from(body);
            let head = bytes.split_to(prefix.min(full_length));
            let frames = futures_util::stream::unfold(Some(Some(head)), |step| async move {
                match step? {
                    Some(head) => Some((Ok(Frame::data(head)), Some(None))),
                    None => {
                        // Let the connection flush what was sent before it drops.
                        tokio::time::sleep(CUT_FLUSH_DELAY).await;
                        let cut = io::Error::new(io::ErrorKind::ConnectionReset, "lab: body cut");
                        Some((Err(cut), None))
                    }
                }
            });
            with_server(Response::builder())
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, full_length)
                .body(StreamBody::new(frames).boxed())
                .unwrap_or_else(|_| internal_error())
        }
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Rejection> {
    let limited = Limited::new(request.into_body(), MAX_REQUEST_BYTES);
    match tokio::time::timeout(REQUEST_BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => Err(super::openai::bad_request(&format!(
            "cannot read the request body: {error}"
        ))),
        Err(_) => Err(super::openai::bad_request(
            "the request body did not arrive in time",
        )),
    }
}

fn reject(lab: &Lab, rejection: &Rejection) -> Response<Body> {
    bump(&lab.counters.rejected);
    let status =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        error_json(rejection.kind, &rejection.message, rejection.status),
    )
}

fn with_server(builder: http::response::Builder) -> http::response::Builder {
    builder.header(header::SERVER, "uvicorn")
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    text(status, "application/json", body)
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    with_server(Response::builder())
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(full(body))
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

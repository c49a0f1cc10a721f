//! A loopback Kubernetes API server for tests: TLS with a CA made at test time, bearer-token
//! authentication, discovery, paged lists with label selectors, `Status` failures (401, 403 per
//! resource, 404), and websocket port-forward to loopback ports. Read-only: only GET is served,
//! and every request is recorded so tests can count them and check their methods.
//!
//! ```ignore
//! let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
//! let kubeconfig = server.write_kubeconfig(dir.path());
//! ```

mod fixtures;
mod portforward;
pub mod rbac;
pub mod resources;
pub mod rollout;
mod status;
mod store;
pub mod tls;

pub use fixtures::{fixture_dir, generate_pods, load_fixtures};
pub use portforward::RefusedForward;
pub use resources::IstioApis;
pub use tls::Serving;

use super::kubeconfig::KubeconfigFile;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use resources::ResourceType;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use store::{ListQuery, Store};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The bearer token the server accepts.
pub const TOKEN: &str = "infermesh-test-token-9f2c";
/// The user RBAC messages name.
pub const USER: &str = "system:serviceaccount:infermesh:viewer";
/// The namespace the fixtures live in.
pub const NAMESPACE: &str = "inference";

/// Where RBAC says no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForbidScope {
    /// Every request for the resource.
    Everywhere,
    /// Lists across all namespaces, and lists of a cluster-scoped kind (a GET of one
    /// cluster-scoped object is still allowed, as a ClusterRole with `get` but not `list` does).
    ClusterWide,
    /// Requests within this namespace.
    Namespace(String),
}

/// A misbehaviour of the server for lists of one resource.
#[derive(Debug, Clone)]
struct Fault {
    plural: String,
    kind: FaultKind,
    /// How many more lists it applies to.
    left: Arc<AtomicU64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FaultKind {
    Status(u16),
    EndlessContinue,
    /// Never answers (until the client goes away).
    Hang,
}

impl Fault {
    /// Whether this list is hit (and counts it).
    fn hits(&self, plural: &str) -> bool {
        self.plural == plural
            && self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
    }
}

#[derive(Debug, Clone)]
struct Forbid {
    plural: String,
    scope: ForbidScope,
}

/// What the server holds and how it behaves.
pub struct ApiServerConfig {
    objects: Vec<Value>,
    /// Manifests and the namespace they are applied in; rolled out at start, once it is known
    /// whether Istio (and so its injector) is there.
    manifests: Vec<(Vec<Value>, String)>,
    istio: IstioApis,
    forbidden: Vec<Forbid>,
    port_forwards: HashMap<(String, String, u16), SocketAddr>,
    every_pod_forwards: HashMap<u16, SocketAddr>,
    refused_forwards: portforward::RefusedForward,
    serving: Serving,
    serving_names: Option<Vec<String>>,
    bind: IpAddr,
    path_prefix: String,
    extra_tokens: Vec<String>,
    faults: Vec<Fault>,
    gateway_api: bool,
    role: Option<rbac::Role>,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServerConfig {
    /// No objects; Istio's current API versions installed.
    pub fn new() -> Self {
        Self {
            objects: Vec::new(),
            manifests: Vec::new(),
            istio: IstioApis::Current,
            forbidden: Vec::new(),
            port_forwards: HashMap::new(),
            every_pod_forwards: HashMap::new(),
            refused_forwards: portforward::RefusedForward::default(),
            serving: Serving::CaSigned,
            serving_names: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            path_prefix: String::new(),
            extra_tokens: Vec::new(),
            faults: Vec::new(),
            gateway_api: false,
            role: None,
        }
    }

    /// Serves the Gateway API and Inference Extension groups too (their CRDs installed); without
    /// it their objects are dropped, as on a cluster without those CRDs.
    pub fn gateway_api(mut self) -> Self {
        self.gateway_api = true;
        self
    }

    /// Lists of `plural` answer `code` (429, 500, …) the first `times` times.
    pub fn fail_lists(mut self, plural: &str, code: u16, times: usize) -> Self {
        self.faults.push(Fault {
            plural: plural.to_string(),
            kind: FaultKind::Status(code),
            left: Arc::new(AtomicU64::new(times as u64)),
        });
        self
    }

    /// Lists of `plural` hand back the same `continue` token on every page, forever.
    pub fn endless_pages(mut self, plural: &str) -> Self {
        self.faults.push(Fault {
            plural: plural.to_string(),
            kind: FaultKind::EndlessContinue,
            left: Arc::new(AtomicU64::new(u64::MAX)),
        });
        self
    }

    /// Lists of `plural` are received and never answered, as a server stuck behind a dead etcd.
    pub fn hang_lists(mut self, plural: &str) -> Self {
        self.faults.push(Fault {
            plural: plural.to_string(),
            kind: FaultKind::Hang,
            left: Arc::new(AtomicU64::new(u64::MAX)),
        });
        self
    }

    /// Accept this bearer token too (an OIDC id-token, say).
    pub fn accept_token(mut self, token: &str) -> Self {
        self.extra_tokens.push(token.to_string());
        self
    }

    /// How the serving certificate is made (default: signed by a CA the kubeconfig trusts).
    pub fn serving(mut self, serving: Serving) -> Self {
        self.serving = serving;
        self
    }

    /// The names the serving certificate carries (default `127.0.0.1`, `localhost`, `::1`).
    pub fn serving_names(mut self, names: &[&str]) -> Self {
        self.serving_names = Some(names.iter().map(|name| name.to_string()).collect());
        self
    }

    /// Listen on this loopback address (default `127.0.0.1`; `::1` for IPv6).
    pub fn bind(mut self, address: IpAddr) -> Self {
        self.bind = address;
        self
    }

    /// Serve the API under a path, as Rancher serves `/k8s/clusters/c-xxxxx`.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    /// Adds every object under `tests/fixtures/cluster/`.
    pub fn with_fixtures(mut self) -> Self {
        self.objects.extend(load_fixtures());
        self
    }

    /// Adds what the cluster holds after `kubectl apply -n namespace -f path` (a file, or a
    /// folder applied as one): the manifests, their Namespaces, and running pods for each
    /// Deployment and StatefulSet, sidecar-injected where Istio would (never when Istio is
    /// absent). See [`rollout::roll_out`].
    pub fn with_manifests(mut self, path: &Path, namespace: &str) -> Self {
        self.manifests
            .push((rollout::read_manifests(path), namespace.to_string()));
        self
    }

    pub fn with_objects(mut self, objects: impl IntoIterator<Item = Value>) -> Self {
        self.objects.extend(objects);
        self
    }

    /// Which Istio API versions exist (`Absent` removes the groups and their objects).
    pub fn istio(mut self, istio: IstioApis) -> Self {
        self.istio = istio;
        self
    }

    /// Authorizes every request by this ClusterRole's rules; what they do not allow gets 403.
    pub fn enforce_role(mut self, role: rbac::Role) -> Self {
        self.role = Some(role);
        self
    }

    /// Answers 403 for `plural` (e.g. `envoyfilters`, `nodes`, `pods/portforward`) in `scope`.
    pub fn forbid(mut self, plural: &str, scope: ForbidScope) -> Self {
        self.forbidden.push(Forbid {
            plural: plural.to_string(),
            scope,
        });
        self
    }

    /// What a forward to a port that refuses does after the kubelet's message: by default it
    /// closes, as the kubelet's does.
    pub fn refused_forwards(mut self, refused: RefusedForward) -> Self {
        self.refused_forwards = refused;
        self
    }

    /// Port-forwards to `port` of every pod not wired by [`ApiServerConfig::port_forward`]
    /// reach `to` (a loopback address).
    pub fn port_forward_every_pod(mut self, port: u16, to: SocketAddr) -> Self {
        self.every_pod_forwards.insert(port, to);
        self
    }

    /// Port-forwards to `namespace/pod:port` reach `to` (a loopback address).
    pub fn port_forward(mut self, namespace: &str, pod: &str, port: u16, to: SocketAddr) -> Self {
        self.port_forwards
            .insert((namespace.to_string(), pod.to_string(), port), to);
        self
    }
}

/// One request as received: method, path and raw query. The token is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The `Impersonate-User` header, when sent.
    pub impersonate_user: Option<String>,
    /// How the caller authenticated: `token` or `client-certificate`.
    pub credential: Option<&'static str>,
}

impl std::fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.query.is_empty() {
            write!(f, "{} {}", self.method, self.path)
        } else {
            write!(f, "{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// One port-forward websocket the server upgraded: the pod (`namespace/name`), the ports asked
/// for, how many bytes the client sent through it so far, and when it was opened and closed on
/// the server's event count (a tick per upgrade and per end; `closed` is `None` while open). A
/// forward that only checks it may connect (as `PortForward::start` does) sends no bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardSession {
    pub pod: String,
    pub ports: Vec<u16>,
    pub client_bytes: u64,
    pub opened: u64,
    pub closed: Option<u64>,
}

struct SessionRecord {
    pod: String,
    ports: Vec<u16>,
    client_bytes: Arc<AtomicU64>,
    opened: u64,
    /// 0 while open.
    closed: Arc<AtomicU64>,
}

struct State {
    store: Store,
    served: Vec<ResourceType>,
    forbidden: Vec<Forbid>,
    faults: Vec<Fault>,
    port_forwards: HashMap<(String, String, u16), SocketAddr>,
    every_pod_forwards: HashMap<u16, SocketAddr>,
    refused_forwards: portforward::RefusedForward,
    path_prefix: String,
    tokens: Vec<String>,
    requests: Mutex<Vec<RecordedRequest>>,
    sessions: Mutex<Vec<SessionRecord>>,
    /// Ticks once per port-forward upgrade and per end, from 1.
    events: Arc<AtomicU64>,
    /// TCP connections accepted and not yet closed.
    open_connections: AtomicU64,
    address: SocketAddr,
    role: Option<rbac::Role>,
    /// Requests the role did not allow, as `VERB GROUP/RESOURCE` or `VERB PATH`.
    denied: Mutex<Vec<String>>,
    /// Requests it allowed, the same way.
    granted: Mutex<Vec<String>>,
}

pub struct ApiServer {
    address: SocketAddr,
    ca_pem: String,
    client_ca: tls::ClientCa,
    path_prefix: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Starts serving on `127.0.0.1:<free port>` in the current tokio runtime.
    pub async fn start(config: ApiServerConfig) -> ApiServer {
        let listener = TcpListener::bind(SocketAddr::new(config.bind, 0))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let names = config.serving_names.clone().unwrap_or_else(|| {
            ["127.0.0.1", "localhost", "::1"]
                .map(str::to_string)
                .to_vec()
        });
        let ca = tls::make(config.serving, &names, "infermesh test cluster CA");
        let mut served = resources::served_resources(config.istio);
        if config.gateway_api {
            served.extend(resources::gateway_api_resources());
        }
        let injector = config.istio != IstioApis::Absent;
        let rolled_out = config
            .manifests
            .into_iter()
            .flat_map(|(manifests, namespace)| {
                rollout::roll_out_with(manifests, &namespace, injector)
            });
        let objects = config
            .objects
            .into_iter()
            .chain(rolled_out)
            .filter(|object| {
                let group = store::group_of(object["apiVersion"].as_str().unwrap_or_default());
                served.iter().any(|resource| resource.group == group)
            })
            .collect();
        let state = Arc::new(State {
            store: Store::new(objects),
            served,
            forbidden: config.forbidden,
            faults: config.faults,
            port_forwards: config.port_forwards,
            every_pod_forwards: config.every_pod_forwards,
            refused_forwards: config.refused_forwards,
            path_prefix: config.path_prefix.clone(),
            tokens: std::iter::once(TOKEN.to_string())
                .chain(config.extra_tokens.clone())
                .collect(),
            requests: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            events: Arc::new(AtomicU64::new(0)),
            open_connections: AtomicU64::new(0),
            address,
            role: config.role,
            denied: Mutex::new(Vec::new()),
            granted: Mutex::new(Vec::new()),
        });
        let acceptor = TlsAcceptor::from(ca.server_config.clone());
        let task = tokio::spawn(accept_loop(listener, acceptor, state.clone()));
        ApiServer {
            address,
            ca_pem: ca.trust_pem,
            client_ca: ca.client_ca,
            path_prefix: config.path_prefix,
            state,
            task,
        }
    }

    /// Starts on a runtime of its own, for tests that run the binary synchronously.
    pub fn start_detached(config: ApiServerConfig) -> DetachedApiServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(ApiServer::start(config));
        DetachedApiServer {
            server: Some(server),
            runtime: Some(runtime),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://127.0.0.1:PORT` (`https://[::1]:PORT` on IPv6), with the path prefix if any.
    pub fn url(&self) -> String {
        format!("https://{}{}", self.address, self.path_prefix)
    }

    /// What a kubeconfig trusts for this server, PEM: the CA that signed the serving
    /// certificate, or the serving certificate itself when it is self-signed.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client certificate (PEM) the server accepts as a credential, for the PKCS#8 key given.
    pub fn client_certificate(&self, key_pkcs8_pem: &str, user: &str) -> String {
        self.client_ca.issue(key_pkcs8_pem, user)
    }

    /// How many objects the server holds (after dropping those of absent groups).
    pub fn object_count(&self) -> usize {
        self.state.store.len()
    }

    /// Connections accepted and still open (a client that exited leaves none).
    pub fn open_connections(&self) -> u64 {
        self.state.open_connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The requests the enforced role answered 403, as `VERB GROUP/RESOURCE` or `VERB PATH`.
    pub fn denied(&self) -> Vec<String> {
        self.state.denied.lock().unwrap().clone()
    }

    /// The requests the enforced role allowed, the same way.
    pub fn granted(&self) -> Vec<String> {
        self.state.granted.lock().unwrap().clone()
    }

    pub fn clear_requests(&self) {
        self.state.requests.lock().unwrap().clear();
        self.state.sessions.lock().unwrap().clear();
    }

    /// Every port-forward websocket upgraded so far, in order.
    pub fn port_forward_sessions(&self) -> Vec<PortForwardSession> {
        self.state
            .sessions
            .lock()
            .unwrap()
            .iter()
            .map(|session| PortForwardSession {
                pod: session.pod.clone(),
                ports: session.ports.clone(),
                client_bytes: session.client_bytes.load(Ordering::SeqCst),
                opened: session.opened,
                closed: Some(session.closed.load(Ordering::SeqCst)).filter(|at| *at > 0),
            })
            .collect()
    }

    /// A kubeconfig for this server with contexts `loopback` (current, namespace `inference`),
    /// `loopback-no-namespace`, `loopback-bad-token` (wrong token) and `loopback-wrong-ca`
    /// (a CA that did not sign the server's certificate).
    pub fn kubeconfig(&self) -> KubeconfigFile {
        let other_ca = tls::make_ca("some other CA");
        KubeconfigFile::new()
            .cluster("loopback", &self.url(), Some(&self.ca_pem))
            .cluster("loopback-wrong-ca", &self.url(), Some(&other_ca.ca_pem))
            .user("tester", TOKEN)
            .user("intruder", "not-the-token")
            .context("loopback", "loopback", "tester", Some(NAMESPACE))
            .context("loopback-no-namespace", "loopback", "tester", None)
            .context(
                "loopback-bad-token",
                "loopback",
                "intruder",
                Some(NAMESPACE),
            )
            .context(
                "loopback-wrong-ca",
                "loopback-wrong-ca",
                "tester",
                Some(NAMESPACE),
            )
            .current("loopback")
    }

    /// Writes [`ApiServer::kubeconfig`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        self.kubeconfig().write(&dir.join("kubeconfig"))
    }
}

/// A server with its own runtime; dereferences to [`ApiServer`].
pub struct DetachedApiServer {
    server: Option<ApiServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for DetachedApiServer {
    type Target = ApiServer;
    fn deref(&self) -> &ApiServer {
        self.server.as_ref().unwrap()
    }
}

impl Drop for DetachedApiServer {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One accepted connection in `State::open_connections`, for as long as it is served.
struct OpenConnection(Arc<State>);

impl OpenConnection {
    fn count(state: Arc<State>) -> Self {
        state.open_connections.fetch_add(1, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = state.clone();
                connections.spawn(async move {
                    let _open = OpenConnection::count(state.clone());
                    // A client that rejects our certificate ends the handshake: nothing to serve.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let client_certificate = tls.get_ref().1.peer_certificates().is_some();
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move {
                            Ok::<_, Infallible>(handle(state, request, client_certificate).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn json_response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status_response(body: Value) -> Response<Full<Bytes>> {
    let code = body["code"]
        .as_u64()
        .and_then(|code| u16::try_from(code).ok())
        .unwrap_or(500);
    json_response(code, &body)
}

/// `a=b&c=d%2Ce` → pairs, percent-decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            match bytes[index] {
                b'+' => out.push(b' '),
                b'%' if index + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(byte) => {
                            out.push(byte);
                            index += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            index += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    client_certificate: bool,
) -> Response<Full<Bytes>> {
    let full_path = request.uri().path().to_string();
    let raw_query = request.uri().query().unwrap_or_default().to_string();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|bearer| state.tokens.iter().any(|token| token == bearer));
    let credential = if token {
        Some("token")
    } else if client_certificate {
        Some("client-certificate")
    } else {
        None
    };
    state.requests.lock().unwrap().push(RecordedRequest {
        method: request.method().to_string(),
        path: full_path.clone(),
        query: raw_query.clone(),
        impersonate_user: request
            .headers()
            .get("impersonate-user")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        credential,
    });
    let Some(path) = full_path.strip_prefix(state.path_prefix.as_str()) else {
        return status_response(status::not_found_resource());
    };
    let path = path.to_string();
    if credential.is_none() {
        return status_response(status::unauthorized());
    }
    if request.method() != Method::GET {
        return status_response(status::method_not_allowed(request.method().as_str()));
    }
    let query = parse_query(&raw_query);
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(str::to_string)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let served = &state.served;
    let discovery = matches!(
        segments.as_slice(),
        ["version"] | ["api"] | ["apis"] | ["api", "v1"] | ["apis", _] | ["apis", _, _]
    );
    if discovery
        && !state.authorized(&rbac::Attributes::NonResource {
            verb: "get",
            path: &path,
        })
    {
        return status_response(status::status(
            403,
            "Forbidden",
            &format!("forbidden: User \"{USER}\" cannot get path \"{path}\""),
            json!({}),
        ));
    }
    match segments.as_slice() {
        ["version"] => json_response(200, &resources::version_info()),
        ["api"] => json_response(200, &resources::api_versions(&state.address.to_string())),
        ["apis"] => json_response(200, &resources::api_group_list(served)),
        ["api", "v1"] => found(resources::api_resource_list(served, "", "v1")),
        ["apis", group] => found(resources::api_group(served, group)),
        ["apis", group, version] => found(resources::api_resource_list(served, group, version)),
        ["api", "v1", rest @ ..] => resource_request(&state, "", "v1", rest, &query, request).await,
        ["apis", group, version, rest @ ..] => {
            let (group, version) = (group.to_string(), version.to_string());
            resource_request(&state, &group, &version, rest, &query, request).await
        }
        _ => status_response(status::not_found_resource()),
    }
}

fn found(document: Option<Value>) -> Response<Full<Bytes>> {
    match document {
        Some(document) => json_response(200, &document),
        None => status_response(status::not_found_resource()),
    }
}

impl State {
    fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.served.iter().find(|resource| {
            resource.group == group && resource.version == version && resource.plural == plural
        })
    }

    /// Whether the enforced role (if any) allows the request; a refusal is recorded.
    fn authorized(&self, request: &rbac::Attributes) -> bool {
        let Some(role) = &self.role else {
            return true;
        };
        let text = match request {
            rbac::Attributes::Resource {
                verb,
                group,
                resource,
                ..
            } => format!("{verb} {group}/{resource}"),
            rbac::Attributes::NonResource { verb, path } => format!("{verb} {path}"),
        };
        let allowed = role.allows(request);
        let record = if allowed { &self.granted } else { &self.denied };
        record.lock().unwrap().push(text);
        allowed
    }

    fn is_forbidden(&self, plural: &str, namespace: Option<&str>, is_list: bool) -> bool {
        self.forbidden.iter().any(|rule| {
            rule.plural == plural
                && match &rule.scope {
                    ForbidScope::Everywhere => true,
                    ForbidScope::ClusterWide => is_list && namespace.is_none(),
                    ForbidScope::Namespace(name) => namespace == Some(name.as_str()),
                }
        })
    }
}

async fn resource_request(
    state: &State,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &[(String, String)],
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (namespace, plural, name, subresource) = match rest {
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        ["namespaces", namespace, plural] => (Some(*namespace), *plural, None, None),
        ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name), None),
        ["namespaces", namespace, plural, name, subresource] => {
            (Some(*namespace), *plural, Some(*name), Some(*subresource))
        }
        _ => return status_response(status::not_found_resource()),
    };
    let Some(resource) = state.resource(group, version, plural) else {
        return status_response(status::not_found_resource());
    };
    // A namespaced resource is addressed with its namespace, a cluster-scoped one without,
    // except that a namespaced resource may be listed across namespaces.
    if namespace.is_some() && !resource.namespaced
        || namespace.is_none() && resource.namespaced && name.is_some()
    {
        return status_response(status::not_found_resource());
    }
    // Port-forward over websockets is a GET, authorized as `create` (Kubernetes 1.35 and later;
    // SPDY's POST always was).
    let (verb, rbac_resource) = match (name, subresource) {
        (None, _) => ("list", plural.to_string()),
        (Some(_), None) => ("get", plural.to_string()),
        (Some(_), Some(sub)) => ("create", format!("{plural}/{sub}")),
    };
    if !state.authorized(&rbac::Attributes::Resource {
        verb,
        group,
        resource: &rbac_resource,
        name,
    }) {
        return status_response(status::forbidden(
            USER,
            verb,
            group,
            &rbac_resource,
            namespace,
        ));
    }
    match (name, subresource) {
        (None, _) => {
            if state.is_forbidden(plural, namespace, true) {
                return status_response(status::forbidden(USER, "list", group, plural, namespace));
            }
            let mut list_query = match ListQuery::from_query(query) {
                Ok(list_query) => list_query,
                Err(failure) => return status_response(failure),
            };
            for fault in &state.faults {
                if fault.kind == FaultKind::Hang && fault.hits(plural) {
                    std::future::pending::<()>().await;
                }
                if fault.kind != FaultKind::EndlessContinue && fault.hits(plural) {
                    let FaultKind::Status(code) = fault.kind else {
                        continue;
                    };
                    let reason = if code == 429 {
                        "TooManyRequests"
                    } else {
                        "InternalError"
                    };
                    return status_response(status::status(
                        code,
                        reason,
                        "the server is busy (a fault the test asked for)",
                        json!({}),
                    ));
                }
            }
            let endless = state
                .faults
                .iter()
                .any(|fault| fault.kind == FaultKind::EndlessContinue && fault.hits(plural));
            if endless {
                // Its own tokens mean nothing: every page is the first one again.
                list_query.continue_token = None;
            }
            match state.store.list(resource, namespace, &list_query) {
                Ok(mut list) if endless => {
                    list["metadata"]["continue"] = json!("endless");
                    json_response(200, &list)
                }
                Ok(list) => json_response(200, &list),
                Err(failure) => status_response(failure),
            }
        }
        (Some(name), None) => {
            if state.is_forbidden(plural, namespace, false) {
                return status_response(status::forbidden(USER, "get", group, plural, namespace));
            }
            match state.store.get(resource, namespace, name) {
                Some(object) => json_response(200, &object),
                None => status_response(status::not_found_object(group, plural, name)),
            }
        }
        (Some(name), Some("portforward")) if plural == "pods" => {
            let namespace = namespace.unwrap_or_default();
            if state.is_forbidden("pods/portforward", Some(namespace), false) {
                return status_response(status::forbidden(
                    USER,
                    "create",
                    group,
                    "pods/portforward",
                    Some(namespace),
                ));
            }
            if state.store.get(resource, Some(namespace), name).is_none() {
                return status_response(status::not_found_object(group, plural, name));
            }
            upgrade_port_forward(state, namespace, name, query, request)
        }
        _ => status_response(status::not_found_resource()),
    }
}

fn upgrade_port_forward(
    state: &State,
    namespace: &str,
    pod: &str,
    query: &[(String, String)],
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let header_text = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let upgrade = header_text(header::UPGRADE).unwrap_or_default();
    let Some(key) = header_text(header::SEC_WEBSOCKET_KEY) else {
        return status_response(status::bad_request("Upgrade request required"));
    };
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return status_response(status::bad_request("Upgrade request required"));
    }
    let offered = header_text(header::SEC_WEBSOCKET_PROTOCOL).unwrap_or_default();
    let Some(protocol) = portforward::negotiate(&offered) else {
        return status_response(status::bad_request(&format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{offered}], server supports {:?}",
            portforward::SUBPROTOCOLS
        )));
    };
    let ports = match portforward::parse_ports(query) {
        Ok(ports) => ports,
        Err(message) => return status_response(status::bad_request(&message)),
    };
    let targets = ports
        .iter()
        .map(|port| portforward::PortTarget {
            port: *port,
            address: state
                .port_forwards
                .get(&(namespace.to_string(), pod.to_string(), *port))
                .or_else(|| state.every_pod_forwards.get(port))
                .copied(),
        })
        .collect();
    let pod_name = format!("{namespace}/{pod}");
    let client_bytes = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let events = state.events.clone();
    let refused = state.refused_forwards;
    state.sessions.lock().unwrap().push(SessionRecord {
        pod: pod_name.clone(),
        ports,
        client_bytes: client_bytes.clone(),
        opened: events.fetch_add(1, Ordering::SeqCst) + 1,
        closed: closed.clone(),
    });
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(request).await {
            portforward::serve(upgraded, pod_name, targets, &client_bytes, refused).await;
        }
        closed.store(events.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::parse_query;

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            parse_query("&ports=80%2C1234&labelSelector=app%3Dvllm"),
            vec![
                ("ports".to_string(), "80,1234".to_string()),
                ("labelSelector".to_string(), "app=vllm".to_string())
            ]
        );
    }
}

//! The probe's HTTP client: reqwest with no proxy, a connect timeout, TLS when a URL is https
//! (`tls.rs`), and a clock on every new connection so a request can tell whether it paid a
//! connect and how long it took. The clock wraps reqwest's whole connector, so for https it
//! covers DNS, TCP and the TLS handshake; the handshake's own share is measured beside it.

use super::ProbeError;
use super::tls::{ConnectTo, HandshakeClock, TlsTrust};
use reqwest::Url;
use rustls::client::Resumption;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How the probe connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bounds DNS, TCP and the TLS handshake together.
    pub connect_timeout: Duration,
    /// Speak HTTP/2 from the first byte: h2c on http, ALPN `h2` on https.
    pub http2_prior_knowledge: bool,
    /// Whom https URLs trust; `None`: no roots, so no https request can succeed.
    pub tls: Option<TlsTrust>,
    /// Connect to these addresses for this name (an https URL that named an address).
    pub connect_to: Option<ConnectTo>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            http2_prior_knowledge: false,
            tls: None,
            connect_to: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Connect {
    started: Instant,
    /// When the TLS handshake began (the TCP connection was up); `None` for plain HTTP.
    tls_started: Option<Instant>,
    finished: Instant,
}

/// What opening a connection cost a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectTime {
    /// From sending the request to the connection being ready: DNS, TCP and, for https, the TLS
    /// handshake.
    pub total: Duration,
    /// The TLS handshake's share of `total`: ClientHello to handshake done.
    pub tls: Option<Duration>,
}

#[derive(Debug, Default)]
struct ConnectLog {
    connects: Mutex<Vec<Connect>>,
}

impl ConnectLog {
    fn record(&self, connect: Connect) {
        self.connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connect);
    }
}

/// A reqwest client that remembers when it opened connections.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    log: Arc<ConnectLog>,
}

impl HttpClient {
    pub fn new(options: ClientOptions) -> Result<Self, ProbeError> {
        let clock = Arc::new(HandshakeClock::new());
        let log = Arc::new(ConnectLog::default());
        let tls_config =
            match &options.tls {
                Some(trust) => trust.client_config(
                    options.http2_prior_knowledge,
                    Resumption::store(
                        Arc::clone(&clock) as Arc<dyn rustls::client::ClientSessionStore>
                    ),
                )?,
                None => no_tls_config()?,
            };
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .tls_backend_preconfigured(tls_config)
            .connector_layer(ConnectTimingLayer {
                log: Arc::clone(&log),
                clock,
            });
        if let Some(connect_to) = &options.connect_to {
            builder = builder.resolve_to_addrs(&connect_to.name, &connect_to.addrs);
        }
        if options.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        } else {
            builder = builder.http1_only();
        }
        let client = builder
            .build()
            .map_err(|error| ProbeError::Client(error.to_string()))?;
        Ok(Self { client, log })
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Connections opened so far (successful or not).
    pub fn connections_opened(&self) -> usize {
        self.log
            .connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// When a connection was opened for a request started at `since`: from `since` to the
    /// connection being ready (DNS, TCP and, for https, the TLS handshake). `None`: an idle
    /// pooled connection served it. Only exact when one request is in flight on this client.
    pub fn connect_time_since(&self, since: Instant) -> Option<Duration> {
        self.connection_since(since).map(|time| time.total)
    }

    /// [`HttpClient::connect_time_since`] with the TLS handshake's share.
    pub fn connection_since(&self, since: Instant) -> Option<ConnectTime> {
        self.log
            .connects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|connect| connect.started >= since)
            .map(|connect| ConnectTime {
                total: connect.finished.saturating_duration_since(since),
                tls: connect
                    .tls_started
                    .map(|start| connect.finished.saturating_duration_since(start)),
            })
    }
}

/// reqwest panics when it builds a client without a rustls crypto provider; this config has one
/// (ring) and trusts no roots: the client of http-only paths.
fn no_tls_config() -> Result<rustls::ClientConfig, ProbeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ProbeError::Client(error.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Checks a user-given base URL: http or https, a host.
pub fn parse_base_url(text: &str) -> Result<Url, ProbeError> {
    let url = Url::parse(text).map_err(|error| ProbeError::InvalidUrl {
        url: text.to_string(),
        reason: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ProbeError::InvalidUrl {
            url: text.to_string(),
            reason: format!("scheme {:?} is neither http nor https", url.scheme()),
        });
    }
    if url.host_str().is_none() {
        return Err(ProbeError::InvalidUrl {
            url: text.to_string(),
            reason: "no host".to_string(),
        });
    }
    Ok(url)
}

/// `base` + `/v1/<path>`, keeping any path prefix of `base` and accepting a base ending in `/v1`.
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    let prefix = prefix.strip_suffix("/v1").unwrap_or(prefix);
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The base URL of an https port-forward to `local` (e.g. a gateway pod's 443 listener): give it
/// with the gateway's host as `mesh_host`, and the probe sends that name in TLS and Host.
pub fn https_base(local: std::net::SocketAddr) -> String {
    format!("https://{local}")
}

#[derive(Clone)]
struct ConnectTimingLayer {
    log: Arc<ConnectLog>,
    clock: Arc<HandshakeClock>,
}

impl<S> tower_layer::Layer<S> for ConnectTimingLayer {
    type Service = ConnectTiming<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectTiming {
            inner,
            log: Arc::clone(&self.log),
            clock: Arc::clone(&self.clock),
        }
    }
}

#[derive(Clone)]
struct ConnectTiming<S> {
    inner: S,
    log: Arc<ConnectLog>,
    clock: Arc<HandshakeClock>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for ConnectTiming<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let started = Instant::now();
        let connecting = self.inner.call(request);
        let log = Arc::clone(&self.log);
        let clock = Arc::clone(&self.clock);
        Box::pin(async move {
            let result = connecting.await;
            let finished = Instant::now();
            log.record(Connect {
                started,
                tls_started: clock.claim_start(started, finished),
                finished,
            });
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_are_accepted_and_others_refused() {
        assert!(parse_base_url("https://vllm:8000").is_ok());
        assert!(parse_base_url("http://vllm:8000").is_ok());
        let error = parse_base_url("ftp://x").unwrap_err();
        assert!(error.to_string().contains("https://HOST:PORT"), "{error}");
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn endpoints_keep_prefixes_and_accept_v1() {
        let join = |base: &str| endpoint(&parse_base_url(base).unwrap(), "v1/completions");
        assert_eq!(
            join("http://h:8000").as_str(),
            "http://h:8000/v1/completions"
        );
        assert_eq!(
            join("http://h:8000/v1/").as_str(),
            "http://h:8000/v1/completions"
        );
        assert_eq!(
            join("http://gw/llm").as_str(),
            "http://gw/llm/v1/completions"
        );
    }

    #[tokio::test]
    async fn builds_without_a_global_crypto_provider() {
        let client = HttpClient::new(ClientOptions::default()).unwrap();
        assert_eq!(client.connections_opened(), 0);
    }
}

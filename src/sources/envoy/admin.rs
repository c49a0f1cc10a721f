//! An async client for Envoy's admin API (port 15000 in Istio pods, reached through a
//! port-forward or `--admin-url`): `/server_info`, `/config_dump`, `/stats`, `/clusters`, `/ready`.
//! Every call has a timeout and a response-size cap; errors name the URL and what to do.

use crate::evidence::envoy::config::EffectiveConfig;
use crate::sources::envoy::config_dump::{self, ConfigDumpError};
use crate::sources::envoy::stats::{Stats, StatsError};
use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long one admin call may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest admin response read (a big gateway's full config_dump is tens of MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "invalid Envoy admin URL {url:?} ({reason}); use http://HOST:PORT, e.g. http://127.0.0.1:15000"
    )]
    BadUrl { url: String, reason: String },
    #[error(
        "Envoy admin at {url} refused the connection: check that the proxy runs and that port 15000 is forwarded"
    )]
    Refused { url: String },
    #[error(
        "Envoy admin at {url} did not answer within {timeout}: check the port-forward, or raise --request-timeout"
    )]
    Timeout { url: String, timeout: String },
    #[error("could not reach Envoy admin at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("Envoy admin at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} did not answer like Envoy's admin API ({what}): point --admin-url at the admin port (15000), not the app or a listener"
    )]
    NotEnvoy { url: String, what: String },
    #[error(
        "Envoy admin response from {url} is larger than {limit} bytes: narrow it (config_dump ?resource= / ?mask=) or raise the size cap"
    )]
    TooLarge { url: String, limit: usize },
    #[error("Envoy admin {url}: {source}")]
    Stats {
        url: String,
        #[source]
        source: StatsError,
    },
    #[error("Envoy admin {url}: {source}")]
    ConfigDump {
        url: String,
        #[source]
        source: ConfigDumpError,
    },
}

/// `/server_info`: the parts we show and check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// `9e55…/1.40.0/Clean/RELEASE/BoringSSL`
    pub version: Option<String>,
    /// `LIVE`, `DRAINING`, `PRE_INITIALIZING`, `INITIALIZING`.
    pub state: Option<String>,
    pub uptime_current_epoch: Option<String>,
    pub command_line_options: Option<CommandLineOptions>,
    pub node: Option<ServerNode>,
}

impl ServerInfo {
    /// `1.40.0` out of the build string.
    pub fn envoy_version(&self) -> Option<&str> {
        self.version.as_deref()?.split('/').nth(1)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandLineOptions {
    pub concurrency: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerNode {
    pub id: Option<String>,
    pub cluster: Option<String>,
}

/// `/clusters?format=json`: what the cluster manager runs now, per host.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClustersStatus {
    pub cluster_statuses: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClusterStatus {
    pub name: String,
    pub observability_name: Option<String>,
    pub added_via_api: bool,
    pub host_statuses: Vec<HostStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HostStatus {
    pub address: Option<HostAddress>,
    pub stats: Vec<HostStat>,
    pub health_status: Option<serde_json::Value>,
}

impl HostStatus {
    /// `ip:port`
    pub fn address(&self) -> Option<String> {
        let socket = self.address.as_ref()?.socket_address.as_ref()?;
        Some(format!("{}:{}", socket.address, socket.port_value))
    }

    /// A per-host stat (`cx_active`, `rq_active`, `rq_timeout`); absent values are 0.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats
            .iter()
            .find(|stat| stat.name == name)
            .map(|stat| stat.value.unwrap_or(0))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HostAddress {
    pub socket_address: Option<HostSocket>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HostSocket {
    pub address: String,
    pub port_value: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HostStat {
    pub name: String,
    #[serde(deserialize_with = "number_or_text")]
    pub value: Option<u64>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `/listeners?format=json`: where each listener is bound (a port-0 listener's real port).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ListenersStatus {
    pub listener_statuses: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ListenerStatus {
    pub name: String,
    pub local_address: Option<HostAddress>,
}

impl ListenerStatus {
    pub fn port(&self) -> Option<u16> {
        Some(
            self.local_address
                .as_ref()?
                .socket_address
                .as_ref()?
                .port_value,
        )
    }
}

/// Query parameters of `/config_dump` that keep the answer small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDumpQuery {
    /// `dynamic_active_clusters`, `dynamic_listeners`, `dynamic_route_configs`, … .
    pub resource: Option<String>,
    /// A field mask: `cluster.name,cluster.circuit_breakers`.
    pub mask: Option<String>,
    pub name_regex: Option<String>,
    pub include_eds: bool,
}

/// The client for one Envoy's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: Url,
    http: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
}

impl AdminClient {
    /// `http://127.0.0.1:15000` (a bare `HOST:PORT` gets `http://`). HTTPS is refused: the
    /// admin API listens on loopback and is reached through a port-forward.
    pub fn new(base_url: &str) -> Result<Self, AdminError> {
        let bad = |reason: &str| AdminError::BadUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let text = if base_url.contains("://") {
            base_url.to_string()
        } else {
            format!("http://{base_url}")
        };
        let mut base = Url::parse(&text).map_err(|error| bad(&error.to_string()))?;
        if base.scheme() != "http" {
            return Err(bad("only http:// is supported for the admin API"));
        }
        if base.host_str().is_none() {
            return Err(bad("no host"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        let http = http_client().map_err(|reason| bad(&reason))?;
        Ok(Self {
            base,
            http,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// The admin base URL, `http://127.0.0.1:15000/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    pub async fn server_info(&self) -> Result<ServerInfo, AdminError> {
        let (url, body) = self.get("server_info", &[]).await?;
        let info: ServerInfo = parse_json(&url, &body)?;
        if info.version.is_none() {
            return Err(AdminError::NotEnvoy {
                url,
                what: "no `version` in /server_info".to_string(),
            });
        }
        Ok(info)
    }

    /// `/ready`: `LIVE` when serving; `PRE_INITIALIZING`, `INITIALIZING` or `DRAINING` otherwise
    /// (Envoy answers those with 503, which is not an error here).
    pub async fn ready(&self) -> Result<String, AdminError> {
        let url = self.url("ready", &[]);
        let response = self.send(&url).await?;
        let status = response.status().as_u16();
        let body = self.read_body(&url, response).await?;
        let state = body.trim().to_string();
        let known = ["LIVE", "PRE_INITIALIZING", "INITIALIZING", "DRAINING"];
        if (status == 200 || status == 503) && known.contains(&state.as_str()) {
            return Ok(state);
        }
        if looks_like_html(&body) {
            return Err(AdminError::NotEnvoy {
                url: url.to_string(),
                what: "an HTML page".to_string(),
            });
        }
        if status != 200 {
            return Err(status_error(&url, status, &body));
        }
        Err(AdminError::NotEnvoy {
            url: url.to_string(),
            what: format!("/ready said {:?}", shorten(&state)),
        })
    }

    /// The raw `/config_dump` JSON.
    pub async fn config_dump_text(&self, query: &ConfigDumpQuery) -> Result<String, AdminError> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(resource) = &query.resource {
            params.push(("resource", resource));
        }
        if let Some(mask) = &query.mask {
            params.push(("mask", mask));
        }
        if let Some(regex) = &query.name_regex {
            params.push(("name_regex", regex));
        }
        if query.include_eds {
            params.push(("include_eds", ""));
        }
        let (url, body) = self.get("config_dump", &params).await?;
        if !body.trim_start().starts_with('{') {
            return Err(AdminError::NotEnvoy {
                url,
                what: "config_dump is not a JSON object".to_string(),
            });
        }
        Ok(body)
    }

    /// `/config_dump` parsed into the effective config.
    pub async fn config_dump(
        &self,
        query: &ConfigDumpQuery,
    ) -> Result<EffectiveConfig, AdminError> {
        let body = self.config_dump_text(query).await?;
        config_dump::parse(&body).map_err(|source| AdminError::ConfigDump {
            url: self.url("config_dump", &[]).to_string(),
            source,
        })
    }

    /// The raw `/stats` text.
    pub async fn stats_text(&self) -> Result<String, AdminError> {
        Ok(self.get("stats", &[]).await?.1)
    }

    /// `/stats` (text) parsed.
    pub async fn stats(&self) -> Result<Stats, AdminError> {
        let (url, body) = self.get("stats", &[]).await?;
        Stats::parse_text(&body).map_err(|source| AdminError::NotEnvoy {
            url,
            what: source.to_string(),
        })
    }

    /// `/stats?filter=REGEX` parsed: only the stats whose names match (Envoy's RE2 search),
    /// which keeps a busy gateway's answer small.
    pub async fn stats_filtered(&self, regex: &str) -> Result<Stats, AdminError> {
        let (url, body) = self.get("stats", &[("filter", regex)]).await?;
        Stats::parse_text(&body).map_err(|source| AdminError::NotEnvoy {
            url,
            what: source.to_string(),
        })
    }

    /// `/stats?format=json` parsed.
    pub async fn stats_json(&self) -> Result<Stats, AdminError> {
        let (url, body) = self.get("stats", &[("format", "json")]).await?;
        Stats::parse_json(&body).map_err(|source| AdminError::Stats { url, source })
    }

    pub async fn clusters(&self) -> Result<ClustersStatus, AdminError> {
        let (url, body) = self.get("clusters", &[("format", "json")]).await?;
        parse_json(&url, &body)
    }

    pub async fn listeners(&self) -> Result<ListenersStatus, AdminError> {
        let (url, body) = self.get("listeners", &[("format", "json")]).await?;
        parse_json(&url, &body)
    }

    fn url(&self, path: &str, params: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        let full = format!("{}{path}", self.base.path());
        url.set_path(&full);
        if !params.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in params {
                if value.is_empty() {
                    pairs.append_key_only(key);
                } else {
                    pairs.append_pair(key, value);
                }
            }
        }
        url
    }

    async fn get(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<(String, String), AdminError> {
        let url = self.url(path, params);
        let response = self.send(&url).await?;
        let status = response.status().as_u16();
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/html"));
        let body = self.read_body(&url, response).await?;
        if status != 200 {
            return Err(status_error(&url, status, &body));
        }
        if html || looks_like_html(&body) {
            return Err(AdminError::NotEnvoy {
                url: url.to_string(),
                what: "an HTML page".to_string(),
            });
        }
        Ok((url.to_string(), body))
    }

    async fn send(&self, url: &Url) -> Result<reqwest::Response, AdminError> {
        self.http
            .get(url.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|error| self.transport_error(url, &error))
    }

    async fn read_body(
        &self,
        url: &Url,
        mut response: reqwest::Response,
    ) -> Result<String, AdminError> {
        let too_large = || AdminError::TooLarge {
            url: url.to_string(),
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|length| length > self.max_response_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(url, &error))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| AdminError::NotEnvoy {
            url: url.to_string(),
            what: "the answer is not UTF-8 text".to_string(),
        })
    }

    fn transport_error(&self, url: &Url, error: &reqwest::Error) -> AdminError {
        let url = url.to_string();
        if error.is_timeout() {
            return AdminError::Timeout {
                url,
                timeout: crate::units::duration::display(self.timeout),
            };
        }
        if is_connection_refused(error) {
            return AdminError::Refused { url };
        }
        AdminError::Transport {
            url,
            reason: error_chain(error),
        }
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    // reqwest is built without a TLS provider; admin calls are plain HTTP, but the builder still
    // wants a TLS config, so it gets one backed by ring that trusts nothing.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .http1_only()
        .connect_timeout(DEFAULT_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())
}

fn parse_json<T: serde::de::DeserializeOwned>(url: &str, body: &str) -> Result<T, AdminError> {
    serde_json::from_str(body).map_err(|error| AdminError::NotEnvoy {
        url: url.to_string(),
        what: format!("not the JSON Envoy sends: {error}"),
    })
}

fn status_error(url: &Url, status: u16, body: &str) -> AdminError {
    AdminError::Status {
        url: url.to_string(),
        status,
        body: shorten(body.trim()),
    }
}

fn looks_like_html(body: &str) -> bool {
    let start = body.trim_start();
    start.starts_with("<!") || start.starts_with("<html") || start.starts_with("<HTML")
}

fn is_connection_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = current.source();
    }
    false
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        parts.push(current.to_string());
        source = current.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let line = text.lines().next().unwrap_or_default();
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn number_or_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(value)) => Ok(Some(value)),
        Some(NumberOrText::Text(text)) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_https_refused() {
        let client = AdminClient::new("127.0.0.1:15000").unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:15000/");
        let dump = client.url(
            "config_dump",
            &[("resource", "dynamic_active_clusters"), ("include_eds", "")],
        );
        assert_eq!(
            dump.as_str(),
            "http://127.0.0.1:15000/config_dump?resource=dynamic_active_clusters&include_eds"
        );
        let prefixed = AdminClient::new("http://localhost:8001/api/v1/proxy").unwrap();
        assert_eq!(
            prefixed.url("stats", &[("format", "json")]).as_str(),
            "http://localhost:8001/api/v1/proxy/stats?format=json"
        );
        let error = AdminClient::new("https://127.0.0.1:15000").unwrap_err();
        assert!(error.to_string().contains("only http://"), "{error}");
        assert!(AdminClient::new("http://").is_err());
    }

    #[test]
    fn server_info_version_is_extracted() {
        let info: ServerInfo = serde_json::from_str(
            r#"{"version":"9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL","state":"LIVE","command_line_options":{"concurrency":2}}"#,
        )
        .unwrap();
        assert_eq!(info.envoy_version(), Some("1.40.0"));
        assert_eq!(info.command_line_options.unwrap().concurrency, Some(2));
    }

    #[test]
    fn host_stats_read_numbers_and_text() {
        let status: ClustersStatus = serde_json::from_str(
            r#"{"cluster_statuses":[{"name":"c","host_statuses":[{"address":{"socket_address":{"address":"127.0.0.1","port_value":9}},
               "stats":[{"name":"cx_total","value":"5"},{"name":"rq_timeout"},{"type":"GAUGE","name":"cx_active","value":2}]}]}]}"#,
        )
        .unwrap();
        let host = &status.cluster_statuses[0].host_statuses[0];
        assert_eq!(host.address().as_deref(), Some("127.0.0.1:9"));
        assert_eq!(host.stat("cx_total"), Some(5));
        assert_eq!(host.stat("rq_timeout"), Some(0));
        assert_eq!(host.stat("cx_active"), Some(2));
        assert_eq!(host.stat("nope"), None);
    }
}

//! `EffectiveConfig`: what one Envoy runs, from its config_dump, with Envoy's defaults filled in
//! and marked as such. Serialisable, so it travels inside the evidence.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration as Envoy wrote it (`15s`, `0.500s`, `3600s`), or as the default is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyDuration {
    pub value: Duration,
    pub text: String,
}

impl EnvoyDuration {
    /// Parses Envoy's protobuf-JSON duration text.
    pub fn parse(text: &str) -> Result<Self, crate::units::duration::DurationError> {
        Ok(Self {
            value: crate::units::duration::parse(text)?,
            text: text.to_string(),
        })
    }

    /// A duration written the way Envoy writes it in a config_dump (`15s`, `0.500s`).
    pub fn from_duration(value: Duration) -> Self {
        let text = if value.subsec_nanos() == 0 {
            format!("{}s", value.as_secs())
        } else {
            let fraction = format!("{:09}", value.subsec_nanos());
            let digits = if fraction.ends_with("000000") {
                3
            } else if fraction.ends_with("000") {
                6
            } else {
                9
            };
            format!("{}.{}s", value.as_secs(), &fraction[..digits])
        };
        Self { value, text }
    }

    /// Envoy's `0` for timeouts: the timer is off.
    pub fn is_disabled(&self) -> bool {
        self.value.is_zero()
    }
}

impl fmt::Display for EnvoyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for EnvoyDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for EnvoyDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EnvoyDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether a value was in the config_dump or is Envoy's default for an absent field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Configured,
    EnvoyDefault,
}

/// A value with its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn configured(value: T) -> Self {
        Self {
            value,
            origin: Origin::Configured,
        }
    }

    pub fn envoy_default(value: T) -> Self {
        Self {
            value,
            origin: Origin::EnvoyDefault,
        }
    }

    pub fn is_default(&self) -> bool {
        self.origin == Origin::EnvoyDefault
    }
}

impl<T: fmt::Display> fmt::Display for Setting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Origin::Configured => write!(f, "{}", self.value),
            Origin::EnvoyDefault => write!(f, "{} (Envoy default)", self.value),
        }
    }
}

/// Where a resource sits in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceState {
    /// From the bootstrap (`static_*`).
    Static,
    /// From xDS, serving (`dynamic_active_*`, `active_state`).
    Active,
    /// From xDS, not serving yet (`dynamic_warming_*`, `warming_state`).
    Warming,
    /// Being drained (`draining_state`).
    Draining,
}

/// What one Envoy runs: the parts the checks read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EffectiveConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeInfo>,
    /// The bootstrap's `stats_config.stats_matcher` inclusion patterns (`prefix:cluster_manager`),
    /// `None` when the dump has no bootstrap or no matcher (every stat kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_inclusion: Option<Vec<String>>,
    pub listeners: Vec<ListenerConfig>,
    pub route_configs: Vec<RouteConfig>,
    pub clusters: Vec<ClusterConfig>,
    /// Updates Envoy refused (config_dump `error_state`): it runs the previous version of each,
    /// or nothing where there was none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedResource>,
}

/// What kind of resource Envoy refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectedKind {
    Listener,
    Cluster,
    RouteConfig,
}

impl RejectedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectedKind::Listener => "listener",
            RejectedKind::Cluster => "cluster",
            RejectedKind::RouteConfig => "route configuration",
        }
    }
}

/// One update Envoy refused, from `error_state` (`admin.v3.UpdateFailureState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RejectedResource {
    pub kind: RejectedKind,
    /// The resource's name; empty where Envoy recorded the failure without one.
    pub name: String,
    /// Envoy's error text (`details`).
    pub details: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_attempt: Option<String>,
    /// A listener's address as the refused config wrote it (`0.0.0.0:15006`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A listener's HCM stat prefixes in the refused config (`inbound_0.0.0.0_8000`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stat_prefixes: Vec<String>,
    /// Lua and Wasm filters in the refused config, by name: what control planes add only when
    /// asked (an Istio EnvoyFilter, an Envoy Gateway EnvoyExtensionPolicy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub script_filters: Vec<String>,
    /// A version of the resource still serves (the refused update did not replace it).
    pub previous_active: bool,
}

impl Default for RejectedResource {
    fn default() -> Self {
        Self {
            kind: RejectedKind::Listener,
            name: String::new(),
            details: String::new(),
            last_update_attempt: None,
            address: None,
            stat_prefixes: Vec::new(),
            script_filters: Vec::new(),
            previous_active: false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istio_version: Option<String>,
    /// `user_agent_build_version.version` (`1.26.0`), when the node says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy_version: Option<String>,
}

// ---- routes ----

/// How a route configuration reached its HCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RouteSource {
    /// A `RoutesConfigDump` entry (RDS, or a static route config).
    Rds { state: ResourceState },
    /// Inline in a listener's HCM (`route_config`), as Istio writes inbound routes.
    #[serde(rename_all = "camelCase")]
    Inline {
        listener: String,
        stat_prefix: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    /// `8000`, `http.8080`, `inbound|8000||`; empty for unnamed inline configs.
    pub name: String,
    pub source: RouteSource,
    pub virtual_hosts: Vec<VirtualHostConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualHostConfig {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<RouteEntry>,
}

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum RouteTarget {
    Cluster {
        name: String,
    },
    Weighted {
        clusters: Vec<WeightedTarget>,
    },
    ClusterHeader {
        header: String,
    },
    DirectResponse {
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u64>,
    },
    Redirect,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedTarget {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
}

impl RouteTarget {
    /// The clusters this route can send to.
    pub fn clusters(&self) -> Vec<&str> {
        match self {
            RouteTarget::Cluster { name } => vec![name.as_str()],
            RouteTarget::Weighted { clusters } => {
                clusters.iter().map(|target| target.name.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `prefix /`, `path /v1/completions`, `regex …`.
    pub matcher: String,
    pub target: RouteTarget,
    /// The whole-response deadline; `0s` means disabled.
    pub timeout: Setting<EnvoyDuration>,
    /// Per-route override of the HCM's `stream_idle_timeout`; absent: the HCM's applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySettings>,
    /// The Istio object behind the route (`metadata.filter_metadata.istio.config`), e.g.
    /// `/apis/networking.istio.io/v1alpha3/namespaces/ns/virtual-service/vllm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_config: Option<String>,
    /// Filters turned off or reconfigured for this route (`typed_per_filter_config`, route or
    /// virtual host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_overrides: Vec<FilterOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrySettings {
    pub retry_on: String,
    pub num_retries: Setting<u64>,
    /// Absent: each try may use the whole route timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_idle_timeout: Option<EnvoyDuration>,
    /// The policy came from the virtual host, not the route.
    #[serde(default)]
    pub from_virtual_host: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterOverride {
    pub filter: String,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
}

// ---- listeners ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerConfig {
    pub name: String,
    /// `0.0.0.0:15006`, or the internal listener / pipe it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The scope of its stats: `listener.<stat_name>.*` (`stat_prefix`, else `ip_port`).
    pub stat_name: String,
    pub state: ResourceState,
    pub per_connection_buffer_limit_bytes: Setting<u64>,
    pub filter_chains: Vec<FilterChainConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterChainConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `destination_port 8000, transport tls`, when the chain matches on something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// `filter_chain_match.destination_port`: the chains for one port are told apart by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<u64>,
    /// The chain terminates TLS (a `DownstreamTlsContext`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DownstreamTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcm: Option<HcmConfig>,
    /// A `tcp_proxy` chain's cluster (no HTTP settings apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_proxy_cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownstreamTls {
    pub require_client_certificate: bool,
}

/// How an HCM finds its routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum HcmRoutes {
    Rds(String),
    Inline(String),
    Scoped,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HcmConfig {
    /// As written; Istio >= 1.23 ends it with `;`.
    pub stat_prefix: String,
    pub routes: HcmRoutes,
    pub stream_idle_timeout: Setting<EnvoyDuration>,
    pub request_timeout: Setting<EnvoyDuration>,
    pub request_headers_timeout: Setting<EnvoyDuration>,
    /// `common_http_protocol_options.idle_timeout`: closes idle downstream connections.
    pub idle_timeout: Setting<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u64>,
    pub delayed_close_timeout: Setting<EnvoyDuration>,
    pub http_filters: Vec<HttpFilterInfo>,
}

impl HcmConfig {
    /// The stat scope: `http.<scope>.*` (the prefix without Istio's trailing `;`).
    pub fn stat_scope(&self) -> &str {
        self.stat_prefix.trim_end_matches(';')
    }

    /// The filters that hold a body in memory (enabled ones only).
    pub fn buffering_filters(&self) -> impl Iterator<Item = &HttpFilterInfo> {
        self.http_filters
            .iter()
            .filter(|filter| filter.buffering.is_some() && !filter.disabled)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFilterInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
    /// Disabled by default (`disabled: true`), enabled per route.
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<Buffering>,
    /// The settings of an `envoy.filters.http.ext_proc` filter (an endpoint picker's, for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_proc: Option<ExtProcSettings>,
}

/// `envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`, as much as the checks read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtProcSettings {
    /// `grpc_service.envoy_grpc.cluster_name`: the cluster of the external processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// `failure_mode_allow`: false (Envoy's default) refuses the request when the processor
    /// cannot be reached or errs.
    pub failure_mode_allow: bool,
    /// `message_timeout` as written; absent means Envoy's default 200ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_timeout: Option<String>,
    /// `processing_mode.request_body_mode` / `response_body_mode` as written (`BUFFERED`,
    /// `STREAMED`, `FULL_DUPLEX_STREAMED`, …); absent means `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_mode: Option<String>,
}

/// How an HTTP filter holds bodies in memory, where limits bite (docs/facts.md "What a client sees").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Buffering {
    /// `envoy.filters.http.buffer`: the whole request, up to `max_request_bytes` (413 above).
    #[serde(rename_all = "camelCase")]
    Buffer { max_request_bytes: Option<u64> },
    /// `ext_authz` with `with_request_body`.
    #[serde(rename_all = "camelCase")]
    ExtAuthzWithBody {
        max_request_bytes: Option<u64>,
        allow_partial_message: bool,
    },
    /// `ext_proc` with a `BUFFERED` body mode.
    #[serde(rename_all = "camelCase")]
    ExtProcBuffered {
        request_body_mode: Option<String>,
        response_body_mode: Option<String>,
    },
    /// Lua buffers when its script calls `body()`: it may.
    Lua,
    /// Wasm filters may buffer bodies.
    Wasm,
}

// ---- clusters ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_stat_name: Option<String>,
    /// `EDS`, `STATIC`, `STRICT_DNS`, `ORIGINAL_DST`, or a custom cluster type's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    pub state: ResourceState,
    pub connect_timeout: Setting<EnvoyDuration>,
    pub per_connection_buffer_limit_bytes: Setting<u64>,
    pub circuit_breakers: CircuitBreakerSettings,
    pub http: UpstreamHttpSettings,
    pub tls: UpstreamTls,
    /// Endpoints labelled `tunnel: http` (ambient pods) are reached over HBONE: through the
    /// internal listener `connect_originate` (a `hbone` transport socket match, or an internal
    /// upstream transport socket as on a waypoint's `inbound-vip` cluster), not by `tls`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hbone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio_config: Option<String>,
    /// Endpoint addresses (`ip:port`) from the cluster's own assignment or `?include_eds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}

/// The cluster Istio's proxies tunnel HBONE through: HTTP/2 CONNECT over mTLS to port 15008 of
/// the destination pod's ztunnel (or its waypoint), one connection per destination.
pub const HBONE_CLUSTER: &str = "connect_originate";

/// Whether a stat (`cluster.connect_originate.ssl.handshake`) is the HBONE tunnel's.
pub fn is_hbone_stat(stat: &str) -> bool {
    stat.strip_prefix("cluster.")
        .and_then(|rest| rest.strip_prefix(HBONE_CLUSTER))
        .is_some_and(|rest| rest.starts_with('.'))
}

impl ClusterConfig {
    /// A cluster known by its name alone (from `/stats`, without a config_dump), every setting
    /// Envoy's default. Only for telling roles and stat scopes apart, never judged.
    pub fn named(name: &str) -> ClusterConfig {
        use super::defaults;
        ClusterConfig {
            name: name.to_string(),
            alt_stat_name: None,
            discovery: None,
            state: ResourceState::Active,
            connect_timeout: Setting::envoy_default(EnvoyDuration::from_duration(
                defaults::CLUSTER_CONNECT_TIMEOUT,
            )),
            per_connection_buffer_limit_bytes: Setting::envoy_default(
                defaults::CLUSTER_PER_CONNECTION_BUFFER_LIMIT_BYTES,
            ),
            circuit_breakers: CircuitBreakerSettings {
                max_connections: Setting::envoy_default(defaults::CIRCUIT_BREAKER_MAX_CONNECTIONS),
                max_pending_requests: Setting::envoy_default(
                    defaults::CIRCUIT_BREAKER_MAX_PENDING_REQUESTS,
                ),
                max_requests: Setting::envoy_default(defaults::CIRCUIT_BREAKER_MAX_REQUESTS),
                max_retries: Setting::envoy_default(defaults::CIRCUIT_BREAKER_MAX_RETRIES),
            },
            http: UpstreamHttpSettings {
                idle_timeout: Setting::envoy_default(EnvoyDuration::from_duration(
                    defaults::HTTP_IDLE_TIMEOUT,
                )),
                max_requests_per_connection: None,
                max_connection_duration: None,
                max_stream_duration: None,
                protocol: None,
            },
            tls: UpstreamTls::None,
            hbone: false,
            istio_config: None,
            endpoints: Vec::new(),
        }
    }

    /// The stat scope: `cluster.<scope>.*` (alt_stat_name without Istio's `;`, else the name
    /// with `:` turned into `_`, as Envoy does).
    pub fn stat_scope(&self) -> String {
        match &self.alt_stat_name {
            Some(alt) if !alt.is_empty() => alt.trim_end_matches(';').replace(':', "_"),
            _ => self.name.replace(':', "_"),
        }
    }
}

/// The default-priority thresholds (limits are cluster-wide, not per host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSettings {
    pub max_connections: Setting<u64>,
    pub max_pending_requests: Setting<u64>,
    pub max_requests: Setting<u64>,
    pub max_retries: Setting<u64>,
}

/// The cluster's `HttpProtocolOptions.common_http_protocol_options`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamHttpSettings {
    pub idle_timeout: Setting<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<EnvoyDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<EnvoyDuration>,
    /// `http1`, `http2`, `downstream` or `auto`, when the options say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// Whether the cluster speaks TLS to its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum UpstreamTls {
    /// Plaintext.
    None,
    /// Always TLS (`transport_socket` with an `UpstreamTlsContext`).
    Tls {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
    /// Istio auto-mTLS: TLS to endpoints labelled `tlsMode: istio` (`tlsMode-istio` match).
    IstioMutual {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
}

impl UpstreamTls {
    pub fn is_tls(&self) -> bool {
        !matches!(self, UpstreamTls::None)
    }
}

/// A route with the names that locate it, as `EffectiveConfig::routes` lists them.
#[derive(Debug, Clone, Copy)]
pub struct RouteView<'a> {
    pub route_config: &'a RouteConfig,
    pub virtual_host: &'a VirtualHostConfig,
    pub route: &'a RouteEntry,
}

impl EffectiveConfig {
    /// Every route, with its route configuration and virtual host.
    pub fn routes(&self) -> impl Iterator<Item = RouteView<'_>> {
        self.route_configs.iter().flat_map(|route_config| {
            route_config
                .virtual_hosts
                .iter()
                .flat_map(move |virtual_host| {
                    virtual_host.routes.iter().map(move |route| RouteView {
                        route_config,
                        virtual_host,
                        route,
                    })
                })
        })
    }

    /// Every HCM with the listener and filter chain it sits in.
    pub fn hcms(&self) -> impl Iterator<Item = (&ListenerConfig, &FilterChainConfig, &HcmConfig)> {
        self.listeners.iter().flat_map(|listener| {
            listener
                .filter_chains
                .iter()
                .filter_map(move |chain| chain.hcm.as_ref().map(|hcm| (listener, chain, hcm)))
        })
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|cluster| cluster.name == name)
    }

    pub fn route_config(&self, name: &str) -> Option<&RouteConfig> {
        self.route_configs
            .iter()
            .find(|route_config| route_config.name == name)
    }

    pub fn listener(&self, name: &str) -> Option<&ListenerConfig> {
        self.listeners.iter().find(|listener| listener.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_envoys_text_and_write_defaults_like_envoy() {
        let parsed = EnvoyDuration::parse("0.500s").unwrap();
        assert_eq!(parsed.value, Duration::from_millis(500));
        assert_eq!(parsed.to_string(), "0.500s");
        assert_eq!(
            EnvoyDuration::from_duration(Duration::from_secs(15)).text,
            "15s"
        );
        assert_eq!(
            EnvoyDuration::from_duration(Duration::from_millis(250)).text,
            "0.250s"
        );
        assert_eq!(
            EnvoyDuration::from_duration(Duration::from_micros(1)).text,
            "0.000001s"
        );
        assert!(EnvoyDuration::parse("0s").unwrap().is_disabled());
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(json, "\"0.500s\"");
        let back: EnvoyDuration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, parsed);
    }
}

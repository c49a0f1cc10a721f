//! The parts of Envoy's admin `/config_dump` JSON that we read, typed as Envoy writes them
//! (proto field names, snake_case). Every field is optional; unknown fields are skipped.
//!
//! One `Section` type holds the fields of every `configs[]` entry kind (`BootstrapConfigDump`,
//! `ClustersConfigDump`, `ListenersConfigDump`, `RoutesConfigDump`, `EndpointsConfigDump`, and the
//! single-resource entries `?resource=` returns), so the dump is read in one pass; `@type` says
//! which fields an entry may carry.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Section {
    #[serde(rename = "@type")]
    pub type_url: String,
    pub bootstrap: Option<Bootstrap>,
    // ClustersConfigDump
    pub static_clusters: Vec<ClusterEntry>,
    pub dynamic_active_clusters: Vec<ClusterEntry>,
    pub dynamic_warming_clusters: Vec<ClusterEntry>,
    // ListenersConfigDump
    pub static_listeners: Vec<ListenerEntry>,
    pub dynamic_listeners: Vec<DynamicListenerEntry>,
    // RoutesConfigDump
    pub static_route_configs: Vec<RouteConfigEntry>,
    pub dynamic_route_configs: Vec<RouteConfigEntry>,
    // EndpointsConfigDump (`?include_eds`)
    pub static_endpoint_configs: Vec<EndpointConfigEntry>,
    pub dynamic_endpoint_configs: Vec<EndpointConfigEntry>,
    // Single resources, as `?resource=` lists them.
    pub cluster: Option<Cluster>,
    pub listener: Option<Listener>,
    pub route_config: Option<RouteConfiguration>,
    pub endpoint_config: Option<ClusterLoadAssignment>,
    pub name: Option<String>,
    pub active_state: Option<ListenerEntry>,
    pub warming_state: Option<ListenerEntry>,
    pub draining_state: Option<ListenerEntry>,
    pub error_state: Option<ErrorState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Bootstrap {
    pub node: Option<Node>,
    pub stats_config: Option<StatsConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Node {
    pub id: Option<String>,
    pub cluster: Option<String>,
    pub metadata: Option<NodeMetadata>,
    pub user_agent_build_version: Option<BuildVersion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BuildVersion {
    pub version: Option<SemanticVersion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SemanticVersion {
    pub major_number: Option<u64>,
    pub minor_number: Option<u64>,
    pub patch: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NodeMetadata {
    #[serde(rename = "ISTIO_VERSION")]
    pub istio_version: Option<String>,
    #[serde(rename = "NAME")]
    pub name: Option<String>,
    #[serde(rename = "NAMESPACE")]
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatsConfig {
    pub stats_matcher: Option<StatsMatcher>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatsMatcher {
    pub reject_all: Option<bool>,
    pub inclusion_list: Option<StringMatcherList>,
    pub exclusion_list: Option<StringMatcherList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StringMatcherList {
    pub patterns: Vec<StringMatcher>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StringMatcher {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub safe_regex: Option<Regex>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Regex {
    pub regex: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClusterEntry {
    pub cluster: Option<Cluster>,
    pub error_state: Option<ErrorState>,
}

/// `admin.v3.UpdateFailureState`: the last update Envoy refused, and why.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorState {
    pub failed_configuration: Option<serde_json::Value>,
    pub last_update_attempt: Option<String>,
    pub details: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DynamicListenerEntry {
    pub name: Option<String>,
    pub error_state: Option<ErrorState>,
    pub active_state: Option<ListenerEntry>,
    pub warming_state: Option<ListenerEntry>,
    pub draining_state: Option<ListenerEntry>,
}

/// A static listener, or one state (active, warming, draining) of a dynamic one.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListenerEntry {
    pub listener: Option<Listener>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteConfigEntry {
    pub route_config: Option<RouteConfiguration>,
    pub error_state: Option<ErrorState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndpointConfigEntry {
    pub endpoint_config: Option<ClusterLoadAssignment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClusterLoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<LocalityEndpoints>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LocalityEndpoints {
    pub lb_endpoints: Vec<LbEndpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LbEndpoint {
    pub endpoint: Option<Endpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub address: Option<Address>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Address {
    pub socket_address: Option<SocketAddress>,
    pub envoy_internal_address: Option<InternalAddress>,
    pub pipe: Option<Pipe>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SocketAddress {
    pub address: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub port_value: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct InternalAddress {
    pub server_listener_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pipe {
    pub path: String,
}

// ---- clusters ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Cluster {
    pub name: String,
    pub alt_stat_name: Option<String>,
    #[serde(rename = "type")]
    pub discovery_type: Option<String>,
    pub cluster_type: Option<NamedExtension>,
    pub connect_timeout: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub per_connection_buffer_limit_bytes: Option<u64>,
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Deprecated in favour of `HttpProtocolOptions`, still honoured by Envoy.
    #[serde(deserialize_with = "lenient_u64")]
    pub max_requests_per_connection: Option<u64>,
    /// Deprecated in favour of `HttpProtocolOptions`, still honoured by Envoy.
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    pub typed_extension_protocol_options: BTreeMap<String, UpstreamProtocolOptions>,
    pub transport_socket: Option<TransportSocket>,
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    pub metadata: Option<Metadata>,
    pub load_assignment: Option<ClusterLoadAssignment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NamedExtension {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CircuitBreakers {
    pub thresholds: Vec<Thresholds>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    pub priority: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_connections: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_pending_requests: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_requests: Option<u64>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_retries: Option<u64>,
    pub track_remaining: Option<bool>,
}

/// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpstreamProtocolOptions {
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    pub explicit_http_config: Option<ExplicitHttpConfig>,
    pub use_downstream_protocol_config: Option<serde::de::IgnoredAny>,
    pub auto_config: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExplicitHttpConfig {
    pub http_protocol_options: Option<serde::de::IgnoredAny>,
    pub http2_protocol_options: Option<serde::de::IgnoredAny>,
    pub http3_protocol_options: Option<serde::de::IgnoredAny>,
}

/// `config.core.v3.HttpProtocolOptions`, used by HCMs and by clusters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HttpProtocolOptions {
    pub idle_timeout: Option<String>,
    pub max_connection_duration: Option<String>,
    pub max_stream_duration: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub max_requests_per_connection: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransportSocket {
    pub name: String,
    pub typed_config: Option<TlsContext>,
}

/// The fields of `UpstreamTlsContext` and `DownstreamTlsContext` we read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsContext {
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    pub sni: Option<String>,
    pub require_client_certificate: Option<bool>,
    pub common_tls_context: Option<CommonTlsContext>,
    /// `InternalUpstreamTransport` wraps another transport socket.
    pub transport_socket: Option<Box<TransportSocket>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommonTlsContext {
    pub alpn_protocols: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TransportSocketMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub match_criteria: Option<BTreeMap<String, serde_json::Value>>,
    pub transport_socket: Option<TransportSocket>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub filter_metadata: Option<FilterMetadata>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilterMetadata {
    pub istio: Option<IstioMetadata>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IstioMetadata {
    /// `/apis/networking.istio.io/v1alpha3/namespaces/NS/virtual-service/NAME`
    pub config: Option<String>,
}

// ---- listeners ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Listener {
    pub name: String,
    pub address: Option<Address>,
    pub stat_prefix: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub per_connection_buffer_limit_bytes: Option<u64>,
    pub filter_chains: Vec<FilterChain>,
    pub default_filter_chain: Option<FilterChain>,
    pub traffic_direction: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilterChain {
    pub name: Option<String>,
    pub filter_chain_match: Option<FilterChainMatch>,
    pub filters: Vec<NetworkFilter>,
    pub transport_socket: Option<TransportSocket>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilterChainMatch {
    #[serde(deserialize_with = "lenient_u64")]
    pub destination_port: Option<u64>,
    pub transport_protocol: Option<String>,
    pub application_protocols: Vec<String>,
    pub server_names: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkFilter {
    pub name: String,
    pub typed_config: Option<NetworkFilterConfig>,
}

/// The fields of `HttpConnectionManager` (and `TcpProxy`'s `cluster`) we read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkFilterConfig {
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    pub stat_prefix: Option<String>,
    pub rds: Option<Rds>,
    pub route_config: Option<RouteConfiguration>,
    pub scoped_routes: Option<serde::de::IgnoredAny>,
    pub http_filters: Vec<HttpFilter>,
    pub stream_idle_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub request_headers_timeout: Option<String>,
    pub delayed_close_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
    /// `TcpProxy.cluster`
    pub cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Rds {
    pub route_config_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HttpFilter {
    pub name: String,
    pub typed_config: Option<HttpFilterConfig>,
    pub disabled: Option<bool>,
    pub is_optional: Option<bool>,
}

/// The fields of the HTTP filters that buffer bodies (buffer, ext_authz, ext_proc) we read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HttpFilterConfig {
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    /// `udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct` carry the real type here.
    #[serde(rename = "type_url")]
    pub typed_struct_type: Option<String>,
    /// `envoy.extensions.filters.http.buffer.v3.Buffer.max_request_bytes`
    #[serde(deserialize_with = "lenient_u64")]
    pub max_request_bytes: Option<u64>,
    /// `ext_authz.v3.ExtAuthz.with_request_body`
    pub with_request_body: Option<BufferSettings>,
    /// `ext_proc.v3.ExternalProcessor.processing_mode`
    pub processing_mode: Option<ProcessingMode>,
    /// `ext_proc.v3.ExternalProcessor.failure_mode_allow` (also ext_authz's)
    pub failure_mode_allow: Option<bool>,
    /// `ext_proc.v3.ExternalProcessor.message_timeout`
    pub message_timeout: Option<String>,
    /// `ext_proc.v3.ExternalProcessor.grpc_service`
    pub grpc_service: Option<GrpcService>,
    /// `wasm.v3.Wasm.config`: the plugin and the VM it runs in.
    pub config: Option<WasmPluginConfig>,
    /// `lua.v3.Lua.inline_code` (deprecated) and `default_source_code`.
    pub inline_code: Option<String>,
    pub default_source_code: Option<DataSource>,
}

/// `config.core.v3.DataSource`: a script written inline, or in a file the dump does not hold.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DataSource {
    pub inline_string: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WasmPluginConfig {
    pub vm_config: Option<WasmVmConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WasmVmConfig {
    pub runtime: Option<String>,
    pub code: Option<WasmCode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WasmCode {
    pub local: Option<WasmLocal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WasmLocal {
    pub inline_string: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GrpcService {
    pub envoy_grpc: Option<EnvoyGrpc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnvoyGrpc {
    pub cluster_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BufferSettings {
    #[serde(deserialize_with = "lenient_u64")]
    pub max_request_bytes: Option<u64>,
    pub allow_partial_message: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProcessingMode {
    pub request_body_mode: Option<String>,
    pub response_body_mode: Option<String>,
}

// ---- routes ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteConfiguration {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub retry_policy: Option<RetryPolicy>,
    pub typed_per_filter_config: BTreeMap<String, PerFilterConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub route_match: Option<RouteMatch>,
    pub route: Option<RouteAction>,
    pub direct_response: Option<DirectResponse>,
    pub redirect: Option<serde::de::IgnoredAny>,
    pub metadata: Option<Metadata>,
    pub typed_per_filter_config: BTreeMap<String, PerFilterConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteMatch {
    pub prefix: Option<String>,
    pub path: Option<String>,
    pub safe_regex: Option<Regex>,
    pub path_separated_prefix: Option<String>,
    pub connect_matcher: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DirectResponse {
    #[serde(deserialize_with = "lenient_u64")]
    pub status: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteAction {
    pub cluster: Option<String>,
    pub weighted_clusters: Option<WeightedClusters>,
    pub cluster_header: Option<String>,
    pub timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_stream_duration: Option<MaxStreamDuration>,
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WeightedClusters {
    pub clusters: Vec<WeightedCluster>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WeightedCluster {
    pub name: String,
    #[serde(deserialize_with = "lenient_u64")]
    pub weight: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MaxStreamDuration {
    pub max_stream_duration: Option<String>,
    pub grpc_timeout_header_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    pub retry_on: Option<String>,
    #[serde(deserialize_with = "lenient_u64")]
    pub num_retries: Option<u64>,
    pub per_try_timeout: Option<String>,
    pub per_try_idle_timeout: Option<String>,
}

/// A per-route or per-virtual-host filter override (`BufferPerRoute`, `FilterConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PerFilterConfig {
    #[serde(rename = "@type")]
    pub type_url: Option<String>,
    pub disabled: Option<bool>,
    pub buffer: Option<BufferOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BufferOverride {
    #[serde(deserialize_with = "lenient_u64")]
    pub max_request_bytes: Option<u64>,
}

/// Protobuf JSON writes 32-bit integers as numbers and 64-bit ones as strings; accept both.
fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(value)) => Ok(Some(value)),
        Some(NumberOrText::Text(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an unsigned integer"))),
    }
}

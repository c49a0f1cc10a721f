//! What Envoy does when a config_dump leaves a field out. Each value quotes the Envoy API
//! documentation it rests on (the comments of `envoyproxy/envoy` `api/envoy/**.proto`, which the
//! API docs at envoyproxy.io are generated from). Istio writes most of these explicitly; these
//! apply to raw Envoy and to fields istiod leaves unset.

use std::time::Duration;

/// `config.route.v3.RouteAction.timeout`: "Specifies the upstream timeout for the route. If not
/// specified, the default is 15s. … A value of 0 will disable the route's timeout."
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// `config.route.v3.RetryPolicy.num_retries`: "Specifies the allowed number of retries. This
/// parameter is optional and defaults to 1." (`per_try_timeout` unset means the route timeout.)
pub const RETRY_NUM_RETRIES: u64 = 1;

/// `HttpConnectionManager.stream_idle_timeout`: "If not specified, this defaults to 5 minutes.
/// … A value of 0 will completely disable the connection manager stream idle timeout, although
/// per-route idle timeout overrides will continue to apply."
pub const HCM_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// `HttpConnectionManager.request_timeout`: "If not specified or set to 0, this timeout is
/// disabled."
pub const HCM_REQUEST_TIMEOUT: Duration = Duration::ZERO;

/// `HttpConnectionManager.request_headers_timeout`: "If not specified or set to 0, this timeout
/// is disabled."
pub const HCM_REQUEST_HEADERS_TIMEOUT: Duration = Duration::ZERO;

/// `HttpConnectionManager.delayed_close_timeout`: "The default timeout is 1000 ms if this option
/// is not specified." (A value of 0 disables delayed close.)
pub const HCM_DELAYED_CLOSE_TIMEOUT: Duration = Duration::from_millis(1000);

/// `config.core.v3.HttpProtocolOptions.idle_timeout` (HCM `common_http_protocol_options` and the
/// cluster's `HttpProtocolOptions`): "If not specified, this defaults to 1 hour. To disable idle
/// timeouts explicitly set this to 0." It only fires while no stream is active.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// `config.cluster.v3.Cluster.connect_timeout`: "The timeout for new network connections to
/// hosts in the cluster. If not set, a default value of 5s will be used." (Envoy >= 1.19 API
/// docs; older protos required the field.)
pub const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `config.cluster.v3.Cluster.per_connection_buffer_limit_bytes`: "Soft limit on size of the
/// cluster's connections read and write buffers. If unspecified, an implementation defined
/// default is applied (1MiB)."
pub const CLUSTER_PER_CONNECTION_BUFFER_LIMIT_BYTES: u64 = 1024 * 1024;

/// `config.listener.v3.Listener.per_connection_buffer_limit_bytes`: "Soft limit on size of the
/// listener's new connection read and write buffers. If unspecified, an implementation defined
/// default is applied (1MiB)."
pub const LISTENER_PER_CONNECTION_BUFFER_LIMIT_BYTES: u64 = 1024 * 1024;

/// `config.cluster.v3.CircuitBreakers.Thresholds.max_connections`: "If not specified, the
/// default is 1024."
pub const CIRCUIT_BREAKER_MAX_CONNECTIONS: u64 = 1024;

/// `…Thresholds.max_pending_requests`: "If not specified, the default is 1024."
pub const CIRCUIT_BREAKER_MAX_PENDING_REQUESTS: u64 = 1024;

/// `…Thresholds.max_requests`: "If not specified, the default is 1024."
pub const CIRCUIT_BREAKER_MAX_REQUESTS: u64 = 1024;

/// `…Thresholds.max_retries`: "If not specified, the default is 3."
pub const CIRCUIT_BREAKER_MAX_RETRIES: u64 = 3;

/// Istio writes every circuit-breaker threshold as this value (u32::MAX): "no limit" in effect.
pub const ISTIO_UNLIMITED: u64 = 4_294_967_295;

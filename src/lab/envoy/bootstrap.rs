//! Istio-shaped Envoy bootstraps for the lab and the tests: a client Envoy (a gateway or calling
//! sidecar, with the outbound cluster `outbound|8000||vllm.inference.svc.cluster.local`) and a
//! server Envoy (the vLLM pod's sidecar, with `inbound|8000||`), names as istiod writes them,
//! mTLS between them with certificates made at run time, and a knob per failure mode.
//! Static config only: no xDS.

use crate::evidence::envoy::config::HBONE_CLUSTER;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

/// The Service host the lab pretends to serve.
pub const LAB_HOST: &str = "vllm.inference.svc.cluster.local";
/// The Service port (vLLM's default).
pub const LAB_PORT: u16 = 8000;
const LAB_NAMESPACE: &str = "inference";
const LAB_SERVICE: &str = "vllm";
const TRUST_DOMAIN: &str = "cluster.local";
/// Istio writes every circuit-breaker threshold as u32::MAX.
pub const ISTIO_UNLIMITED: u32 = u32::MAX;
/// Istio's default outbound retry conditions.
const ISTIO_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// The stat prefixes Istio keeps by default (pilot-agent's `stats_matcher` inclusion list).
pub const ISTIO_DEFAULT_STATS_PREFIXES: [&str; 8] = [
    "reporter=",
    "cluster_manager",
    "listener_manager",
    "server",
    "cluster.xds-grpc",
    "wasm",
    "component",
    "istio",
];

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot make the lab's mTLS certificates: {0}")]
    Certificates(#[from] rcgen::Error),
}

/// The circuit-breaker thresholds of a cluster (default priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerKnobs {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for CircuitBreakerKnobs {
    /// What istiod writes when no DestinationRule sets a limit.
    fn default() -> Self {
        Self {
            max_connections: ISTIO_UNLIMITED,
            max_pending_requests: ISTIO_UNLIMITED,
            max_requests: ISTIO_UNLIMITED,
            max_retries: ISTIO_UNLIMITED,
        }
    }
}

/// A route retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryKnobs {
    pub retry_on: String,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
}

impl RetryKnobs {
    /// Istio's default outbound policy: 2 retries on connect failures and refused streams.
    pub fn istio_default() -> Self {
        Self {
            retry_on: ISTIO_RETRY_ON.to_string(),
            num_retries: 2,
            per_try_timeout: None,
        }
    }
}

/// The settings that make each failure mode happen. `Default` is what istiod writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyKnobs {
    /// Route `timeout`; istiod writes `0s` (disabled) unless a VirtualService sets one.
    pub route_timeout: Duration,
    /// Route `idle_timeout` (per-route stream idle timeout).
    pub route_idle_timeout: Option<Duration>,
    /// Route `max_stream_duration.max_stream_duration`.
    pub max_stream_duration: Option<Duration>,
    pub retry: Option<RetryKnobs>,
    /// HCM `stream_idle_timeout`; istiod writes `0s` (disabled).
    pub stream_idle_timeout: Duration,
    /// HCM `request_timeout`; unset unless an EDGE profile or EnvoyFilter sets it.
    pub request_timeout: Option<Duration>,
    /// HCM `delayed_close_timeout`; unset (Envoy's 1s).
    pub delayed_close_timeout: Option<Duration>,
    pub circuit_breakers: CircuitBreakerKnobs,
    /// Cluster `connect_timeout`; istiod writes 10s.
    pub connect_timeout: Duration,
    /// Listener `per_connection_buffer_limit_bytes`; unset (1 MiB).
    pub listener_buffer_limit_bytes: Option<u32>,
    /// Cluster `per_connection_buffer_limit_bytes`; unset (1 MiB).
    pub cluster_buffer_limit_bytes: Option<u32>,
    /// An `envoy.filters.http.buffer` filter with this `max_request_bytes` (413 above it).
    pub buffer_filter_max_request_bytes: Option<u32>,
    /// A Lua filter that reads the whole response body (`body()`), so responses over the
    /// listener's buffer limit fail with 500 and `rs_too_large`.
    pub lua_buffers_response: bool,
    /// Cluster `HttpProtocolOptions.common_http_protocol_options.idle_timeout`.
    pub upstream_idle_timeout: Option<Duration>,
    /// Cluster `HttpProtocolOptions.common_http_protocol_options.max_requests_per_connection`.
    pub max_requests_per_connection: Option<u32>,
    /// An `envoy.filters.http.ext_proc` filter (an Inference Gateway's endpoint picker) and its
    /// gRPC cluster `EXT_PROC_CLUSTER`.
    pub ext_proc: Option<ExtProcKnobs>,
}

/// The ext_proc filter of a gateway in front of an InferencePool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtProcKnobs {
    /// Where the processor (the EPP) listens; a closed port makes it unreachable.
    pub processor: SocketAddr,
    /// `failure_mode_allow`: Istio writes true for an InferencePool with `failureMode: FailOpen`.
    pub failure_mode_allow: bool,
}

/// The ext_proc filter's gRPC cluster.
pub const EXT_PROC_CLUSTER: &str = "outbound|9002||llama-epp.inference.svc.cluster.local";

impl Default for ProxyKnobs {
    fn default() -> Self {
        Self {
            route_timeout: Duration::ZERO,
            route_idle_timeout: None,
            max_stream_duration: None,
            retry: None,
            stream_idle_timeout: Duration::ZERO,
            request_timeout: None,
            delayed_close_timeout: None,
            circuit_breakers: CircuitBreakerKnobs::default(),
            connect_timeout: Duration::from_secs(10),
            listener_buffer_limit_bytes: None,
            cluster_buffer_limit_bytes: None,
            buffer_filter_max_request_bytes: None,
            lua_buffers_response: false,
            upstream_idle_timeout: None,
            max_requests_per_connection: None,
            ext_proc: None,
        }
    }
}

/// Which stats the Envoy keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StatsKnobs {
    /// Every stat (raw Envoy).
    #[default]
    All,
    /// Istio's default trimming (`ISTIO_DEFAULT_STATS_PREFIXES`) plus these prefixes, as a
    /// `proxyStatsMatcher.inclusionPrefixes` annotation adds them.
    IstioDefault { extra_prefixes: Vec<String> },
}

/// mTLS material for the mesh: a root CA and one workload certificate per side, with SPIFFE ids
/// as istiod's CA issues them.
#[derive(Clone)]
pub struct MeshCertificates {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub client_spiffe: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub server_spiffe: String,
}

impl std::fmt::Debug for MeshCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCertificates")
            .field("client_spiffe", &self.client_spiffe)
            .field("server_spiffe", &self.server_spiffe)
            .finish_non_exhaustive()
    }
}

impl MeshCertificates {
    /// A fresh CA and two workload certificates: the gateway
    /// (`spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`) and
    /// vLLM (`spiffe://cluster.local/ns/inference/sa/vllm`).
    pub fn generate() -> Result<Self, BootstrapError> {
        use rcgen::{
            CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
        };
        let (ca_pem, issuer) = new_ca(TRUST_DOMAIN)?;

        let workload = |spiffe: &str| -> Result<(String, String), rcgen::Error> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.subject_alt_names = vec![SanType::URI(spiffe.try_into()?)];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let client_spiffe = format!(
            "spiffe://{TRUST_DOMAIN}/ns/istio-system/sa/istio-ingressgateway-service-account"
        );
        let server_spiffe = format!("spiffe://{TRUST_DOMAIN}/ns/{LAB_NAMESPACE}/sa/{LAB_SERVICE}");
        let (client_cert_pem, client_key_pem) = workload(&client_spiffe)?;
        let (server_cert_pem, server_key_pem) = workload(&server_spiffe)?;
        Ok(Self {
            ca_pem,
            client_cert_pem,
            client_key_pem,
            client_spiffe,
            server_cert_pem,
            server_key_pem,
            server_spiffe,
        })
    }
}

/// A gateway's server certificate for HTTPS (a Gateway server with `tls.mode: SIMPLE`), for the
/// given DNS names, signed by its own CA made at run time.
#[derive(Clone)]
pub struct GatewayCertificate {
    /// The CA that signed the certificate: what a client gives as `--mesh-ca`.
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub names: Vec<String>,
}

impl std::fmt::Debug for GatewayCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCertificate")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl GatewayCertificate {
    /// A fresh CA and a server certificate for `names` (e.g. `llm.example.com`).
    pub fn generate(names: &[&str]) -> Result<Self, BootstrapError> {
        use rcgen::{
            CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
            KeyUsagePurpose,
        };
        let (ca_pem, issuer) = new_ca("infermesh lab gateway CA")?;
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        let mut subject = DistinguishedName::new();
        if let Some(first) = names.first() {
            subject.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = subject;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            names,
        })
    }
}

/// A self-signed CA: its PEM, and the issuer that signs with it.
fn new_ca(
    organization: &str,
) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, organization);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A gateway-like client Envoy: one HTTP listener whose route `8000` sends everything to
/// `outbound|8000||vllm.inference.svc.cluster.local`.
#[derive(Debug, Clone)]
pub struct ClientBootstrap {
    /// Where the outbound cluster's one endpoint is (the server Envoy, or the app directly).
    pub upstream: SocketAddr,
    pub host: String,
    pub port: u16,
    pub knobs: ProxyKnobs,
    /// Originate Istio mTLS to the endpoint (auto-mTLS `tlsMode-istio` match).
    pub mtls: Option<MeshCertificates>,
    /// Istio >= 1.23 names: `alt_stat_name` and HCM `stat_prefix` end with `;`.
    pub delimited_stat_names: bool,
    pub stats: StatsKnobs,
    /// Terminate HTTPS on the listener with this certificate, as an ingress gateway's HTTPS
    /// server does (`tls.mode: SIMPLE`: no client certificate asked).
    pub downstream_tls: Option<GatewayCertificate>,
    /// Name the route as Istio does for rule 0 of this HTTPRoute (in the lab's namespace),
    /// instead of as a VirtualService's.
    pub http_route: Option<String>,
    /// Play an ambient waypoint instead of a gateway: the cluster is named as Istio names a
    /// waypoint's (`inbound-vip|PORT|http|HOST`, as in istio's waypoint config_dump fixture) and
    /// the route configuration `inbound-vip|PORT||HOST-http`.
    pub waypoint: bool,
    /// Send to the endpoint over HBONE, as Istio's proxies do for ambient pods: the endpoint is
    /// labelled `tunnel: http` and addressed to the internal listener `connect_originate`, whose
    /// TCP proxy tunnels it as HTTP/2 CONNECT over mTLS (cluster `connect_originate`) to the
    /// upstream, which plays the pod's ztunnel ([`ServerBootstrap::hbone`]). Needs `mtls`.
    pub hbone: bool,
    /// With `waypoint`: take traffic over HBONE as a waypoint does: the listener terminates mTLS
    /// and HTTP/2 CONNECT (`connect_terminate`) and hands each tunnel to the internal listener
    /// `main_internal`, whose HCM routes it. Needs `mtls` (it presents the vLLM workload's
    /// certificate, the one the sending side's `connect_originate` checks).
    pub hbone_inbound: bool,
}

impl ClientBootstrap {
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            upstream,
            host: LAB_HOST.to_string(),
            port: LAB_PORT,
            knobs: ProxyKnobs::default(),
            mtls: None,
            delimited_stat_names: false,
            stats: StatsKnobs::All,
            downstream_tls: None,
            http_route: None,
            waypoint: false,
            hbone: false,
            hbone_inbound: false,
        }
    }

    /// `outbound|8000||vllm.inference.svc.cluster.local`, or a waypoint's
    /// `inbound-vip|8000|http|vllm.inference.svc.cluster.local`.
    pub fn cluster_name(&self) -> String {
        if self.waypoint {
            format!("inbound-vip|{}|http|{}", self.port, self.host)
        } else {
            format!("outbound|{}||{}", self.port, self.host)
        }
    }

    /// `outbound_0.0.0.0_8000` (without the `;`).
    pub fn hcm_stat_scope(&self) -> String {
        format!("outbound_0.0.0.0_{}", self.port)
    }

    /// The listener's name and stat name: `0.0.0.0_8000`.
    pub fn listener_name(&self) -> String {
        format!("0.0.0.0_{}", self.port)
    }

    /// `8000`, or a waypoint's `inbound-vip|8000||vllm.inference.svc.cluster.local-http`.
    pub fn route_config_name(&self) -> String {
        if self.waypoint {
            format!("inbound-vip|{}||{}-http", self.port, self.host)
        } else {
            self.port.to_string()
        }
    }

    pub fn to_json(&self) -> String {
        let cluster_name = self.cluster_name();
        // Istio names a Gateway API rule's route NAMESPACE.NAME.RULE, in the VirtualService it
        // generates (pilot/pkg/config/kube/gateway/conversion.go).
        let (route_name, route_config_of) = match &self.http_route {
            Some(name) => (
                format!("{LAB_NAMESPACE}.{name}.0"),
                format!(
                    "/apis/networking.istio.io/v1/namespaces/{LAB_NAMESPACE}/virtual-service/{name}-0-istio-autogenerated-k8s-gateway"
                ),
            ),
            None => (
                "default".to_string(),
                format!(
                    "/apis/networking.istio.io/v1alpha3/namespaces/{LAB_NAMESPACE}/virtual-service/{LAB_SERVICE}"
                ),
            ),
        };
        let route = route_json(
            &self.knobs,
            json!({ "cluster": cluster_name }),
            Some(route_config_of),
            &route_name,
        );
        let route_config = json!({
            "name": self.route_config_name(),
            "virtual_hosts": [{
                "name": format!("{}:{}", self.host, self.port),
                "domains": ["*"],
                "routes": [route],
            }],
            "validate_clusters": false,
        });
        let hcm = hcm_json(
            &self.knobs,
            &stat_name(&self.hcm_stat_scope(), self.delimited_stat_names),
            route_config,
            "envoy",
        );
        let downstream_tls = self.downstream_tls.as_ref().map(|certificate| {
            json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": false,
                    "common_tls_context": {
                        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
                        "alpn_protocols": ["h2", "http/1.1"],
                        "tls_certificates": [{
                            "certificate_chain": {"inline_string": certificate.cert_pem},
                            "private_key": {"inline_string": certificate.key_pem},
                        }],
                    },
                },
            })
        });
        let mut terminate = None;
        let listener = match (self.hbone_inbound && self.waypoint, &self.mtls) {
            (true, Some(certificates)) => {
                terminate = Some(hbone_terminate_listener(
                    &self.listener_name(),
                    certificates,
                    HBONE_MAIN,
                ));
                let mut internal = listener_json(HBONE_MAIN, &self.knobs, hcm, None);
                if let Some(listener) = internal.as_object_mut() {
                    listener.remove("address");
                    listener.insert("internal_listener".into(), json!({}));
                }
                internal
            }
            _ => listener_json(&self.listener_name(), &self.knobs, hcm, downstream_tls),
        };
        let endpoint_metadata = self.mtls.as_ref().map(|_| {
            let mut labels = json!({"tlsMode": "istio"});
            if self.hbone {
                labels["tunnel"] = json!("http");
            }
            json!({"filter_metadata": {"envoy.transport_socket_match": labels}})
        });
        // Over HBONE the pod's address travels as the internal endpoint's id; the tunnel goes to
        // the upstream (the pod's ztunnel) whatever it says.
        let address = if self.hbone {
            internal_address(HBONE_CLUSTER, Some(self.upstream.to_string()))
        } else {
            socket_address(self.upstream)
        };
        let mut cluster = cluster_json(
            &cluster_name,
            self.delimited_stat_names,
            &self.knobs,
            address,
            endpoint_metadata,
        );
        cluster["metadata"] = json!({"filter_metadata": {"istio": {
            "config": format!("/apis/networking.istio.io/v1alpha3/namespaces/{LAB_NAMESPACE}/destination-rule/{LAB_SERVICE}"),
            "services": [{"host": self.host, "name": LAB_SERVICE, "namespace": LAB_NAMESPACE}],
        }}});
        if let Some(certificates) = &self.mtls {
            cluster["transport_socket_matches"] = json!([
                {
                    "name": "tlsMode-istio",
                    "match": {"tlsMode": "istio"},
                    "transport_socket": upstream_mtls(
                        certificates,
                        json!({"tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"}}),
                        Some(format!("outbound_.{}_._.{}", self.port, self.host)),
                    ),
                },
                {
                    "name": "tlsMode-disabled",
                    "match": {},
                    "transport_socket": {
                        "name": "envoy.transport_sockets.raw_buffer",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
                    },
                },
            ]);
            if self.hbone {
                // Istio puts the HBONE match first (cluster_tls.go, applyHBONETransportSocketMatches).
                if let Some(matches) = cluster["transport_socket_matches"].as_array_mut() {
                    matches.insert(0, hbone_socket_match());
                }
            }
        }
        let mut clusters = vec![cluster];
        if let Some(ext_proc) = &self.knobs.ext_proc {
            clusters.push(ext_proc_cluster(ext_proc.processor));
        }
        let mut listeners = vec![listener];
        if let Some(terminate) = terminate {
            listeners.push(terminate);
            clusters.push(static_cluster(
                HBONE_MAIN,
                "10s",
                internal_address(HBONE_MAIN, None),
            ));
        }
        if let (true, Some(certificates)) = (self.hbone, &self.mtls) {
            listeners.push(hbone_originate_listener(self.upstream));
            clusters.push(hbone_originate_cluster(
                self.upstream,
                certificates,
                &self.knobs,
            ));
        }
        bootstrap_json(
            "router~127.0.0.1~istio-ingressgateway-lab.istio-system~istio-system.svc.cluster.local",
            "istio-ingressgateway.istio-system",
            listeners,
            clusters,
            &self.stats,
        )
    }
}

/// A sidecar-like server Envoy in front of vLLM: listener `virtualInbound` (stats
/// `listener.0.0.0.0_15006.*`), HCM `inbound_0.0.0.0_8000` with inline route `inbound|8000||`,
/// cluster `inbound|8000||` to the app.
#[derive(Debug, Clone)]
pub struct ServerBootstrap {
    /// The vLLM (lab) server.
    pub app: SocketAddr,
    pub port: u16,
    pub knobs: ProxyKnobs,
    /// Terminate Istio mTLS (client certificate required, as PeerAuthentication STRICT).
    pub mtls: Option<MeshCertificates>,
    pub delimited_stat_names: bool,
    pub stats: StatsKnobs,
    /// Play the vLLM pod's ztunnel instead of a sidecar: terminate HBONE (mTLS, client
    /// certificate required, then HTTP/2 CONNECT) and pass each tunnel's bytes to the app as
    /// TCP, with no HTTP proxy in between. Needs `mtls`.
    pub hbone: bool,
}

impl ServerBootstrap {
    pub fn new(app: SocketAddr) -> Self {
        Self {
            app,
            port: LAB_PORT,
            knobs: ProxyKnobs::default(),
            mtls: None,
            delimited_stat_names: false,
            stats: StatsKnobs::All,
            hbone: false,
        }
    }

    /// `inbound|8000||`
    pub fn cluster_name(&self) -> String {
        format!("inbound|{}||", self.port)
    }

    /// `inbound_0.0.0.0_8000` (without the `;`).
    pub fn hcm_stat_scope(&self) -> String {
        format!("inbound_0.0.0.0_{}", self.port)
    }

    /// `virtualInbound`
    pub fn listener_name(&self) -> String {
        "virtualInbound".to_string()
    }

    /// The listener's stats scope: `0.0.0.0_15006`.
    pub fn listener_stat_name(&self) -> String {
        "0.0.0.0_15006".to_string()
    }

    pub fn to_json(&self) -> String {
        if let (true, Some(certificates)) = (self.hbone, &self.mtls) {
            return self.hbone_json(certificates);
        }
        let cluster_name = self.cluster_name();
        let mut route = route_json(
            &self.knobs,
            json!({ "cluster": cluster_name }),
            None,
            "default",
        );
        if self.knobs.max_stream_duration.is_none() {
            route["route"]["max_stream_duration"] =
                json!({"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"});
        }
        let route_config = json!({
            "name": cluster_name,
            "virtual_hosts": [{
                "name": format!("inbound|http|{}", self.port),
                "domains": ["*"],
                "routes": [route],
            }],
            "validate_clusters": false,
        });
        let hcm = hcm_json(
            &self.knobs,
            &stat_name(&self.hcm_stat_scope(), self.delimited_stat_names),
            route_config,
            "istio-envoy",
        );
        let transport_socket = self.mtls.as_ref().map(|certificates| {
            downstream_mtls(
                certificates,
                json!({"tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"}}),
            )
        });
        let mut listener = listener_json(&self.listener_name(), &self.knobs, hcm, transport_socket);
        listener["stat_prefix"] = json!(self.listener_stat_name());
        listener["filter_chains"][0]["name"] = json!(format!("0.0.0.0_{}", self.port));
        let mut cluster = cluster_json(
            &cluster_name,
            self.delimited_stat_names,
            &self.knobs,
            socket_address(self.app),
            None,
        );
        cluster["metadata"] = json!({"filter_metadata": {"istio": {
            "services": [{"host": LAB_HOST, "name": LAB_SERVICE, "namespace": LAB_NAMESPACE}],
        }}});
        bootstrap_json(
            "sidecar~127.0.0.1~vllm-lab.inference~inference.svc.cluster.local",
            "vllm.inference",
            vec![listener],
            vec![cluster],
            &self.stats,
        )
    }

    /// The ztunnel role: HBONE's listener terminates mTLS and CONNECT; the tunnelled bytes go
    /// to the app over plain TCP.
    fn hbone_json(&self, certificates: &MeshCertificates) -> String {
        let cluster_name = self.cluster_name();
        let mut listener =
            hbone_terminate_listener(&self.listener_name(), certificates, &cluster_name);
        listener["stat_prefix"] = json!("0.0.0.0_15008");
        let cluster = static_cluster(&cluster_name, "10s", socket_address(self.app));
        bootstrap_json(
            "ztunnel~127.0.0.1~ztunnel-lab.istio-system~istio-system.svc.cluster.local",
            "ztunnel.istio-system",
            vec![listener],
            vec![cluster],
            &self.stats,
        )
    }
}

/// The client side of the lab's mTLS: the gateway's certificate, the CA, and vLLM's SPIFFE id
/// as the only accepted peer; `common` adds to the common TLS context (TLS versions, ALPN).
fn upstream_mtls(certificates: &MeshCertificates, mut common: Value, sni: Option<String>) -> Value {
    common["tls_certificates"] = json!([{
        "certificate_chain": {"inline_string": certificates.client_cert_pem},
        "private_key": {"inline_string": certificates.client_key_pem},
    }]);
    common["validation_context"] = json!({
        "trusted_ca": {"inline_string": certificates.ca_pem},
        "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": certificates.server_spiffe}}],
    });
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": common,
    });
    if let Some(sni) = sni {
        context["sni"] = json!(sni);
    }
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// The internal listener a waypoint routes decapsulated HBONE traffic in (`main_internal`).
const HBONE_MAIN: &str = "main_internal";

/// An HBONE listener (a waypoint's `connect_terminate`, ztunnel's 15008): mTLS with a client
/// certificate required, HTTP/2 CONNECT terminated, each tunnel's bytes handed to `cluster`.
fn hbone_terminate_listener(name: &str, certificates: &MeshCertificates, cluster: &str) -> Value {
    json!({
        "name": name,
        "stat_prefix": "connect_terminate",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "connect_terminate",
                "codec_type": "HTTP2",
                "http2_protocol_options": {"allow_connect": true},
                "upgrade_configs": [{"upgrade_type": "CONNECT"}],
                "route_config": {
                    "name": "connect_terminate",
                    "virtual_hosts": [{"name": "connect_terminate", "domains": ["*"], "routes": [{
                        "match": {"connect_matcher": {}},
                        "route": {
                            "cluster": cluster,
                            "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}],
                            "timeout": "0s",
                        },
                    }]}],
                },
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                }],
                "stream_idle_timeout": "0s",
            }}],
            "transport_socket": downstream_mtls(certificates, json!({"alpn_protocols": ["h2"]})),
        }],
    })
}

/// The transport socket match Istio puts first on a cluster when the mesh sends HBONE: endpoints
/// labelled `tunnel: http` go through an internal upstream (to `connect_originate`).
fn hbone_socket_match() -> Value {
    json!({
        "name": "hbone",
        "match": {"tunnel": "http"},
        "transport_socket": {
            "name": "internal_upstream",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
                "passthrough_metadata": [{"kind": {"host": {}}, "name": "envoy.filters.listener.original_dst"}],
                "transport_socket": {
                    "name": "raw_buffer",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"},
                },
            },
        },
    })
}

/// `connect_originate`: a TCP proxy that tunnels each connection as HTTP/2 CONNECT to the
/// cluster of the same name, as Istio writes it (listener_waypoint.go, buildConnectOriginateListener).
fn hbone_originate_listener(destination: SocketAddr) -> Value {
    json!({
        "name": HBONE_CLUSTER,
        "use_original_dst": false,
        "internal_listener": {},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": HBONE_CLUSTER,
                "cluster": HBONE_CLUSTER,
                "tunneling_config": {"hostname": destination.to_string()},
            },
        }]}],
    })
}

/// The cluster `connect_originate`: HTTP/2 over mTLS to port 15008 of the pod's ztunnel. Istio's
/// is ORIGINAL_DST with the port overridden to 15008; on loopback the one ztunnel is a static
/// endpoint.
fn hbone_originate_cluster(
    ztunnel: SocketAddr,
    certificates: &MeshCertificates,
    knobs: &ProxyKnobs,
) -> Value {
    let mut cluster = static_cluster(
        HBONE_CLUSTER,
        &duration_text(knobs.connect_timeout),
        socket_address(ztunnel),
    );
    cluster["cleanup_interval"] = json!("60s");
    cluster["circuit_breakers"] = breakers_json(CircuitBreakerKnobs::default());
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {"allow_connect": true}},
        },
    });
    cluster["transport_socket"] =
        upstream_mtls(certificates, json!({"alpn_protocols": ["h2"]}), None);
    cluster
}

/// A STATIC cluster with one endpoint at `address` (a [`socket_address`] or an
/// [`internal_address`]).
fn static_cluster(name: &str, connect_timeout: &str, address: Value) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    })
}

fn socket_address(address: SocketAddr) -> Value {
    json!({"socket_address": {"address": address.ip().to_string(), "port_value": address.port()}})
}

/// The address of an internal listener, with the endpoint id that tells endpoints apart.
fn internal_address(listener: &str, endpoint_id: Option<String>) -> Value {
    let mut address = json!({"server_listener_name": listener});
    if let Some(id) = endpoint_id {
        address["endpoint_id"] = json!(id);
    }
    json!({"envoy_internal_address": address})
}

/// The default-priority thresholds, as Istio writes them (`track_remaining` on).
fn breakers_json(breakers: CircuitBreakerKnobs) -> Value {
    json!({"thresholds": [{
        "max_connections": breakers.max_connections,
        "max_pending_requests": breakers.max_pending_requests,
        "max_requests": breakers.max_requests,
        "max_retries": breakers.max_retries,
        "track_remaining": true,
    }]})
}

/// The server side of the lab's mTLS: vLLM's certificate, a client certificate required and
/// checked against the CA; `common` adds to the common TLS context (TLS versions, ALPN).
fn downstream_mtls(certificates: &MeshCertificates, mut common: Value) -> Value {
    common["tls_certificates"] = json!([{
        "certificate_chain": {"inline_string": certificates.server_cert_pem},
        "private_key": {"inline_string": certificates.server_key_pem},
    }]);
    common["validation_context"] = json!({"trusted_ca": {"inline_string": certificates.ca_pem}});
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": common,
        },
    })
}

/// The processor's cluster: gRPC over HTTP/2, as Istio writes an EPP's.
fn ext_proc_cluster(processor: SocketAddr) -> Value {
    let mut cluster = static_cluster(EXT_PROC_CLUSTER, "1s", socket_address(processor));
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        },
    });
    cluster
}

fn stat_name(scope: &str, delimited: bool) -> String {
    if delimited {
        format!("{scope};")
    } else {
        scope.to_string()
    }
}

/// Envoy's protobuf-JSON duration: `15s`, `0.500s`.
fn duration_text(duration: Duration) -> String {
    crate::evidence::envoy::config::EnvoyDuration::from_duration(duration).text
}

fn route_json(
    knobs: &ProxyKnobs,
    mut action: Value,
    istio_config: Option<String>,
    name: &str,
) -> Value {
    action["timeout"] = json!(duration_text(knobs.route_timeout));
    if let Some(idle) = knobs.route_idle_timeout {
        action["idle_timeout"] = json!(duration_text(idle));
    }
    if let Some(max) = knobs.max_stream_duration {
        action["max_stream_duration"] = json!({"max_stream_duration": duration_text(max)});
    }
    if let Some(retry) = &knobs.retry {
        let mut policy = json!({
            "retry_on": retry.retry_on,
            "num_retries": retry.num_retries,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": "5",
            "retriable_status_codes": [503],
        });
        if let Some(per_try) = retry.per_try_timeout {
            policy["per_try_timeout"] = json!(duration_text(per_try));
        }
        action["retry_policy"] = policy;
    }
    let mut route = json!({
        "name": name,
        "match": {"prefix": "/"},
        "route": action,
        "decorator": {"operation": format!("{LAB_HOST}:{LAB_PORT}/*")},
    });
    if let Some(config) = istio_config {
        route["metadata"] = json!({"filter_metadata": {"istio": {"config": config}}});
    }
    route
}

fn hcm_json(
    knobs: &ProxyKnobs,
    stat_prefix: &str,
    route_config: Value,
    server_name: &str,
) -> Value {
    let mut http_filters = Vec::new();
    if let Some(ext_proc) = &knobs.ext_proc {
        http_filters.push(json!({
            "name": "envoy.filters.http.ext_proc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
                "grpc_service": {"envoy_grpc": {"cluster_name": EXT_PROC_CLUSTER}, "timeout": "1s"},
                "failure_mode_allow": ext_proc.failure_mode_allow,
                "message_timeout": "1s",
                "processing_mode": {
                    "request_header_mode": "SEND",
                    "response_header_mode": "SKIP",
                    "request_body_mode": "NONE",
                    "response_body_mode": "NONE",
                },
            },
        }));
    }
    if let Some(max) = knobs.buffer_filter_max_request_bytes {
        http_filters.push(json!({
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": max,
            },
        }));
    }
    if knobs.lua_buffers_response {
        http_filters.push(json!({
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string":
                    "function envoy_on_response(response_handle)\n  response_handle:body()\nend\n"},
            },
        }));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": route_config,
        "http_filters": http_filters,
        "stream_idle_timeout": duration_text(knobs.stream_idle_timeout),
        "server_name": server_name,
        "use_remote_address": false,
        "normalize_path": true,
    });
    if let Some(timeout) = knobs.request_timeout {
        hcm["request_timeout"] = json!(duration_text(timeout));
    }
    if let Some(timeout) = knobs.delayed_close_timeout {
        hcm["delayed_close_timeout"] = json!(duration_text(timeout));
    }
    hcm
}

fn listener_json(
    name: &str,
    knobs: &ProxyKnobs,
    hcm: Value,
    transport_socket: Option<Value>,
) -> Value {
    let mut chain = json!({
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}],
    });
    if let Some(socket) = transport_socket {
        chain["transport_socket"] = socket;
    }
    let mut listener = json!({
        "name": name,
        "stat_prefix": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [chain],
        "traffic_direction": if name == "virtualInbound" { "INBOUND" } else { "OUTBOUND" },
    });
    if let Some(limit) = knobs.listener_buffer_limit_bytes {
        listener["per_connection_buffer_limit_bytes"] = json!(limit);
    }
    listener
}

fn cluster_json(
    name: &str,
    delimited: bool,
    knobs: &ProxyKnobs,
    address: Value,
    endpoint_metadata: Option<Value>,
) -> Value {
    let mut lb_endpoint = json!({"endpoint": {"address": address}});
    if let Some(metadata) = endpoint_metadata {
        lb_endpoint["metadata"] = metadata;
    }
    let mut common = json!({});
    if let Some(idle) = knobs.upstream_idle_timeout {
        common["idle_timeout"] = json!(duration_text(idle));
    }
    if let Some(max) = knobs.max_requests_per_connection {
        common["max_requests_per_connection"] = json!(max);
    }
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": duration_text(knobs.connect_timeout),
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": breakers_json(knobs.circuit_breakers),
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "common_http_protocol_options": common,
                "explicit_http_config": {"http_protocol_options": {}},
            },
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [lb_endpoint]}],
        },
    });
    if delimited {
        cluster["alt_stat_name"] = json!(format!("{name};"));
    }
    if let Some(limit) = knobs.cluster_buffer_limit_bytes {
        cluster["per_connection_buffer_limit_bytes"] = json!(limit);
    }
    cluster
}

fn bootstrap_json(
    node_id: &str,
    node_cluster: &str,
    listeners: Vec<Value>,
    clusters: Vec<Value>,
    stats: &StatsKnobs,
) -> String {
    let internal = listeners
        .iter()
        .any(|listener| listener.get("internal_listener").is_some());
    let mut bootstrap = json!({
        "node": {
            "id": node_id,
            "cluster": node_cluster,
            "metadata": {"ISTIO_VERSION": "lab"},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
        // Histograms (`upstream_cx_connect_ms`) show in /stats after a flush: flush often.
        "stats_flush_interval": "1s",
    });
    if internal {
        bootstrap["bootstrap_extensions"] = json!([{
            "name": "envoy.bootstrap.internal_listener",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"},
        }]);
    }
    if let StatsKnobs::IstioDefault { extra_prefixes } = stats {
        let patterns: Vec<Value> = ISTIO_DEFAULT_STATS_PREFIXES
            .iter()
            .map(|prefix| prefix.to_string())
            .chain(extra_prefixes.iter().cloned())
            .map(|prefix| json!({"prefix": prefix}))
            .collect();
        bootstrap["stats_config"] =
            json!({"stats_matcher": {"inclusion_list": {"patterns": patterns}}});
    }
    bootstrap.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::envoy::role::{EnvoyRole, role_for};
    use crate::sources::envoy::config_dump;

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The bootstrap's static resources, as Envoy would list them in a config_dump.
    fn as_config_dump(bootstrap: &str) -> String {
        let value: Value = serde_json::from_str(bootstrap).unwrap();
        let resources = &value["static_resources"];
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": value},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "static_clusters": resources["clusters"].as_array().unwrap().iter().map(|c| json!({"cluster": c})).collect::<Vec<_>>()},
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "static_listeners": resources["listeners"].as_array().unwrap().iter().map(|l| json!({"listener": l})).collect::<Vec<_>>()},
        ]})
        .to_string()
    }

    #[test]
    fn client_bootstrap_has_istio_names_and_knobs() {
        let mut client = ClientBootstrap::new(loopback(9));
        client.knobs.route_timeout = Duration::from_millis(1500);
        client.knobs.circuit_breakers.max_connections = 1;
        client.knobs.buffer_filter_max_request_bytes = Some(1024);
        client.delimited_stat_names = true;
        let config = config_dump::parse(&as_config_dump(&client.to_json())).unwrap();
        let cluster = config.cluster(&client.cluster_name()).unwrap();
        assert_eq!(
            cluster.stat_scope(),
            "outbound|8000||vllm.inference.svc.cluster.local"
        );
        assert_eq!(
            cluster.alt_stat_name.as_deref().unwrap().chars().last(),
            Some(';')
        );
        assert_eq!(cluster.circuit_breakers.max_connections.value, 1);
        assert_eq!(
            cluster.circuit_breakers.max_requests.value,
            u64::from(u32::MAX)
        );
        assert_eq!(cluster.connect_timeout.value.text, "10s");
        let (listener, _, hcm) = config.hcms().next().unwrap();
        assert_eq!(listener.stat_name, "0.0.0.0_8000");
        assert_eq!(hcm.stat_prefix, "outbound_0.0.0.0_8000;");
        assert_eq!(hcm.stat_scope(), client.hcm_stat_scope());
        assert_eq!(hcm.stream_idle_timeout.value.text, "0s");
        assert_eq!(hcm.buffering_filters().count(), 1);
        let route = config.routes().next().unwrap();
        assert_eq!(route.route_config.name, "8000");
        assert_eq!(route.route.timeout.value.text, "1.500s");
        assert_eq!(
            role_for(&config, LAB_HOST, LAB_PORT).role,
            EnvoyRole::Client
        );
    }

    #[test]
    fn server_bootstrap_is_the_inbound_side() {
        let certificates = MeshCertificates::generate().unwrap();
        let mut server = ServerBootstrap::new(loopback(9));
        server.mtls = Some(certificates.clone());
        server.knobs.stream_idle_timeout = Duration::from_secs(2);
        let config = config_dump::parse(&as_config_dump(&server.to_json())).unwrap();
        assert_eq!(
            role_for(&config, LAB_HOST, LAB_PORT).role,
            EnvoyRole::Server
        );
        let (listener, chain, hcm) = config.hcms().next().unwrap();
        assert_eq!(listener.stat_name, "0.0.0.0_15006");
        assert!(chain.tls.as_ref().unwrap().require_client_certificate);
        assert_eq!(hcm.stat_prefix, "inbound_0.0.0.0_8000");
        assert_eq!(hcm.stream_idle_timeout.value.text, "2s");
        assert!(
            certificates
                .ca_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(certificates.server_key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{certificates:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_gateway_can_terminate_https() {
        let certificate = GatewayCertificate::generate(&["llm.example.com"]).unwrap();
        let mut client = ClientBootstrap::new(loopback(9));
        client.downstream_tls = Some(certificate.clone());
        let config = config_dump::parse(&as_config_dump(&client.to_json())).unwrap();
        let (_, chain, _) = config.hcms().next().unwrap();
        assert!(!chain.tls.as_ref().unwrap().require_client_certificate);
        assert_ne!(certificate.ca_pem, certificate.cert_pem);
        assert!(!format!("{certificate:?}").contains("PRIVATE KEY"));
        assert!(ClientBootstrap::new(loopback(9)).downstream_tls.is_none());
    }

    #[test]
    fn istio_stats_trimming_is_a_bootstrap_matcher() {
        let mut client = ClientBootstrap::new(loopback(9));
        client.stats = StatsKnobs::IstioDefault {
            extra_prefixes: vec![
                "cluster.outbound|8000||vllm.inference.svc.cluster.local".to_string(),
            ],
        };
        let config = config_dump::parse(&as_config_dump(&client.to_json())).unwrap();
        let inclusion = config.stats_inclusion.unwrap();
        assert_eq!(inclusion.len(), ISTIO_DEFAULT_STATS_PREFIXES.len() + 1);
        assert_eq!(inclusion[0], "prefix:reporter=");
    }
}

//! The subset of the Kubernetes Gateway API (`gateway.networking.k8s.io`, v1 and v1beta1) that the
//! checks read: Gateway, HTTPRoute, GRPCRoute, GatewayClass, typed as the API writes them. Every
//! field is optional, unknown ones are kept so that a fix re-emits the object whole.

use super::istio::IstioObject;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Gateway of the Gateway API (not Istio's `networking.istio.io` Gateway).
pub type KubeGateway = IstioObject<KubeGatewaySpec>;
pub type KubeHttpRoute = IstioObject<HttpRouteSpec>;
pub type KubeGrpcRoute = IstioObject<GrpcRouteSpec>;
pub type GatewayClass = IstioObject<GatewayClassSpec>;

/// The API group of these kinds, which `parentRefs` and `backendRefs` default to for a Gateway.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeGatewaySpec {
    pub gateway_class_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<Listener>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Listener {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Where a route attaches: a Gateway (the default kind), or a Service for a mesh route (GAMMA).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParentRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl ParentRef {
    /// `Gateway` unless the reference names another kind (an absent group and kind mean a
    /// Gateway of the Gateway API).
    pub fn is_gateway(&self) -> bool {
        self.kind.as_deref().unwrap_or("Gateway") == "Gateway"
            && self.group.as_deref().unwrap_or(GATEWAY_API_GROUP) == GATEWAY_API_GROUP
    }

    /// A core Service: the route is a mesh route, run by the callers' sidecars.
    pub fn is_service(&self) -> bool {
        self.kind.as_deref() == Some("Service") && self.group.as_deref().unwrap_or("").is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RouteTimeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RouteRetry>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A backend of a rule: a core Service (the default), or an InferencePool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl BackendRef {
    /// A core Service (absent group and kind mean one).
    pub fn is_service(&self) -> bool {
        self.group.as_deref().unwrap_or("").is_empty()
            && self.kind.as_deref().unwrap_or("Service") == "Service"
    }

    /// An InferencePool of either inference group.
    pub fn is_inference_pool(&self) -> bool {
        self.kind.as_deref() == Some("InferencePool")
            && self
                .group
                .as_deref()
                .is_some_and(|group| super::inference::INFERENCE_GROUPS.contains(&group))
    }
}

/// `rules[].timeouts` (GEP-1742): `request` bounds the whole request at the gateway,
/// `backendRequest` one attempt to a backend. `0s` disables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteTimeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `rules[].retry` (GEP-1731).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteRetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<i64>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<GrpcRouteRule>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrpcRouteRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayClassSpec {
    /// `istio.io/gateway-controller` for Istio's classes `istio` and `istio-waypoint`.
    pub controller_name: String,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Istio's controller name for the GatewayClasses it runs.
pub const ISTIO_GATEWAY_CONTROLLER: &str = "istio.io/gateway-controller";

/// The label Istio puts on the proxy pods of a Gateway API Gateway.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_route_reads_as_the_api_writes_it_and_round_trips() {
        let route: KubeHttpRoute = serde_yaml::from_str(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: llama-8b, namespace: serving}
spec:
  parentRefs: [{name: inference-gateway, sectionName: http}]
  hostnames: [llm.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1/}}]
    backendRefs:
    - {group: inference.networking.k8s.io, kind: InferencePool, name: llama-pool, port: 8000}
    timeouts: {request: 60s, backendRequest: 30s}
    retry: {attempts: 3, codes: [503]}
    filters: [{type: RequestHeaderModifier}]
  - backendRefs: [{name: llama-8b, port: 8000, weight: 10}]
"#,
        )
        .unwrap();
        assert_eq!(route.metadata.name.as_deref(), Some("llama-8b"));
        let parent = &route.spec.parent_refs[0];
        assert!(parent.is_gateway() && !parent.is_service());
        assert_eq!(parent.section_name.as_deref(), Some("http"));
        let rule = &route.spec.rules[0];
        assert_eq!(
            rule.timeouts.as_ref().unwrap().request.as_deref(),
            Some("60s")
        );
        assert_eq!(
            rule.timeouts.as_ref().unwrap().backend_request.as_deref(),
            Some("30s")
        );
        assert_eq!(rule.retry.as_ref().unwrap().attempts, Some(3));
        assert!(rule.backend_refs[0].is_inference_pool());
        assert!(!rule.backend_refs[0].is_service());
        assert!(rule.other.contains_key("filters"));
        let service = &route.spec.rules[1].backend_refs[0];
        assert!(service.is_service() && service.port == Some(8000));

        let json = serde_json::to_value(&route).unwrap();
        let back: KubeHttpRoute = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, route);
        assert_eq!(
            json["spec"]["rules"][0]["filters"][0]["type"],
            "RequestHeaderModifier"
        );
    }

    #[test]
    fn a_service_parent_is_a_mesh_route() {
        let parent: ParentRef = serde_json::from_value(
            serde_json::json!({"group": "", "kind": "Service", "name": "vllm"}),
        )
        .unwrap();
        assert!(parent.is_service() && !parent.is_gateway());
    }

    #[test]
    fn a_gateway_reads_its_class_and_listeners() {
        let gateway: KubeGateway = serde_yaml::from_str(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: inference-gateway, namespace: serving}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP, hostname: llm.example.com, allowedRoutes: {namespaces: {from: Same}}}
"#,
        )
        .unwrap();
        assert_eq!(gateway.spec.gateway_class_name, "istio");
        assert_eq!(gateway.spec.listeners[0].port, Some(80));
        assert!(
            gateway.spec.listeners[0]
                .other
                .contains_key("allowedRoutes")
        );
    }
}

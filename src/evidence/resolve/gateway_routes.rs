//! Which Gateway API objects apply to a workload: the InferencePools whose selector picks its
//! pods, the HTTPRoutes with a rule whose backend is one of its Services or one of those pools,
//! the Gateways those routes attach to, and what stands behind each pool's endpoint picker.

use crate::evidence::endpoint_picker::{EndpointPicker, PickerPods, PickerWorkload};
use crate::evidence::inventory::Inventory;
use crate::evidence::objects::gateway_api::{BackendRef, HttpRouteRule};
use crate::evidence::objects::inference::INFERENCE_GROUPS;
use crate::evidence::objects::{
    GatewayClass, InferencePool, IstioObject, KubeGateway, KubeHttpRoute,
};
use crate::evidence::resolve::workloads::live;
use crate::evidence::{Gap, ObjectRef, ServiceInfo, Workload};
use std::collections::BTreeMap;

/// The Gateway API around one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayRoutes {
    pub http_routes: Vec<KubeHttpRoute>,
    pub kube_gateways: Vec<KubeGateway>,
    pub gateway_classes: Vec<GatewayClass>,
    pub inference_pools: Vec<InferencePool>,
    pub endpoint_pickers: Vec<EndpointPicker>,
    pub gaps: Vec<Gap>,
}

pub fn resolve(
    inventory: &Inventory,
    workload: &Workload,
    services: &[ServiceInfo],
) -> GatewayRoutes {
    let mut out = GatewayRoutes {
        inference_pools: picking_pools(&inventory.inference_pools, workload),
        ..GatewayRoutes::default()
    };
    for route in &inventory.http_routes {
        let reaches = route
            .spec
            .rules
            .iter()
            .any(|rule| rule_reaches(route, rule, services, &out.inference_pools));
        if reaches {
            out.http_routes.push(route.clone());
        }
    }
    out.http_routes.sort_by_key(key);
    for route in &out.http_routes {
        for parent in route.spec.parent_refs.iter().filter(|p| p.is_gateway()) {
            let namespace = parent
                .namespace
                .clone()
                .unwrap_or_else(|| namespace_of(route).to_string());
            let found = inventory.kube_gateways.iter().find(|gateway| {
                namespace_of(gateway) == namespace && name_of(gateway) == parent.name
            });
            match found {
                Some(gateway) if !out.kube_gateways.contains(gateway) => {
                    out.kube_gateways.push(gateway.clone());
                }
                Some(_) => {}
                None => {
                    let what = format!(
                        "Gateway {namespace}/{} (gateway.networking.k8s.io)",
                        parent.name
                    );
                    if !out.gaps.iter().any(|gap| gap.what == what) {
                        out.gaps.push(Gap::new(
                            what,
                            format!(
                                "a parent of HTTPRoute {}/{} but not in the inventory: its listeners and proxy pods are unknown",
                                namespace_of(route),
                                name_of(route)
                            ),
                        ));
                    }
                }
            }
        }
    }
    out.gateway_classes = inventory
        .gateway_classes
        .iter()
        .filter(|class| {
            out.kube_gateways
                .iter()
                .any(|gateway| gateway.spec.gateway_class_name == name_of(*class))
        })
        .cloned()
        .collect();
    for gateway in &out.kube_gateways {
        if let (Controller::Other(controller), how) = controller_of(gateway, &out.gateway_classes) {
            out.gaps.push(Gap::new(
                format!("controller of Gateway {}/{}", namespace_of(gateway), name_of(gateway)),
                format!(
                    "{how}: {controller} is not a controller this tool models, so its routes' timeouts are judged as \
                     written, with no default of that controller assumed"
                ),
            ));
        }
    }
    out.endpoint_pickers = out
        .inference_pools
        .iter()
        .filter_map(|pool| endpoint_picker(inventory, pool))
        .collect();
    out
}

fn key<S>(object: &IstioObject<S>) -> (String, String) {
    (
        namespace_of(object).to_string(),
        name_of(object).to_string(),
    )
}

pub fn namespace_of<S>(object: &IstioObject<S>) -> &str {
    object.metadata.namespace.as_deref().unwrap_or("default")
}

pub fn name_of<S>(object: &IstioObject<S>) -> &str {
    object.metadata.name.as_deref().unwrap_or_default()
}

/// Pools in the workload's namespace (a pool selects pods only there) whose non-empty selector
/// matches the pod labels and, when the workload's port is known, whose target ports include it.
fn picking_pools(pools: &[InferencePool], workload: &Workload) -> Vec<InferencePool> {
    let mut found: Vec<InferencePool> = pools
        .iter()
        .filter(|pool| namespace_of(*pool) == workload.namespace)
        .filter(|pool| {
            let selector = pool.spec.selector();
            !selector.is_empty() && matches(&selector, &workload.pod_labels)
        })
        .filter(|pool| {
            let ports = pool.spec.target_ports();
            ports.is_empty() || ports.contains(&workload.vllm.port)
        })
        .cloned()
        .collect();
    found.sort_by_key(key);
    found
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Whether a rule of `route` sends to one of `services` or to one of `pools` (a backend without
/// a namespace is in the route's).
pub fn rule_reaches(
    route: &KubeHttpRoute,
    rule: &HttpRouteRule,
    services: &[ServiceInfo],
    pools: &[InferencePool],
) -> bool {
    rule.backend_refs
        .iter()
        .any(|backend| backend_reaches(route, backend, services, pools))
}

fn backend_reaches(
    route: &KubeHttpRoute,
    backend: &BackendRef,
    services: &[ServiceInfo],
    pools: &[InferencePool],
) -> bool {
    let namespace = backend
        .namespace
        .as_deref()
        .unwrap_or_else(|| namespace_of(route));
    if backend.is_service() {
        return services.iter().any(|service| {
            service.namespace == namespace
                && service.name == backend.name
                && backend
                    .port
                    .is_none_or(|port| service.ports.iter().any(|known| known.port == port))
        });
    }
    if backend.is_inference_pool() {
        return pools.iter().any(|pool| {
            namespace_of(pool) == namespace
                && name_of(pool) == backend.name
                && pool_group(pool).is_none_or(|group| Some(group) == backend.group.as_deref())
        });
    }
    false
}

/// The API group a pool was read at; a pool without `apiVersion` matches either group.
fn pool_group(pool: &InferencePool) -> Option<&str> {
    let group = pool
        .api_version
        .as_deref()
        .and_then(|version| version.split_once('/'))
        .map(|(group, _)| group);
    group.filter(|group| INFERENCE_GROUPS.contains(group))
}

/// What stands behind the pool's EPP: its Service, the workloads and pods that Service selects.
fn endpoint_picker(inventory: &Inventory, pool: &InferencePool) -> Option<EndpointPicker> {
    let (reference, field) = pool.spec.endpoint_picker()?;
    let namespace = namespace_of(pool);
    let service = inventory.services.iter().find(|service| {
        service.metadata.namespace.as_deref() == Some(namespace)
            && service.metadata.name.as_deref() == Some(reference.name.as_str())
    });
    let selector: BTreeMap<String, String> = service
        .and_then(|service| service.spec.as_ref())
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    let selected = |labels: Option<&BTreeMap<String, String>>| {
        !selector.is_empty() && labels.is_some_and(|labels| matches(&selector, labels))
    };
    let mut workloads = Vec::new();
    for deployment in &inventory.deployments {
        let labels = deployment
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|meta| meta.labels.as_ref());
        if deployment.metadata.namespace.as_deref() == Some(namespace) && selected(labels) {
            let replicas = deployment.spec.replicas.unwrap_or(1);
            workloads.push(PickerWorkload {
                object: ObjectRef::new(
                    "Deployment",
                    Some(namespace),
                    deployment.metadata.name.as_deref().unwrap_or_default(),
                ),
                replicas: u32::try_from(replicas).unwrap_or(0),
            });
        }
    }
    for set in &inventory.stateful_sets {
        let labels = set
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|meta| meta.labels.as_ref());
        if set.metadata.namespace.as_deref() == Some(namespace) && selected(labels) {
            let replicas = set.spec.replicas.unwrap_or(1);
            workloads.push(PickerWorkload {
                object: ObjectRef::new(
                    "StatefulSet",
                    Some(namespace),
                    set.metadata.name.as_deref().unwrap_or_default(),
                ),
                replicas: u32::try_from(replicas).unwrap_or(0),
            });
        }
    }
    // Pods are known only when the inventory holds live pods at all (a cluster, or saved
    // `kubectl get pods` output); manifests of Deployments alone say nothing of readiness.
    let pods = (!inventory.pods.is_empty()).then(|| {
        let behind: Vec<_> = inventory
            .pods
            .iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace))
            .filter(|pod| live::is_live(pod))
            .filter(|pod| selected(pod.metadata.labels.as_ref()))
            .collect();
        let ready = behind
            .iter()
            .filter(|pod| live::live_pod(pod).ready)
            .count();
        PickerPods {
            total: u32::try_from(behind.len()).unwrap_or(u32::MAX),
            ready: u32::try_from(ready).unwrap_or(u32::MAX),
        }
    });
    let pool_ref = ObjectRef::new("InferencePool", Some(namespace), name_of(pool));
    Some(EndpointPicker {
        pool: pool_ref,
        path: format!("spec/{field}"),
        service: reference.name.clone(),
        port: reference.port(),
        failure_mode: reference.failure_mode().as_str().to_string(),
        failure_mode_defaulted: reference.failure_mode.is_none(),
        service_found: service.is_some(),
        workloads,
        pods,
    })
}

/// Istio's default `retry.attempts` when a rule has `retry` without `attempts`.
pub const ISTIO_DEFAULT_ATTEMPTS: i64 = 2;

/// An HTTPRoute rule as Istio runs it. Istio turns each rule into a VirtualService route
/// (`pilot/pkg/config/kube/gateway/conversion.go`, `convertHTTPRoute`): a non-zero
/// `timeouts.request` becomes the route timeout; a non-zero `timeouts.backendRequest` becomes the
/// per-try timeout when the rule has `retry`, else the route timeout (in place of `request`);
/// `0s` and absent values set nothing, and a route without a timeout gets Envoy route timeout
/// `0s` (disabled). `retry` without `attempts` retries twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioRule<'a> {
    pub route_timeout: Option<Translated<'a>>,
    pub per_try_timeout: Option<Translated<'a>>,
    /// With `retry`: the attempts Istio writes, and whether that is its default.
    pub attempts: Option<(i64, bool)>,
}

/// A Gateway API field that becomes an Envoy timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated<'a> {
    /// `timeouts/request` or `timeouts/backendRequest`.
    pub field: &'static str,
    pub value: &'a str,
    pub duration: std::time::Duration,
}

pub const REQUEST_FIELD: &str = "timeouts/request";
pub const BACKEND_REQUEST_FIELD: &str = "timeouts/backendRequest";

pub fn istio_rule(rule: &HttpRouteRule) -> IstioRule<'_> {
    fn translated<'a>(field: &'static str, value: Option<&'a String>) -> Option<Translated<'a>> {
        let value = value?;
        // Istio ignores what it cannot parse (the duration is then 0: nothing is set).
        let duration = crate::units::duration::parse(value).ok()?;
        (!duration.is_zero()).then_some(Translated {
            field,
            value: value.as_str(),
            duration,
        })
    }
    let timeouts = rule.timeouts.as_ref();
    let request = translated(REQUEST_FIELD, timeouts.and_then(|t| t.request.as_ref()));
    let backend = translated(
        BACKEND_REQUEST_FIELD,
        timeouts.and_then(|t| t.backend_request.as_ref()),
    );
    let attempts = rule.retry.as_ref().map(|retry| match retry.attempts {
        Some(attempts) => (attempts, false),
        None => (ISTIO_DEFAULT_ATTEMPTS, true),
    });
    match (attempts.is_some(), backend) {
        (true, Some(backend)) => IstioRule {
            route_timeout: request,
            per_try_timeout: Some(backend),
            attempts,
        },
        (false, Some(backend)) => IstioRule {
            route_timeout: Some(backend),
            per_try_timeout: None,
            attempts,
        },
        (_, None) => IstioRule {
            route_timeout: request,
            per_try_timeout: None,
            attempts,
        },
    }
}

/// The name Istio gives the Envoy route of rule `index` of `route` when the rule has no name
/// (`NAMESPACE.NAME.INDEX`, conversion.go); a named rule's route carries the rule's name.
pub fn envoy_route_name(route: &KubeHttpRoute, index: usize) -> String {
    match route
        .spec
        .rules
        .get(index)
        .and_then(|rule| rule.name.as_ref())
    {
        Some(name) => name.clone(),
        None => format!("{}.{}.{index}", namespace_of(route), name_of(route)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::resolve::workloads;

    fn inventory(yaml: &str) -> Inventory {
        crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "serving",
            &mut std::io::Cursor::new(yaml.to_string()),
        )
        .unwrap()
    }

    fn resolved(inventory: &Inventory) -> GatewayRoutes {
        let workload = workloads::find(inventory, None)
            .into_iter()
            .find(|w| w.name == "llama-8b")
            .expect("deploy/llama-8b");
        let resolution = crate::evidence::resolve::mesh::resolve(inventory, &workload);
        resolve(inventory, &workload, &resolution.mesh.services)
    }

    const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: llama-8b}
spec:
  template:
    metadata: {labels: {app: llama-8b}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai, args: [--port, "8000"]}]}
---
apiVersion: v1
kind: Service
metadata: {name: llama-8b}
spec: {selector: {app: llama-8b}, ports: [{port: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec: {selector: {app: other}, ports: [{port: 8000}]}
"#;

    fn with(objects: &str) -> Inventory {
        inventory(&format!("{WORKLOAD}---\n{objects}"))
    }

    fn rule(yaml: &str) -> HttpRouteRule {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn rules_translate_as_istio_writes_them() {
        let secs = std::time::Duration::from_secs;
        // request alone: the route timeout.
        let only = rule("timeouts: {request: 60s}");
        let run = istio_rule(&only);
        assert_eq!(run.route_timeout.unwrap().duration, secs(60));
        assert_eq!(run.route_timeout.unwrap().field, REQUEST_FIELD);
        assert_eq!((run.per_try_timeout, run.attempts), (None, None));
        // backendRequest without retry replaces request as the route timeout.
        let run_rule = rule("timeouts: {request: 300s, backendRequest: 15s}");
        let run = istio_rule(&run_rule);
        assert_eq!(run.route_timeout.unwrap().field, BACKEND_REQUEST_FIELD);
        assert_eq!(run.route_timeout.unwrap().duration, secs(15));
        // with retry it is the per-try timeout, and attempts default to 2.
        let retried = rule("timeouts: {request: 300s, backendRequest: 15s}\nretry: {codes: [503]}");
        let run = istio_rule(&retried);
        assert_eq!(run.route_timeout.unwrap().duration, secs(300));
        assert_eq!(run.per_try_timeout.unwrap().duration, secs(15));
        assert_eq!(run.attempts, Some((2, true)));
        // 0s, absent and unparseable values set nothing: the route timeout stays disabled.
        for text in ["timeouts: {request: 0s}", "{}", "timeouts: {request: soon}"] {
            let parsed = rule(text);
            assert_eq!(istio_rule(&parsed).route_timeout, None, "{text}");
        }
    }

    #[test]
    fn envoy_routes_are_named_by_namespace_name_and_rule_index() {
        let route: KubeHttpRoute = serde_yaml::from_str(
            "metadata: {name: llama-8b, namespace: serving}\nspec: {rules: [{}, {name: chat}]}",
        )
        .unwrap();
        assert_eq!(envoy_route_name(&route, 0), "serving.llama-8b.0");
        assert_eq!(envoy_route_name(&route, 1), "chat");
    }

    #[test]
    fn routes_reach_by_service_backend_or_by_a_pool_that_picks_the_pods() {
        let inventory = with(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-service}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: llama-8b, port: 8000}], timeouts: {request: 60s}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-pool}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere}
spec:
  rules:
  - backendRefs: [{name: other, port: 8000}]
  - backendRefs: [{name: llama-8b, port: 9999}]
  - backendRefs: [{name: llama-8b, namespace: foreign, port: 8000}]
  - backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: llama-8b}}, targetPorts: [{number: 8000}], endpointPickerRef: {name: epp}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: wrong-port}
spec: {selector: {matchLabels: {app: llama-8b}}, targetPorts: [{number: 9000}]}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: elsewhere, namespace: foreign}
spec: {selector: {matchLabels: {app: llama-8b}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}
"#,
        );
        let found = resolved(&inventory);
        let names: Vec<&str> = found.http_routes.iter().map(name_of).collect();
        assert_eq!(names, ["by-pool", "by-service"]);
        let pools: Vec<&str> = found.inference_pools.iter().map(name_of).collect();
        assert_eq!(pools, ["pool"]);
        assert_eq!(found.kube_gateways.len(), 1);
        assert_eq!(name_of(&found.kube_gateways[0]), "gw");
        // infra/gw is named by by-pool but not in the inventory.
        assert_eq!(found.gaps.len(), 1, "{:?}", found.gaps);
        assert!(found.gaps[0].what.starts_with("Gateway infra/gw"));
    }

    #[test]
    fn the_picker_behind_a_pool_counts_replicas_and_ready_pods() {
        let objects = r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: llama-8b}}, targetPorts: [{number: 8000}], endpointPickerRef: {name: epp, port: {number: 9002}}}
---
apiVersion: v1
kind: Service
metadata: {name: epp}
spec: {selector: {app: epp}, ports: [{port: 9002}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: epp}
spec:
  replicas: 0
  template:
    metadata: {labels: {app: epp}}
    spec: {containers: [{name: epp, image: epp}]}
"#;
        let offline = resolved(&with(objects));
        let picker = &offline.endpoint_pickers[0];
        assert_eq!(picker.path, "spec/endpointPickerRef");
        assert_eq!(picker.address(), "epp.serving.svc:9002");
        assert!(picker.fails_closed() && picker.failure_mode_defaulted);
        assert!(picker.service_found);
        assert_eq!(picker.workloads[0].replicas, 0);
        assert_eq!(
            picker.pods, None,
            "no pods in the inventory: readiness unknown"
        );

        let pods = r#"
---
apiVersion: v1
kind: Pod
metadata: {name: epp-1, labels: {app: epp}}
spec: {containers: [{name: epp, image: epp}]}
status: {phase: Running, conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: epp-2, labels: {app: epp}}
spec: {containers: [{name: epp, image: epp}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
"#;
        let live = resolved(&with(&format!("{objects}{pods}")));
        assert_eq!(
            live.endpoint_pickers[0].pods,
            Some(PickerPods { total: 2, ready: 1 })
        );

        let missing = resolved(&with(
            "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: pool}\nspec: {selector: {app: llama-8b}, targetPortNumber: 8000, extensionRef: {name: gone, failureMode: FailOpen}}\n",
        ));
        let picker = &missing.endpoint_pickers[0];
        assert!(!picker.service_found && !picker.fails_closed());
        assert_eq!(picker.path, "spec/extensionRef");
        assert_eq!(picker.port, 9002);
    }
}

/// The controller that runs a Gateway's routes, from its GatewayClass's `controllerName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controller {
    /// `istio.io/gateway-controller`: routes as pilot translates them (`istio_rule`).
    Istio,
    /// `gateway.envoyproxy.io/gatewayclass-controller` (Envoy Gateway, and Envoy AI Gateway on
    /// it): a rule without `timeouts.request` gets no route timeout, so Envoy's default 15 s
    /// applies (Envoy Gateway docs, "HTTP Timeouts": "The default request timeout is set to 15
    /// seconds in Envoy Proxy").
    EnvoyGateway,
    /// `networking.gke.io/gateway`: Google's managed load balancer; its backend service timeout
    /// is 30 s unless a GCPBackendPolicy sets `timeoutSec` (GKE docs, "Configure Gateway
    /// resources using Policies").
    Gke,
    /// Any other controller (kgateway, agentgateway, NGINX Gateway Fabric, …), named.
    Other(String),
}

pub const ISTIO_CONTROLLER: &str = "istio.io/gateway-controller";
pub const ENVOY_GATEWAY_CONTROLLER: &str = "gateway.envoyproxy.io/gatewayclass-controller";
pub const GKE_CONTROLLER: &str = "networking.gke.io/gateway";
/// Envoy's route timeout when the route sets none.
pub const ENVOY_DEFAULT_ROUTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// GKE's backend service timeout when no GCPBackendPolicy sets one.
pub const GKE_DEFAULT_BACKEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The controller of `gateway` and how it was known: the GatewayClass's `controllerName` when
/// the class was read, else the well-known class names (`istio`, `istio-waypoint`, `eg`,
/// `gke-l7-…`); an unknown class without its object is taken as Istio's, and said so.
pub fn controller_of(gateway: &KubeGateway, classes: &[GatewayClass]) -> (Controller, String) {
    let class = gateway.spec.gateway_class_name.as_str();
    if let Some(found) = classes
        .iter()
        .find(|candidate| name_of(*candidate) == class)
    {
        let name = found.spec.controller_name.as_str();
        let how = format!("GatewayClass {class} has controllerName {name}");
        let controller = match name {
            ISTIO_CONTROLLER => Controller::Istio,
            ENVOY_GATEWAY_CONTROLLER => Controller::EnvoyGateway,
            name if name.starts_with("networking.gke.io/") => Controller::Gke,
            other => Controller::Other(other.to_string()),
        };
        return (controller, how);
    }
    let by_name = match class {
        "istio" | "istio-waypoint" | "istio-remote" => Controller::Istio,
        "eg" | "envoy-gateway" | "envoy-ai-gateway" => Controller::EnvoyGateway,
        class if class.starts_with("gke-l7-") => Controller::Gke,
        _ => Controller::Istio,
    };
    let how = format!(
        "GatewayClass {class} is not in the input: its controller is taken from the class name ({})",
        match by_name {
            Controller::Istio => "Istio's, the default this tool assumes",
            Controller::EnvoyGateway => "Envoy Gateway's",
            Controller::Gke => "GKE's",
            Controller::Other(_) => "unknown",
        }
    );
    (by_name, how)
}

/// A rule as `controller` runs it: Istio's translation, or Envoy Gateway's (`timeouts.request`
/// the route timeout, absent: Envoy's 15 s; `backendRequest` each attempt's), GKE's (the
/// backend service timeout, 30 s unless a GCPBackendPolicy sets it, not read here), or as
/// written for another controller.
pub fn controller_rule<'a>(controller: &Controller, rule: &'a HttpRouteRule) -> IstioRule<'a> {
    let istio = istio_rule(rule);
    match controller {
        Controller::Istio => istio,
        Controller::EnvoyGateway => {
            let timeouts = rule.timeouts.as_ref();
            let request = timeouts.and_then(|t| t.request.as_ref());
            let route_timeout = match request {
                Some(value) => written(REQUEST_FIELD, value),
                None => Some(Translated {
                    field: REQUEST_FIELD,
                    value: "<unset> (Envoy's default route timeout 15s: Envoy Gateway writes none)",
                    duration: ENVOY_DEFAULT_ROUTE_TIMEOUT,
                }),
            };
            IstioRule {
                route_timeout,
                per_try_timeout: timeouts
                    .and_then(|t| t.backend_request.as_ref())
                    .and_then(|value| written(BACKEND_REQUEST_FIELD, value)),
                attempts: istio.attempts,
            }
        }
        Controller::Gke => IstioRule {
            route_timeout: Some(Translated {
                field: REQUEST_FIELD,
                value: "<no GCPBackendPolicy read> (GKE's backend service timeout 30s)",
                duration: GKE_DEFAULT_BACKEND_TIMEOUT,
            }),
            per_try_timeout: None,
            attempts: istio.attempts,
        },
        Controller::Other(_) => IstioRule {
            route_timeout: rule
                .timeouts
                .as_ref()
                .and_then(|t| t.request.as_ref())
                .and_then(|value| written(REQUEST_FIELD, value)),
            per_try_timeout: None,
            attempts: istio.attempts,
        },
    }
}

/// A written, non-zero Gateway API duration.
fn written<'a>(field: &'static str, value: &'a str) -> Option<Translated<'a>> {
    let duration = crate::units::duration::parse(value).ok()?;
    (!duration.is_zero()).then_some(Translated {
        field,
        value,
        duration,
    })
}

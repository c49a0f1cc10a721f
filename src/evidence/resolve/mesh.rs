//! Which Istio objects apply to a workload. Only objects that reach it are kept: Services that
//! select its pods, the VirtualServices and DestinationRules for those Services' hosts, the
//! EnvoyFilters, PeerAuthentications and Sidecars that select its pods (or the gateways in front).

use crate::evidence::ambient::AmbientContext;
use crate::evidence::inventory::Inventory;
use crate::evidence::objects::SelectorPolicySpec;
use crate::evidence::objects::{
    DestinationRule, EnvoyFilter, Gateway, IstioObject, VirtualService, WorkloadSelector,
};
use crate::evidence::resolve::ambient;
use crate::evidence::resolve::delegation::{self, RunRoute, Unresolved};
use crate::evidence::resolve::gateway_routes;
use crate::evidence::resolve::hosts::{HostPattern, ROOT_NAMESPACE, exported_to};
use crate::evidence::resolve::sidecar_mode;
use crate::evidence::resolve::target_refs::{self, Reach};
use crate::evidence::{
    Gap, IstioPresence, MeshContext, ServiceInfo, ServicePortInfo, SidecarMode, Workload,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The mesh around one workload, and what could not be learned about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub mesh: MeshContext,
    pub gaps: Vec<Gap>,
}

pub fn resolve(inventory: &Inventory, workload: &Workload) -> Resolution {
    let mut gaps = Vec::new();
    let namespace = workload.namespace.as_str();
    let namespace_labels = inventory
        .namespaces
        .iter()
        .find(|ns| ns.metadata.name.as_deref() == Some(namespace))
        .map(|ns| ns.metadata.labels.clone().unwrap_or_default());
    if namespace_labels.is_none() {
        gaps.push(Gap::new(
            format!("Namespace {namespace}"),
            "not in the inventory: its injection and ambient labels are unknown, the sidecar mode rests on the pod's labels",
        ));
    }
    let (sidecar_mode, sidecar_reason) = sidecar_mode::decide(
        &workload.pod_spec,
        &workload.pod_labels,
        &workload.pod_annotations,
        namespace_labels.as_ref(),
    );

    let services: Vec<ServiceInfo> = inventory
        .services
        .iter()
        .filter(|service| selects(service, namespace, &workload.pod_labels))
        .map(service_info)
        .collect();
    let hosts: Vec<String> = services.iter().map(ServiceInfo::fqdn).collect();

    let virtual_services = virtual_services(inventory, namespace, &hosts, &mut gaps);
    let gateways = bound_gateways(inventory, &virtual_services, &mut gaps);
    let gateway_namespaces: Vec<&str> = gateways.iter().map(object_namespace).collect();
    let destination_rules = destination_rules(inventory, namespace, &hosts, &gateway_namespaces);
    let service_names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let ambient_waypoint = (sidecar_mode == SidecarMode::Ambient)
        .then(|| ambient::waypoint(inventory, workload, namespace_labels.as_ref(), &services));
    let waypoint = ambient_waypoint
        .as_ref()
        .is_some_and(|(found, _, _)| found.is_some());
    let scope = target_refs::Scope {
        namespace,
        services: &service_names,
        waypoint,
        gateways: &gateways,
    };
    let envoy_filters = envoy_filters(inventory, &workload.pod_labels, &scope, &mut gaps);
    let peer_authentications = scoped(
        &inventory.peer_authentications,
        namespace,
        &workload.pod_labels,
        |pa| pa.selector.as_ref(),
        // Istio applies the most specific one: mesh, then namespace, then workload (last wins).
        [2, 1, 0],
    );
    let authorization_policies =
        enforced_by_sidecar(&inventory.authorization_policies, namespace, workload);
    let request_authentications =
        enforced_by_sidecar(&inventory.request_authentications, namespace, workload);
    let autoscaler = inventory
        .autoscalers
        .iter()
        .find(|scaler| {
            scaler.namespace == *namespace
                && scaler.target_name == workload.name
                && scaler.target_kind == workload.kind.as_str()
        })
        .cloned();
    let sidecars = scoped(
        &inventory.sidecars,
        namespace,
        &workload.pod_labels,
        |sidecar| sidecar.workload_selector.as_ref(),
        // Istio uses the first: selecting the workload, then its namespace's, then the mesh's.
        [0, 1, 2],
    );

    let routes = gateway_routes::resolve(inventory, workload, &services);
    gaps.extend(routes.gaps);

    let mut mesh = MeshContext {
        istio: inventory.istio.unwrap_or(IstioPresence::Unknown),
        sidecar_mode,
        sidecar_reason,
        namespace_labels: namespace_labels.unwrap_or_default(),
        services,
        namespace_services: namespace_services(inventory, namespace),
        virtual_services,
        destination_rules,
        envoy_filters,
        peer_authentications,
        authorization_policies,
        request_authentications,
        autoscaler,
        sidecars,
        gateways,
        http_routes: routes.http_routes,
        kube_gateways: routes.kube_gateways,
        gateway_classes: routes.gateway_classes,
        inference_pools: routes.inference_pools,
        endpoint_pickers: routes.endpoint_pickers,
        ambient: None,
    };
    if let Some((waypoint, waypoint_reason, found_gaps)) = ambient_waypoint {
        gaps.extend(found_gaps);
        let no_effect = ambient::set_aside(&mut mesh, waypoint.is_some());
        mesh.ambient = Some(AmbientContext {
            waypoint,
            waypoint_reason,
            ztunnel: Vec::new(),
            no_effect,
        });
    }
    Resolution { mesh, gaps }
}

fn object_namespace<Spec>(object: &IstioObject<Spec>) -> &str {
    object.metadata.namespace.as_deref().unwrap_or("default")
}

fn object_name<Spec>(object: &IstioObject<Spec>) -> &str {
    object.metadata.name.as_deref().unwrap_or_default()
}

/// The Services of `namespace`, unless the Service list was not readable.
fn namespace_services(inventory: &Inventory, namespace: &str) -> Option<u32> {
    let unreadable = inventory
        .gaps
        .iter()
        .any(|gap| gap.what.starts_with("Service list"));
    if unreadable {
        return None;
    }
    let count = inventory
        .services
        .iter()
        .filter(|service| service.metadata.namespace.as_deref() == Some(namespace))
        .count();
    u32::try_from(count).ok()
}

/// A Service of `namespace` whose (non-empty) selector matches the pod labels.
fn selects(service: &Service, namespace: &str, pod_labels: &BTreeMap<String, String>) -> bool {
    if service.metadata.namespace.as_deref() != Some(namespace) {
        return false;
    }
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.as_ref())
    else {
        return false;
    };
    !selector.is_empty() && labels_match(selector, pod_labels)
}

/// Every `key: value` of `selector` is among `labels`.
fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

fn service_info(service: &Service) -> ServiceInfo {
    let ports = service
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|port| {
            Some(ServicePortInfo {
                name: port.name.clone(),
                port: u16::try_from(port.port).ok()?,
                target_port: port.target_port.as_ref().map(|target| match target {
                    IntOrString::Int(number) => number.to_string(),
                    IntOrString::String(name) => name.clone(),
                }),
            })
        })
        .collect();
    ServiceInfo {
        namespace: service.metadata.namespace.clone().unwrap_or_default(),
        name: service.metadata.name.clone().unwrap_or_default(),
        ports,
    }
}

/// Where a VirtualService is bound: the mesh's sidecars, and/or gateways `(namespace, name)`.
struct Binding {
    mesh: bool,
    gateways: Vec<(String, String)>,
}

fn binding(vs: &VirtualService) -> Binding {
    let vs_namespace = object_namespace(vs);
    if vs.spec.gateways.is_empty() {
        return Binding {
            mesh: true,
            gateways: Vec::new(),
        };
    }
    let mut out = Binding {
        mesh: false,
        gateways: Vec::new(),
    };
    for entry in &vs.spec.gateways {
        let entry = entry.trim();
        if entry == "mesh" {
            out.mesh = true;
        } else if let Some((namespace, name)) = entry.split_once('/') {
            out.gateways.push((namespace.to_string(), name.to_string()));
        } else if let Some((name, rest)) = entry.split_once('.') {
            // The old form `name.namespace.svc.cluster.local`.
            let namespace = rest.split('.').next().unwrap_or(vs_namespace);
            out.gateways.push((namespace.to_string(), name.to_string()));
        } else {
            out.gateways
                .push((vs_namespace.to_string(), entry.to_string()));
        }
    }
    out
}

/// VirtualServices with an http route to one of `hosts`, visible from the workload's namespace (or
/// from the gateway they bind to), whose own hosts name one of `hosts` — or that are bound to a
/// gateway, where the hosts are the public names. A route that delegates counts by its delegate's
/// routes, and the delegates whose routes reach `hosts` are kept too (they hold those routes'
/// timeouts and retries). A delegate named by such a VirtualService that does not run is a gap.
fn virtual_services(
    inventory: &Inventory,
    namespace: &str,
    hosts: &[String],
    gaps: &mut Vec<Gap>,
) -> Vec<VirtualService> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let covers = |pattern: &HostPattern| hosts.iter().any(|host| pattern.matches(host));
    let reaches = |run: &RunRoute| {
        let written = run.written();
        let written_namespace = object_namespace(written.virtual_service);
        written.route.route.iter().any(|destination| {
            covers(&HostPattern::resolve(
                &destination.destination.host,
                written_namespace,
            ))
        })
    };
    let mut found: Vec<VirtualService> = Vec::new();
    for vs in inventory
        .virtual_services
        .iter()
        .filter(|vs| !delegation::is_delegate(vs))
    {
        let vs_namespace = object_namespace(vs);
        let binding = binding(vs);
        let named = vs
            .spec
            .hosts
            .iter()
            .any(|host| covers(&HostPattern::resolve(host, vs_namespace)));
        let visible = exported_to(&vs.spec.export_to, vs_namespace, namespace)
            || binding.gateways.iter().any(|(gw_namespace, _)| {
                exported_to(&vs.spec.export_to, vs_namespace, gw_namespace)
            });
        let bound_to_gateway = !binding.gateways.is_empty();
        if !visible || !(named || bound_to_gateway) {
            continue;
        }
        let expansion = delegation::expand(vs, &inventory.virtual_services);
        if named {
            for unrun in &expansion.unrun {
                gaps.push(unrun_gap(vs, unrun));
            }
        }
        let reaching: Vec<&RunRoute> = expansion.routes.iter().filter(|run| reaches(run)).collect();
        if reaching.is_empty() {
            continue;
        }
        for delegate in reaching.iter().filter_map(|run| run.delegated) {
            if !found.contains(delegate.virtual_service) {
                found.push(delegate.virtual_service.clone());
            }
        }
        if !found.contains(vs) {
            found.push(vs.clone());
        }
    }
    found.sort_by(|a, b| {
        (object_namespace(a), object_name(a)).cmp(&(object_namespace(b), object_name(b)))
    });
    found
}

fn unrun_gap(root: &VirtualService, unrun: &delegation::Unrun) -> Gap {
    let why = match unrun.why {
        Unresolved::Missing => "not in the inventory",
        Unresolved::HasHosts => "has hosts, so Istio does not take it as a delegate",
        Unresolved::NotExported => "not exported to the delegating VirtualService's namespace",
    };
    Gap::new(
        format!("VirtualService {}/{}", unrun.namespace, unrun.name),
        format!(
            "delegated to by VirtualService {}/{} spec/http[{}] but {why}: the timeouts and retries of \
             the routes it would hold are unknown",
            object_namespace(root),
            object_name(root),
            unrun.index
        ),
    )
}

/// The Gateways the VirtualServices bind to; one that is referenced but absent is a gap.
fn bound_gateways(
    inventory: &Inventory,
    virtual_services: &[VirtualService],
    gaps: &mut Vec<Gap>,
) -> Vec<Gateway> {
    let mut found: Vec<Gateway> = Vec::new();
    for vs in virtual_services {
        for (namespace, name) in binding(vs).gateways {
            let gateway = inventory
                .gateways
                .iter()
                .find(|g| object_namespace(g) == namespace && object_name(g) == name);
            match gateway {
                Some(gateway) => {
                    if !found.contains(gateway) {
                        found.push(gateway.clone());
                    }
                }
                None => {
                    let what = format!("Gateway {namespace}/{name}");
                    if !gaps.iter().any(|gap| gap.what == what) {
                        gaps.push(Gap::new(
                            what,
                            format!(
                                "bound by VirtualService {}/{} but not in the inventory",
                                object_namespace(vs),
                                object_name(vs)
                            ),
                        ));
                    }
                }
            }
        }
    }
    found
}

/// DestinationRules for `hosts` in the Service's namespace or the root namespace (Istio looks
/// nowhere else for a Service's rule), visible from the workload's or a gateway's namespace.
/// Ordered as Istio picks: Service namespace before root, exact host before wildcard, narrower
/// wildcard before broader.
fn destination_rules(
    inventory: &Inventory,
    namespace: &str,
    hosts: &[String],
    gateway_namespaces: &[&str],
) -> Vec<DestinationRule> {
    let mut found: Vec<(usize, bool, std::cmp::Reverse<usize>, DestinationRule)> = inventory
        .destination_rules
        .iter()
        .filter_map(|dr| {
            let dr_namespace = object_namespace(dr);
            if dr_namespace != namespace && dr_namespace != ROOT_NAMESPACE {
                return None;
            }
            let pattern = HostPattern::resolve(&dr.spec.host, dr_namespace);
            if !hosts.iter().any(|host| pattern.matches(host)) {
                return None;
            }
            let visible = std::iter::once(namespace)
                .chain(gateway_namespaces.iter().copied())
                .any(|client| exported_to(&dr.spec.export_to, dr_namespace, client));
            if !visible {
                return None;
            }
            let rank = usize::from(dr_namespace != namespace);
            Some((
                rank,
                pattern.is_wildcard(),
                std::cmp::Reverse(pattern.specificity()),
                dr.clone(),
            ))
        })
        .collect();
    found.sort_by(|a, b| {
        (a.0, a.1, a.2, object_name(&a.3)).cmp(&(b.0, b.1, b.2, object_name(&b.3)))
    });
    found.into_iter().map(|(_, _, _, dr)| dr).collect()
}

/// Labels of a selector, None when it selects everything (absent or empty).
fn selector_labels(selector: Option<&WorkloadSelector>) -> Option<&BTreeMap<String, String>> {
    selector
        .map(|selector| &selector.labels)
        .filter(|labels| !labels.is_empty())
}

/// EnvoyFilters that reach the workload's proxy (root namespace: mesh-wide or selecting its pods;
/// its namespace: namespace-wide or selecting its pods), those that reach a gateway in front of
/// it, and those whose `targetRefs` name one of these (see `target_refs`; one that may apply but
/// cannot be told is a gap). Ordered as Envoy gets the patches: priority, root namespace first,
/// then name.
fn envoy_filters(
    inventory: &Inventory,
    pod_labels: &BTreeMap<String, String>,
    scope: &target_refs::Scope,
    gaps: &mut Vec<Gap>,
) -> Vec<EnvoyFilter> {
    let selects =
        |filter: &EnvoyFilter, pods_namespace: &str, labels: &BTreeMap<String, String>| {
            let filter_namespace = object_namespace(filter);
            (filter_namespace == ROOT_NAMESPACE || filter_namespace == pods_namespace)
                && selector_labels(filter.spec.workload_selector.as_ref())
                    .is_none_or(|selector| labels_match(selector, labels))
        };
    let mut found: Vec<EnvoyFilter> = Vec::new();
    for filter in &inventory.envoy_filters {
        let applies = if filter.spec.target_refs.is_empty() {
            selects(filter, scope.namespace, pod_labels)
                || scope.gateways.iter().any(|gateway| {
                    selects(filter, object_namespace(gateway), &gateway.spec.selector)
                })
        } else {
            match target_refs::reach(filter, scope) {
                Reach::Applies => true,
                Reach::DoesNot => false,
                Reach::Unknown(reason) => {
                    gaps.push(Gap::new(
                        format!(
                            "EnvoyFilter {}/{}",
                            object_namespace(filter),
                            object_name(filter)
                        ),
                        reason,
                    ));
                    false
                }
            }
        };
        if applies {
            found.push(filter.clone());
        }
    }
    found.sort_by(|a, b| {
        let key = |f: &EnvoyFilter| {
            (
                f.spec.priority.unwrap_or(0),
                object_namespace(f) != ROOT_NAMESPACE,
                object_namespace(f).to_string(),
                object_name(f).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    found
}

/// How far an object with a namespace and an optional selector reaches the workload.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// In the workload's namespace, selecting its pods.
    Workload = 0,
    /// In the workload's namespace, without a selector.
    Namespace = 1,
    /// In the root namespace, without a selector.
    Mesh = 2,
}

/// The objects of one kind (PeerAuthentication, Sidecar) that reach the workload's pods, ordered
/// by `rank[scope]` and then by name: those of its namespace that select its pods, those of its
/// namespace without a selector, those of the root namespace without a selector.
/// The security policies that select the workload's pods (by selector, or without one in its
/// namespace or the root namespace) and bind no `targetRefs` (a gateway or waypoint): those the
/// pods' own sidecar enforces.
fn enforced_by_sidecar(
    policies: &[IstioObject<SelectorPolicySpec>],
    namespace: &str,
    workload: &Workload,
) -> Vec<IstioObject<SelectorPolicySpec>> {
    scoped(
        policies,
        namespace,
        &workload.pod_labels,
        |policy| policy.selector.as_ref(),
        [0, 1, 2],
    )
    .into_iter()
    .filter(|policy| policy.spec.target_refs.is_empty())
    .collect()
}

fn scoped<Spec: Clone>(
    objects: &[IstioObject<Spec>],
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
    selector: impl Fn(&Spec) -> Option<&WorkloadSelector>,
    rank: [u8; 3],
) -> Vec<IstioObject<Spec>> {
    let scope = |object: &IstioObject<Spec>| -> Option<Scope> {
        let object_namespace = object_namespace(object);
        match selector_labels(selector(&object.spec)) {
            Some(labels) if object_namespace == namespace && labels_match(labels, pod_labels) => {
                Some(Scope::Workload)
            }
            None if object_namespace == namespace => Some(Scope::Namespace),
            None if object_namespace == ROOT_NAMESPACE => Some(Scope::Mesh),
            _ => None,
        }
    };
    let mut found: Vec<(u8, &IstioObject<Spec>)> = objects
        .iter()
        .filter_map(|object| Some((rank[scope(object)? as usize], object)))
        .collect();
    found.sort_by(|a, b| (a.0, object_name(a.1)).cmp(&(b.0, object_name(b.1))));
    found
        .into_iter()
        .map(|(_, object)| object.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::SidecarMode;
    use crate::evidence::resolve::workloads;

    fn inventory(yaml: &str) -> Inventory {
        crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "inference",
            &mut std::io::Cursor::new(yaml.to_string()),
        )
        .unwrap()
    }

    fn resolve_vllm(inventory: &Inventory) -> Resolution {
        let found = workloads::find(inventory, None);
        let workload = found
            .iter()
            .find(|w| w.name == "vllm")
            .expect("deploy/vllm in the fixture");
        resolve(inventory, workload)
    }

    fn ids<Spec>(objects: &[IstioObject<Spec>]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", object_namespace(o), object_name(o)))
            .collect()
    }

    const WORKLOAD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: inference, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm, version: v1}}
    spec:
      containers: [{name: vllm, image: vllm/vllm-openai}]
"#;

    fn with(objects: &str) -> Inventory {
        inventory(&format!("{WORKLOAD}---\n{objects}"))
    }

    #[test]
    fn services_in_the_workload_namespace_that_select_its_pods() {
        let resolution = resolve_vllm(&with(
            r#"
apiVersion: v1
kind: Service
metadata: {name: vllm}
spec: {selector: {app: vllm}, ports: [{name: http, port: 80, targetPort: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: vllm-v1}
spec: {selector: {app: vllm, version: v1}, ports: [{port: 8000, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless-no-selector}
spec: {ports: [{port: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: other}
spec: {selector: {app: vllm}}
"#,
        ));
        let services = &resolution.mesh.services;
        let names: Vec<_> = services
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect();
        assert_eq!(names, ["inference/vllm", "inference/vllm-v1"]);
        assert_eq!(services[0].ports[0].port, 80);
        assert_eq!(services[0].ports[0].target_port.as_deref(), Some("8000"));
        assert_eq!(services[1].ports[0].target_port.as_deref(), Some("http"));
        assert_eq!(services[0].fqdn(), "vllm.inference.svc.cluster.local");
    }

    const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: vllm}
spec: {selector: {app: vllm}, ports: [{port: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: vllm-canary}
spec: {selector: {app: vllm-canary}, ports: [{port: 8000}]}
"#;

    const PUBLIC_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec: {selector: {istio: ingressgateway}}
"#;

    #[test]
    fn virtual_services_by_host_route_export_and_gateway() {
        let resolution = resolve_vllm(&with(&format!(
            "{SERVICES}---\n{PUBLIC_GATEWAY}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-short}
spec:
  hosts: [vllm]
  http: [{timeout: 30s, route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress}
spec:
  hosts: [llm.example.com]
  gateways: [istio-system/public]
  http: [{route: [{destination: {host: vllm.inference.svc.cluster.local, port: {number: 8000}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard-host}
spec:
  hosts: ["*.inference.svc.cluster.local"]
  http: [{route: [{destination: {host: vllm.inference.svc}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-canary-only}
spec:
  hosts: [vllm]
  http: [{route: [{destination: {host: vllm-canary}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: short-name-elsewhere, namespace: other}
spec:
  hosts: [vllm]
  http: [{route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fqdn-elsewhere, namespace: other}
spec:
  hosts: [vllm.inference]
  http: [{route: [{destination: {host: vllm.inference}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private-elsewhere, namespace: other}
spec:
  hosts: [vllm.inference.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: vllm.inference.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-and-gateway}
spec:
  hosts: [vllm, llm2.example.com]
  gateways: [mesh, missing-gw]
  http: [{route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: unrelated, namespace: istio-system}
spec: {selector: {istio: eastwestgateway}}
"#
        )));
        assert_eq!(
            ids(&resolution.mesh.virtual_services),
            [
                "inference/ingress",
                "inference/mesh-and-gateway",
                "inference/mesh-short",
                "inference/wildcard-host",
                "other/fqdn-elsewhere",
            ]
        );
        assert_eq!(ids(&resolution.mesh.gateways), ["istio-system/public"]);
        let gap = resolution
            .gaps
            .iter()
            .find(|gap| gap.what == "Gateway inference/missing-gw")
            .expect("a gap for the missing gateway");
        assert!(gap.reason.contains("inference/mesh-and-gateway"));
    }

    #[test]
    fn destination_rules_most_specific_first_and_only_where_istio_looks() {
        let resolution = resolve_vllm(&with(&format!(
            "{SERVICES}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a-mesh-wide, namespace: istio-system}
spec: {host: "*.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b-root-exact, namespace: istio-system}
spec: {host: vllm.inference.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c-namespace-wildcard}
spec: {host: "*.inference.svc.cluster.local"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d-exact}
spec: {host: vllm, trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: third-namespace, namespace: other}
spec: {host: vllm.inference.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: exported-away}
spec: {host: vllm, exportTo: [other]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: canary}
spec: {host: vllm-canary}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: short-in-root, namespace: istio-system}
spec: {host: vllm}
"#
        )));
        assert_eq!(
            ids(&resolution.mesh.destination_rules),
            [
                "inference/d-exact",
                "inference/c-namespace-wildcard",
                "istio-system/b-root-exact",
                "istio-system/a-mesh-wide",
            ]
        );
    }

    #[test]
    fn envoy_filters_mesh_namespace_workload_and_gateway_scope() {
        let resolution = resolve_vllm(&with(&format!(
            "{SERVICES}---\n{PUBLIC_GATEWAY}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress}
spec:
  hosts: [llm.example.com]
  gateways: [istio-system/public]
  http: [{route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: global, namespace: istio-system}
spec: {configPatches: []}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: selects-vllm, namespace: istio-system}
spec: {workloadSelector: {labels: {app: vllm}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: selects-gateway, namespace: istio-system}
spec: {workloadSelector: {labels: {istio: ingressgateway}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: other-gateway, namespace: istio-system}
spec: {workloadSelector: {labels: {istio: eastwestgateway}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: namespace-wide}
spec: {priority: -1}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: selects-web}
spec: {workloadSelector: {labels: {app: web}}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: gateway-api-target}
spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: web}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: namespace-wide, namespace: other}
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: selects-vllm, namespace: other}
spec: {workloadSelector: {labels: {app: vllm}}}
"#
        )));
        assert_eq!(
            ids(&resolution.mesh.envoy_filters),
            [
                "inference/namespace-wide",
                "istio-system/global",
                "istio-system/selects-gateway",
                "istio-system/selects-vllm",
            ]
        );
    }

    #[test]
    fn delegates_found_here_or_elsewhere_and_missing_ones_are_gaps() {
        let resolution = resolve_vllm(&with(&format!(
            "{SERVICES}---\n{PUBLIC_GATEWAY}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root}
spec:
  hosts: [vllm]
  http:
  - match: [{uri: {prefix: /v1}}]
    delegate: {name: local-routes}
  - match: [{uri: {prefix: /v2}}]
    delegate: {name: shared-routes, namespace: routing}
  - match: [{uri: {prefix: /v3}}]
    delegate: {name: gone}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local-routes}
spec:
  http: [{timeout: 30s, route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shared-routes, namespace: routing}
spec:
  http: [{route: [{destination: {host: vllm.inference.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: canary-routes}
spec:
  http: [{route: [{destination: {host: vllm-canary}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: canary-root}
spec:
  hosts: [vllm-canary]
  http: [{delegate: {name: canary-routes}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress-root}
spec:
  hosts: [llm.example.com]
  gateways: [istio-system/public]
  http: [{delegate: {name: local-routes}}]
"#
        )));
        // Delegates have no hosts and are kept only through a root that reaches the workload.
        assert_eq!(
            ids(&resolution.mesh.virtual_services),
            [
                "inference/ingress-root",
                "inference/local-routes",
                "inference/root",
                "routing/shared-routes",
            ]
        );
        assert_eq!(ids(&resolution.mesh.gateways), ["istio-system/public"]);
        let gaps: Vec<(&str, &str)> = resolution
            .gaps
            .iter()
            .map(|gap| (gap.what.as_str(), gap.reason.as_str()))
            .collect();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, "VirtualService inference/gone");
        assert!(
            gaps[0]
                .1
                .starts_with("delegated to by VirtualService inference/root spec/http[2] but not in the inventory"),
            "{}",
            gaps[0].1
        );
    }

    #[test]
    fn a_root_whose_only_delegate_is_missing_keeps_nothing_but_the_gap() {
        let resolution = resolve_vllm(&with(&format!(
            "{SERVICES}---\n{}",
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root}
spec:
  hosts: [vllm.inference.svc.cluster.local]
  http: [{delegate: {name: routes, namespace: elsewhere}}]
"#
        )));
        assert!(resolution.mesh.virtual_services.is_empty());
        assert_eq!(resolution.gaps.len(), 1);
        assert_eq!(resolution.gaps[0].what, "VirtualService elsewhere/routes");
    }

    #[test]
    fn envoy_filter_target_refs_apply_as_istio_attaches_them() {
        let objects = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress}
spec:
  hosts: [llm.example.com]
  gateways: [istio-ingress/public]
  http: [{route: [{destination: {host: vllm.inference.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-ingress}
spec: {selector: {gateway.networking.k8s.io/gateway-name: public}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: on-public, namespace: istio-ingress}
spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: public}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: on-internal, namespace: istio-ingress}
spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: internal}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: on-service}
spec: {targetRefs: [{group: "", kind: Service, name: vllm}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: on-deployment}
spec: {targetRefs: [{group: apps, kind: Deployment, name: vllm}]}
"#;
        let resolution = resolve_vllm(&with(&format!("{SERVICES}---\n{objects}")));
        // A sidecar workload: the Service-targeted filter is for waypoints only.
        assert_eq!(
            ids(&resolution.mesh.envoy_filters),
            ["istio-ingress/on-public"]
        );
        let gaps: Vec<&str> = resolution
            .gaps
            .iter()
            .map(|gap| gap.what.as_str())
            .collect();
        assert_eq!(
            gaps,
            [
                "EnvoyFilter istio-ingress/on-internal",
                "EnvoyFilter inference/on-deployment"
            ]
        );
        assert!(resolution.gaps[1].reason.contains("kind Deployment"));

        // Ambient with a waypoint: the Service-targeted filter runs in that waypoint.
        let ambient = inventory(&format!(
            r#"
apiVersion: v1
kind: Namespace
metadata: {{name: inference, labels: {{istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: vllm}}
spec:
  template:
    metadata: {{labels: {{app: vllm}}}}
    spec: {{containers: [{{name: vllm, image: vllm/vllm-openai}}]}}
---
{SERVICES}---
{objects}"#
        ));
        let resolution = resolve_vllm(&ambient);
        assert_eq!(resolution.mesh.sidecar_mode, SidecarMode::Ambient);
        assert_eq!(
            ids(&resolution.mesh.envoy_filters),
            ["inference/on-service", "istio-ingress/on-public"]
        );
    }

    #[test]
    fn peer_authentications_mesh_then_namespace_then_workload() {
        let resolution = resolve_vllm(&with(
            r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: zz-mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: root-selecting, namespace: istio-system}
spec: {selector: {matchLabels: {app: vllm}}, mtls: {mode: DISABLE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mm-namespace}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: aa-workload}
spec: {selector: {matchLabels: {app: vllm}}, mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web}
spec: {selector: {matchLabels: {app: web}}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: other}
spec: {mtls: {mode: DISABLE}}
"#,
        ));
        assert_eq!(
            ids(&resolution.mesh.peer_authentications),
            [
                "istio-system/zz-mesh",
                "inference/mm-namespace",
                "inference/aa-workload",
            ]
        );
    }

    #[test]
    fn sidecars_selecting_then_namespace_then_root_default() {
        let resolution = resolve_vllm(&with(
            r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a-namespace}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: z-vllm}
spec: {workloadSelector: {labels: {app: vllm}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web}
spec: {workloadSelector: {labels: {app: web}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: other}
spec: {}
"#,
        ));
        assert_eq!(
            ids(&resolution.mesh.sidecars),
            [
                "inference/z-vllm",
                "inference/a-namespace",
                "istio-system/default"
            ]
        );
    }

    #[test]
    fn sidecar_mode_uses_the_namespace_labels() {
        let resolution = resolve_vllm(&with(SERVICES));
        assert_eq!(resolution.mesh.sidecar_mode, SidecarMode::Injected);
        assert_eq!(
            resolution.mesh.sidecar_reason,
            "namespace label istio-injection=enabled"
        );
        assert_eq!(
            resolution.mesh.namespace_labels["istio-injection"],
            "enabled"
        );
        assert!(resolution.gaps.is_empty(), "{:?}", resolution.gaps);
        assert_eq!(resolution.mesh.istio, IstioPresence::Unknown);
    }

    #[test]
    fn ambient_namespace() {
        let inventory = inventory(
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: inference, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  template:
    metadata: {labels: {app: vllm}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
"#,
        );
        assert_eq!(
            resolve_vllm(&inventory).mesh.sidecar_mode,
            SidecarMode::Ambient
        );
    }

    #[test]
    fn a_namespace_not_in_the_inventory_is_a_gap() {
        let inventory = inventory(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  template:
    metadata: {labels: {app: vllm, sidecar.istio.io/inject: "true"}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
"#,
        );
        let resolution = resolve_vllm(&inventory);
        assert_eq!(resolution.mesh.sidecar_mode, SidecarMode::Injected);
        assert_eq!(resolution.gaps.len(), 1);
        assert_eq!(resolution.gaps[0].what, "Namespace inference");
    }

    #[test]
    fn without_a_service_no_host_based_object_applies() {
        let resolution = resolve_vllm(&with(
            r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec: {hosts: [vllm], http: [{route: [{destination: {host: vllm}}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec: {host: vllm}
"#,
        ));
        assert!(resolution.mesh.services.is_empty());
        assert!(resolution.mesh.virtual_services.is_empty());
        assert!(resolution.mesh.destination_rules.is_empty());
    }
}

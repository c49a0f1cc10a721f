//! EnvoyFilter `targetRefs` (Istio 1.22+): instead of a `workloadSelector`, the filter names the
//! resources whose proxies it patches (Gateway API's policy attachment, GEP-2648). At most one of
//! the two is set. The kinds Istio documents for its policies' `targetRefs`:
//! - `Gateway` (group `gateway.networking.k8s.io`) in the policy's namespace: that gateway;
//! - `GatewayClass` (same group) from the root namespace only: every gateway of that class;
//! - `Service` (group `""` or `core`) in the policy's namespace: the waypoint serving it (waypoints
//!   only: a sidecar never takes such a filter);
//! - `ServiceEntry` (group `networking.istio.io`) in the policy's namespace: its waypoint.
//!
//! Gateway API objects are not read; a gateway in front is known here as the Istio `Gateway`
//! that a VirtualService binds to, and it is the targeted one when its selector picks pods by the
//! labels Istio's gateway controller puts on what it deploys for a Gateway API `Gateway`.

use crate::evidence::objects::{EnvoyFilter, Gateway};
use crate::evidence::resolve::hosts::ROOT_NAMESPACE;
use serde::Deserialize;

/// Label Istio's gateway controller sets on the resources it creates for a Gateway API Gateway.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// Label Istio's gateway controller sets to the GatewayClass behind what it creates.
pub const GATEWAY_CLASS_LABEL: &str = "gateway.networking.k8s.io/gateway-class-name";

const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// One `PolicyTargetReference`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct TargetRef {
    group: String,
    kind: String,
    name: String,
    namespace: Option<String>,
}

/// What a filter's `targetRefs` say about one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Applies,
    DoesNot,
    /// It may apply; the reason says what would tell.
    Unknown(String),
}

/// The workload's side of the question.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub namespace: &'a str,
    /// Names of the workload's Services (all in `namespace`).
    pub services: &'a [String],
    /// Whether a waypoint serves the workload (ambient mode with `istio.io/use-waypoint`).
    pub waypoint: bool,
    /// The Istio Gateways in front of the workload.
    pub gateways: &'a [Gateway],
}

/// Whether `filter`, which has `targetRefs`, reaches the workload or a gateway in front of it.
/// One reference that applies is enough.
pub fn reach(filter: &EnvoyFilter, scope: &Scope) -> Reach {
    let filter_namespace = filter.metadata.namespace.as_deref().unwrap_or("default");
    let mut unknown = None;
    for value in &filter.spec.target_refs {
        let found = match serde_json::from_value::<TargetRef>(value.clone()) {
            Ok(reference) => reach_one(&reference, filter_namespace, scope),
            Err(_) => Reach::Unknown(format!(
                "a targetRefs entry Istio would not accept: {value}"
            )),
        };
        match found {
            Reach::Applies => return Reach::Applies,
            Reach::Unknown(reason) => unknown = unknown.or(Some(reason)),
            Reach::DoesNot => {}
        }
    }
    unknown.map_or(Reach::DoesNot, Reach::Unknown)
}

fn reach_one(reference: &TargetRef, filter_namespace: &str, scope: &Scope) -> Reach {
    let namespace = reference.namespace.as_deref().unwrap_or(filter_namespace);
    if namespace != filter_namespace {
        // Istio attaches only to resources of the policy's own namespace.
        return Reach::DoesNot;
    }
    let name = reference.name.as_str();
    let fronted_by = |label: &str| {
        scope
            .gateways
            .iter()
            .any(|gateway| gateway.spec.selector.get(label).map(String::as_str) == Some(name))
    };
    match (reference.group.as_str(), reference.kind.as_str()) {
        (GATEWAY_API_GROUP, "Gateway") if fronted_by(GATEWAY_NAME_LABEL) => Reach::Applies,
        (GATEWAY_API_GROUP, "Gateway") => Reach::Unknown(format!(
            "targets Gateway {namespace}/{name} ({GATEWAY_API_GROUP}); Gateway API objects are not read, so \
             whether that gateway is in front of the workload is unknown"
        )),
        (GATEWAY_API_GROUP, "GatewayClass") if filter_namespace != ROOT_NAMESPACE => Reach::DoesNot,
        (GATEWAY_API_GROUP, "GatewayClass") if fronted_by(GATEWAY_CLASS_LABEL) => Reach::Applies,
        (GATEWAY_API_GROUP, "GatewayClass") => Reach::Unknown(format!(
            "targets GatewayClass {name} ({GATEWAY_API_GROUP}); Gateway API objects are not read, so whether \
             a gateway of that class is in front of the workload is unknown"
        )),
        ("" | "core", "Service") => {
            let own = namespace == scope.namespace && scope.services.iter().any(|s| s == name);
            if own && scope.waypoint {
                Reach::Applies
            } else {
                Reach::DoesNot
            }
        }
        // The workload is reached as a Kubernetes Service, not through a ServiceEntry.
        ("networking.istio.io", "ServiceEntry") => Reach::DoesNot,
        (group, kind) => Reach::Unknown(format!(
            "targetRefs kind {kind} (group \"{group}\") is not one Istio documents for EnvoyFilter (Gateway, \
             GatewayClass, Service, ServiceEntry)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::objects::GatewaySpec;
    use std::collections::BTreeMap;

    fn filter(namespace: &str, refs: &str) -> EnvoyFilter {
        serde_yaml::from_str(&format!(
            "metadata: {{name: f, namespace: {namespace}}}\nspec: {{targetRefs: {refs}}}"
        ))
        .unwrap()
    }

    fn gateway(label: &str, value: &str) -> Gateway {
        Gateway {
            spec: GatewaySpec {
                selector: BTreeMap::from([(label.to_string(), value.to_string())]),
                servers: Vec::new(),
            },
            ..Gateway::default()
        }
    }

    fn scope<'a>(services: &'a [String], waypoint: bool, gateways: &'a [Gateway]) -> Scope<'a> {
        Scope {
            namespace: "inference",
            services,
            waypoint,
            gateways,
        }
    }

    #[test]
    fn a_gateway_api_gateway_in_front() {
        let gateways = [gateway(GATEWAY_NAME_LABEL, "public")];
        let services = [];
        let public = filter(
            "ingress",
            "[{group: gateway.networking.k8s.io, kind: Gateway, name: public}]",
        );
        assert_eq!(
            reach(&public, &scope(&services, false, &gateways)),
            Reach::Applies
        );
        // Another namespace named in the reference: Istio does not attach across namespaces.
        let elsewhere = filter(
            "ingress",
            "[{group: gateway.networking.k8s.io, kind: Gateway, name: public, namespace: other}]",
        );
        assert_eq!(
            reach(&elsewhere, &scope(&services, false, &gateways)),
            Reach::DoesNot
        );
        // A gateway we cannot see in front: unknown, with the reason.
        let Reach::Unknown(reason) = reach(&public, &scope(&services, false, &[])) else {
            panic!("expected unknown");
        };
        assert!(reason.contains("Gateway ingress/public"), "{reason}");
    }

    #[test]
    fn gateway_classes_only_from_the_root_namespace() {
        let gateways = [gateway(GATEWAY_CLASS_LABEL, "istio")];
        let services = [];
        let refs = "[{group: gateway.networking.k8s.io, kind: GatewayClass, name: istio}]";
        let root = filter(ROOT_NAMESPACE, refs);
        assert_eq!(
            reach(&root, &scope(&services, false, &gateways)),
            Reach::Applies
        );
        let local = filter("inference", refs);
        assert_eq!(
            reach(&local, &scope(&services, false, &gateways)),
            Reach::DoesNot
        );
    }

    #[test]
    fn a_service_only_through_its_waypoint() {
        let services = ["vllm".to_string()];
        let own = filter("inference", "[{group: \"\", kind: Service, name: vllm}]");
        assert_eq!(reach(&own, &scope(&services, true, &[])), Reach::Applies);
        // A sidecar workload never takes a Service-targeted filter.
        assert_eq!(reach(&own, &scope(&services, false, &[])), Reach::DoesNot);
        let core = filter("inference", "[{group: core, kind: Service, name: vllm}]");
        assert_eq!(reach(&core, &scope(&services, true, &[])), Reach::Applies);
        let other = filter("inference", "[{kind: Service, name: web}]");
        assert_eq!(reach(&other, &scope(&services, true, &[])), Reach::DoesNot);
        let entry = filter(
            "inference",
            "[{group: networking.istio.io, kind: ServiceEntry, name: vllm}]",
        );
        assert_eq!(reach(&entry, &scope(&services, true, &[])), Reach::DoesNot);
    }

    #[test]
    fn unknown_kinds_are_named() {
        let services = [];
        let odd = filter("inference", "[{group: apps, kind: Deployment, name: vllm}]");
        let Reach::Unknown(reason) = reach(&odd, &scope(&services, false, &[])) else {
            panic!("expected unknown");
        };
        assert!(reason.contains("kind Deployment"), "{reason}");
        // One reference that applies is enough.
        let both = filter(
            "inference",
            "[{group: apps, kind: Deployment, name: vllm}, {kind: Service, name: vllm}]",
        );
        let names = ["vllm".to_string()];
        assert_eq!(reach(&both, &scope(&names, true, &[])), Reach::Applies);
    }
}

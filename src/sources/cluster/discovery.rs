//! Which Istio kinds this cluster serves, and at which version: `/apis` once, then the resource
//! list of each Istio group version we could read. The Gateway API and Inference Extension kinds
//! are found the same way, in the same pass; their absence is not Istio's.

use super::client::ClusterClient;
use super::error::ClusterError;
use crate::evidence::{Gap, IstioPresence};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroup, APIResourceList};

pub const NETWORKING_GROUP: &str = "networking.istio.io";
pub const SECURITY_GROUP: &str = "security.istio.io";

/// An Istio kind we read, with the versions to try, most preferred first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioKind {
    pub kind: &'static str,
    pub group: &'static str,
    pub versions: &'static [&'static str],
}

const NETWORKING_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const SECURITY_VERSIONS: &[&str] = &["v1", "v1beta1"];

pub const VIRTUAL_SERVICE: IstioKind = IstioKind {
    kind: "VirtualService",
    group: NETWORKING_GROUP,
    versions: NETWORKING_VERSIONS,
};
pub const DESTINATION_RULE: IstioKind = IstioKind {
    kind: "DestinationRule",
    group: NETWORKING_GROUP,
    versions: NETWORKING_VERSIONS,
};
pub const GATEWAY: IstioKind = IstioKind {
    kind: "Gateway",
    group: NETWORKING_GROUP,
    versions: NETWORKING_VERSIONS,
};
pub const SIDECAR: IstioKind = IstioKind {
    kind: "Sidecar",
    group: NETWORKING_GROUP,
    versions: NETWORKING_VERSIONS,
};
/// Istio serves EnvoyFilter only at v1alpha3.
pub const ENVOY_FILTER: IstioKind = IstioKind {
    kind: "EnvoyFilter",
    group: NETWORKING_GROUP,
    versions: &["v1alpha3"],
};
pub const PEER_AUTHENTICATION: IstioKind = IstioKind {
    kind: "PeerAuthentication",
    group: SECURITY_GROUP,
    versions: SECURITY_VERSIONS,
};
pub const AUTHORIZATION_POLICY: IstioKind = IstioKind {
    kind: "AuthorizationPolicy",
    group: SECURITY_GROUP,
    versions: SECURITY_VERSIONS,
};
pub const REQUEST_AUTHENTICATION: IstioKind = IstioKind {
    kind: "RequestAuthentication",
    group: SECURITY_GROUP,
    versions: SECURITY_VERSIONS,
};

pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
pub const INFERENCE_GROUP: &str = "inference.networking.k8s.io";
pub const INFERENCE_ALPHA_GROUP: &str = "inference.networking.x-k8s.io";
const GATEWAY_API_VERSIONS: &[&str] = &["v1", "v1beta1"];

pub const KUBE_GATEWAY: IstioKind = IstioKind {
    kind: "Gateway",
    group: GATEWAY_API_GROUP,
    versions: GATEWAY_API_VERSIONS,
};
pub const HTTP_ROUTE: IstioKind = IstioKind {
    kind: "HTTPRoute",
    group: GATEWAY_API_GROUP,
    versions: GATEWAY_API_VERSIONS,
};
pub const GRPC_ROUTE: IstioKind = IstioKind {
    kind: "GRPCRoute",
    group: GATEWAY_API_GROUP,
    versions: GATEWAY_API_VERSIONS,
};
pub const GATEWAY_CLASS: IstioKind = IstioKind {
    kind: "GatewayClass",
    group: GATEWAY_API_GROUP,
    versions: GATEWAY_API_VERSIONS,
};
pub const INFERENCE_POOL: IstioKind = IstioKind {
    kind: "InferencePool",
    group: INFERENCE_GROUP,
    versions: &["v1"],
};
/// The pool before it reached v1, in its own group: a cluster may serve both.
pub const INFERENCE_POOL_ALPHA: IstioKind = IstioKind {
    kind: "InferencePool",
    group: INFERENCE_ALPHA_GROUP,
    versions: &["v1alpha2"],
};
pub const INFERENCE_OBJECTIVE: IstioKind = IstioKind {
    kind: "InferenceObjective",
    group: INFERENCE_ALPHA_GROUP,
    versions: &["v1alpha2"],
};

/// Kinds beside Istio's: read when served, quietly absent when their group is.
pub const GATEWAY_API_KINDS: [IstioKind; 7] = [
    KUBE_GATEWAY,
    HTTP_ROUTE,
    GRPC_ROUTE,
    GATEWAY_CLASS,
    INFERENCE_POOL,
    INFERENCE_POOL_ALPHA,
    INFERENCE_OBJECTIVE,
];

pub const ISTIO_KINDS: [IstioKind; 8] = [
    VIRTUAL_SERVICE,
    DESTINATION_RULE,
    GATEWAY,
    SIDECAR,
    ENVOY_FILTER,
    PEER_AUTHENTICATION,
    AUTHORIZATION_POLICY,
    REQUEST_AUTHENTICATION,
];

/// An Istio kind the cluster serves, at the version chosen for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedKind {
    pub kind: &'static str,
    pub group: &'static str,
    pub version: String,
    pub plural: String,
}

impl ServedKind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IstioDiscovery {
    pub presence: IstioPresence,
    pub served: Vec<ServedKind>,
    /// Kinds that cannot be read, and why (not served, discovery forbidden).
    pub gaps: Vec<Gap>,
}

impl IstioDiscovery {
    pub fn served(&self, kind: &IstioKind) -> Option<&ServedKind> {
        self.served
            .iter()
            .find(|served| served.kind == kind.kind && served.group == kind.group)
    }
}

/// Asks the API server which Istio kinds it serves. A 403 on discovery is a gap, not an error.
pub async fn discover_istio(client: &ClusterClient) -> Result<IstioDiscovery, ClusterError> {
    let groups = match client
        .call("API discovery (/apis)", client.kube().list_api_groups())
        .await
    {
        Ok(groups) => groups.groups,
        Err(error) if error.is_forbidden() => {
            return Ok(IstioDiscovery {
                presence: IstioPresence::Unknown,
                served: Vec::new(),
                gaps: vec![Gap::new("Istio API discovery", error.gap_reason())],
            });
        }
        Err(error) => return Err(error),
    };
    let wanted = wanted_group_versions(&groups);
    let lists = futures_util::future::join_all(wanted.iter().map(|group_version| async move {
        let what = format!("API discovery ({group_version})");
        let list = client
            .call(&what, client.kube().list_api_group_resources(group_version))
            .await;
        (group_version.clone(), list)
    }))
    .await;
    let mut resource_lists = Vec::new();
    let mut gaps = Vec::new();
    for (group_version, list) in lists {
        match list {
            Ok(list) => resource_lists.push(list),
            Err(error) if error.is_forbidden() || error.is_not_found() => gaps.push(Gap::new(
                format!("API discovery of {group_version}"),
                error.gap_reason(),
            )),
            Err(error) => return Err(error),
        }
    }
    let mut discovery = resolve_served(&groups, &resource_lists);
    discovery.gaps.splice(0..0, gaps);
    Ok(discovery)
}

/// `networking.istio.io/v1`, … : the Istio group versions the server lists that we may read.
fn wanted_group_versions(groups: &[APIGroup]) -> Vec<String> {
    let mut wanted = Vec::new();
    for group in groups {
        let candidates: Vec<&str> = ISTIO_KINDS
            .iter()
            .chain(GATEWAY_API_KINDS.iter())
            .filter(|kind| kind.group == group.name)
            .flat_map(|kind| kind.versions.iter().copied())
            .collect();
        for version in &group.versions {
            if candidates.contains(&version.version.as_str())
                && !wanted.contains(&version.group_version)
            {
                wanted.push(version.group_version.clone());
            }
        }
    }
    wanted
}

/// Picks, for each Istio and Gateway API kind, the most preferred version whose resource list
/// has it.
pub fn resolve_served(groups: &[APIGroup], resource_lists: &[APIResourceList]) -> IstioDiscovery {
    let mut discovery = resolve_istio(groups, resource_lists);
    let has_group = |name: &str| groups.iter().any(|group| group.name == name);
    for kind in GATEWAY_API_KINDS {
        match served_version(&kind, resource_lists) {
            Some(found) => discovery.served.push(found),
            None if has_group(kind.group) => discovery.gaps.push(not_served(&kind)),
            None => {}
        }
    }
    discovery
}

/// The most preferred version of `kind` the resource lists have.
fn served_version(kind: &IstioKind, resource_lists: &[APIResourceList]) -> Option<ServedKind> {
    kind.versions.iter().find_map(|version| {
        let group_version = format!("{}/{}", kind.group, version);
        resource_lists
            .iter()
            .filter(|list| list.group_version == group_version)
            .flat_map(|list| list.resources.iter())
            .find(|resource| resource.kind == kind.kind && !resource.name.contains('/'))
            .map(|resource| ServedKind {
                kind: kind.kind,
                group: kind.group,
                version: (*version).to_string(),
                plural: resource.name.clone(),
            })
    })
}

fn not_served(kind: &IstioKind) -> Gap {
    Gap::new(
        format!("{} list", kind.kind),
        format!(
            "not served: {} has no {} at {}",
            kind.group,
            kind.kind,
            kind.versions.join(", ")
        ),
    )
}

fn resolve_istio(groups: &[APIGroup], resource_lists: &[APIResourceList]) -> IstioDiscovery {
    let has_group = |name: &str| groups.iter().any(|group| group.name == name);
    if !has_group(NETWORKING_GROUP) && !has_group(SECURITY_GROUP) {
        return IstioDiscovery {
            presence: IstioPresence::NotInstalled,
            served: Vec::new(),
            gaps: vec![Gap::new(
                "Istio CRDs",
                format!(
                    "not installed: the API server serves neither {NETWORKING_GROUP} nor {SECURITY_GROUP}"
                ),
            )],
        };
    }
    let mut served = Vec::new();
    let mut gaps = Vec::new();
    for kind in ISTIO_KINDS {
        match served_version(&kind, resource_lists) {
            Some(found) => served.push(found),
            None => gaps.push(not_served(&kind)),
        }
    }
    IstioDiscovery {
        presence: IstioPresence::Installed,
        served,
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(name: &str, versions: &[&str]) -> APIGroup {
        serde_json::from_value(json!({
            "name": name,
            "versions": versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect::<Vec<_>>(),
            "preferredVersion": {"groupVersion": format!("{name}/{}", versions[0]), "version": versions[0]},
        }))
        .unwrap()
    }

    fn resources(group_version: &str, kinds: &[(&str, &str)]) -> APIResourceList {
        serde_json::from_value(json!({
            "groupVersion": group_version,
            "resources": kinds.iter().map(|(plural, kind)| json!({
                "name": plural, "singularName": "", "namespaced": true, "kind": kind,
                "verbs": ["get", "list"]
            })).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn absent_groups_mean_not_installed() {
        let discovery = resolve_served(&[group("apps", &["v1"])], &[]);
        assert_eq!(discovery.presence, IstioPresence::NotInstalled);
        assert!(discovery.served.is_empty());
        assert_eq!(discovery.gaps[0].what, "Istio CRDs");
    }

    #[test]
    fn prefers_v1_and_reads_envoy_filter_at_v1alpha3() {
        let groups = [
            group(NETWORKING_GROUP, &["v1", "v1beta1", "v1alpha3"]),
            group(SECURITY_GROUP, &["v1", "v1beta1"]),
        ];
        let networking = [
            ("virtualservices", "VirtualService"),
            ("destinationrules", "DestinationRule"),
            ("gateways", "Gateway"),
            ("sidecars", "Sidecar"),
        ];
        let mut alpha = networking.to_vec();
        alpha.push(("envoyfilters", "EnvoyFilter"));
        let lists = [
            resources("networking.istio.io/v1", &networking),
            resources("networking.istio.io/v1beta1", &networking),
            resources("networking.istio.io/v1alpha3", &alpha),
            resources(
                "security.istio.io/v1beta1",
                &[
                    ("peerauthentications", "PeerAuthentication"),
                    ("authorizationpolicies", "AuthorizationPolicy"),
                    ("requestauthentications", "RequestAuthentication"),
                ],
            ),
        ];
        let discovery = resolve_served(&groups, &lists);
        assert_eq!(discovery.presence, IstioPresence::Installed);
        assert!(discovery.gaps.is_empty(), "{:?}", discovery.gaps);
        let version = |kind| discovery.served(&kind).unwrap().version.clone();
        assert_eq!(version(VIRTUAL_SERVICE), "v1");
        assert_eq!(version(ENVOY_FILTER), "v1alpha3");
        assert_eq!(version(PEER_AUTHENTICATION), "v1beta1");
        assert_eq!(
            discovery.served(&ENVOY_FILTER).unwrap().plural,
            "envoyfilters"
        );
    }

    #[test]
    fn a_kind_no_version_serves_is_a_gap() {
        let groups = [group(NETWORKING_GROUP, &["v1"])];
        let lists = [resources(
            "networking.istio.io/v1",
            &[("virtualservices", "VirtualService")],
        )];
        let discovery = resolve_served(&groups, &lists);
        assert_eq!(discovery.served.len(), 1);
        let missing: Vec<&str> = discovery.gaps.iter().map(|gap| gap.what.as_str()).collect();
        assert!(missing.contains(&"EnvoyFilter list"), "{missing:?}");
        assert!(missing.contains(&"PeerAuthentication list"), "{missing:?}");
    }

    #[test]
    fn gateway_api_and_inference_kinds_are_found_beside_istio_and_without_it() {
        let groups = [
            group(GATEWAY_API_GROUP, &["v1", "v1beta1"]),
            group(INFERENCE_GROUP, &["v1"]),
            group(INFERENCE_ALPHA_GROUP, &["v1alpha2"]),
        ];
        let gateway_kinds = [
            ("gateways", "Gateway"),
            ("httproutes", "HTTPRoute"),
            ("gatewayclasses", "GatewayClass"),
        ];
        let lists = [
            resources("gateway.networking.k8s.io/v1", &gateway_kinds),
            resources("gateway.networking.k8s.io/v1beta1", &gateway_kinds),
            resources(
                "inference.networking.k8s.io/v1",
                &[("inferencepools", "InferencePool")],
            ),
            resources(
                "inference.networking.x-k8s.io/v1alpha2",
                &[
                    ("inferencepools", "InferencePool"),
                    ("inferenceobjectives", "InferenceObjective"),
                ],
            ),
        ];
        // Istio absent: the Gateway API is read anyway.
        let discovery = resolve_served(&groups, &lists);
        assert_eq!(discovery.presence, IstioPresence::NotInstalled);
        assert_eq!(discovery.served(&HTTP_ROUTE).unwrap().version, "v1");
        assert_eq!(discovery.served(&KUBE_GATEWAY).unwrap().plural, "gateways");
        assert!(discovery.served(&GATEWAY).is_none(), "not Istio's Gateway");
        assert!(discovery.served(&INFERENCE_POOL).is_some());
        assert!(discovery.served(&INFERENCE_POOL_ALPHA).is_some());
        // A served group without a kind is a gap; an absent group is not.
        let whats: Vec<&str> = discovery.gaps.iter().map(|gap| gap.what.as_str()).collect();
        assert_eq!(whats, ["Istio CRDs", "GRPCRoute list"]);
        let wanted = wanted_group_versions(&groups);
        assert!(wanted.contains(&"inference.networking.x-k8s.io/v1alpha2".to_string()));

        let bare = resolve_served(&[group(NETWORKING_GROUP, &["v1"])], &[]);
        assert!(
            bare.gaps.iter().all(|gap| !gap.what.contains("Route")),
            "{:?}",
            bare.gaps
        );
    }

    #[test]
    fn only_istio_group_versions_we_read_are_fetched() {
        let groups = [
            group(NETWORKING_GROUP, &["v1", "v1beta1", "v1alpha3"]),
            group(SECURITY_GROUP, &["v1", "v1beta1"]),
            group("telemetry.istio.io", &["v1"]),
            group("apps", &["v1"]),
        ];
        let wanted = wanted_group_versions(&groups);
        assert_eq!(
            wanted,
            [
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
                "security.istio.io/v1",
                "security.istio.io/v1beta1"
            ]
        );
    }
}

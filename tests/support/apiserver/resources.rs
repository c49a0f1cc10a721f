//! The API resources the test server serves, and the discovery documents that describe them, in
//! the shapes a real API server writes.

use serde_json::{Value, json};

/// Which Istio API versions the server has, as different Istio releases install them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstioApis {
    /// No Istio CRDs: the groups are absent from discovery.
    Absent,
    /// Istio 1.22 and later: networking `v1`, `v1beta1`, `v1alpha3`; security `v1`, `v1beta1`.
    Current,
    /// Istio before 1.22: networking `v1beta1`, `v1alpha3`; security `v1beta1`.
    Legacy,
}

/// One resource at one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

impl ResourceType {
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Built-in kinds drop `apiVersion`/`kind` from list items; custom resources keep them.
    pub fn is_custom(&self) -> bool {
        self.group.ends_with(".istio.io") || GATEWAY_API_GROUPS.contains(&self.group)
    }
}

const fn resource(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
    }
}

const CORE: &[ResourceType] = &[
    resource(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
    ),
    resource("", "v1", "nodes", "node", "Node", false, &["no"]),
    resource("", "v1", "pods", "pod", "Pod", true, &["po"]),
    resource("", "v1", "services", "service", "Service", true, &["svc"]),
    resource(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
    ),
    resource(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
    ),
    resource(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
    ),
    resource(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
    ),
    resource(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
    ),
    resource(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
    ),
    resource(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    ),
];

const NETWORKING: &str = "networking.istio.io";
const SECURITY: &str = "security.istio.io";

/// Networking kinds every served networking version has.
const NETWORKING_KINDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "destinationrules",
        "destinationrule",
        "DestinationRule",
        &["dr"],
    ),
    ("gateways", "gateway", "Gateway", &["gw"]),
    ("serviceentries", "serviceentry", "ServiceEntry", &["se"]),
    ("sidecars", "sidecar", "Sidecar", &[]),
    (
        "virtualservices",
        "virtualservice",
        "VirtualService",
        &["vs"],
    ),
    ("workloadentries", "workloadentry", "WorkloadEntry", &["we"]),
    ("workloadgroups", "workloadgroup", "WorkloadGroup", &["wg"]),
];

const SECURITY_KINDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "authorizationpolicies",
        "authorizationpolicy",
        "AuthorizationPolicy",
        &["ap"],
    ),
    (
        "peerauthentications",
        "peerauthentication",
        "PeerAuthentication",
        &["pa"],
    ),
    (
        "requestauthentications",
        "requestauthentication",
        "RequestAuthentication",
        &["ra"],
    ),
];

/// Every resource served, in discovery order: core, apps, then Istio's per `istio`.
pub fn served_resources(istio: IstioApis) -> Vec<ResourceType> {
    let mut served = CORE.to_vec();
    let (networking_versions, security_versions): (&[&'static str], &[&'static str]) = match istio {
        IstioApis::Absent => (&[], &[]),
        IstioApis::Current => (&["v1", "v1beta1", "v1alpha3"], &["v1", "v1beta1"]),
        IstioApis::Legacy => (&["v1beta1", "v1alpha3"], &["v1beta1"]),
    };
    for version in networking_versions {
        for (plural, singular, kind, short) in NETWORKING_KINDS {
            served.push(resource(
                NETWORKING, version, plural, singular, kind, true, short,
            ));
        }
        if *version == "v1alpha3" {
            served.push(resource(
                NETWORKING,
                version,
                "envoyfilters",
                "envoyfilter",
                "EnvoyFilter",
                true,
                &[],
            ));
        }
    }
    for version in security_versions {
        for (plural, singular, kind, short) in SECURITY_KINDS {
            served.push(resource(
                SECURITY, version, plural, singular, kind, true, short,
            ));
        }
    }
    served
}

/// The Gateway API and Inference Extension groups, as their CRDs install them.
const GATEWAY_API_GROUPS: [&str; 3] = [
    "gateway.networking.k8s.io",
    "inference.networking.k8s.io",
    "inference.networking.x-k8s.io",
];

/// The Gateway API (standard channel: v1 and v1beta1) and the Inference Extension (v1 pools,
/// v1alpha2 pools and objectives), as a cluster with both CRD bundles installed serves them.
pub fn gateway_api_resources() -> Vec<ResourceType> {
    let mut served = Vec::new();
    for version in ["v1", "v1beta1"] {
        for (plural, singular, kind, namespaced) in [
            ("gatewayclasses", "gatewayclass", "GatewayClass", false),
            ("gateways", "gateway", "Gateway", true),
            ("httproutes", "httproute", "HTTPRoute", true),
            ("grpcroutes", "grpcroute", "GRPCRoute", true),
            ("referencegrants", "referencegrant", "ReferenceGrant", true),
        ] {
            served.push(resource(
                GATEWAY_API_GROUPS[0],
                version,
                plural,
                singular,
                kind,
                namespaced,
                &[],
            ));
        }
    }
    served.push(resource(
        GATEWAY_API_GROUPS[1],
        "v1",
        "inferencepools",
        "inferencepool",
        "InferencePool",
        true,
        &["infpool"],
    ));
    for (plural, singular, kind) in [
        ("inferencepools", "inferencepool", "InferencePool"),
        (
            "inferenceobjectives",
            "inferenceobjective",
            "InferenceObjective",
        ),
    ] {
        served.push(resource(
            GATEWAY_API_GROUPS[2],
            "v1alpha2",
            plural,
            singular,
            kind,
            true,
            &[],
        ));
    }
    served
}

/// `(group, [versions, preferred first])` of the named groups, in discovery order.
fn groups(served: &[ResourceType]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for resource in served.iter().filter(|resource| !resource.group.is_empty()) {
        match groups.iter_mut().find(|(name, _)| *name == resource.group) {
            Some((_, versions)) => {
                if !versions.contains(&resource.version) {
                    versions.push(resource.version);
                }
            }
            None => groups.push((resource.group, vec![resource.version])),
        }
    }
    groups
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let version =
        |version: &&str| json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({
        "name": name,
        "versions": versions.iter().map(version).collect::<Vec<_>>(),
        "preferredVersion": version(&versions[0]),
    })
}

/// `GET /apis`
pub fn api_group_list(served: &[ResourceType]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(served).iter().map(|(name, versions)| group_json(name, versions)).collect::<Vec<_>>(),
    })
}

/// `GET /apis/{group}`, or `None` when the group is not served.
pub fn api_group(served: &[ResourceType], group: &str) -> Option<Value> {
    let (name, versions) = groups(served)
        .into_iter()
        .find(|(name, _)| *name == group)?;
    let mut document = group_json(name, &versions);
    document["kind"] = json!("APIGroup");
    document["apiVersion"] = json!("v1");
    Some(document)
}

/// `GET /api`
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /api/v1` or `/apis/{group}/{version}`, or `None` when that version is not served.
pub fn api_resource_list(served: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = served
        .iter()
        .filter(|resource| resource.group == group && resource.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for resource in resources {
        let mut entry = json!({
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if resource.group.ends_with(".istio.io") {
            let family = resource.group.split('.').next().unwrap_or_default();
            entry["categories"] = json!(["istio-io", format!("{family}-istio-io")]);
        }
        entries.push(entry);
        if resource.plural == "pods" {
            entries.push(json!({"name": "pods/portforward", "singularName": "", "namespaced": true, "kind": "PodPortForwardOptions", "verbs": ["create", "get"]}));
            entries.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

/// `GET /version`
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": "v1.31.4",
        "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
        "gitTreeState": "clean",
        "buildDate": "2024-12-10T11:37:12Z",
        "goVersion": "go1.22.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

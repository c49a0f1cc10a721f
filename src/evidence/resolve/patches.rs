//! EnvoyFilter patches: which proxies on the inference path a patch changes, and the fields its
//! `value` sets (walked as JSON, since a patch may hold any Envoy message).

use crate::evidence::objects::{EnvoyConfigPatch, EnvoyFilter};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `match.context` of a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchContext {
    SidecarInbound,
    SidecarOutbound,
    Gateway,
    /// `ANY` or no context: every proxy the filter selects.
    Any,
}

pub fn context(patch: &EnvoyConfigPatch) -> PatchContext {
    match patch
        .matcher
        .as_ref()
        .and_then(|matcher| matcher.get("context"))
        .and_then(Value::as_str)
    {
        Some("SIDECAR_INBOUND") => PatchContext::SidecarInbound,
        Some("SIDECAR_OUTBOUND") => PatchContext::SidecarOutbound,
        Some("GATEWAY") => PatchContext::Gateway,
        _ => PatchContext::Any,
    }
}

/// The listener or route-configuration port the patch is limited to, when it says one.
pub fn matched_port(patch: &EnvoyConfigPatch) -> Option<u64> {
    let matcher = patch.matcher.as_ref()?;
    ["listener", "routeConfiguration"]
        .iter()
        .find_map(|section| matcher.get(section)?.get("portNumber")?.as_u64())
}

/// Where the inference traffic of a workload passes: its pods (labels) and whether they have a
/// sidecar, the port vLLM listens on (inbound listeners), and the service ports callers use
/// (outbound listeners).
#[derive(Debug, Clone, Copy)]
pub struct InferencePath<'a> {
    pub pod_labels: &'a BTreeMap<String, String>,
    /// Without a sidecar (outside the mesh, or ambient) no inbound listener exists to patch.
    pub has_sidecar: bool,
    pub workload_port: u16,
    pub service_ports: &'a [u16],
}

/// Whether `patch` of `filter` changes a proxy that requests to the workload cross: the
/// workload's inbound side (when it has a sidecar), a caller's outbound side, or a gateway. A
/// patch that selects the workload's own pods for their *outbound* or *gateway* listeners does
/// not.
pub fn on_inference_path(
    filter: &EnvoyFilter,
    patch: &EnvoyConfigPatch,
    path: InferencePath,
) -> bool {
    let selector = filter
        .spec
        .workload_selector
        .as_ref()
        .filter(|selector| !selector.labels.is_empty());
    let selects_workload = selector.is_some_and(|selector| {
        selector
            .labels
            .iter()
            .all(|(key, value)| path.pod_labels.get(key) == Some(value))
    });
    let has_selector = selector.is_some() || !filter.spec.target_refs.is_empty();
    let port = matched_port(patch);
    let port_is = |candidates: &[u16]| {
        port.is_none_or(|port| {
            candidates
                .iter()
                .any(|candidate| u64::from(*candidate) == port)
        })
    };
    match context(patch) {
        PatchContext::SidecarInbound => {
            path.has_sidecar
                && (!has_selector || selects_workload)
                && port_is(&[path.workload_port])
        }
        PatchContext::SidecarOutbound => !selects_workload && port_is(path.service_ports),
        PatchContext::Gateway => !selects_workload,
        PatchContext::Any => {
            let mut ports = path.service_ports.to_vec();
            ports.push(path.workload_port);
            port_is(&ports)
        }
    }
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A field found in a patch value.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    pub path: Vec<Segment>,
    pub key: &'a str,
    /// The key of the nearest enclosing object field: `route` for `route.timeout`.
    pub parent: Option<&'a str>,
    pub value: &'a Value,
}

/// Every field of `value`, at any depth, in document order.
pub fn fields(value: &Value) -> Vec<Field<'_>> {
    let mut found = Vec::new();
    collect(value, &mut Vec::new(), None, &mut found);
    found
}

fn collect<'a>(
    value: &'a Value,
    path: &mut Vec<Segment>,
    parent: Option<&'a str>,
    found: &mut Vec<Field<'a>>,
) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Segment::Key(key.clone()));
                found.push(Field {
                    path: path.clone(),
                    key,
                    parent,
                    value: child,
                });
                collect(child, path, Some(key), found);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(Segment::Index(index));
                collect(child, path, parent, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `typed_config/stream_idle_timeout`, `virtual_hosts[0]/routes[1]/route/timeout`.
pub fn display_path(path: &[Segment]) -> String {
    let mut text = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('/');
                }
                text.push_str(key);
            }
            Segment::Index(index) => {
                let _ = write!(text, "[{index}]");
            }
        }
    }
    text
}

/// The field path of a patch's value inside its EnvoyFilter, for evidence lines.
pub fn value_path(patch_index: usize, path: &[Segment]) -> String {
    format!(
        "spec/configPatches[{patch_index}]/patch/value/{}",
        display_path(path)
    )
}

/// Replaces the value at `path`; false when the path does not exist.
pub fn set_at(value: &mut Value, path: &[Segment], new: Value) -> bool {
    let mut current = value;
    for segment in path {
        let next = match segment {
            Segment::Key(key) => current.get_mut(key.as_str()),
            Segment::Index(index) => current.get_mut(*index),
        };
        match next {
            Some(next) => current = next,
            None => return false,
        }
    }
    *current = new;
    true
}

/// A byte count as Envoy JSON writes it: a number, or a string holding one (UInt32Value).
pub fn as_bytes(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        Value::Object(map) => map.get("value").and_then(as_bytes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(yaml: &str) -> EnvoyFilter {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "vllm".to_string())])
    }

    fn reaches(filter: &EnvoyFilter) -> bool {
        let labels = labels();
        let path = InferencePath {
            pod_labels: &labels,
            has_sidecar: true,
            workload_port: 8000,
            service_ports: &[80],
        };
        on_inference_path(filter, &filter.spec.config_patches[0], path)
    }

    #[test]
    fn inbound_patches_reach_the_selected_workload_on_its_port() {
        let selected = filter(
            "spec: {workloadSelector: {labels: {app: vllm}}, configPatches: [{applyTo: HTTP_FILTER, match: {context: SIDECAR_INBOUND, listener: {portNumber: 8000}}}]}",
        );
        assert!(reaches(&selected));
        let other_port = filter(
            "spec: {workloadSelector: {labels: {app: vllm}}, configPatches: [{match: {context: SIDECAR_INBOUND, listener: {portNumber: 9090}}}]}",
        );
        assert!(!reaches(&other_port));
        let other_app = filter(
            "spec: {workloadSelector: {labels: {app: web}}, configPatches: [{match: {context: SIDECAR_INBOUND}}]}",
        );
        assert!(!reaches(&other_app));
    }

    #[test]
    fn the_workloads_own_outbound_side_is_not_on_the_path() {
        let own_outbound = filter(
            "spec: {workloadSelector: {labels: {app: vllm}}, configPatches: [{match: {context: SIDECAR_OUTBOUND}}]}",
        );
        assert!(!reaches(&own_outbound));
        let callers = filter(
            "spec: {configPatches: [{match: {context: SIDECAR_OUTBOUND, listener: {portNumber: 80}}}]}",
        );
        assert!(reaches(&callers));
        let gateway = filter(
            "spec: {workloadSelector: {labels: {istio: ingressgateway}}, configPatches: [{match: {context: GATEWAY}}]}",
        );
        assert!(reaches(&gateway));
    }

    #[test]
    fn fields_know_their_parent_and_path() {
        let value: Value = serde_json::json!({
            "virtual_hosts": [{"routes": [{"route": {"timeout": "10s", "retry_policy": {"per_try_timeout": "5s"}}}]}]
        });
        let found = fields(&value);
        let timeout = found.iter().find(|field| field.key == "timeout").unwrap();
        assert_eq!(timeout.parent, Some("route"));
        assert_eq!(
            display_path(&timeout.path),
            "virtual_hosts[0]/routes[0]/route/timeout"
        );
        let per_try = found
            .iter()
            .find(|field| field.key == "per_try_timeout")
            .unwrap();
        assert_eq!(per_try.parent, Some("retry_policy"));

        let mut changed = value.clone();
        assert!(set_at(&mut changed, &timeout.path, Value::from("300s")));
        assert_eq!(
            changed["virtual_hosts"][0]["routes"][0]["route"]["timeout"],
            "300s"
        );
        assert!(!set_at(
            &mut changed,
            &[Segment::Key("missing".into()), Segment::Index(3)],
            Value::Null
        ));
    }

    #[test]
    fn byte_counts_in_the_forms_envoy_accepts() {
        assert_eq!(as_bytes(&serde_json::json!(32768)), Some(32768));
        assert_eq!(as_bytes(&serde_json::json!("65536")), Some(65536));
        assert_eq!(as_bytes(&serde_json::json!({"value": 1024})), Some(1024));
        assert_eq!(as_bytes(&serde_json::json!("lots")), None);
    }
}

//! Config an Envoy on the path refused (config_dump `error_state`), as a finding of the mode
//! it breaks. Envoy keeps running what it had: a refused update of a listener, route
//! configuration or cluster leaves the previous version serving, without the change; a refused
//! resource that never served leaves nothing there. Without its inbound listener a sidecar
//! cannot take traffic to the pod at all (docs/modes/cold-start.md).
//!
//! - a listener: cold-start (the path cannot serve: nothing listens, or the old filters do)
//! - a route configuration: stream-timeout (its timeouts are what the proxy does not run)
//! - a cluster: connection-pool (its pool and breakers are what the proxy does not run)

use super::Proxy;
use crate::checks::{Basis, Finding, Severity};
use crate::evidence::envoy::config::{RejectedKind, RejectedResource};
use crate::evidence::{CheckId, ObjectRef, TargetEvidence};

/// The mode a refused resource of `kind` breaks.
pub fn mode_of(kind: RejectedKind) -> CheckId {
    match kind {
        RejectedKind::Listener => CheckId::ColdStart,
        RejectedKind::RouteConfig => CheckId::StreamTimeout,
        RejectedKind::Cluster => CheckId::ConnectionPool,
    }
}

/// The findings of `mode` from every refused resource on the path's Envoys.
pub fn findings(target: &TargetEvidence, mode: CheckId) -> Vec<Finding> {
    let mut findings = Vec::new();
    for proxy in super::proxies(target) {
        for rejected in &proxy.config().rejected {
            if mode_of(rejected.kind) == mode {
                findings.push(finding(target, &proxy, rejected));
            }
        }
    }
    findings
}

/// Istio's inbound listener (`virtualInbound` on 15006) or an HCM with an inbound stat prefix.
fn is_inbound(rejected: &RejectedResource) -> bool {
    rejected.name == "virtualInbound"
        || rejected
            .address
            .as_deref()
            .is_some_and(|address| address.ends_with(":15006"))
        || rejected
            .stat_prefixes
            .iter()
            .any(|prefix| prefix.starts_with("inbound_"))
}

fn finding(target: &TargetEvidence, proxy: &Proxy, rejected: &RejectedResource) -> Finding {
    let label = proxy.label();
    let what = match (rejected.kind, rejected.name.is_empty()) {
        (kind, true) => format!("a {} update", kind.as_str()),
        (kind, false) => format!("{} {}", kind.as_str(), rejected.name),
    };
    let consequence = match (rejected.kind, rejected.previous_active) {
        (_, true) => "it runs the previous version, without the change".to_string(),
        (RejectedKind::Listener, false) if is_inbound(rejected) => {
            "the pod has no inbound listener, so traffic to it fails".to_string()
        }
        (RejectedKind::Listener, false) => match &rejected.address {
            Some(address) => format!("nothing listens on {address}, so requests to it fail"),
            None => "nothing listens there, so requests to it fail".to_string(),
        },
        (RejectedKind::RouteConfig, false) => {
            "its HCM has no routes, so requests get 404 (NR)".to_string()
        }
        (RejectedKind::Cluster, false) => {
            "requests routed to it fail with 503 (no cluster, NC)".to_string()
        }
    };
    let severity = if rejected.previous_active {
        Severity::Warning
    } else {
        Severity::Critical
    };
    let title = format!(
        "{label} rejected {what}: {consequence} (Envoy: {})",
        rejected.details
    );
    let path = match rejected.name.as_str() {
        "" => format!("{}/error_state", rejected.kind.as_str()),
        name => format!("{} {name}/error_state", rejected.kind.as_str()),
    };
    let mut finding = Finding::new(mode_of(rejected.kind), severity, Basis::Runtime, title)
        .evidence(
            proxy
                .line(format!("{path}/details"), rejected.details.clone())
                .with_note("Envoy refused this update; config_dump keeps it beside what runs"),
        );
    if let Some(when) = &rejected.last_update_attempt {
        finding = finding.evidence(proxy.line(format!("{path}/last_update_attempt"), when.clone()));
    }
    if !rejected.script_filters.is_empty() {
        finding = finding.evidence(
            proxy
                .line(
                    format!("{path}/failed_configuration (Lua or Wasm filters)"),
                    rejected.script_filters.join(", "),
                )
                .with_note(
                    "Istio adds no Lua filter and only its own Wasm of its own: an EnvoyFilter (or an Envoy Gateway EnvoyExtensionPolicy) put it there",
                ),
        );
    }
    let filters = causing_filters(target, rejected);
    for object in &filters {
        finding = finding.evidence(
            crate::checks::EvidenceLine::new(object.clone(), "spec/configPatches", "adds it")
                .with_note("an EnvoyFilter whose patch adds a filter the refused config holds"),
        );
    }
    let summary = match filters.first() {
        Some(object) => format!(
            "Fix or remove {} {}: Envoy's error above says what it refused; once fixed the proxy takes the update",
            object.kind, object.name
        ),
        None if !rejected.script_filters.is_empty() => {
            "Fix or remove the EnvoyFilter that adds the Lua or Wasm filter (`kubectl get envoyfilter -A`): Envoy's error above says what it refused".to_string()
        }
        None => {
            "Fix what the control plane sends (Envoy's error above says what it refused); `istioctl proxy-status` or `egctl config envoy-proxy` shows the update".to_string()
        }
    };
    finding.fix(summary, "")
}

/// The EnvoyFilters of the target whose patches name a Lua or Wasm filter the refused
/// config holds.
fn causing_filters(target: &TargetEvidence, rejected: &RejectedResource) -> Vec<ObjectRef> {
    if rejected.script_filters.is_empty() {
        return Vec::new();
    }
    target
        .mesh
        .envoy_filters
        .iter()
        .filter(|filter| {
            let patches = serde_json::to_string(&filter.spec.config_patches).unwrap_or_default();
            rejected
                .script_filters
                .iter()
                .any(|name| patches.contains(&format!("\"{name}\"")))
        })
        .map(|filter| {
            ObjectRef::new(
                "EnvoyFilter",
                filter.metadata.namespace.as_deref(),
                filter.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::endpoint_target;
    use crate::evidence::envoy::EnvoyEvidence;

    const HOST: &str = "vllm.inference.svc.cluster.local";

    /// A client-side Envoy whose dump carries `error_state` entries.
    fn evidence(extra_sections: &str) -> EnvoyEvidence {
        let dump = format!(
            r#"{{"configs":[{{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters":[{{"cluster":{{"name":"outbound|8000||{HOST}"}}}}]}}{extra_sections}]}}"#
        );
        EnvoyEvidence::from_saved("saved gw.json", HOST, 8000, &dump, None).unwrap()
    }

    #[test]
    fn each_refused_kind_is_a_finding_of_the_mode_it_breaks() {
        let envoy = evidence(
            r#",{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump","dynamic_route_configs":[
                {"route_config":{"name":"8000","virtual_hosts":[]},
                 "error_state":{"details":"route: unknown field","last_update_attempt":"2026-12-08T03:00:00Z",
                   "failed_configuration":{"name":"8000"}}}]},
               {"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[
                {"name":"0.0.0.0_8000","error_state":{"details":"bad listener",
                   "failed_configuration":{"name":"0.0.0.0_8000","address":{"socket_address":{"address":"0.0.0.0","port_value":8000}}}}}]}"#,
        );
        assert_eq!(
            envoy.config.rejected.len(),
            2,
            "{:?}",
            envoy.config.rejected
        );
        let target = endpoint_target(vec![envoy]);
        // The route configuration still serves its previous version: a warning.
        let routes = findings(&target, CheckId::StreamTimeout);
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].severity, Severity::Warning);
        assert!(
            routes[0]
                .title
                .contains("rejected route configuration 8000: it runs the previous version"),
            "{}",
            routes[0].title
        );
        assert!(routes[0].title.contains("route: unknown field"));
        // The listener never served: nothing listens there.
        let listeners = findings(&target, CheckId::ColdStart);
        assert_eq!(listeners.len(), 1, "{listeners:?}");
        assert_eq!(listeners[0].severity, Severity::Critical);
        assert_eq!(listeners[0].basis, Basis::Runtime);
        assert!(
            listeners[0]
                .title
                .contains("nothing listens on 0.0.0.0:8000"),
            "{}",
            listeners[0].title
        );
        assert!(findings(&target, CheckId::ConnectionPool).is_empty());
    }

    #[test]
    fn the_envoyfilter_whose_patch_adds_the_refused_lua_filter_is_named() {
        let envoy = evidence(
            r#",{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[
                {"name":"virtualInbound","error_state":{"details":"script load error",
                  "failed_configuration":{"name":"virtualInbound","filter_chains":[{"filters":[
                    {"name":"envoy.filters.network.http_connection_manager","typed_config":{
                      "@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                      "stat_prefix":"inbound_0.0.0.0_8000",
                      "http_filters":[{"name":"lua-auth","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}}]}}]}]}}}]}"#,
        );
        let mut target = endpoint_target(vec![envoy]);
        target.mesh.envoy_filters = vec![
            crate::checks::test_support::object(
                "metadata: {name: lua-auth, namespace: inference}\nspec:\n  configPatches:\n  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: lua-auth}}",
            ),
            crate::checks::test_support::object(
                "metadata: {name: other, namespace: inference}\nspec:\n  configPatches:\n  - applyTo: CLUSTER\n    patch: {operation: MERGE, value: {connect_timeout: 1s}}",
            ),
        ];
        let found = findings(&target, CheckId::ColdStart);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].title.contains("the pod has no inbound listener"),
            "{}",
            found[0].title
        );
        let named: Vec<&str> = found[0]
            .evidence
            .iter()
            .filter(|line| line.object.kind == "EnvoyFilter")
            .map(|line| line.object.name.as_str())
            .collect();
        assert_eq!(named, vec!["lua-auth"]);
        let fix = found[0].fix.as_ref().unwrap();
        assert!(
            fix.summary.contains("EnvoyFilter lua-auth"),
            "{}",
            fix.summary
        );
    }
}

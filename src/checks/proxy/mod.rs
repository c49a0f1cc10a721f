//! What the Envoys on the path to vLLM run and counted, as the checks read it: each proxy as an
//! evidence object, field paths into its config_dump, the counters that moved, the stats Istio
//! trimmed, and the settings Envoy filled in by default (named, with the API field they belong
//! to). Pure: reads `TargetEvidence::envoy` only.

pub mod buffers;
pub mod counters_only;
pub mod disagree;
pub mod fixes;
pub mod observed;
pub mod pool;
pub mod rejected;
pub mod stream;
pub mod tls;

use super::EvidenceLine;
use crate::evidence::CheckId;
use crate::evidence::envoy::EnvoyEvidence;
use crate::evidence::envoy::config::{
    ClusterConfig, EffectiveConfig, EnvoyDuration, FilterChainConfig, HcmConfig, ListenerConfig,
    RouteView, Setting,
};
use crate::evidence::envoy::counters::{MissingStat, Reading, StatKind, StatsMatcherAdvice};
use crate::evidence::envoy::role::{EnvoyRole, IstioClusterName};
use crate::evidence::{ObjectRef, TargetEvidence};
use std::time::Duration;

/// One Envoy on the path to vLLM (its role is known: client, server or waypoint).
#[derive(Debug, Clone)]
pub struct Proxy<'a> {
    pub evidence: &'a EnvoyEvidence,
    /// `Envoy <pod or admin URL>`: the object evidence lines point at.
    pub object: ObjectRef,
}

/// The Envoys of `target` that are on the path (unrelated ones only left a gap).
pub fn proxies(target: &TargetEvidence) -> Vec<Proxy<'_>> {
    target
        .envoy
        .iter()
        .filter(|evidence| evidence.role.role != EnvoyRole::Unrelated)
        .map(|evidence| Proxy {
            evidence,
            object: envoy_ref(evidence),
        })
        .collect()
}

/// `Envoy ns/pod` when the pod is known, else `Envoy <source>` (an admin URL or a saved file).
pub fn envoy_ref(evidence: &EnvoyEvidence) -> ObjectRef {
    match &evidence.pod {
        Some(pod) => ObjectRef::new("Envoy", pod.namespace.as_deref(), &pod.name),
        None => ObjectRef::new("Envoy", None, &evidence.source),
    }
}

impl<'a> Proxy<'a> {
    pub fn role(&self) -> EnvoyRole {
        self.evidence.role.role
    }

    pub fn config(&self) -> &'a EffectiveConfig {
        &self.evidence.config
    }

    /// Whether it is an Istio gateway (`router~…` node id) rather than a sidecar.
    pub fn is_gateway(&self) -> bool {
        self.config()
            .node
            .as_ref()
            .and_then(|node| node.id.as_deref())
            .is_some_and(|id| id.starts_with("router~"))
    }

    /// `gateway Envoy http://127.0.0.1:15000`, `server-side Envoy pod/vllm-0`: for titles.
    pub fn label(&self) -> String {
        let side = match self.role() {
            EnvoyRole::Client if self.is_gateway() => "gateway Envoy",
            EnvoyRole::Client => "client-side Envoy",
            EnvoyRole::Server => "vLLM's sidecar Envoy",
            EnvoyRole::Waypoint => "waypoint Envoy",
            EnvoyRole::Unrelated => "Envoy",
        };
        let name = match &self.object.namespace {
            Some(namespace) => format!("{namespace}/{}", self.object.name),
            None => self.object.name.clone(),
        };
        format!("{side} {name}")
    }

    pub fn line(&self, path: impl Into<String>, value: impl Into<String>) -> EvidenceLine {
        EvidenceLine::new(self.object.clone(), path, value)
    }

    /// The readings of the counters named by `leaves` (`upstream_rq_timeout`) and of the gauges
    /// among them, that are above zero. Counters are cumulative since the proxy started: a
    /// non-zero one is something that happened.
    pub fn moved(&self, leaves: &[&str]) -> Vec<&'a Reading> {
        let Some(snapshot) = &self.evidence.counters else {
            return Vec::new();
        };
        snapshot
            .readings
            .iter()
            .filter(|(key, reading)| {
                reading.kind != StatKind::Histogram
                    && reading.value > 0
                    && !key.starts_with("istio_requests_total")
                    && leaves.iter().any(|leaf| key.ends_with(&format!(".{leaf}")))
            })
            .map(|(_, reading)| reading)
            .collect()
    }

    /// `istio_requests_total` lines above zero whose `response_flags` hold one of `flags` or
    /// whose `response_code` is one of `codes`.
    pub fn flagged(&self, flags: &[&str], codes: &[&str]) -> Vec<&'a Reading> {
        let Some(snapshot) = &self.evidence.counters else {
            return Vec::new();
        };
        snapshot
            .readings
            .iter()
            .filter(|(key, reading)| key.starts_with("istio_requests_total") && reading.value > 0)
            .filter(|(key, _)| {
                let flag_hit = tag(key, "response_flags")
                    .is_some_and(|text| text.split(',').any(|flag| flags.contains(&flag)));
                let code_hit = tag(key, "response_code").is_some_and(|code| codes.contains(&code));
                flag_hit || code_hit
            })
            .map(|(_, reading)| reading)
            .collect()
    }

    /// The evidence line of a counter that moved: the stat as Envoy wrote it, and its value.
    pub fn counter_line(&self, reading: &Reading, meaning: &str) -> EvidenceLine {
        let kind = match reading.kind {
            StatKind::Gauge => "a gauge: the state now",
            _ => "cumulative since the proxy started",
        };
        self.line(reading.stat.clone(), reading.value.to_string())
            .with_note(format!("{meaning}; {kind}"))
    }

    /// The stats of `mode` that Istio's default matcher trimmed here (whole scopes missing), and
    /// the matcher that keeps them.
    pub fn trimmed(&self, mode: CheckId) -> Option<Trimmed> {
        // Only Istio's matcher is known to have removed them (the source says so by its advice).
        self.evidence.stats_matcher_advice.as_ref()?;
        let snapshot = self.evidence.counters.as_ref()?;
        let missing: Vec<MissingStat> = snapshot
            .missing
            .iter()
            .filter(|stat| stat.mode == mode && !stat.scope_present)
            .cloned()
            .collect();
        let advice = StatsMatcherAdvice::for_missing(&missing)?;
        Some(Trimmed {
            scopes: advice.inclusion_prefixes.clone(),
            advice,
        })
    }

    /// The words that say the counters of `mode` cannot show what already happened, if so.
    pub fn blind_spot(&self, mode: CheckId) -> Option<String> {
        match (&self.evidence.counters, self.trimmed(mode)) {
            (None, _) => Some(format!(
                "the /stats of {} were not read: whether this already cut requests cannot be seen",
                self.label()
            )),
            (Some(_), Some(trimmed)) => Some(format!(
                "Istio's stats matcher trimmed the stats under {} on {}: whether this already happened cannot be seen",
                trimmed.scopes.join(" and "),
                self.label()
            )),
            (Some(snapshot), None) => {
                let absent: std::collections::BTreeSet<String> = snapshot
                    .missing
                    .iter()
                    .filter(|stat| stat.mode == mode && !stat.scope_present)
                    .map(|stat| format!("{}.{}", stat.scope.root(), stat.scope_name))
                    .collect();
                (!absent.is_empty()).then(|| {
                    format!(
                        "the stats under {} are not in what was read of {}: whether this already happened cannot be seen",
                        absent.into_iter().collect::<Vec<_>>().join(" and "),
                        self.label()
                    )
                })
            }
        }
    }
}

/// Stats the checks need that were trimmed, and how to keep them.
#[derive(Debug, Clone)]
pub struct Trimmed {
    /// The stat scopes that are gone: `cluster.outbound|8000||vllm.ns.svc.cluster.local`.
    pub scopes: Vec<String>,
    pub advice: StatsMatcherAdvice,
}

/// A tag of an `istio_requests_total{response_code="504",response_flags="UT"}` key.
pub(super) fn tag<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    let start = key.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &key[start..];
    rest.find('"').map(|end| &rest[..end])
}

// ---- field paths into a config_dump ----

/// `route_config 8000/virtual_hosts[vllm.inference.svc.cluster.local:8000]/routes[default]/route/FIELD`
/// (the route's name, else its index among the routes on the path).
pub fn route_path(view: &RouteView, field: &str) -> String {
    let route = match &view.route.name {
        Some(name) if !name.is_empty() => name.clone(),
        _ => view
            .virtual_host
            .routes
            .iter()
            .position(|candidate| std::ptr::eq(candidate, view.route))
            .unwrap_or_default()
            .to_string(),
    };
    let route_config = if view.route_config.name.is_empty() {
        "(inline)"
    } else {
        view.route_config.name.as_str()
    };
    format!(
        "route_config {route_config}/virtual_hosts[{}]/routes[{route}]/route/{field}",
        view.virtual_host.name
    )
}

/// `listener virtualInbound/http_connection_manager[inbound_0.0.0.0_8000]/FIELD`
pub fn hcm_path(listener: &ListenerConfig, hcm: &HcmConfig, field: &str) -> String {
    format!(
        "listener {}/http_connection_manager[{}]/{field}",
        listener.name,
        hcm.stat_scope()
    )
}

/// `listener 0.0.0.0_8000/FIELD`
pub fn listener_path(listener: &ListenerConfig, field: &str) -> String {
    format!("listener {}/{field}", listener.name)
}

/// `cluster outbound|8000||vllm.ns.svc.cluster.local/FIELD`
pub fn cluster_path(cluster: &ClusterConfig, field: &str) -> String {
    format!("cluster {}/{field}", cluster.name)
}

/// The filter chain a HCM sits in, named for a path when it has a name.
pub fn chain_label(chain: &FilterChainConfig) -> String {
    chain
        .name
        .clone()
        .or_else(|| chain.matches.clone())
        .unwrap_or_else(|| "default".to_string())
}

// ---- values and Envoy's defaults ----

/// A duration setting as evidence text: `15s`, or `15s (not in the dump: Envoy's default for
/// RouteAction.timeout)`.
pub fn duration_text(setting: &Setting<EnvoyDuration>, api_field: &str) -> String {
    if setting.is_default() {
        format!(
            "{} (not in the dump: Envoy's default for {api_field})",
            setting.value
        )
    } else {
        setting.value.text.clone()
    }
}

/// A count setting as evidence text, naming Envoy's default when the dump leaves it out.
pub fn count_text(setting: &Setting<u64>, api_field: &str) -> String {
    if setting.is_default() {
        format!(
            "{} (not in the dump: Envoy's default for {api_field})",
            setting.value
        )
    } else {
        setting.value.to_string()
    }
}

/// The duration when the timer is on (> 0) and shorter than `expected`.
pub fn shorter(duration: &EnvoyDuration, expected: Duration) -> Option<Duration> {
    (!duration.is_disabled() && duration.value < expected).then_some(duration.value)
}

// ---- the service behind the path ----

/// The service host and port the proxies carry traffic to: from a client-side cluster name
/// (`outbound|8000||vllm.ns.svc.cluster.local`), else the target's Service, else its name.
pub fn service_host(target: &TargetEvidence) -> (String, u16) {
    let from_clusters = target.envoy.iter().find_map(|evidence| {
        evidence.role.clusters.iter().find_map(|name| {
            let parsed = IstioClusterName::parse(name)?;
            (!parsed.host.is_empty()).then(|| (parsed.host.to_string(), parsed.port))
        })
    });
    if let Some(found) = from_clusters {
        return found;
    }
    let port = target.workload.vllm.port;
    match target.mesh.services.first() {
        Some(service) => (
            service.fqdn(),
            service.ports.first().map_or(port, |found| found.port),
        ),
        None => (
            format!(
                "{}.{}.svc.cluster.local",
                target.workload.name, target.workload.namespace
            ),
            port,
        ),
    }
}

/// An Istio object named by Envoy metadata (`filter_metadata.istio.config`):
/// `/apis/networking.istio.io/v1alpha3/namespaces/ns/virtual-service/vllm`.
pub fn istio_object(config: &str) -> Option<ObjectRef> {
    let mut parts = config.trim_start_matches('/').split('/');
    let (apis, _group, _version, namespaces) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if apis != "apis" || namespaces != "namespaces" {
        return None;
    }
    let namespace = parts.next()?;
    let kind = match parts.next()? {
        "virtual-service" => "VirtualService",
        "destination-rule" => "DestinationRule",
        "envoy-filter" => "EnvoyFilter",
        "sidecar" => "Sidecar",
        "gateway" => "Gateway",
        _ => return None,
    };
    let name = parts.next()?;
    Some(ObjectRef::new(kind, Some(namespace), name))
}

/// The suffix of the VirtualServices Istio generates from Gateway API routes
/// (`constants.KubernetesGatewayName`).
const GENERATED_SUFFIX: &str = "-istio-autogenerated-k8s-gateway";

/// The object a route of the config_dump was written from: the Istio object its metadata names,
/// or, for the VirtualService Istio generates from an HTTPRoute, the HTTPRoute, known by the
/// route's name `NAMESPACE.NAME.RULE` (Istio names a rule's route so unless the rule has a name).
pub fn route_object(route: &crate::evidence::envoy::config::RouteEntry) -> Option<ObjectRef> {
    generated_from(route.name.as_deref(), route.istio_config.as_deref()?)
}

fn generated_from(route_name: Option<&str>, istio_config: &str) -> Option<ObjectRef> {
    let object = istio_object(istio_config)?;
    if object.kind != "VirtualService" || !object.name.ends_with(GENERATED_SUFFIX) {
        return Some(object);
    }
    let namespace = object.namespace.clone().unwrap_or_default();
    let from_route_name = route_name.and_then(|name| {
        let rest = name.strip_prefix(&format!("{namespace}."))?;
        let (route_name, index) = rest.rsplit_once('.')?;
        index
            .split('.')
            .next()?
            .parse::<usize>()
            .ok()
            .map(|_| route_name.to_string())
    });
    // `NAME-N-istio-autogenerated-k8s-gateway` when the route's name does not say.
    let name = from_route_name.or_else(|| {
        let stem = object.name.strip_suffix(GENERATED_SUFFIX)?;
        let (name, count) = stem.rsplit_once('-')?;
        count.parse::<usize>().ok().map(|_| name.to_string())
    })?;
    Some(ObjectRef::new("HTTPRoute", Some(&namespace), &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_istio_generated_from_an_http_route_name_the_http_route() {
        let route = |name, config| generated_from(name, config);
        let generated = "/apis/networking.istio.io/v1/namespaces/serving/virtual-service/llama-8b-0-istio-autogenerated-k8s-gateway";
        let expected = Some(ObjectRef::new("HTTPRoute", Some("serving"), "llama-8b"));
        assert_eq!(route(Some("serving.llama-8b.0"), generated), expected);
        assert_eq!(route(None, generated), expected);
        assert_eq!(
            route(
                Some("default"),
                "/apis/networking.istio.io/v1/namespaces/serving/virtual-service/vllm"
            ),
            Some(ObjectRef::new("VirtualService", Some("serving"), "vllm"))
        );
    }

    #[test]
    fn istio_metadata_names_the_object() {
        assert_eq!(
            istio_object("/apis/networking.istio.io/v1alpha3/namespaces/llm/virtual-service/vllm"),
            Some(ObjectRef::new("VirtualService", Some("llm"), "vllm"))
        );
        assert_eq!(
            istio_object(
                "/apis/networking.istio.io/v1alpha3/namespaces/llm/destination-rule/vllm-pool"
            )
            .unwrap()
            .kind,
            "DestinationRule"
        );
        assert_eq!(istio_object("/apis/x/v1/namespaces/llm/unknown/a"), None);
        assert_eq!(istio_object("nonsense"), None);
    }

    #[test]
    fn response_tags_are_read_from_snapshot_keys() {
        let key = "istio_requests_total{response_code=\"503\",response_flags=\"UO,URX\"}";
        assert_eq!(tag(key, "response_code"), Some("503"));
        assert_eq!(tag(key, "response_flags"), Some("UO,URX"));
        assert_eq!(tag(key, "reporter"), None);
    }
}

//! The Envoy counters that show each failure mode (docs/facts.md "Envoy stat names"), read for the
//! clusters, HCMs and listeners on the path to vLLM; snapshots and deltas for the probe; and the
//! `proxyStatsMatcher` annotation that brings back stats Istio trimmed away.

use crate::evidence::CheckId;
use crate::evidence::envoy::config::EffectiveConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The scope a stat belongs to, as Envoy names it in the first segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// `cluster.<name>.<leaf>`
    Cluster,
    /// `http.<stat_prefix>.<leaf>`: one HTTP connection manager.
    Hcm,
    /// `listener.<address or stat_prefix>.<leaf>`
    Listener,
}

impl ScopeKind {
    pub fn root(self) -> &'static str {
        match self {
            ScopeKind::Cluster => "cluster",
            ScopeKind::Hcm => "http",
            ScopeKind::Listener => "listener",
        }
    }

    /// A stat every scope of this kind has exactly once: how plain names reveal where a scope
    /// name (which may contain dots) ends.
    pub fn marker(self) -> &'static str {
        match self {
            ScopeKind::Cluster => "membership_total",
            ScopeKind::Hcm => "downstream_rq_total",
            ScopeKind::Listener => "downstream_cx_total",
        }
    }
}

/// How Envoy keeps a stat: counters only grow, gauges go up and down, histograms hold samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatKind {
    Counter,
    Gauge,
    Histogram,
}

/// One stat that shows a failure mode, relative to its scope (`cluster.<name>.<leaf>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    pub mode: CheckId,
    pub scope: ScopeKind,
    pub leaf: &'static str,
    pub kind: StatKind,
    /// Present only where the scope speaks TLS (`ssl.*`).
    pub tls_only: bool,
    /// Present only on an HCM with an ext_proc filter (`http.<prefix>.ext_proc.*`).
    pub ext_proc_only: bool,
    pub meaning: &'static str,
}

const fn spec(
    mode: CheckId,
    scope: ScopeKind,
    leaf: &'static str,
    kind: StatKind,
    meaning: &'static str,
) -> CounterSpec {
    CounterSpec {
        mode,
        scope,
        leaf,
        kind,
        tls_only: false,
        ext_proc_only: false,
        meaning,
    }
}

const fn tls(scope: ScopeKind, leaf: &'static str, meaning: &'static str) -> CounterSpec {
    CounterSpec {
        mode: CheckId::ColdStart,
        scope,
        leaf,
        kind: StatKind::Counter,
        tls_only: true,
        ext_proc_only: false,
        meaning,
    }
}

/// An ext_proc filter's counter, `http.<stat_prefix>.ext_proc.<leaf>` (Envoy's ext_proc docs).
const fn ext_proc(leaf: &'static str, meaning: &'static str) -> CounterSpec {
    CounterSpec {
        mode: CheckId::EndpointPicker,
        scope: ScopeKind::Hcm,
        leaf,
        kind: StatKind::Counter,
        tls_only: false,
        ext_proc_only: true,
        meaning,
    }
}

use CheckId::{BufferLimit, ColdStart, ConnectionPool, StreamTimeout};
use ScopeKind::{Cluster, Hcm, Listener};
use StatKind::{Counter, Gauge, Histogram};

/// Every stat the checks read, per failure mode (docs/facts.md lists them with their sources).
#[rustfmt::skip]
pub const COUNTERS: &[CounterSpec] = &[
    // 2 stream cut
    spec(StreamTimeout, Cluster, "upstream_rq_timeout", Counter, "route timeout fired (UT)"),
    spec(StreamTimeout, Cluster, "upstream_rq_per_try_timeout", Counter, "retry per-try timeout fired"),
    spec(StreamTimeout, Cluster, "upstream_rq_max_duration_reached", Counter, "max_stream_duration reached (UMSDR)"),
    spec(StreamTimeout, Cluster, "upstream_rq_rx_reset", Counter, "upstream reset the stream"),
    spec(StreamTimeout, Cluster, "upstream_cx_idle_timeout", Counter, "upstream connection idle timeout"),
    spec(StreamTimeout, Hcm, "downstream_rq_idle_timeout", Counter, "stream idle timeout fired (SI)"),
    spec(StreamTimeout, Hcm, "downstream_cx_idle_timeout", Counter, "downstream connection idle timeout"),
    spec(StreamTimeout, Hcm, "downstream_rq_timeout", Counter, "HCM request_timeout fired"),
    spec(StreamTimeout, Hcm, "downstream_rq_tx_reset", Counter, "Envoy reset a downstream stream"),
    // 3 connection pool
    spec(ConnectionPool, Cluster, "upstream_cx_overflow", Counter, "max_connections circuit breaker overflowed"),
    spec(ConnectionPool, Cluster, "upstream_rq_pending_overflow", Counter, "max_pending_requests overflowed (UO, 503)"),
    spec(ConnectionPool, Cluster, "upstream_rq_retry_overflow", Counter, "max_retries circuit breaker overflowed"),
    spec(ConnectionPool, Cluster, "circuit_breakers.default.cx_open", Gauge, "connection breaker open now"),
    spec(ConnectionPool, Cluster, "circuit_breakers.default.rq_pending_open", Gauge, "pending-request breaker open now"),
    spec(ConnectionPool, Cluster, "circuit_breakers.default.rq_open", Gauge, "request breaker open now"),
    spec(ConnectionPool, Cluster, "circuit_breakers.default.rq_retry_open", Gauge, "retry breaker open now"),
    // 4 buffers
    spec(BufferLimit, Hcm, "downstream_rq_too_large", Counter, "request body over a buffer limit (413)"),
    spec(BufferLimit, Hcm, "rs_too_large", Counter, "response body over a buffer limit (500)"),
    spec(BufferLimit, Cluster, "retry_or_shadow_abandoned", Counter, "retry/shadow dropped: body over the buffer limit"),
    // 5 TLS on a cold connection
    tls(Cluster, "ssl.handshake", "upstream TLS handshakes"),
    tls(Cluster, "ssl.connection_error", "upstream TLS connection errors"),
    tls(Cluster, "ssl.fail_verify_san", "upstream peer SAN did not match"),
    tls(Cluster, "ssl.session_reused", "upstream TLS sessions resumed"),
    tls(Listener, "ssl.handshake", "downstream TLS handshakes"),
    spec(ColdStart, Cluster, "upstream_cx_connect_ms", Histogram, "connect time, TLS handshake included"),
    // 6 endpoint picker (ext_proc on the gateway)
    ext_proc("ext_proc.streams_started", "gRPC streams opened to the external processor"),
    ext_proc("ext_proc.streams_failed", "streams to the external processor that failed"),
    ext_proc("ext_proc.failure_mode_allowed", "requests let through without the processor (failure_mode_allow)"),
    ext_proc("ext_proc.message_timeouts", "the processor did not answer within message_timeout"),
];

/// The stats that show one failure mode.
pub fn counters_for(mode: CheckId) -> impl Iterator<Item = &'static CounterSpec> {
    COUNTERS.iter().filter(move |spec| spec.mode == mode)
}

/// Which failure mode an Envoy response flag points at (docs/facts.md "Envoy stat names").
pub fn mode_for_response_flag(flag: &str) -> Option<CheckId> {
    match flag {
        "UT" | "SI" | "UMSDR" | "UC" | "DC" | "UR" | "DPE" | "UPE" => Some(StreamTimeout),
        "UO" => Some(ConnectionPool),
        _ => None,
    }
}

/// The failure mode of an `istio_requests_total` line: its first known flag, else a 413.
pub fn mode_for_request(code: &str, flags: &str) -> Option<CheckId> {
    flags
        .split(',')
        .find_map(mode_for_response_flag)
        .or_else(|| (code == "413").then_some(BufferLimit))
}

/// The scopes of one Envoy on the path to vLLM whose stats to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Targets {
    /// Cluster names (`outbound|8000||vllm.ns.svc.cluster.local`, `inbound|8000||`).
    pub clusters: Vec<String>,
    /// HCM stat prefixes (`outbound_0.0.0.0_8000`, `inbound_0.0.0.0_8000`), without `;`.
    pub hcms: Vec<String>,
    /// Listener stat names (`0.0.0.0_15006`) of listeners that terminate TLS.
    pub tls_listeners: Vec<String>,
    /// Clusters among `clusters` that originate TLS (only they have `ssl.*` stats).
    pub tls_clusters: Vec<String>,
    /// HCMs among `hcms` with an enabled ext_proc filter (only they have `ext_proc.*` stats).
    pub ext_proc_hcms: Vec<String>,
}

impl Targets {
    /// The stat scopes of a config's clusters, HCMs and TLS listeners: pass
    /// `EffectiveConfig::path_to(host, port)` to read only the path to vLLM.
    pub fn from_config(config: &EffectiveConfig) -> Targets {
        let mut targets = Targets::default();
        for cluster in &config.clusters {
            let scope = cluster.stat_scope();
            if cluster.tls.is_tls() {
                push_unique(&mut targets.tls_clusters, &scope);
            }
            push_unique(&mut targets.clusters, &scope);
        }
        for (listener, chain, hcm) in config.hcms() {
            push_unique(&mut targets.hcms, hcm.stat_scope());
            if hcm
                .http_filters
                .iter()
                .any(|filter| filter.ext_proc.is_some())
            {
                push_unique(&mut targets.ext_proc_hcms, hcm.stat_scope());
            }
            if chain.tls.is_some() {
                push_unique(&mut targets.tls_listeners, &listener.stat_name);
            }
        }
        targets
    }

    pub fn scopes_for<'a>(&'a self, spec: &CounterSpec) -> &'a [String] {
        if spec.ext_proc_only {
            return &self.ext_proc_hcms;
        }
        match (spec.scope, spec.tls_only) {
            (Cluster, false) => &self.clusters,
            (Cluster, true) => &self.tls_clusters,
            (Hcm, _) => &self.hcms,
            (Listener, true) => &self.tls_listeners,
            (Listener, false) => &[],
        }
    }
}

/// One stat read at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// The name as Envoy wrote it (for evidence lines).
    pub stat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CheckId>,
    pub kind: StatKind,
    pub value: u64,
    /// For histograms: the cumulative P50 and P99 in the histogram's unit, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

/// A stat the checks need that this Envoy does not report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingStat {
    pub scope: ScopeKind,
    pub scope_name: String,
    pub leaf: String,
    pub mode: CheckId,
    /// Other stats of the scope exist: an older Envoy without this stat, or a stats matcher
    /// that keeps only some suffixes. False: the whole scope is gone, as Istio's default
    /// trimming leaves `cluster.outbound|…` and `http.*`.
    pub scope_present: bool,
}

impl MissingStat {
    /// `cluster.outbound|8000||vllm.ns.svc.cluster.local.upstream_rq_timeout`
    pub fn name(&self) -> String {
        format!("{}.{}.{}", self.scope.root(), self.scope_name, self.leaf)
    }
}

/// The failure-mode stats of one Envoy at one moment, keyed by a name that is the same in the
/// plain and the `;` form (`cluster.<name>.<leaf>`, `istio_requests_total{…}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Snapshot {
    pub readings: BTreeMap<String, Reading>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingStat>,
}

impl Snapshot {
    pub fn value(&self, key: &str) -> Option<u64> {
        self.readings.get(key).map(|reading| reading.value)
    }

    /// Whether a whole scope the checks need is absent (Istio's stats trimming).
    pub fn has_trimmed_stats(&self) -> bool {
        self.missing.iter().any(|stat| !stat.scope_present)
    }

    /// The annotation that makes Istio keep the missing stats, if any are missing.
    pub fn stats_matcher_advice(&self) -> Option<StatsMatcherAdvice> {
        StatsMatcherAdvice::for_missing(&self.missing)
    }
}

/// A stat that changed between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    /// The snapshot key (`cluster.<name>.<leaf>`), the same in both name forms.
    pub key: String,
    /// The name as Envoy wrote it.
    pub stat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CheckId>,
    pub kind: StatKind,
    pub before: u64,
    pub after: u64,
}

impl Moved {
    /// `after - before`; negative only for gauges (or a proxy restart, which resets counters).
    pub fn change(&self) -> i128 {
        i128::from(self.after) - i128::from(self.before)
    }
}

/// What moved from `before` to `after`, by key. A stat that first appears in `after` (an
/// `istio_requests_total` line with new flags) counts from 0. Histograms are not compared.
pub fn delta(before: &Snapshot, after: &Snapshot) -> Vec<Moved> {
    after
        .readings
        .iter()
        .filter(|(_, reading)| reading.kind != Histogram)
        .filter_map(|(key, reading)| {
            let previous = before.value(key).unwrap_or(0);
            (previous != reading.value).then(|| Moved {
                key: key.clone(),
                stat: reading.stat.clone(),
                mode: reading.mode,
                kind: reading.kind,
                before: previous,
                after: reading.value,
            })
        })
        .collect()
}

const PROXY_CONFIG_ANNOTATION: &str = "proxy.istio.io/config";

/// The `proxyStatsMatcher` that keeps trimmed stats: whole scopes by prefix (simple), or just
/// the failure-mode stats by regexp (fewer stats on a busy gateway). Either one is enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsMatcherAdvice {
    pub inclusion_prefixes: Vec<String>,
    pub inclusion_regexps: Vec<String>,
}

impl StatsMatcherAdvice {
    pub fn for_missing(missing: &[MissingStat]) -> Option<StatsMatcherAdvice> {
        if missing.is_empty() {
            return None;
        }
        let mut by_scope: BTreeMap<(ScopeKind, &str), BTreeSet<&str>> = BTreeMap::new();
        for stat in missing {
            by_scope
                .entry((stat.scope, stat.scope_name.as_str()))
                .or_default()
                .insert(stat.leaf.as_str());
        }
        let mut inclusion_prefixes = Vec::new();
        let mut inclusion_regexps = Vec::new();
        for ((kind, scope), leaves) in by_scope {
            // A prefix without the `;` matches the plain and the delimited names alike.
            inclusion_prefixes.push(format!("{}.{}", kind.root(), scope));
            let leaves: Vec<String> = leaves.into_iter().map(escape_regex).collect();
            inclusion_regexps.push(format!(
                "{}\\.{};?\\.({})",
                kind.root(),
                escape_regex(scope),
                leaves.join("|")
            ));
        }
        Some(StatsMatcherAdvice {
            inclusion_prefixes,
            inclusion_regexps,
        })
    }

    /// The ProxyConfig fragment (`proxyStatsMatcher: …`) with prefixes (`use_regexps` false)
    /// or regexps.
    pub fn proxy_config_yaml(&self, use_regexps: bool) -> String {
        let (key, values) = if use_regexps {
            ("inclusionRegexps", &self.inclusion_regexps)
        } else {
            ("inclusionPrefixes", &self.inclusion_prefixes)
        };
        let mut yaml = format!("proxyStatsMatcher:\n  {key}:\n");
        for value in values {
            yaml.push_str(&format!("  - {}\n", yaml_quote(value)));
        }
        yaml
    }

    /// The pod-template annotation, ready to paste under `spec.template`; the proxy reads it at
    /// start, so the pod must restart.
    pub fn annotation_yaml(&self, use_regexps: bool) -> String {
        let mut yaml = String::from(
            "# Istio reads proxyStatsMatcher when the proxy starts: restart the pods after applying.\n\
             metadata:\n  annotations:\n",
        );
        yaml.push_str(&format!("    {PROXY_CONFIG_ANNOTATION}: |\n"));
        for line in self.proxy_config_yaml(use_regexps).lines() {
            yaml.push_str(&format!("      {line}\n"));
        }
        yaml
    }

    /// Adds this advice to an existing `proxy.istio.io/config` value (a ProxyConfig YAML
    /// string), keeping its other settings and matcher entries.
    pub fn merge_into_proxy_config(
        &self,
        existing: Option<&str>,
        use_regexps: bool,
    ) -> Result<String, serde_yaml::Error> {
        let mut config = match existing {
            Some(text) if !text.trim().is_empty() => serde_yaml::from_str(text)?,
            _ => serde_yaml::Value::Mapping(Default::default()),
        };
        if !config.is_mapping() {
            config = serde_yaml::Value::Mapping(Default::default());
        }
        let key = if use_regexps {
            "inclusionRegexps"
        } else {
            "inclusionPrefixes"
        };
        let values = if use_regexps {
            &self.inclusion_regexps
        } else {
            &self.inclusion_prefixes
        };
        if let Some(root) = config.as_mapping_mut() {
            let matcher = root
                .entry("proxyStatsMatcher".into())
                .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            if !matcher.is_mapping() {
                *matcher = serde_yaml::Value::Mapping(Default::default());
            }
            if let Some(matcher) = matcher.as_mapping_mut() {
                let list = matcher
                    .entry(key.into())
                    .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
                if !list.is_sequence() {
                    *list = serde_yaml::Value::Sequence(Vec::new());
                }
                if let Some(list) = list.as_sequence_mut() {
                    for value in values {
                        let value = serde_yaml::Value::String(value.clone());
                        if !list.contains(&value) {
                            list.push(value);
                        }
                    }
                }
            }
        }
        serde_yaml::to_string(&config)
    }
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|existing| existing == value) {
        list.push(value.to_string());
    }
}

fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::envoy::stats::Stats;

    const VLLM: &str = "outbound|8000||vllm.ns.svc.cluster.local";

    fn targets() -> Targets {
        Targets {
            clusters: vec![VLLM.to_string()],
            hcms: vec!["outbound_0.0.0.0_8000".to_string()],
            tls_listeners: vec![],
            tls_clusters: vec![VLLM.to_string()],
            ext_proc_hcms: vec![],
        }
    }

    fn stats_with(timeouts: u64, delimiter: &str, ut_requests: u64) -> Stats {
        let mut text = String::new();
        for spec in COUNTERS {
            let scope = match spec.scope {
                Cluster => VLLM,
                Hcm => "outbound_0.0.0.0_8000",
                Listener => continue,
            };
            let value = if spec.leaf == "upstream_rq_timeout" {
                timeouts.to_string()
            } else if spec.kind == Histogram {
                "P0(nan,1) P50(nan,2) P99(nan,9)".to_string()
            } else {
                "0".to_string()
            };
            text.push_str(&format!(
                "{}.{scope}{delimiter}.{}: {value}\n",
                spec.scope.root(),
                spec.leaf
            ));
        }
        if ut_requests > 0 {
            text.push_str(&format!(
                "reporter=.=source;.;response_code=.=504;.;response_flags=.=UT;.;istio_requests_total: {ut_requests}\n"
            ));
        }
        Stats::parse_text(&text).unwrap()
    }

    #[test]
    fn delta_names_what_moved_in_either_name_form() {
        for delimiter in ["", ";"] {
            let before = stats_with(2, delimiter, 0).snapshot(&targets());
            let after = stats_with(3, delimiter, 1).snapshot(&targets());
            assert!(before.missing.is_empty(), "{:?}", before.missing);
            let moved = delta(&before, &after);
            assert_eq!(moved.len(), 2, "{moved:?}");
            let timeout = moved
                .iter()
                .find(|m| m.key == format!("cluster.{VLLM}.upstream_rq_timeout"))
                .unwrap();
            assert_eq!((timeout.before, timeout.after, timeout.change()), (2, 3, 1));
            assert_eq!(timeout.mode, Some(StreamTimeout));
            assert!(
                timeout
                    .stat
                    .contains(&format!("{VLLM}{delimiter}.upstream_rq_timeout"))
            );
            let flagged = moved
                .iter()
                .find(|m| m.key.starts_with("istio_requests_total"))
                .unwrap();
            assert_eq!(flagged.mode, Some(StreamTimeout));
            assert_eq!((flagged.before, flagged.after), (0, 1));
        }
    }

    #[test]
    fn histograms_keep_quantiles_but_never_move() {
        let snapshot = stats_with(0, ";", 0).snapshot(&targets());
        let connect = &snapshot.readings[&format!("cluster.{VLLM}.upstream_cx_connect_ms")];
        assert_eq!((connect.p50, connect.p99), (Some(2.0), Some(9.0)));
        assert!(delta(&snapshot, &snapshot).is_empty());
    }

    #[test]
    fn trimmed_stats_give_the_annotation_that_keeps_them() {
        let stats = Stats::parse_text(
            "reporter=.=source;.;response_code=.=200;.;response_flags=.=-;.;istio_requests_total: 5\n\
             cluster_manager.cds.update_success: 3\n",
        )
        .unwrap();
        let snapshot = stats.snapshot(&targets());
        assert!(snapshot.has_trimmed_stats());
        assert!(
            snapshot
                .missing
                .iter()
                .any(|m| m.name() == format!("cluster.{VLLM}.upstream_rq_pending_overflow"))
        );
        assert_eq!(
            snapshot.value("istio_requests_total{response_code=\"200\",response_flags=\"-\"}"),
            Some(5)
        );
        let advice = snapshot.stats_matcher_advice().unwrap();
        assert_eq!(
            advice.inclusion_prefixes,
            vec![
                format!("cluster.{VLLM}"),
                "http.outbound_0.0.0.0_8000".to_string()
            ]
        );
        let yaml = advice.annotation_yaml(false);
        assert!(yaml.contains("proxy.istio.io/config: |"), "{yaml}");
        assert!(yaml.contains("inclusionPrefixes:"), "{yaml}");
        // The annotation value is itself YAML that Istio parses as ProxyConfig.
        let document: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        let inner = document["metadata"]["annotations"]["proxy.istio.io/config"]
            .as_str()
            .unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(inner).unwrap();
        assert_eq!(
            config["proxyStatsMatcher"]["inclusionPrefixes"][0].as_str(),
            Some(format!("cluster.{VLLM}").as_str())
        );
    }

    #[test]
    fn regexps_match_both_name_forms_and_nothing_else() {
        let missing = vec![MissingStat {
            scope: Cluster,
            scope_name: VLLM.to_string(),
            leaf: "upstream_rq_timeout".to_string(),
            mode: StreamTimeout,
            scope_present: false,
        }];
        let advice = StatsMatcherAdvice::for_missing(&missing).unwrap();
        assert_eq!(
            advice.inclusion_regexps,
            vec![
                "cluster\\.outbound\\|8000\\|\\|vllm\\.ns\\.svc\\.cluster\\.local;?\\.(upstream_rq_timeout)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn merges_into_an_existing_proxy_config() {
        let missing = vec![MissingStat {
            scope: Hcm,
            scope_name: "inbound_0.0.0.0_8000".to_string(),
            leaf: "downstream_rq_idle_timeout".to_string(),
            mode: StreamTimeout,
            scope_present: false,
        }];
        let advice = StatsMatcherAdvice::for_missing(&missing).unwrap();
        let merged = advice
            .merge_into_proxy_config(
                Some("holdApplicationUntilProxyStarts: true\nproxyStatsMatcher:\n  inclusionPrefixes:\n  - upstream_cx\n"),
                false,
            )
            .unwrap();
        let config: serde_yaml::Value = serde_yaml::from_str(&merged).unwrap();
        assert_eq!(
            config["holdApplicationUntilProxyStarts"].as_bool(),
            Some(true)
        );
        let prefixes = config["proxyStatsMatcher"]["inclusionPrefixes"]
            .as_sequence()
            .unwrap();
        assert_eq!(prefixes.len(), 2);
        assert_eq!(prefixes[1].as_str(), Some("http.inbound_0.0.0.0_8000"));
    }

    #[test]
    fn response_flags_map_to_modes() {
        assert_eq!(mode_for_request("504", "UT"), Some(StreamTimeout));
        assert_eq!(mode_for_request("503", "UO"), Some(ConnectionPool));
        assert_eq!(mode_for_request("200", "SI,DC"), Some(StreamTimeout));
        assert_eq!(mode_for_request("413", "-"), Some(BufferLimit));
        assert_eq!(mode_for_request("200", "-"), None);
    }
}

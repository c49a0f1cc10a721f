//! Envoy admin `/stats` (text) and `/stats?format=json` parsed into one `Stats` value.
//!
//! Names are kept as Envoy writes them. Scoped lookups understand both the plain form
//! (`cluster.outbound|8000||vllm.ns.svc.cluster.local.upstream_rq_timeout`) and Istio >= 1.23's
//! `;`-delimited form (`cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_rq_timeout`).
//! Istio's tagged metrics (`reporter=.=destination;.;response_code=.=200;.;istio_requests_total`)
//! are split into tags and a metric name.

use crate::evidence::envoy::counters::StatKind::Counter;
use crate::evidence::envoy::counters::{
    COUNTERS, MissingStat, Reading, ScopeKind, Snapshot, Targets, mode_for_request,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Istio's tagged-stat separator between `key=.=value` pairs and the metric name.
const TAG_SEPARATOR: &str = ";.;";
/// Istio's `key=.=value` separator inside one tag.
const TAG_VALUE_SEPARATOR: &str = "=.=";
/// Istio >= 1.23 ends cluster names and HCM stat prefixes with `;` before the stat leaf.
const SCOPE_DELIMITER: &str = ";.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error(
        "Envoy /stats line {line} is not `name: value` ({reason}): {text:?}; pass the admin /stats output unchanged"
    )]
    Malformed {
        line: usize,
        text: String,
        reason: &'static str,
    },
    #[error(
        "Envoy /stats?format=json could not be read ({reason}); expected {{\"stats\": [...]}} from the admin API"
    )]
    Json { reason: String },
}

/// One histogram quantile as Envoy prints it: `P50(interval,cumulative)`; `nan` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub quantile: f64,
    pub interval: Option<f64>,
    pub cumulative: Option<f64>,
}

/// An Istio tagged metric: `istio_requests_total` with `response_code`, `response_flags`, … .
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaggedStat {
    /// The metric name: `istio_requests_total`.
    pub metric: String,
    pub tags: BTreeMap<String, String>,
    pub value: u64,
    /// The full name as Envoy printed it.
    pub raw_name: String,
}

impl TaggedStat {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

/// A fast hash for stat names (the multiply-rotate of rustc's FxHash): names come from the
/// proxy we asked, so resistance to crafted collisions is not needed, and a 50,000-line `/stats`
/// spends most of its parse time hashing otherwise.
#[derive(Default, Clone, Copy)]
struct NameHasher(u64);

impl NameHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;

/// Counters, gauges, text readouts and histograms of one Envoy, by name as Envoy writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    values: NameMap<u64>,
    text: NameMap<String>,
    histograms: NameMap<Vec<Quantile>>,
    tagged: Vec<TaggedStat>,
    delimited: bool,
}

/// A scope found in the stats, with the name as written and whether it used the `;` form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopeName {
    pub kind: ScopeKind,
    pub name: String,
    pub delimited: bool,
}

impl Stats {
    /// Parses admin `/stats` text: one `name: value` per line; histograms
    /// (`P0(nan,0) P25(…) …` or `No recorded values`) and text readouts (`"…"`) included.
    pub fn parse_text(input: &str) -> Result<Stats, StatsError> {
        let mut stats = Stats {
            values: NameMap::with_capacity_and_hasher(input.len() / 64, Default::default()),
            ..Stats::default()
        };
        for (index, raw_line) in input.lines().enumerate() {
            let line = raw_line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let malformed = |reason| StatsError::Malformed {
                line: index + 1,
                text: shorten(line),
                reason,
            };
            let (name, value) = line.split_once(": ").ok_or_else(|| malformed("no `: `"))?;
            if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_whitespace()) {
                return Err(malformed("the name is empty or has spaces"));
            }
            let value = value.trim();
            if let Ok(number) = value.parse::<u64>() {
                stats.insert_number(name, number);
            } else if value == "No recorded values" {
                stats.histograms.insert(name.to_string(), Vec::new());
            } else if value.starts_with('P') {
                let quantiles =
                    parse_quantiles(value).ok_or_else(|| malformed("unreadable histogram"))?;
                stats.histograms.insert(name.to_string(), quantiles);
            } else if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                stats
                    .text
                    .insert(name.to_string(), value[1..value.len() - 1].to_string());
            } else {
                return Err(malformed("the value is not a number, histogram or text"));
            }
        }
        Ok(stats)
    }

    /// Parses admin `/stats?format=json`: `{"stats": [{"name", "value"}…, {"histograms": …}]}`.
    pub fn parse_json(input: &str) -> Result<Stats, StatsError> {
        let document: JsonStats =
            serde_json::from_str(input).map_err(|error| StatsError::Json {
                reason: error.to_string(),
            })?;
        let mut stats = Stats {
            values: NameMap::with_capacity_and_hasher(document.stats.len(), Default::default()),
            ..Stats::default()
        };
        for (index, entry) in document.stats.into_iter().enumerate() {
            if let Some(histograms) = entry.histograms {
                for computed in histograms.computed_quantiles {
                    let quantiles = histograms
                        .supported_quantiles
                        .iter()
                        .zip(computed.values.iter())
                        .map(|(quantile, value)| Quantile {
                            quantile: *quantile,
                            interval: value.interval,
                            cumulative: value.cumulative,
                        })
                        .collect();
                    stats.histograms.insert(computed.name, quantiles);
                }
                continue;
            }
            let Some(name) = entry.name else {
                return Err(StatsError::Json {
                    reason: format!("entry {index} has neither `name` nor `histograms`"),
                });
            };
            match entry.value {
                Some(serde_json::Value::Number(number)) => {
                    let value = number.as_u64().ok_or_else(|| StatsError::Json {
                        reason: format!("{name}: {number} is not a non-negative integer"),
                    })?;
                    stats.insert_number(&name, value);
                }
                Some(serde_json::Value::String(text)) => {
                    stats.text.insert(name, text);
                }
                _ => {
                    return Err(StatsError::Json {
                        reason: format!("{name}: value is missing or not a number or string"),
                    });
                }
            }
        }
        Ok(stats)
    }

    fn insert_number(&mut self, name: &str, value: u64) {
        if name.contains(TAG_SEPARATOR) {
            if let Some(tagged) = parse_tagged(name, value) {
                self.tagged.push(tagged);
                return;
            }
        }
        if !self.delimited && name.contains(SCOPE_DELIMITER) {
            self.delimited = true;
        }
        self.values.insert(name.to_string(), value);
    }

    /// Number of counters and gauges (untagged), tagged metrics and histograms together.
    pub fn len(&self) -> usize {
        self.values.len() + self.tagged.len() + self.histograms.len() + self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the names use Istio >= 1.23's `;` delimiter.
    pub fn uses_delimited_names(&self) -> bool {
        self.delimited
    }

    /// A counter or gauge by its exact name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).copied()
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.text.get(name).map(String::as_str)
    }

    /// A histogram's quantiles (empty when it has no recorded values).
    pub fn histogram(&self, name: &str) -> Option<&[Quantile]> {
        self.histograms.get(name).map(Vec::as_slice)
    }

    /// Whether a counter, gauge, text readout or histogram of that exact name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
            || self.histograms.contains_key(name)
            || self.text.contains_key(name)
    }

    /// Iterates counters and gauges (untagged) as `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), *value))
    }

    /// Istio's tagged metrics (`istio_requests_total`, `istio_request_duration_milliseconds`, …).
    pub fn tagged(&self) -> &[TaggedStat] {
        &self.tagged
    }

    /// `istio_requests_total` lines.
    pub fn istio_requests(&self) -> impl Iterator<Item = &TaggedStat> {
        self.tagged
            .iter()
            .filter(|stat| stat.metric == "istio_requests_total")
    }

    /// `istio_requests_total` summed by `(response_code, response_flags)`.
    pub fn istio_requests_by_code_and_flags(&self) -> BTreeMap<(String, String), u64> {
        let mut totals = BTreeMap::new();
        for stat in self.istio_requests() {
            let code = stat.tag("response_code").unwrap_or("").to_string();
            let flags = stat.tag("response_flags").unwrap_or("").to_string();
            *totals.entry((code, flags)).or_insert(0) += stat.value;
        }
        totals
    }

    /// The name as Envoy wrote it for `<root>.<scope>.<leaf>` in either form, if present.
    pub fn scoped_name(&self, kind: ScopeKind, scope: &str, leaf: &str) -> Option<&str> {
        let root = kind.root();
        let plain = format!("{root}.{scope}.{leaf}");
        let delimited = format!("{root}.{scope};.{leaf}");
        let (first, second) = if self.delimited {
            (delimited, plain)
        } else {
            (plain, delimited)
        };
        for candidate in [first, second] {
            if let Some((name, _)) = self.values.get_key_value(&candidate) {
                return Some(name.as_str());
            }
            if let Some((name, _)) = self.histograms.get_key_value(&candidate) {
                return Some(name.as_str());
            }
        }
        None
    }

    /// A counter or gauge of one scope, in either name form: `(name as written, value)`.
    pub fn scoped(&self, kind: ScopeKind, scope: &str, leaf: &str) -> Option<(&str, u64)> {
        let name = self.scoped_name(kind, scope, leaf)?;
        self.values.get(name).map(|value| (name, *value))
    }

    pub fn cluster<'a>(&'a self, cluster: &'a str) -> ScopeView<'a> {
        ScopeView::new(self, ScopeKind::Cluster, cluster)
    }

    pub fn hcm<'a>(&'a self, stat_prefix: &'a str) -> ScopeView<'a> {
        ScopeView::new(self, ScopeKind::Hcm, stat_prefix)
    }

    pub fn listener<'a>(&'a self, name: &'a str) -> ScopeView<'a> {
        ScopeView::new(self, ScopeKind::Listener, name)
    }

    /// The scopes of one kind present in the stats, each once. Delimited names are split at
    /// `;.`; plain names are recognised by a stat every scope has (`membership_total` for
    /// clusters, `downstream_rq_total` for HCMs, `downstream_cx_total` for listeners).
    pub fn scopes(&self, kind: ScopeKind) -> Vec<ScopeName> {
        let prefix = format!("{}.", kind.root());
        let marker = format!(".{}", kind.marker());
        let mut found = BTreeSet::new();
        for name in self.values.keys().chain(self.histograms.keys()) {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            if let Some((scope, _)) = rest.split_once(SCOPE_DELIMITER) {
                if kind != ScopeKind::Listener || !scope.contains(".http.") {
                    found.insert(ScopeName {
                        kind,
                        name: scope.to_string(),
                        delimited: true,
                    });
                }
            } else if let Some(scope) = rest
                .strip_suffix(&marker)
                .or_else(|| known_leaf(kind, rest))
            {
                found.insert(ScopeName {
                    kind,
                    name: scope.to_string(),
                    delimited: false,
                });
            }
        }
        found.into_iter().collect()
    }

    /// The cluster names of the stats, each once.
    pub fn cluster_names(&self) -> Vec<String> {
        self.scope_names(ScopeKind::Cluster)
    }

    pub fn hcm_prefixes(&self) -> Vec<String> {
        self.scope_names(ScopeKind::Hcm)
    }

    pub fn listener_names(&self) -> Vec<String> {
        self.scope_names(ScopeKind::Listener)
    }

    fn scope_names(&self, kind: ScopeKind) -> Vec<String> {
        self.scopes(kind)
            .into_iter()
            .map(|scope| scope.name)
            .collect()
    }
}

/// The stats of one cluster, HCM or listener, looked up in either name form.
#[derive(Debug, Clone, Copy)]
pub struct ScopeView<'a> {
    stats: &'a Stats,
    kind: ScopeKind,
    scope: &'a str,
}

impl<'a> ScopeView<'a> {
    fn new(stats: &'a Stats, kind: ScopeKind, scope: &'a str) -> Self {
        Self { stats, kind, scope }
    }

    /// The value of `leaf` (`upstream_rq_timeout`, `ssl.handshake`), absent when trimmed.
    pub fn get(&self, leaf: &str) -> Option<u64> {
        self.stats
            .scoped(self.kind, self.scope, leaf)
            .map(|(_, value)| value)
    }

    /// The full name as Envoy wrote it, for evidence lines.
    pub fn name_of(&self, leaf: &str) -> Option<&'a str> {
        self.stats.scoped_name(self.kind, self.scope, leaf)
    }

    pub fn histogram(&self, leaf: &str) -> Option<&'a [Quantile]> {
        let name = self.stats.scoped_name(self.kind, self.scope, leaf)?;
        self.stats.histogram(name)
    }

    /// Whether any stat of this scope exists, in either name form (false when Istio trimmed
    /// the scope away).
    pub fn exists(&self) -> bool {
        if self
            .stats
            .scoped_name(self.kind, self.scope, self.kind.marker())
            .is_some()
        {
            return true;
        }
        let plain = format!("{}.{}.", self.kind.root(), self.scope);
        let delimited = format!("{}.{};.", self.kind.root(), self.scope);
        self.stats
            .values
            .keys()
            .chain(self.stats.histograms.keys())
            .any(|name| name.starts_with(&plain) || name.starts_with(&delimited))
    }
}

fn parse_tagged(name: &str, value: u64) -> Option<TaggedStat> {
    let (tag_part, metric) = name.rsplit_once(TAG_SEPARATOR)?;
    if metric.is_empty() || metric.contains(TAG_VALUE_SEPARATOR) {
        return None;
    }
    let mut tags = BTreeMap::new();
    for pair in tag_part.split(TAG_SEPARATOR) {
        let (key, tag_value) = pair.split_once(TAG_VALUE_SEPARATOR)?;
        tags.insert(key.to_string(), tag_value.to_string());
    }
    Some(TaggedStat {
        metric: metric.to_string(),
        tags,
        value,
        raw_name: name.to_string(),
    })
}

/// `P0(nan,0) P25(1.5,2) …` -> quantiles.
fn parse_quantiles(value: &str) -> Option<Vec<Quantile>> {
    value
        .split_whitespace()
        .map(|item| {
            let inner = item.strip_prefix('P')?.strip_suffix(')')?;
            let (quantile, pair) = inner.split_once('(')?;
            let (interval, cumulative) = pair.split_once(',')?;
            Some(Quantile {
                quantile: quantile.parse().ok()?,
                interval: parse_sample(interval)?,
                cumulative: parse_sample(cumulative)?,
            })
        })
        .collect()
}

fn parse_sample(text: &str) -> Option<Option<f64>> {
    if text == "nan" {
        return Some(None);
    }
    text.parse::<f64>().ok().map(Some)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 120;
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[derive(Deserialize)]
struct JsonStats {
    stats: Vec<JsonEntry>,
}

#[derive(Deserialize)]
struct JsonEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    histograms: Option<JsonHistograms>,
}

#[derive(Deserialize)]
struct JsonHistograms {
    #[serde(default)]
    supported_quantiles: Vec<f64>,
    #[serde(default)]
    computed_quantiles: Vec<JsonComputed>,
}

#[derive(Deserialize)]
struct JsonComputed {
    name: String,
    #[serde(default)]
    values: Vec<JsonSample>,
}

#[derive(Deserialize)]
struct JsonSample {
    #[serde(default)]
    interval: Option<f64>,
    #[serde(default)]
    cumulative: Option<f64>,
}

impl Stats {
    /// Reads the failure-mode stats of `targets`, plus `istio_requests_total` by response code
    /// and flags (which survives Istio's stats trimming).
    pub fn snapshot(&self, targets: &Targets) -> Snapshot {
        let stats = self;
        let mut snapshot = Snapshot::default();
        let mut present: BTreeMap<(ScopeKind, String), bool> = BTreeMap::new();
        for spec in COUNTERS {
            for scope in targets.scopes_for(spec) {
                let key = format!("{}.{}.{}", spec.scope.root(), scope, spec.leaf);
                let Some(name) = stats.scoped_name(spec.scope, scope, spec.leaf) else {
                    let scope_present =
                        *present
                            .entry((spec.scope, scope.clone()))
                            .or_insert_with(|| match spec.scope {
                                ScopeKind::Cluster => stats.cluster(scope).exists(),
                                ScopeKind::Hcm => stats.hcm(scope).exists(),
                                ScopeKind::Listener => stats.listener(scope).exists(),
                            });
                    snapshot.missing.push(MissingStat {
                        scope: spec.scope,
                        scope_name: scope.clone(),
                        leaf: spec.leaf.to_string(),
                        mode: spec.mode,
                        scope_present,
                    });
                    continue;
                };
                let mut reading = Reading {
                    stat: name.to_string(),
                    mode: Some(spec.mode),
                    kind: spec.kind,
                    value: stats.get(name).unwrap_or(0),
                    p50: None,
                    p99: None,
                };
                if let Some(quantiles) = stats.histogram(name) {
                    let at = |q: f64| {
                        quantiles
                            .iter()
                            .find(|quantile| (quantile.quantile - q).abs() < f64::EPSILON)
                            .and_then(|quantile| quantile.cumulative)
                    };
                    reading.p50 = at(50.0);
                    reading.p99 = at(99.0);
                }
                snapshot.readings.insert(key, reading);
            }
        }
        for ((code, flags), value) in stats.istio_requests_by_code_and_flags() {
            let key = format!(
                "istio_requests_total{{response_code=\"{code}\",response_flags=\"{flags}\"}}"
            );
            snapshot.readings.insert(
                key.clone(),
                Reading {
                    stat: key,
                    mode: mode_for_request(&code, &flags),
                    kind: Counter,
                    value,
                    p50: None,
                    p99: None,
                },
            );
        }
        snapshot.missing.sort();
        snapshot.missing.dedup();
        snapshot
    }
}

/// Leaves every scope of a kind has besides the marker, for a file cut down to a few lines
/// (`grep pending`): the catalogue's counters and the totals.
const TOTAL_LEAVES: [(ScopeKind, &str); 5] = [
    (ScopeKind::Cluster, "upstream_rq_total"),
    (ScopeKind::Cluster, "upstream_rq_pending_total"),
    (ScopeKind::Cluster, "upstream_cx_total"),
    (ScopeKind::Hcm, "downstream_cx_total"),
    (ScopeKind::Listener, "downstream_cx_active"),
];

/// `rest` without a known leaf of `kind` at its end: the scope name.
fn known_leaf(kind: ScopeKind, rest: &str) -> Option<&str> {
    crate::evidence::envoy::counters::COUNTERS
        .iter()
        .filter(|spec| spec.scope == kind)
        .map(|spec| spec.leaf)
        .chain(
            TOTAL_LEAVES
                .iter()
                .filter(|(scope, _)| *scope == kind)
                .map(|(_, leaf)| *leaf),
        )
        .find_map(|leaf| {
            rest.strip_suffix(leaf)
                .and_then(|scope| scope.strip_suffix('.'))
                .filter(|scope| !scope.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VLLM: &str = "outbound|8000||vllm.ns.svc.cluster.local";

    #[test]
    fn reads_plain_and_delimited_names_alike() {
        let plain = Stats::parse_text(
            "cluster.outbound|8000||vllm.ns.svc.cluster.local.upstream_rq_timeout: 3\n\
             cluster.outbound|8000||vllm.ns.svc.cluster.local.membership_total: 1\n\
             http.inbound_0.0.0.0_8000.downstream_rq_idle_timeout: 2\n\
             http.inbound_0.0.0.0_8000.downstream_rq_total: 9\n",
        )
        .unwrap();
        let delimited = Stats::parse_text(
            "cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_rq_timeout: 3\n\
             cluster.outbound|8000||vllm.ns.svc.cluster.local;.membership_total: 1\n\
             http.inbound_0.0.0.0_8000;.downstream_rq_idle_timeout: 2\n\
             http.inbound_0.0.0.0_8000;.downstream_rq_total: 9\n",
        )
        .unwrap();
        for stats in [&plain, &delimited] {
            assert_eq!(stats.cluster(VLLM).get("upstream_rq_timeout"), Some(3));
            assert_eq!(
                stats
                    .hcm("inbound_0.0.0.0_8000")
                    .get("downstream_rq_idle_timeout"),
                Some(2)
            );
            assert_eq!(stats.cluster_names(), vec![VLLM.to_string()]);
            assert_eq!(
                stats.hcm_prefixes(),
                vec!["inbound_0.0.0.0_8000".to_string()]
            );
            assert!(stats.cluster(VLLM).exists());
            assert!(!stats.cluster("outbound|9000||other").exists());
        }
        assert!(!plain.uses_delimited_names());
        assert!(delimited.uses_delimited_names());
        assert_eq!(
            delimited.cluster(VLLM).name_of("upstream_rq_timeout"),
            Some("cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_rq_timeout")
        );
    }

    #[test]
    fn splits_istio_tagged_requests_by_code_and_flags() {
        let text = "reporter=.=destination;.;source_workload=.=istio-ingressgateway;.;response_code=.=504;.;response_flags=.=UT;.;istio_requests_total: 4\n\
                    reporter=.=destination;.;source_workload=.=sleep;.;response_code=.=504;.;response_flags=.=UT;.;istio_requests_total: 1\n\
                    reporter=.=destination;.;response_code=.=200;.;response_flags=.=-;.;istio_requests_total: 10\n\
                    reporter=.=destination;.;response_code=.=200;.;response_flags=.=-;.;istio_request_bytes: 7\n";
        let stats = Stats::parse_text(text).unwrap();
        assert_eq!(stats.tagged().len(), 4);
        let totals = stats.istio_requests_by_code_and_flags();
        assert_eq!(totals[&("504".to_string(), "UT".to_string())], 5);
        assert_eq!(totals[&("200".to_string(), "-".to_string())], 10);
        let first = stats.istio_requests().next().unwrap();
        assert_eq!(first.tag("source_workload"), Some("istio-ingressgateway"));
        assert_eq!(first.metric, "istio_requests_total");
    }

    #[test]
    fn keeps_histograms_and_text_readouts() {
        let text = "http.admin.downstream_cx_length_ms: P0(0,0) P25(0,0) P50(nan,1.5) P99.9(7.05,7.05) P100(7.05,7.05)\n\
                    cluster.x.upstream_cx_connect_ms: No recorded values\n\
                    control_plane.identifier: \"istiod-abc\"\n";
        let stats = Stats::parse_text(text).unwrap();
        let histogram = stats
            .histogram("http.admin.downstream_cx_length_ms")
            .unwrap();
        assert_eq!(histogram.len(), 5);
        assert_eq!(histogram[2].quantile, 50.0);
        assert_eq!(histogram[2].interval, None);
        assert_eq!(histogram[2].cumulative, Some(1.5));
        assert_eq!(histogram[3].quantile, 99.9);
        assert!(
            stats
                .histogram("cluster.x.upstream_cx_connect_ms")
                .unwrap()
                .is_empty()
        );
        assert_eq!(stats.text("control_plane.identifier"), Some("istiod-abc"));
    }

    #[test]
    fn malformed_input_names_the_line() {
        let error = Stats::parse_text("server.live: 1\n<!DOCTYPE html>\n").unwrap_err();
        match &error {
            StatsError::Malformed { line, text, .. } => {
                assert_eq!(*line, 2);
                assert_eq!(text, "<!DOCTYPE html>");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(error.to_string().contains("line 2"));
        let error = Stats::parse_text("server.live: yes\n").unwrap_err();
        assert!(error.to_string().contains("line 1"), "{error}");
        let error = Stats::parse_text("a.b: P0(x)\n").unwrap_err();
        assert!(error.to_string().contains("histogram"), "{error}");
    }

    #[test]
    fn reads_the_json_form() {
        let json = r#"{"stats":[
            {"name":"cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_rq_timeout","value":2},
            {"name":"cluster.outbound|8000||vllm.ns.svc.cluster.local;.membership_total","value":1},
            {"name":"control_plane.identifier","value":"istiod"},
            {"name":"reporter=.=source;.;response_code=.=503;.;response_flags=.=UO;.;istio_requests_total","value":6},
            {"histograms":{"supported_quantiles":[0,50,100],"computed_quantiles":[
                {"name":"cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_cx_connect_ms",
                 "values":[{"interval":null,"cumulative":1},{"interval":null,"cumulative":2},{"interval":null,"cumulative":3}]}]}}
        ]}"#;
        let stats = Stats::parse_json(json).unwrap();
        assert_eq!(stats.cluster(VLLM).get("upstream_rq_timeout"), Some(2));
        assert_eq!(stats.text("control_plane.identifier"), Some("istiod"));
        assert_eq!(
            stats.istio_requests_by_code_and_flags()[&("503".to_string(), "UO".to_string())],
            6
        );
        let connect = stats
            .cluster(VLLM)
            .histogram("upstream_cx_connect_ms")
            .unwrap();
        assert_eq!(connect[1].quantile, 50.0);
        assert_eq!(connect[1].cumulative, Some(2.0));
        assert!(Stats::parse_json("<html></html>").is_err());
        assert!(Stats::parse_json(r#"{"stats":[{"name":"a","value":-1}]}"#).is_err());
    }

    #[test]
    fn finds_listener_scopes_without_the_http_sub_scope() {
        let stats = Stats::parse_text(
            "listener.0.0.0.0_15006.downstream_cx_total: 4\n\
             listener.0.0.0.0_15006.ssl.handshake: 4\n\
             listener.0.0.0.0_15006.http.inbound_0.0.0.0_8000;.downstream_rq_2xx: 4\n",
        )
        .unwrap();
        assert_eq!(stats.listener_names(), vec!["0.0.0.0_15006".to_string()]);
        assert_eq!(
            stats.listener("0.0.0.0_15006").get("ssl.handshake"),
            Some(4)
        );
    }
}

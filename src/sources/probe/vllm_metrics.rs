//! vLLM's own `/metrics` (Prometheus text): gauges and histogram deltas around a probe, under
//! the names of old and new vLLM versions.

use super::client::{HttpClient, endpoint};
use crate::evidence::probe::server_side::{HistogramDelta, Naming, ServerSide};
use reqwest::Url;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest `/metrics` body read.
const METRICS_BODY_LIMIT: usize = 8 << 20;

const TTFT: &[&str] = &["vllm:time_to_first_token_seconds"];
/// Renamed in vLLM 0.9/0.10: per-token latency became `inter_token_latency_seconds`.
const ITL: &[&str] = &[
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
];
const E2E: &[&str] = &["vllm:e2e_request_latency_seconds"];
const QUEUE: &[&str] = &["vllm:request_queue_time_seconds"];
const RUNNING: &[&str] = &["vllm:num_requests_running"];
const WAITING: &[&str] = &["vllm:num_requests_waiting"];
/// Renamed in vLLM V1: `gpu_cache_usage_perc` became `kv_cache_usage_perc`.
const KV_CACHE: &[&str] = &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"];

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    samples: Vec<Sample>,
    /// Lines that were neither comments nor samples.
    pub unreadable_lines: usize,
}

impl MetricsSnapshot {
    /// Parses Prometheus text exposition; lines it cannot read are counted, not fatal.
    pub fn parse(text: &str) -> Self {
        let mut snapshot = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_sample(line) {
                Some(sample) => snapshot.samples.push(sample),
                None => snapshot.unreadable_lines += 1,
            }
        }
        snapshot
    }

    /// Sum over every label set (several engines or models); `None` when the name is absent.
    fn sum_of(&self, name: &str) -> Option<f64> {
        let mut values = self
            .samples
            .iter()
            .filter(|sample| sample.name == name)
            .map(|sample| sample.value)
            .peekable();
        values.peek()?;
        Some(values.sum())
    }

    /// The first of `names` present, with its sum.
    fn total(&self, names: &[&'static str]) -> Option<(&'static str, f64)> {
        names
            .iter()
            .find_map(|name| self.sum_of(name).map(|value| (*name, value)))
    }

    fn histogram(&self, names: &[&'static str]) -> Option<HistogramTotals> {
        names.iter().find_map(|name| {
            Some(HistogramTotals {
                name,
                count: self.sum_of(&format!("{name}_count"))?,
                sum: self.sum_of(&format!("{name}_sum"))?,
            })
        })
    }

    pub fn running(&self) -> Option<f64> {
        self.total(RUNNING).map(|(_, value)| value)
    }

    pub fn waiting(&self) -> Option<f64> {
        self.total(WAITING).map(|(_, value)| value)
    }

    pub fn kv_cache_usage(&self) -> Option<f64> {
        self.total(KV_CACHE).map(|(_, value)| value)
    }

    /// Whether this server uses the newer metric names, the older ones, or neither.
    pub fn naming(&self) -> Naming {
        let has = |name: &str| self.samples.iter().any(|s| s.name.starts_with(name));
        if has(ITL[0]) || has(KV_CACHE[0]) {
            Naming::Current
        } else if has(ITL[1]) || has(KV_CACHE[1]) {
            Naming::Legacy
        } else if self.samples.iter().any(|s| s.name.starts_with("vllm:")) {
            Naming::Unknown
        } else {
            Naming::NotVllm
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct HistogramTotals {
    name: &'static str,
    count: f64,
    sum: f64,
}

impl ServerSide {
    pub fn between(before: &MetricsSnapshot, after: &MetricsSnapshot) -> Self {
        let delta = |names: &[&'static str]| {
            let start = before.histogram(names);
            let end = after.histogram(names)?;
            let (count0, sum0) = start
                .filter(|s| s.name == end.name)
                .map_or((0.0, 0.0), |s| (s.count, s.sum));
            let observations = end.count - count0;
            Some(HistogramDelta {
                metric: end.name.to_string(),
                observations,
                mean_ms: (observations > 0.0).then(|| (end.sum - sum0) / observations * 1000.0),
            })
        };
        Self {
            naming: after.naming(),
            ttft: delta(TTFT),
            inter_token: delta(ITL),
            e2e: delta(E2E),
            queue_time: delta(QUEUE),
            running_after: after.running(),
            waiting_after: after.waiting(),
            kv_cache_usage_after: after.kv_cache_usage(),
            peak_running: None,
            peak_waiting: None,
        }
    }
}

/// Scrapes `BASE/metrics`.
pub async fn scrape(
    client: &HttpClient,
    base: &Url,
    host: Option<&str>,
    timeout: Duration,
) -> Result<MetricsSnapshot, String> {
    let url = endpoint(base, "metrics");
    let mut request = client.inner().get(url.clone());
    if let Some(host) = host {
        request = request.header(reqwest::header::HOST, host);
    }
    let read = async {
        let mut response = request
            .send()
            .await
            .map_err(|error| super::sse::describe_transport(&error))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| super::sse::describe_transport(&error))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > METRICS_BODY_LIMIT {
                return Err(format!("GET {url}: more than {METRICS_BODY_LIMIT} bytes"));
            }
        }
        Ok(MetricsSnapshot::parse(&String::from_utf8_lossy(&body)))
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        format!(
            "GET {url}: no answer within {}",
            crate::units::duration::display(timeout)
        )
    })?
}

/// `name{a="x",b="y"} value [timestamp]`
fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ', '\t']) {
        Some(index) => line.split_at(index),
        None => return None,
    };
    if name.is_empty() {
        return None;
    }
    let (labels, rest) = if let Some(inside) = rest.strip_prefix('{') {
        parse_labels(inside)?
    } else {
        (BTreeMap::new(), rest)
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `a="x",b="y"}` and returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = text.split_once('=')?;
        let mut rest = rest.strip_prefix('"')?;
        let mut value = String::new();
        loop {
            let mut chars = rest.char_indices();
            let (index, c) = chars.next()?;
            match c {
                '"' => {
                    rest = &rest[index + 1..];
                    break;
                }
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        other => other,
                    });
                    rest = &rest[index + 1 + escaped.len_utf8()..];
                }
                other => {
                    value.push(other);
                    rest = &rest[index + other.len_utf8()..];
                }
            }
        }
        labels.insert(key.trim().to_string(), value);
        text = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE_NEW: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 0.0
vllm:num_requests_waiting{engine="0",model_name="m"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 1.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 1.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.05
vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 10.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 0.2
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 1.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 0.0
"#;

    const AFTER_NEW: &str = r#"vllm:num_requests_running{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 5.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 3.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 0.45
vllm:inter_token_latency_seconds_count{engine="0",model_name="m"} 30.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="m"} 0.6
vllm:request_queue_time_seconds_count{engine="0",model_name="m"} 3.0
vllm:request_queue_time_seconds_sum{engine="0",model_name="m"} 1.0
"#;

    #[test]
    fn deltas_give_server_side_means() {
        let side = ServerSide::between(
            &MetricsSnapshot::parse(BEFORE_NEW),
            &MetricsSnapshot::parse(AFTER_NEW),
        );
        assert_eq!(side.naming, Naming::Current);
        let ttft = side.ttft.unwrap();
        assert_eq!(ttft.observations, 2.0);
        assert!((ttft.mean_ms.unwrap() - 200.0).abs() < 1e-6);
        let itl = side.inter_token.unwrap();
        assert_eq!(itl.metric, "vllm:inter_token_latency_seconds");
        assert!((itl.mean_ms.unwrap() - 20.0).abs() < 1e-6);
        assert!((side.queue_time.unwrap().mean_ms.unwrap() - 500.0).abs() < 1e-6);
        assert_eq!(side.e2e, None);
        assert_eq!(side.running_after, Some(2.0));
        assert_eq!(side.waiting_after, Some(5.0));
        assert_eq!(side.kv_cache_usage_after, Some(0.5));
    }

    #[test]
    fn legacy_names_are_read() {
        let before = MetricsSnapshot::parse(
            "vllm:time_per_output_token_seconds_count{model_name=\"m\"} 1\nvllm:time_per_output_token_seconds_sum{model_name=\"m\"} 0.01\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.1\n",
        );
        let after = MetricsSnapshot::parse(
            "vllm:time_per_output_token_seconds_count{model_name=\"m\"} 3\nvllm:time_per_output_token_seconds_sum{model_name=\"m\"} 0.05\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.7\n",
        );
        let side = ServerSide::between(&before, &after);
        assert_eq!(side.naming, Naming::Legacy);
        let itl = side.inter_token.unwrap();
        assert_eq!(itl.metric, "vllm:time_per_output_token_seconds");
        assert!((itl.mean_ms.unwrap() - 20.0).abs() < 1e-6);
        assert_eq!(side.kv_cache_usage_after, Some(0.7));
    }

    #[test]
    fn several_engines_add_up_and_odd_lines_are_counted() {
        let snapshot = MetricsSnapshot::parse(
            "vllm:num_requests_waiting{engine=\"0\",model_name=\"a \\\"b\\\"\"} 2\nvllm:num_requests_waiting{engine=\"1\"} 3 1700000000000\ngarbage line here\n{}\n",
        );
        assert_eq!(snapshot.waiting(), Some(5.0));
        assert_eq!(snapshot.unreadable_lines, 2);
        assert_eq!(snapshot.samples[0].labels["model_name"], "a \"b\"");
        assert_eq!(snapshot.running(), None);
        assert_eq!(snapshot.naming(), Naming::Unknown);
        assert_eq!(MetricsSnapshot::parse("up 1\n").naming(), Naming::NotVllm);
    }
}

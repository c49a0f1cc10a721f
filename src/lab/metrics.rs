//! What the lab server served, as vLLM's `/metrics` names it (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// vLLM's buckets for time to first token (seconds).
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's buckets for inter-token latency (seconds).
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's buckets for whole-request latencies (seconds): end to end, queue time.
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe_n(&mut self, value: Duration, times: u64) {
        let seconds = value.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += times;
            }
        }
        self.sum += seconds * times as f64;
        self.count += times;
    }
}

#[derive(Debug, Clone)]
struct State {
    running: u64,
    waiting: u64,
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue: Histogram,
    prompt_tokens: u64,
    generation_tokens: u64,
    finished: BTreeMap<&'static str, u64>,
}

/// Live gauges and histograms, updated by each request as it moves through queue and generation.
#[derive(Debug)]
pub(crate) struct Metrics {
    state: Mutex<State>,
    created: f64,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs_f64())
            .unwrap_or_default();
        Self {
            state: Mutex::new(State {
                running: 0,
                waiting: 0,
                ttft: Histogram::new(TTFT_BUCKETS),
                itl: Histogram::new(ITL_BUCKETS),
                e2e: Histogram::new(REQUEST_BUCKETS),
                queue: Histogram::new(REQUEST_BUCKETS),
                prompt_tokens: 0,
                generation_tokens: 0,
                finished: BTreeMap::new(),
            }),
            created,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn enqueued(&self, prompt_tokens: u32) {
        let mut state = self.lock();
        state.waiting += 1;
        state.prompt_tokens += u64::from(prompt_tokens);
    }

    pub(crate) fn left_queue(&self) {
        let mut state = self.lock();
        state.waiting = state.waiting.saturating_sub(1);
    }

    /// Returns the number now running.
    pub(crate) fn scheduled(&self, queue_time: Duration) -> u64 {
        let mut state = self.lock();
        state.running += 1;
        state.queue.observe_n(queue_time, 1);
        state.running
    }

    pub(crate) fn unscheduled(&self) {
        let mut state = self.lock();
        state.running = state.running.saturating_sub(1);
    }

    pub(crate) fn first_token(&self, ttft: Duration) {
        let mut state = self.lock();
        state.ttft.observe_n(ttft, 1);
        state.generation_tokens += 1;
    }

    pub(crate) fn next_tokens(&self, gap: Duration, tokens: u64) {
        let mut state = self.lock();
        state.itl.observe_n(gap, tokens);
        state.generation_tokens += tokens;
    }

    pub(crate) fn finished(&self, reason: &'static str, e2e: Duration) {
        let mut state = self.lock();
        state.e2e.observe_n(e2e, 1);
        *state.finished.entry(reason).or_default() += 1;
    }

    pub(crate) fn waiting(&self) -> u64 {
        self.lock().waiting
    }

    /// Prometheus text as vLLM's `/metrics` writes it (labels `model_name` and `engine`).
    pub(crate) fn render(&self, model: &str, max_num_seqs: usize, legacy_names: bool) -> String {
        let state = self.lock().clone();
        let labels = format!("model_name=\"{}\",engine=\"0\"", escape_label(model));
        let mut out = String::new();
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            &labels,
            state.running as f64,
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            &labels,
            state.waiting as f64,
        );
        let cache_name = if legacy_names {
            "vllm:gpu_cache_usage_perc"
        } else {
            "vllm:kv_cache_usage_perc"
        };
        let usage = if max_num_seqs == 0 {
            0.0
        } else {
            state.running as f64 / max_num_seqs as f64
        };
        gauge(
            &mut out,
            cache_name,
            "KV-cache usage. 1 means 100 percent usage.",
            &labels,
            usage,
        );
        self.counter(
            &mut out,
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            &labels,
            state.prompt_tokens,
        );
        self.counter(
            &mut out,
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            &labels,
            state.generation_tokens,
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter"
        );
        for (reason, count) in &state.finished {
            let _ = writeln!(
                out,
                "vllm:request_success_total{{{labels},finished_reason=\"{reason}\"}} {:?}",
                *count as f64
            );
        }
        self.histogram(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &labels,
            &state.ttft,
        );
        let itl_name = if legacy_names {
            "vllm:time_per_output_token_seconds"
        } else {
            "vllm:inter_token_latency_seconds"
        };
        self.histogram(
            &mut out,
            itl_name,
            "Histogram of inter-token latency in seconds.",
            &labels,
            &state.itl,
        );
        self.histogram(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &labels,
            &state.e2e,
        );
        self.histogram(
            &mut out,
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &labels,
            &state.queue,
        );
        out
    }

    fn counter(&self, out: &mut String, name: &str, help: &str, labels: &str, value: u64) {
        let _ = writeln!(
            out,
            "# HELP {name}_total {help}\n# TYPE {name}_total counter"
        );
        let _ = writeln!(out, "{name}_total{{{labels}}} {:?}", value as f64);
        let _ = writeln!(out, "{name}_created{{{labels}}} {:?}", self.created);
    }

    fn histogram(&self, out: &mut String, name: &str, help: &str, labels: &str, h: &Histogram) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in h.bounds.iter().zip(&h.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound:?}\"}} {:?}",
                *count as f64
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {:?}",
            h.count as f64
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {:?}", h.count as f64);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {:?}", h.sum);
        let _ = writeln!(out, "{name}_created{{{labels}}} {:?}", self.created);
    }
}

fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    let _ = writeln!(out, "{name}{{{labels}}} {value:?}");
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::new();
        metrics.first_token(Duration::from_millis(30));
        metrics.first_token(Duration::from_secs(3));
        let text = metrics.render("m", 4, false);
        assert!(
            text.contains("vllm:time_to_first_token_seconds_bucket{model_name=\"m\",engine=\"0\",le=\"0.02\"} 0.0"),
            "{text}"
        );
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",engine=\"0\",le=\"0.04\"} 1.0"
        ));
        assert!(text.contains(
            "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",engine=\"0\",le=\"+Inf\"} 2.0"
        ));
        assert!(
            text.contains(
                "vllm:time_to_first_token_seconds_count{model_name=\"m\",engine=\"0\"} 2.0"
            )
        );
        assert!(text.contains("vllm:generation_tokens_total{model_name=\"m\",engine=\"0\"} 2.0"));
    }

    #[test]
    fn gauges_follow_queue_and_schedule() {
        let metrics = Metrics::new();
        metrics.enqueued(3);
        metrics.enqueued(3);
        metrics.left_queue();
        metrics.scheduled(Duration::from_millis(1));
        let text = metrics.render("m", 4, false);
        assert!(text.contains("vllm:num_requests_running{model_name=\"m\",engine=\"0\"} 1.0"));
        assert!(text.contains("vllm:num_requests_waiting{model_name=\"m\",engine=\"0\"} 1.0"));
        assert!(text.contains("vllm:kv_cache_usage_perc{model_name=\"m\",engine=\"0\"} 0.25"));
        assert!(text.contains("vllm:inter_token_latency_seconds_count"));
    }

    #[test]
    fn legacy_names_replace_the_new_ones() {
        let text = Metrics::new().render("m", 4, true);
        assert!(text.contains("vllm:time_per_output_token_seconds_count"));
        assert!(text.contains("vllm:gpu_cache_usage_perc"));
        assert!(!text.contains("vllm:inter_token_latency_seconds"));
        assert!(!text.contains("vllm:kv_cache_usage_perc"));
    }
}

//! How exactly does the probe time tokens? Measured ITL against the lab server's true send times.
//!
//! The lab server runs on its own thread and runtime and records the instant it hands each token
//! to its connection; the probe's SSE client runs on the main thread. Both read the same
//! monotonic clock, so per chunk we get the probe's latency (send → recorded by the probe: the
//! whole path through hyper, loopback TCP, reqwest, SSE parsing and JSON) and its ITL error
//! (measured gap − true gap). Baselines: `curl -N` (throughput) and a `vllm bench serve`-style
//! Python client (ITL error). Run: `cargo bench --bench probe_itl`. Results: docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubectl_infermesh::evidence::probe::path::{EndReason, percentile};
use kubectl_infermesh::evidence::probe::report::Api;
use kubectl_infermesh::lab::{self, RunningServer, ServerConfig};
use kubectl_infermesh::sources::probe::client::{ClientOptions, HttpClient, parse_base_url};
use kubectl_infermesh::sources::probe::request::{GenerationSpec, Target};
use kubectl_infermesh::sources::probe::sse::{self, Limits, StreamRecord};
use kubectl_infermesh::sources::stop::Stop;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct ServerThread {
    server: Arc<RunningServer>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    fn start(config: ServerConfig) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Arc::new(lab::spawn(config).await.unwrap());
                ready_tx.send(Arc::clone(&server)).unwrap();
                let _ = stopped.await;
            });
        });
        let server = ready_rx.recv().unwrap();
        Self {
            server,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits (bounded) until the server has logged `count` finished requests.
    fn send_log(&self, count: usize) -> Vec<Vec<Instant>> {
        for _ in 0..200 {
            let log = self.server.send_log();
            if log.len() >= count {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the server did not log request {count}");
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Default)]
struct Samples {
    latency_us: Vec<f64>,
    itl_error_us: Vec<f64>,
    measured_itl_ms: Vec<f64>,
    true_itl_ms: Vec<f64>,
}

impl Samples {
    fn add(&mut self, record: &StreamRecord, sends: &[Instant]) {
        assert_eq!(record.end, EndReason::Done, "{:?}", record.detail);
        assert_eq!(
            record.content_at.len(),
            sends.len(),
            "chunks != tokens sent"
        );
        let arrivals: Vec<Instant> = record
            .content_at
            .iter()
            .map(|offset| record.started + *offset)
            .collect();
        for (arrived, sent) in arrivals.iter().zip(sends) {
            self.latency_us.push(signed_us(*arrived, *sent));
        }
        for i in 1..sends.len() {
            let measured = signed_us(arrivals[i], arrivals[i - 1]);
            let truth = signed_us(sends[i], sends[i - 1]);
            self.itl_error_us.push((measured - truth).abs());
            self.measured_itl_ms.push(measured / 1000.0);
            self.true_itl_ms.push(truth / 1000.0);
        }
    }
}

/// `a − b` in µs, negative when `a` is earlier.
fn signed_us(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1e6,
        None => -(b.duration_since(a).as_secs_f64() * 1e6),
    }
}

fn pct(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, q)
}

fn target(server: &RunningServer) -> Target {
    Target::new(
        &parse_base_url(&server.url()).unwrap(),
        Api::Completions,
        None,
        None,
    )
}

fn body(tokens: u32) -> serde_json::Value {
    GenerationSpec {
        api: Api::Completions,
        model: "lab-model".to_string(),
        prompt: "benchmark".to_string(),
        max_tokens: tokens,
        exact_length: true,
        stream: true,
    }
    .body()
}

const LIMITS: Limits = Limits {
    overall: Duration::from_secs(300),
    idle: Duration::from_secs(60),
};

fn paced(name: &str, tokens_per_second: f64, tokens: u32, runs: usize, http2: bool) {
    let thread = ServerThread::start(ServerConfig {
        tokens_per_second,
        record_send_times: true,
        ..ServerConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = HttpClient::new(ClientOptions {
        http2_prior_knowledge: http2,
        ..ClientOptions::default()
    })
    .unwrap();
    let target = target(&thread.server);
    let mut samples = Samples::default();
    for run in 0..runs {
        let record = runtime.block_on(sse::stream(
            &client,
            &target,
            &body(tokens),
            LIMITS,
            &Stop::never(),
            &|_| {},
        ));
        let log = thread.send_log(run + 1);
        samples.add(&record, &log[run]);
    }
    println!(
        "| {name} | {:.2} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        1000.0 / tokens_per_second,
        pct(&samples.true_itl_ms, 50.0),
        pct(&samples.measured_itl_ms, 50.0),
        pct(&samples.itl_error_us, 50.0),
        pct(&samples.itl_error_us, 99.0),
        pct(&samples.latency_us, 50.0),
        pct(&samples.latency_us, 99.0),
        pct(&samples.latency_us, 100.0),
        samples.latency_us.len(),
    );
}

/// Unpaced: the whole pipeline's cost per chunk, probe against `curl -N`.
fn unpaced(tokens: u32) {
    let thread = ServerThread::start(ServerConfig {
        tokens_per_second: 0.0,
        ..ServerConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = HttpClient::new(ClientOptions::default()).unwrap();
    let target = target(&thread.server);
    let mut probe_us = Vec::new();
    for _ in 0..3 {
        let record = runtime.block_on(sse::stream(
            &client,
            &target,
            &body(tokens),
            LIMITS,
            &Stop::never(),
            &|_| {},
        ));
        assert_eq!(record.end, EndReason::Done);
        let span = record.last_content_at().unwrap() - record.ttft().unwrap();
        probe_us.push(span.as_secs_f64() * 1e6 / f64::from(tokens - 1));
    }
    let mut curl_us = Vec::new();
    for _ in 0..3 {
        let output = Command::new("curl")
            .args([
                "-N",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{time_starttransfer} %{time_total}",
            ])
            .args(["-H", "content-type: application/json", "-d"])
            .arg(body(tokens).to_string())
            .arg(format!("{}/v1/completions", thread.server.url()))
            .output();
        let Ok(output) = output else {
            println!("curl not found: no curl baseline");
            break;
        };
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let times: Vec<f64> = text
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        if let [start, total] = times[..] {
            curl_us.push((total - start) * 1e6 / f64::from(tokens - 1));
        }
    }
    println!(
        "| unpaced, {tokens} tokens, HTTP/1.1 | probe {:.1} µs/chunk | curl -N {} |",
        pct(&probe_us, 50.0),
        if curl_us.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.1} µs/chunk", pct(&curl_us, 50.0))
        }
    );
}

/// A `vllm bench serve`-style Python client's ITL error against the same truth.
fn python_baseline(tokens_per_second: f64, tokens: u32) {
    let thread = ServerThread::start(ServerConfig {
        tokens_per_second,
        record_send_times: true,
        ..ServerConfig::default()
    });
    let addr = thread.server.addr();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sse_itl_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg("lab-model")
        .arg(tokens.to_string())
        .output();
    let Ok(output) = output else {
        println!("python3 not found: no Python baseline");
        return;
    };
    let arrivals: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect();
    let sends = &thread.send_log(1)[0];
    if arrivals.len() != sends.len() {
        println!(
            "python client saw {} of {} tokens",
            arrivals.len(),
            sends.len()
        );
        return;
    }
    let errors: Vec<f64> = (1..sends.len())
        .map(|i| {
            let measured = (arrivals[i] - arrivals[i - 1]) / 1000.0;
            (measured - signed_us(sends[i], sends[i - 1])).abs()
        })
        .collect();
    println!(
        "| python http.client, {:.0} tok/s, {tokens} tokens | ITL error p50 {:.1} µs, p99 {:.1} µs |",
        tokens_per_second,
        pct(&errors, 50.0),
        pct(&errors, 99.0)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: do not measure there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("probe_itl: run with `cargo bench --bench probe_itl`");
        return;
    }
    println!(
        "| scenario | nominal ITL ms | true ITL p50 ms | measured ITL p50 ms | ITL error p50 µs | ITL error p99 µs | latency p50 µs | latency p99 µs | latency max µs | chunks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    paced("200 tok/s, HTTP/1.1", 200.0, 1000, 3, false);
    paced("200 tok/s, h2c", 200.0, 1000, 3, true);
    paced("50 tok/s, HTTP/1.1", 50.0, 250, 2, false);
    paced("1000 tok/s, HTTP/1.1", 1000.0, 3000, 2, false);
    println!();
    unpaced(20_000);
    python_baseline(200.0, 1000);
}

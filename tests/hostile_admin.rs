#![allow(clippy::unwrap_used)]
//! Envoy admin ports that misbehave, reached as on a cluster (a port-forward to the vLLM pod's
//! 15000): one that trickles a byte a second, one whose `/stats` never ends, one whose
//! `config_dump` is cut off mid-JSON. Each run ends in bounded time and memory with a report
//! that names the gap; what could be read is still judged.

mod support;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::apiserver::{ApiServer, ApiServerConfig, NAMESPACE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";
const SERVER_INFO: &str = r#"{"version":"0000/1.40.0/Clean/RELEASE/BoringSSL","state":"LIVE","command_line_options":{"concurrency":2}}"#;
const EMPTY_DUMP: &str = r#"{"configs":[]}"#;

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Every answer comes one byte a second.
    Trickle,
    /// `/stats` streams counters forever (no content-length).
    EndlessStats,
    /// `/config_dump` stops halfway through its JSON and the connection closes.
    TruncatedConfigDump,
}

/// An admin port that answers `/server_info` like Envoy and misbehaves as asked.
async fn hostile_admin(misbehaviour: Misbehaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, misbehaviour));
        }
    });
    address
}

/// Requests on one connection, one after the other, until the client or the misbehaviour
/// ends it.
async fn serve(mut socket: TcpStream, misbehaviour: Misbehaviour) {
    let mut pending = Vec::new();
    loop {
        let Some(path) = read_request(&mut socket, &mut pending).await else {
            return;
        };
        let kept_alive = match (misbehaviour, path.split('?').next().unwrap_or_default()) {
            (Misbehaviour::Trickle, _) => trickle(&mut socket, SERVER_INFO).await,
            (_, "/server_info") => answer(&mut socket, "application/json", SERVER_INFO).await,
            (Misbehaviour::EndlessStats, "/config_dump") => {
                answer(&mut socket, "application/json", EMPTY_DUMP).await
            }
            (Misbehaviour::EndlessStats, "/stats") => endless_stats(&mut socket).await,
            (Misbehaviour::TruncatedConfigDump, "/config_dump") => {
                let whole = fixture("istio-1.13-describe-http-config.json");
                let half = &whole[..whole.len() / 2];
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(half.as_bytes()).await;
                false
            }
            (Misbehaviour::TruncatedConfigDump, "/stats") => {
                let stats = fixture("datadog-stats-multiple-services.txt");
                answer(&mut socket, "text/plain", &stats).await
            }
            _ => answer(&mut socket, "text/plain", "").await,
        };
        if !kept_alive {
            let _ = socket.shutdown().await;
            return;
        }
    }
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The next request's path, reading until the end of its head; None when the client is gone.
async fn read_request(socket: &mut TcpStream, pending: &mut Vec<u8>) -> Option<String> {
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 4);
            return head.split(' ').nth(1).map(str::to_string);
        }
        let read = socket.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        pending.extend_from_slice(&buffer[..read]);
    }
}

async fn answer(socket: &mut TcpStream, content_type: &str, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.is_ok()
        && socket.write_all(body.as_bytes()).await.is_ok()
}

async fn trickle(socket: &mut TcpStream, body: &str) -> bool {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for byte in body.as_bytes() {
        if socket.write_all(&[*byte]).await.is_err() {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    true
}

/// Counters without end, until the client hangs up.
async fn endless_stats(socket: &mut TcpStream) -> bool {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n";
    if socket.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    let mut chunk = String::new();
    for index in 0..2000 {
        chunk.push_str(&format!("cluster.c{index}.upstream_rq_total: {index}\n"));
    }
    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
    false
}

struct Run {
    code: Option<i32>,
    report: Value,
    stderr: String,
    took: Duration,
    /// The binary's peak resident memory, in MiB.
    peak_rss_mib: u64,
}

/// `diagnose -n inference -o json` with the vLLM pod's admin port forwarded to `admin`.
async fn diagnose_against(admin: SocketAddr, extra: &[&str]) -> Run {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin);
    let api = ApiServer::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let started = Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .args(["diagnose", "-n", NAMESPACE, "-o", "json"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let peak = tokio::spawn(peak_rss_mib(pid));
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("diagnose did not finish in 90 s")
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("no JSON report ({error}); stderr: {stderr}"));
    Run {
        code: output.status.code(),
        report,
        stderr,
        took,
        peak_rss_mib: peak.await.unwrap(),
    }
}

/// The process's high-water mark of resident memory (`VmHWM` in /proc), sampled until it exits.
async fn peak_rss_mib(pid: u32) -> u64 {
    let mut peak = 0;
    let path = format!("/proc/{pid}/status");
    while let Ok(status) = std::fs::read_to_string(&path) {
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            });
        match kib {
            Some(kib) => peak = peak.max(kib / 1024),
            // A zombie has no memory lines left: it has exited.
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak
}

fn gaps(report: &Value) -> Vec<String> {
    let top = report["gaps"].as_array().into_iter().flatten();
    let per_target = report["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|target| target["gaps"].as_array().into_iter().flatten());
    top.chain(per_target)
        .map(|gap| {
            format!(
                "{}: {}",
                gap["what"].as_str().unwrap_or_default(),
                gap["reason"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_admin_port_is_a_gap_within_the_request_timeout() {
    let admin = hostile_admin(Misbehaviour::Trickle).await;
    let run = diagnose_against(admin, &["--request-timeout", "3s"]).await;
    let gaps = gaps(&run.report);
    assert!(
        gaps.iter()
            .any(|gap| gap.contains(VLLM_POD) && gap.contains("did not answer within 3s")),
        "{gaps:#?}\n{}",
        run.stderr
    );
    // One admin call at 3 s (the first one stops the reading), listing and the rest around it.
    assert!(run.took < Duration::from_secs(20), "took {:?}", run.took);
    assert_eq!(run.report["targets"].as_array().unwrap().len(), 1);
    assert_ne!(run.code, Some(1), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_stats_answer_stops_at_the_size_cap_in_bounded_memory() {
    let admin = hostile_admin(Misbehaviour::EndlessStats).await;
    let run = diagnose_against(admin, &["--request-timeout", "60s"]).await;
    let gaps = gaps(&run.report);
    assert!(
        gaps.iter()
            .any(|gap| gap.contains("/stats") && gap.contains("larger than 67108864 bytes")),
        "{gaps:#?}\n{}",
        run.stderr
    );
    // The cap is 64 MiB of body; the rest of the process stays well under another 100 MiB.
    assert!(
        run.peak_rss_mib < 200,
        "peak RSS {} MiB while refusing an endless /stats",
        run.peak_rss_mib
    );
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_config_dump_is_a_gap_and_the_counters_are_still_read() {
    let admin = hostile_admin(Misbehaviour::TruncatedConfigDump).await;
    let run = diagnose_against(admin, &["--request-timeout", "10s"]).await;
    let gaps = gaps(&run.report);
    assert!(
        gaps.iter()
            .any(|gap| gap.contains("/config_dump") && gap.contains(VLLM_POD)),
        "{gaps:#?}\n{}",
        run.stderr
    );
    assert!(
        !gaps.iter().any(|gap| gap.contains("/stats")),
        "the counters were not read after the cut config_dump: {gaps:#?}"
    );
    assert!(run.took < Duration::from_secs(30), "took {:?}", run.took);
}

#![allow(clippy::unwrap_used)]
//! The probe against the lab server directly (no Envoy): each end reason, gaps, keep-alives,
//! concurrency with vLLM's queue visible in /metrics, large bodies, cold starts, --duration.

use kubectl_infermesh::evidence::probe::path::EndReason;
use kubectl_infermesh::evidence::probe::report::ProbeReport;
use kubectl_infermesh::lab::{self, Pause, RunningServer, ServerConfig};
use kubectl_infermesh::report::probe;
use kubectl_infermesh::sources::probe::{ProbeArgs, run_with};
use kubectl_infermesh::sources::progress::Progress;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(60);

async fn server(config: ServerConfig) -> RunningServer {
    lab::spawn(config).await.unwrap()
}

fn fast() -> ServerConfig {
    ServerConfig {
        tokens_per_second: 400.0,
        ..ServerConfig::default()
    }
}

fn direct(server: &RunningServer, max_tokens: u32) -> ProbeArgs {
    let mut args = ProbeArgs::for_urls(Some(server.url()), None);
    args.max_tokens = Some(max_tokens);
    args.api_key_env = "INFERMESH_TEST_NO_SUCH_KEY".to_string();
    args.timeout = Some(Duration::from_secs(30));
    args.idle_timeout = Duration::from_secs(20);
    args
}

/// The probe's measurements, read as the `probe` command reads them.
async fn probe(args: &ProbeArgs) -> ProbeReport {
    let mut report = tokio::time::timeout(LIMIT, run_with(args, Progress::disabled()))
        .await
        .expect("probe did not finish in time")
        .unwrap();
    kubectl_infermesh::verdict::probe_reading::read(&mut report);
    report
}

#[tokio::test]
async fn a_healthy_stream_ends_done_with_timings_and_server_side_metrics() {
    let server = server(fast()).await;
    let report = probe(&direct(&server, 20)).await;
    let path = &report.paths[0];
    let result = &path.result;
    assert_eq!(result.end, EndReason::Done, "{:?}", result.end_detail);
    assert_eq!(result.status, Some(200));
    assert_eq!(result.tokens, 20);
    assert_eq!(result.chunks, 20);
    assert!(result.new_connection && result.connect_ms.is_some());
    let (headers, ttft, last, done, total) = (
        result.headers_ms.unwrap(),
        result.ttft_ms.unwrap(),
        result.last_content_ms.unwrap(),
        result.done_ms.unwrap(),
        result.total_ms,
    );
    assert!(headers <= ttft && ttft <= last && last <= done && done <= total);
    assert!(result.itl_ms.is_some() && result.tpot_ms.is_some());
    assert_eq!(result.gaps_over_1s, 0);
    assert_eq!(result.headers.server.as_deref(), Some("uvicorn"));
    assert_eq!(report.request.model, "lab-model");
    let side = path.server_side.as_ref().expect("server-side metrics");
    assert_eq!(side.ttft.as_ref().unwrap().observations, 1.0);
    assert_eq!(side.inter_token.as_ref().unwrap().observations, 19.0);
    assert!(report.comparison.verdict.starts_with("direct completed in"));
    assert_eq!(server.served().finished, 1);
}

#[tokio::test]
async fn both_paths_and_chat_complete_and_render() {
    let server = server(fast()).await;
    let mut args = ProbeArgs::for_urls(Some(server.url()), Some(format!("{}/v1", server.url())));
    args.max_tokens = Some(10);
    args.chat = true;
    args.api_key_env = "INFERMESH_TEST_NO_SUCH_KEY".to_string();
    let report = probe(&args).await;
    assert_eq!(report.paths.len(), 2);
    assert!(report.paths.iter().all(|p| p.result.end == EndReason::Done));
    assert!(report.paths.iter().all(|p| p.result.tokens == 10));
    assert!(
        report
            .comparison
            .verdict
            .starts_with("both paths completed"),
        "{}",
        report.comparison.verdict
    );
    assert!(report.comparison.ttft_delta_ms.is_some());
    assert_eq!(server.served().chat_completions, 2);
    let json: Value = serde_json::from_str(&probe::json(&report).unwrap()).unwrap();
    assert_eq!(json["schemaVersion"], 1);
    assert_eq!(json["paths"][0]["path"], "direct");
    assert_eq!(json["paths"][1]["path"], "mesh");
    for key in [
        "url", "ttftMs", "itlMs", "totalMs", "tokens", "bytes", "status", "end",
    ] {
        assert!(json["paths"][0].get(key).is_some(), "{key} missing");
    }
    assert!(json["counterDeltas"].is_array());
    let table = probe::table(&report, 80);
    for word in ["metric", "direct", "mesh", "verdict", "TTFT", "ITL p99"] {
        assert!(table.contains(word), "{word} missing in\n{table}");
    }
}

#[tokio::test]
async fn a_pause_counts_as_a_long_gap() {
    let server = server(ServerConfig {
        pause: Some(Pause {
            after_tokens: 5,
            duration: Duration::from_millis(1200),
        }),
        ..fast()
    })
    .await;
    let result = probe(&direct(&server, 10)).await.paths[0].result.clone();
    assert_eq!(result.end, EndReason::Done);
    assert_eq!(result.gaps_over_1s, 1);
    assert_eq!(result.longest_gap_after_chunks, Some(5));
    assert!(result.itl_ms.unwrap().max >= 1150.0);
}

#[tokio::test]
async fn keepalive_comments_are_counted() {
    let server = server(ServerConfig {
        pause: Some(Pause {
            after_tokens: 2,
            duration: Duration::from_millis(400),
        }),
        keepalive_interval: Some(Duration::from_millis(100)),
        ..fast()
    })
    .await;
    let result = probe(&direct(&server, 4)).await.paths[0].result.clone();
    assert_eq!(result.end, EndReason::Done);
    assert!(
        (2..=6).contains(&result.keepalives),
        "{}",
        result.keepalives
    );
}

#[tokio::test]
async fn an_error_event_inside_200_is_a_stream_error() {
    let server = server(ServerConfig {
        error_after_tokens: Some(3),
        ..fast()
    })
    .await;
    let report = probe(&direct(&server, 10)).await;
    let result = &report.paths[0].result;
    assert_eq!(result.status, Some(200));
    assert_eq!(result.end, EndReason::StreamError);
    assert!(
        result
            .end_detail
            .as_deref()
            .unwrap()
            .contains("engine error after 3 tokens")
    );
    assert_eq!(result.tokens, 3);
    assert!(
        report
            .comparison
            .verdict
            .contains("error inside the 200 stream")
    );
}

#[tokio::test]
async fn a_server_cut_is_eof_without_done() {
    let server = server(ServerConfig {
        close_after_tokens: Some(7),
        ..fast()
    })
    .await;
    let report = probe(&direct(&server, 50)).await;
    let result = &report.paths[0].result;
    assert_eq!(
        result.end,
        EndReason::EofWithoutDone,
        "{:?}",
        result.end_detail
    );
    assert_eq!(result.tokens, 7);
    assert_eq!(result.done_ms, None);
    assert!(
        report.comparison.verdict.contains("cut at"),
        "{}",
        report.comparison.verdict
    );
}

#[tokio::test]
async fn a_reset_is_a_reset_on_http1_and_h2c() {
    for http2 in [false, true] {
        let server = server(ServerConfig {
            reset_after_tokens: Some(4),
            ..fast()
        })
        .await;
        let mut args = direct(&server, 50);
        args.http2 = http2;
        let result = probe(&args).await.paths[0].result.clone();
        assert_eq!(
            result.end,
            EndReason::Reset,
            "http2={http2}: {:?}",
            result.end_detail
        );
        // A TCP RST may discard tokens the client had not read yet.
        assert!(result.tokens <= 4, "{}", result.tokens);
        if http2 {
            assert_eq!(server.served().http2_requests, server.served().requests);
        }
    }
}

#[tokio::test]
async fn missing_key_is_an_http_error_with_the_body_and_the_key_works() {
    let server = server(ServerConfig {
        api_key: Some("lab-secret-key".to_string()),
        ..fast()
    })
    .await;
    let mut args = direct(&server, 5);
    args.model = Some("lab-model".to_string());
    let report = probe(&args).await;
    let result = &report.paths[0].result;
    assert_eq!(result.end, EndReason::HttpError);
    assert_eq!(result.status, Some(401));
    assert_eq!(
        result.end_detail.as_deref(),
        Some(r#"{"error":"Unauthorized"}"#)
    );
    args.model = None;
    let error = run_with(&args, Progress::disabled()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("401") && message.contains("--model"),
        "{message}"
    );

    let variable = "INFERMESH_TEST_PROBE_LAB_KEY";
    // SAFETY: the variable name is unique to this test; nothing else reads or writes it.
    unsafe { std::env::set_var(variable, "lab-secret-key") };
    args.api_key_env = variable.to_string();
    let report = probe(&args).await;
    assert_eq!(report.paths[0].result.end, EndReason::Done);
    let json = probe::json(&report).unwrap();
    let table = probe::table(&report, 80);
    assert!(!json.contains("lab-secret-key") && !table.contains("lab-secret-key"));
}

#[tokio::test]
async fn concurrency_shows_vllm_queueing_in_metrics() {
    let server = server(ServerConfig {
        tokens_per_second: 100.0,
        max_num_seqs: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut args = direct(&server, 30);
    args.concurrency = Some(6);
    let report = probe(&args).await;
    assert!(
        report.paths.is_empty(),
        "concurrency replaces the single stream"
    );
    let batch = &report.concurrency[0];
    assert_eq!(batch.streams, 6);
    assert_eq!(batch.by_end.get("done"), Some(&6));
    assert_eq!(batch.by_status.get("200"), Some(&6));
    assert_eq!(batch.share_503, 0.0);
    assert!(batch.failures.is_empty());
    assert_eq!(batch.connections_opened, 6);
    let side = batch.server_side.as_ref().unwrap();
    assert_eq!(side.peak_running, Some(2.0));
    assert!(side.peak_waiting.unwrap() >= 1.0, "{side:?}");
    let queue = side.queue_time.as_ref().unwrap();
    assert_eq!(queue.observations, 6.0);
    assert!(queue.mean_ms.unwrap() > 100.0, "{queue:?}");
    assert!((1..=4).contains(&server.served().max_waiting));
    assert!(
        report
            .comparison
            .verdict
            .contains("6 of 6 streams completed")
    );
}

#[tokio::test]
async fn a_large_body_is_complete_or_not() {
    let whole = server(ServerConfig {
        tokens_per_second: 0.0,
        ..ServerConfig::default()
    })
    .await;
    let mut args = direct(&whole, 300_000);
    args.large = true;
    let report = probe(&args).await;
    let large = &report.large[0];
    assert!(large.complete, "{large:?}");
    assert_eq!(large.end, EndReason::Done);
    assert!(large.bytes > 2_500_000);
    assert_eq!(large.content_length, Some(large.bytes));
    assert_eq!(large.tokens, Some(300_000));

    let cut = server(ServerConfig {
        tokens_per_second: 0.0,
        close_after_tokens: Some(100_000),
        ..ServerConfig::default()
    })
    .await;
    let mut args = direct(&cut, 300_000);
    args.large = true;
    let report = probe(&args).await;
    let large = &report.large[0];
    assert!(!large.complete);
    assert_eq!(
        large.end,
        EndReason::EofWithoutDone,
        "{:?}",
        large.end_detail
    );
    assert!(large.bytes < large.content_length.unwrap());
    assert!(report.comparison.verdict.contains("NOT complete"));
}

#[tokio::test]
async fn a_cold_model_makes_the_first_request_slower() {
    let server = server(ServerConfig {
        warmup_delay: Duration::from_millis(800),
        ..fast()
    })
    .await;
    let mut args = direct(&server, 5);
    args.cold = true;
    let report = probe(&args).await;
    let cold = &report.cold[0];
    assert_eq!(cold.cold.end, EndReason::Done);
    assert!(cold.cold.new_connection);
    assert!(cold.warm_reused_connection);
    assert!(
        cold.cold.ttft_ms.unwrap() >= 750.0,
        "{:?}",
        cold.cold.ttft_ms
    );
    assert!(
        cold.warm.ttft_ms.unwrap() < 400.0,
        "{:?}",
        cold.warm.ttft_ms
    );
    assert!(cold.ttft_penalty_ms.unwrap() > 400.0);
}

#[tokio::test]
async fn duration_sizes_the_stream_from_a_warmup() {
    let server = server(ServerConfig {
        tokens_per_second: 100.0,
        eos_after_tokens: Some(10),
        ..ServerConfig::default()
    })
    .await;
    let mut args = direct(&server, 5);
    args.duration = Some(Duration::from_secs(1));
    let report = probe(&args).await;
    assert!(report.request.exact_length);
    let rate = report.request.warmup_tokens_per_second.unwrap();
    assert!((40.0..=150.0).contains(&rate), "rate {rate}");
    let result = &report.paths[0].result;
    assert_eq!(result.end, EndReason::Done);
    assert_eq!(
        result.tokens,
        u64::from(report.request.max_tokens),
        "min_tokens + ignore_eos not honoured"
    );
    assert!(
        result.tokens > 10,
        "the model's EOS at 10 tokens stopped it"
    );
    assert!(
        (500.0..=4000.0).contains(&result.total_ms),
        "{}",
        result.total_ms
    );
    assert!(report.warmup.is_some());
}

#[tokio::test]
async fn silence_longer_than_the_idle_timeout_is_a_client_timeout() {
    let server = server(ServerConfig {
        pause: Some(Pause {
            after_tokens: 2,
            duration: Duration::from_secs(5),
        }),
        ..fast()
    })
    .await;
    let mut args = direct(&server, 5);
    args.idle_timeout = Duration::from_millis(400);
    let result = probe(&args).await.paths[0].result.clone();
    assert_eq!(result.end, EndReason::ClientTimeout);
    assert!(result.end_detail.unwrap().contains("idle"));
    assert_eq!(result.tokens, 2);
    assert!(result.total_ms < 3000.0);
}

/// A raw HTTP/1.1 server that writes `parts` to every connection, then closes it (FIN).
async fn raw_server(parts: Vec<String>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let parts = parts.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let _ = socket.read(&mut buffer).await;
                for part in parts {
                    let _ = socket.write_all(part.as_bytes()).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

fn raw_args(addr: std::net::SocketAddr) -> ProbeArgs {
    let mut args = ProbeArgs::for_urls(Some(format!("http://{addr}")), None);
    args.model = Some("m".to_string());
    args.max_tokens = Some(3);
    args.timeout = Some(Duration::from_secs(20));
    args
}

#[tokio::test]
async fn malformed_sse_is_a_stream_error_not_a_panic() {
    let body =
        "data: {\"choices\":[{\"text\":\" a\"}]}\n\ndata: {oops not json\n\ndata: [DONE]\n\n";
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let args = raw_args(raw_server(vec![head, body.to_string()]).await);
    let report = probe(&args).await;
    let result = &report.paths[0].result;
    assert_eq!(result.end, EndReason::StreamError);
    assert!(
        result
            .end_detail
            .as_deref()
            .unwrap()
            .contains("malformed SSE")
    );
    assert_eq!(result.tokens, 1);
}

/// A server that answers each completion with 200 and then `total` bytes of one line with no
/// line break (anything else, /metrics included, gets a 404).
async fn endless_line_server(total: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The whole request first (headers and JSON body may come apart): unread
                // bytes at close would make the kernel reset the connection.
                let mut request = Vec::new();
                let mut buffer = vec![0u8; 8192];
                while let Ok(Ok(read @ 1..)) =
                    tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await
                {
                    request.extend_from_slice(&buffer[..read]);
                }
                if !request.starts_with(b"POST /v1/completions") {
                    let _ = socket
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: ";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let block = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    if socket.write_all(&block).await.is_err() {
                        return;
                    }
                    sent += block.len();
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_100_mb_line_without_a_break_is_cut_at_the_line_cap_not_buffered() {
    let args = raw_args(endless_line_server(100 * 1024 * 1024).await);
    let report = probe(&args).await;
    let result = &report.paths[0].result;
    assert_eq!(
        result.end,
        EndReason::StreamError,
        "{:?}",
        result.end_detail
    );
    let detail = result.end_detail.as_deref().unwrap();
    assert!(detail.contains("without a line break"), "{detail}");
    // Read up to the cap (and a chunk past it), not the whole 100 MB.
    let cap = kubectl_infermesh::sources::probe::sse::MAX_LINE_BYTES;
    assert!(
        result.bytes > cap && result.bytes < cap + 4 * 1024 * 1024,
        "{}",
        result.bytes
    );
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_eof_without_done() {
    // What a client of Envoy sees after a route timeout: tokens, then the connection closes
    // without the chunked terminator.
    let event = "data: {\"choices\":[{\"text\":\" a\"}]}\n\n";
    let chunk = format!("{:x}\r\n{event}\r\n", event.len());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nserver: envoy\r\n\r\n";
    let args = raw_args(raw_server(vec![head.to_string(), chunk.clone(), chunk]).await);
    let report = probe(&args).await;
    let result = &report.paths[0].result;
    assert_eq!(
        result.end,
        EndReason::EofWithoutDone,
        "{:?}",
        result.end_detail
    );
    assert!(result.end_detail.as_deref().unwrap().contains("EOF"));
    assert_eq!(result.tokens, 2);
    assert_eq!(result.headers.server.as_deref(), Some("envoy"));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut args = ProbeArgs::for_urls(Some(format!("http://{addr}")), None);
    args.model = Some("m".to_string());
    let report = probe(&args).await;
    assert_eq!(report.paths[0].result.end, EndReason::ConnectError);
    assert!(report.comparison.verdict.contains("could not connect"));
}

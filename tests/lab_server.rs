#![allow(clippy::unwrap_used)]
//! The lab server against raw HTTP clients: vLLM's SSE framing, pacing, keep-alives, error events,
//! cuts, h2c, large bodies, auth, queueing and `/metrics`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kubectl_infermesh::lab::{self, Pause, RunningServer, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(30);

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    /// Each body frame with its arrival time since the request was sent.
    frames: Vec<(Duration, Bytes)>,
    body_error: Option<String>,
}

impl Reply {
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
        String::from_utf8(bytes).unwrap()
    }

    /// SSE events (`data:` payloads and `:` comments) with the time their frame arrived.
    fn events(&self) -> Vec<(Duration, String)> {
        let mut events = Vec::new();
        let mut pending = String::new();
        for (at, bytes) in &self.frames {
            pending.push_str(std::str::from_utf8(bytes).unwrap());
            while let Some(end) = pending.find("\n\n") {
                events.push((*at, pending[..end].to_string()));
                pending.drain(..end + 2);
            }
        }
        assert!(pending.is_empty(), "unterminated event: {pending:?}");
        events
    }

    fn data(&self) -> Vec<(Duration, String)> {
        self.events()
            .into_iter()
            .filter_map(|(at, e)| e.strip_prefix("data: ").map(|d| (at, d.to_string())))
            .collect()
    }
}

async fn send(
    addr: SocketAddr,
    http2: bool,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Reply {
    tokio::time::timeout(LIMIT, send_inner(addr, http2, method, path, body, bearer))
        .await
        .expect("request did not finish in time")
}

async fn send_inner(
    addr: SocketAddr,
    http2: bool,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let io = TokioIo::new(stream);
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if let Some(key) = bearer {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = builder.body(Full::new(Bytes::from(payload))).unwrap();
    let started = Instant::now();
    let response = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((started.elapsed(), data));
                }
            }
            Err(error) => {
                body_error = Some(error.to_string());
                break;
            }
        }
    }
    Reply {
        status,
        headers,
        frames,
        body_error,
    }
}

/// `POST /v1/completions` over HTTP/1.1 without an API key.
async fn post_completion(addr: SocketAddr, body: Value) -> Reply {
    send(addr, false, "POST", "/v1/completions", Some(body), None).await
}

/// `GET path` over HTTP/1.1 without an API key.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, false, "GET", path, None, None).await
}

async fn server(config: ServerConfig) -> RunningServer {
    lab::spawn(config).await.unwrap()
}

fn fast() -> ServerConfig {
    ServerConfig {
        tokens_per_second: 500.0,
        ..ServerConfig::default()
    }
}

fn completion(max_tokens: u32, stream: bool) -> Value {
    serde_json::json!({
        "model": "lab-model", "prompt": "say something", "max_tokens": max_tokens,
        "stream": stream, "stream_options": {"include_usage": true}
    })
}

#[tokio::test]
async fn completions_stream_is_framed_as_vllm_frames_it() {
    let server = server(fast()).await;
    let reply = post_completion(server.addr(), completion(5, true)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(reply.headers["transfer-encoding"], "chunked");
    assert_eq!(reply.headers["server"], "uvicorn");
    assert!(reply.body_error.is_none());
    let data = reply.data();
    assert_eq!(data.len(), 7, "{}", reply.text());
    let mut ids = Vec::new();
    for (i, (_, chunk)) in data[..5].iter().enumerate() {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(chunk["model"], "lab-model");
        assert!(chunk["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(chunk["choices"][0]["text"], format!(" tok{i}"));
        let finish = if i == 4 {
            Value::from("length")
        } else {
            Value::Null
        };
        assert_eq!(chunk["choices"][0]["finish_reason"], finish);
        assert!(chunk.get("usage").is_none());
        ids.push(chunk["id"].as_str().unwrap().to_string());
    }
    assert!(ids[0].starts_with("cmpl-"));
    assert!(ids.iter().all(|id| id == &ids[0]));
    let usage: Value = serde_json::from_str(&data[5].1).unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["total_tokens"], 7);
    assert_eq!(data[6].1, "[DONE]");
    assert!(reply.text().ends_with("data: [DONE]\n\n"));
    let served = server.served();
    assert_eq!(
        (served.tokens, served.finished, served.streaming),
        (5, 1, 1)
    );
}

#[tokio::test]
async fn raw_http1_bytes_are_chunked_sse() {
    let server = server(fast()).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let body = completion(2, true).to_string();
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: lab\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, chunked) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
    );
    assert!(
        chunked.ends_with("0\r\n\r\n"),
        "no chunked terminator: {chunked:?}"
    );
    let mut decoded = String::new();
    let mut rest = chunked;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            break;
        }
        decoded.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap();
    }
    let events: Vec<&str> = decoded.split_terminator("\n\n").collect();
    assert_eq!(events.len(), 4, "{decoded:?}");
    assert!(events.iter().all(|e| e.starts_with("data: ")));
    assert_eq!(events[3], "data: [DONE]");
}

#[tokio::test]
async fn chat_stream_starts_with_a_role_only_chunk() {
    let server = server(fast()).await;
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": "hi there"}],
        "max_tokens": 3, "stream": true
    });
    let reply = send(
        server.addr(),
        false,
        "POST",
        "/v1/chat/completions",
        Some(body),
        None,
    )
    .await;
    let data = reply.data();
    assert_eq!(data.len(), 5, "{}", reply.text());
    let role: Value = serde_json::from_str(&data[0].1).unwrap();
    assert_eq!(role["object"], "chat.completion.chunk");
    assert!(role["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(role["choices"][0]["delta"]["content"], "");
    for (i, (_, chunk)) in data[1..4].iter().enumerate() {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["choices"][0]["delta"]["content"], format!(" tok{i}"));
    }
    assert_eq!(data[4].1, "[DONE]", "no usage chunk without include_usage");
    assert_eq!(server.served().chat_completions, 1);
}

#[tokio::test]
async fn tokens_are_paced_and_the_pause_shows() {
    let server = server(ServerConfig {
        tokens_per_second: 50.0,
        pause: Some(Pause {
            after_tokens: 3,
            duration: Duration::from_millis(400),
        }),
        ..ServerConfig::default()
    })
    .await;
    let reply = post_completion(server.addr(), completion(6, true)).await;
    let times: Vec<Duration> = reply.data()[..6].iter().map(|(at, _)| *at).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        times[0] >= Duration::from_millis(15),
        "first token at {times:?}"
    );
    assert!(
        gaps[2] >= Duration::from_millis(380),
        "pause missing: {gaps:?}"
    );
    // Tokens follow an absolute schedule: token k leaves no earlier than (k + 1) x 20 ms (+ pause).
    assert!(
        times[5] >= Duration::from_millis(510),
        "too fast: {times:?}"
    );
    for (i, gap) in gaps.iter().enumerate() {
        if i != 2 {
            assert!(
                *gap < Duration::from_millis(380),
                "unexpected pause: {gaps:?}"
            );
        }
    }
}

#[tokio::test]
async fn keepalive_comments_fill_a_pause() {
    let server = server(ServerConfig {
        tokens_per_second: 200.0,
        pause: Some(Pause {
            after_tokens: 1,
            duration: Duration::from_millis(500),
        }),
        keepalive_interval: Some(Duration::from_millis(100)),
        ..ServerConfig::default()
    })
    .await;
    let reply = post_completion(server.addr(), completion(2, true)).await;
    let comments = reply
        .events()
        .into_iter()
        .filter(|(_, e)| e == ": keep-alive")
        .count();
    assert!(
        (3..=6).contains(&comments),
        "{comments} keep-alives: {}",
        reply.text()
    );
    assert_eq!(reply.data().last().unwrap().1, "[DONE]");
}

#[tokio::test]
async fn error_event_arrives_inside_the_200_stream() {
    let server = server(ServerConfig {
        error_after_tokens: Some(2),
        ..fast()
    })
    .await;
    let reply = post_completion(server.addr(), completion(10, true)).await;
    assert_eq!(reply.status, 200);
    let data = reply.data();
    assert_eq!(data.len(), 4, "{}", reply.text());
    let error: Value = serde_json::from_str(&data[2].1).unwrap();
    assert_eq!(error["error"]["code"], 500);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("after 2 tokens")
    );
    assert_eq!(
        data[3].1, "[DONE]",
        "vLLM still sends [DONE] after an error event"
    );
    assert_eq!(server.served().error_events, 1);
}

#[tokio::test]
async fn close_knob_ends_the_body_cleanly_without_done() {
    let server = server(ServerConfig {
        close_after_tokens: Some(3),
        ..fast()
    })
    .await;
    let reply = post_completion(server.addr(), completion(10, true)).await;
    assert!(reply.body_error.is_none(), "{:?}", reply.body_error);
    let data = reply.data();
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|(_, d)| d != "[DONE]"));
    assert_eq!(server.served().cut, 1);
}

#[tokio::test]
async fn reset_knob_aborts_http1_and_http2() {
    for http2 in [false, true] {
        let server = server(ServerConfig {
            reset_after_tokens: Some(2),
            ..fast()
        })
        .await;
        let reply = send(
            server.addr(),
            http2,
            "POST",
            "/v1/completions",
            Some(completion(10, true)),
            None,
        )
        .await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.body_error.is_some(),
            "http2={http2}: body ended cleanly"
        );
        // A TCP RST may discard data the client had not read yet: at most 2 tokens arrive.
        let text = reply.text();
        assert!(text.matches("data: {").count() <= 2, "{text}");
        assert!(!text.contains("[DONE]"));
        assert_eq!(server.served().cut, 1);
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_streams() {
    let server = server(fast()).await;
    let reply = send(
        server.addr(),
        true,
        "POST",
        "/v1/completions",
        Some(completion(4, true)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.data().len(), 6);
    assert_eq!(server.served().http2_requests, 1);
}

#[tokio::test]
async fn non_streaming_returns_a_large_complete_body() {
    let server = server(ServerConfig {
        tokens_per_second: 0.0,
        ..ServerConfig::default()
    })
    .await;
    let tokens = 400_000;
    let reply = post_completion(server.addr(), completion(tokens, false)).await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert!(text.len() > 3_500_000, "{} bytes", text.len());
    assert_eq!(
        reply.headers["content-length"].to_str().unwrap(),
        text.len().to_string()
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["usage"]["completion_tokens"], tokens);
    assert!(
        body["choices"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with(" tok399999")
    );
}

#[tokio::test]
async fn non_streaming_cut_announces_more_than_it_sends() {
    let server = server(ServerConfig {
        tokens_per_second: 0.0,
        close_after_tokens: Some(500),
        ..ServerConfig::default()
    })
    .await;
    let reply = post_completion(server.addr(), completion(1000, false)).await;
    let announced: usize = reply.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reply.body_error.is_some());
    assert!(reply.text().len() < announced);
}

#[tokio::test]
async fn api_key_guards_v1_only() {
    let server = server(ServerConfig {
        api_key: Some("lab-key".to_string()),
        ..fast()
    })
    .await;
    let addr = server.addr();
    let denied = post_completion(addr, completion(2, true)).await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.text(), r#"{"error":"Unauthorized"}"#);
    let wrong = send(addr, false, "GET", "/v1/models", None, Some("nope")).await;
    assert_eq!(wrong.status, 401);
    let models = send(addr, false, "GET", "/v1/models", None, Some("lab-key")).await;
    assert_eq!(models.status, 200);
    let models: Value = serde_json::from_str(&models.text()).unwrap();
    assert_eq!(models["data"][0]["id"], "lab-model");
    let health = get(addr, "/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(server.served().unauthorized, 2);
}

#[tokio::test]
async fn bad_requests_get_vllm_errors() {
    let server = server(fast()).await;
    let addr = server.addr();
    let unknown = serde_json::json!({"model": "gpt-9", "prompt": "x"});
    let reply = post_completion(addr, unknown).await;
    assert_eq!(reply.status, 404);
    let error: Value = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(error["error"]["type"], "NotFoundError");
    let missing = get(addr, "/nowhere").await;
    assert_eq!(missing.status, 404);
    let method = get(addr, "/v1/completions").await;
    assert_eq!(method.status, 405);
}

#[tokio::test]
async fn dead_engine_fails_health_and_generation() {
    let server = server(fast()).await;
    server.set_dead(true);
    let addr = server.addr();
    assert_eq!(get(addr, "/health").await.status, 503);
    let reply = post_completion(addr, completion(2, true)).await;
    assert_eq!(reply.status, 500);
    server.set_dead(false);
    assert_eq!(get(addr, "/health").await.status, 200);
    let version = get(addr, "/version").await;
    assert!(version.text().contains("\"version\""));
}

#[tokio::test]
async fn cold_model_delays_only_early_requests() {
    let server = server(ServerConfig {
        warmup_delay: Duration::from_millis(600),
        ..fast()
    })
    .await;
    let cold = post_completion(server.addr(), completion(2, true)).await;
    let warm = post_completion(server.addr(), completion(2, true)).await;
    let cold_ttft = cold.data()[0].0;
    let warm_ttft = warm.data()[0].0;
    assert!(
        cold_ttft >= Duration::from_millis(550),
        "cold TTFT {cold_ttft:?}"
    );
    assert!(
        warm_ttft < Duration::from_millis(300),
        "warm TTFT {warm_ttft:?}"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn max_num_seqs_makes_requests_wait_and_metrics_show_it() {
    let server = server(ServerConfig {
        tokens_per_second: 50.0,
        max_num_seqs: 1,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr();
    let first = tokio::spawn(post_completion(addr, completion(15, true)));
    let second = tokio::spawn(post_completion(addr, completion(15, true)));
    let mut seen_waiting = false;
    for _ in 0..100 {
        let text = get(addr, "/metrics").await.text();
        if metric(&text, "vllm:num_requests_waiting") == 1.0
            && metric(&text, "vllm:num_requests_running") == 1.0
        {
            seen_waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen_waiting, "never saw 1 running + 1 waiting");
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let last_token = |r: &Reply| r.data()[14].0;
    let (early, late) = if last_token(&first) < last_token(&second) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(
        late.data()[0].0 >= last_token(&early),
        "the second did not wait for the first"
    );
    let text = get(addr, "/metrics").await.text();
    assert_eq!(metric(&text, "vllm:num_requests_waiting"), 0.0);
    assert_eq!(metric(&text, "vllm:num_requests_running"), 0.0);
    assert_eq!(metric(&text, "vllm:time_to_first_token_seconds_count"), 2.0);
    assert_eq!(
        metric(&text, "vllm:inter_token_latency_seconds_count"),
        28.0
    );
    assert_eq!(metric(&text, "vllm:e2e_request_latency_seconds_count"), 2.0);
    assert_eq!(metric(&text, "vllm:request_queue_time_seconds_count"), 2.0);
    assert!(metric(&text, "vllm:request_queue_time_seconds_sum") >= 0.2);
    assert_eq!(metric(&text, "vllm:generation_tokens_total"), 30.0);
    assert_eq!(server.served().max_waiting, 1);
    assert_eq!(server.served().max_running, 1);
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_slot() {
    let server = server(ServerConfig {
        tokens_per_second: 20.0,
        max_num_seqs: 1,
        ..ServerConfig::default()
    })
    .await;
    let addr = server.addr();
    let abandoned = tokio::spawn(post_completion(addr, completion(1000, true)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    abandoned.abort();
    let next = post_completion(addr, completion(2, true)).await;
    assert_eq!(next.data().last().unwrap().1, "[DONE]");
    assert_eq!(server.served().abandoned, 1);
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let server = server(fast()).await;
    let addr = server.addr();
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

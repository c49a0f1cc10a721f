//! Traffic through a real Envoy pair to the lab server, and the counters it leaves: completion
//! requests on their own connections, waiting for a stat, the overflow of a one-connection pool.

use super::envoy_pair::Pair;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use kubectl_infermesh::lab::envoy::bootstrap::{LAB_HOST, LAB_PORT};
use kubectl_infermesh::lab::envoy::launcher::EnvoyProcess;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The longest one request through the Envoys may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);
/// How long to wait for a counter (or the lab) to show what already happened.
const STAT_WAIT: Duration = Duration::from_secs(10);

/// A `/v1/completions` body for the lab model that generates exactly `max_tokens`.
pub fn completion(max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": "lab-model",
        "prompt": "Tell me a long story",
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
    })
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body as far as it came.
    pub body: String,
    /// The body ended with an error (a reset or a cut connection), not a clean end.
    pub body_error: Option<String>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn completed_stream(&self) -> bool {
        self.body.contains("data: [DONE]") && self.body_error.is_none()
    }

    /// The SSE data events that carry a chunk.
    pub fn tokens(&self) -> usize {
        self.body
            .split("\n\n")
            .filter(|event| event.starts_with("data: {"))
            .count()
    }
}

/// Posts `body` to `/v1/completions` with the lab service's Host on its own HTTP/1.1
/// connection to `entry`, bounded by `REQUEST_LIMIT`.
pub async fn post(entry: SocketAddr, body: Value) -> Reply {
    tokio::time::timeout(REQUEST_LIMIT, post_unbounded(entry, body.to_string()))
        .await
        .expect("request through Envoy did not finish in time")
}

async fn post_unbounded(entry: SocketAddr, body: String) -> Reply {
    let started = Instant::now();
    let stream = TcpStream::connect(entry).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method("POST")
        .uri("/v1/completions")
        .header("host", format!("{LAB_HOST}:{LAB_PORT}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
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
        body: String::from_utf8_lossy(&bytes).into_owned(),
        body_error,
        elapsed: started.elapsed(),
    }
}

/// Polls an Envoy's `/stats` until the counter whose name ends with `suffix` is at least
/// `at_least`. A suffix matches both stat name forms (with and without Istio's `;`).
pub async fn wait_for_stat(envoy: &EnvoyProcess, suffix: &str, at_least: u64) {
    let deadline = Instant::now() + STAT_WAIT;
    loop {
        let text = envoy.admin().stats_text().await.unwrap();
        let value = text
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(name, _)| name.ends_with(suffix))
            .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
            .max();
        if value.is_some_and(|value| value >= at_least) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{suffix} did not reach {at_least} on the {} Envoy (now {value:?})",
            envoy.name()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The address of an Envoy's admin API, for a port-forward to reach.
pub fn admin_addr(envoy: &EnvoyProcess) -> SocketAddr {
    envoy
        .admin_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The three requests of a pool overflow, on a client cluster that allows one connection and
/// one pending request.
pub struct PoolOverflow {
    /// Holds the only connection (40 tokens at the lab's pace).
    pub holding: JoinHandle<Reply>,
    /// Waits in the queue, and runs once the first is done.
    pub queued: JoinHandle<Reply>,
    /// Finds the connection and the queue full.
    pub overflowed: Reply,
}

pub async fn overflow_the_pool(pair: &Pair) -> PoolOverflow {
    let entry = pair.entry;
    let holding = tokio::spawn(post(entry, completion(40, true)));
    let deadline = Instant::now() + STAT_WAIT;
    while pair.lab.served().requests < 1 {
        assert!(Instant::now() < deadline, "the first stream never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = tokio::spawn(post(entry, completion(5, true)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let overflowed = post(entry, completion(5, true)).await;
    PoolOverflow {
        holding,
        queued,
        overflowed,
    }
}

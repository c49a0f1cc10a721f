//! One streaming request, timed event by event on a monotonic clock from the moment it is sent.
//!
//! TTFT here is the first chunk with non-empty content (a chat stream's role-only first chunk
//! does not count); the first chunk of any kind is kept too. Connect time comes from the
//! client's connector (see `HttpClient::connect_time_since`): `None` means a pooled connection.

use super::client::HttpClient;
use super::request::Target;
use crate::evidence::probe::path::{EndReason, HeadersOfInterest, TokenSource};
use crate::sources::stop::Stop;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::error::Error as _;
use std::time::{Duration, Instant};

/// Bytes of an error body kept for the report.
pub const ERROR_EXCERPT_BYTES: usize = 512;
/// After `[DONE]`, how long to wait for the body to end before calling the stream done.
const AFTER_DONE_WAIT: Duration = Duration::from_secs(10);

/// Token counts from the server's `usage` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl HeadersOfInterest {
    pub(crate) fn from_map(headers: &reqwest::header::HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        Self {
            server: get("server"),
            envoy_upstream_service_time: get("x-envoy-upstream-service-time"),
            envoy_overloaded: get("x-envoy-overloaded"),
        }
    }
}

/// Everything seen on one stream; times are offsets from sending the request.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// When the request was sent: the zero of every offset below.
    pub started: Instant,
    pub status: Option<u16>,
    pub connect: Option<Duration>,
    /// The TLS handshake's share of `connect` (https only).
    pub tls_handshake: Option<Duration>,
    pub headers_at: Option<Duration>,
    pub first_chunk_at: Option<Duration>,
    /// Arrival of each chunk carrying non-empty content; the first one is the TTFT.
    pub content_at: Vec<Duration>,
    pub done_at: Option<Duration>,
    /// When the response body ended (EOF, error or timeout).
    pub ended_at: Duration,
    pub usage: Option<Usage>,
    pub bytes: u64,
    pub events: u64,
    pub keepalives: u64,
    pub headers: HeadersOfInterest,
    pub end: EndReason,
    /// What went wrong, in words; for `http-error` the first 512 bytes of the body.
    pub detail: Option<String>,
}

impl StreamRecord {
    /// The connection this request opened, if it opened one.
    fn note_connect(&mut self, client: &HttpClient, started: Instant) {
        let opened = client.connection_since(started);
        self.connect = opened.map(|time| time.total);
        self.tls_handshake = opened.and_then(|time| time.tls);
    }

    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            status: None,
            connect: None,
            tls_handshake: None,
            headers_at: None,
            first_chunk_at: None,
            content_at: Vec::new(),
            done_at: None,
            ended_at: Duration::ZERO,
            usage: None,
            bytes: 0,
            events: 0,
            keepalives: 0,
            headers: HeadersOfInterest::default(),
            end: EndReason::EofWithoutDone,
            detail: None,
        }
    }

    pub fn ttft(&self) -> Option<Duration> {
        self.content_at.first().copied()
    }

    pub fn last_content_at(&self) -> Option<Duration> {
        self.content_at.last().copied()
    }

    /// Tokens: the server's usage when it sent one, else the content chunks counted.
    pub fn tokens(&self) -> (u64, TokenSource) {
        match self.usage {
            Some(usage) => (usage.completion_tokens, TokenSource::Usage),
            None => (self.content_at.len() as u64, TokenSource::Chunks),
        }
    }
}

/// Bounds on one request: the whole of it, and the longest silence inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub overall: Duration,
    pub idle: Duration,
}

/// Called with the number of content chunks so far, for progress display.
pub type OnContent<'a> = &'a (dyn Fn(u64) + Sync);

/// The longest SSE line taken: the SSE parser holds a line until its end, so a peer that never
/// ends one would otherwise grow memory without bound. vLLM's lines are a few hundred bytes.
pub const MAX_LINE_BYTES: u64 = 1024 * 1024;

/// Counts body bytes and `:` comment lines as they arrive, before SSE parsing drops comments,
/// and the length of the line being read.
#[derive(Debug, Default)]
struct Tap {
    bytes: u64,
    comments: u64,
    mid_line: bool,
    line_bytes: u64,
    /// A line grew past [`MAX_LINE_BYTES`]: the body is read no further.
    overlong: bool,
}

impl Tap {
    fn observe(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        for &byte in chunk {
            if !self.mid_line && byte == b':' {
                self.comments += 1;
            }
            self.mid_line = !(byte == b'\n' || byte == b'\r');
            self.line_bytes = if self.mid_line {
                self.line_bytes + 1
            } else {
                0
            };
        }
        self.overlong |= self.line_bytes > MAX_LINE_BYTES;
    }
}

/// Sends `body` to `target` as a streaming request and records the stream until it ends.
pub async fn stream(
    client: &HttpClient,
    target: &Target,
    body: &Value,
    limits: Limits,
    stop: &Stop,
    on_content: OnContent<'_>,
) -> StreamRecord {
    let started = Instant::now();
    let deadline = started + limits.overall;
    let mut stop = stop.clone();
    let mut record = StreamRecord::new(started);
    let request = target
        .apply(client.inner().post(target.url.clone()))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(body);
    let sent = tokio::select! {
        sent = tokio::time::timeout_at(deadline.into(), request.send()) => sent,
        () = stop.stopped() => {
            return finish(record, started, EndReason::Interrupted, Some("stopped before response headers".to_string()));
        }
    };
    let response = match sent {
        Err(_) => {
            let detail = format!(
                "no response headers within the overall timeout of {}",
                crate::units::duration::display(limits.overall)
            );
            return finish(record, started, EndReason::ClientTimeout, Some(detail));
        }
        Ok(Err(error)) => {
            record.note_connect(client, started);
            let (end, detail) = classify_transport(&error, false);
            return finish(record, started, end, Some(detail));
        }
        Ok(Ok(response)) => response,
    };
    record.headers_at = Some(started.elapsed());
    record.note_connect(client, started);
    record.status = Some(response.status().as_u16());
    record.headers = HeadersOfInterest::from_map(response.headers());
    if !response.status().is_success() {
        let excerpt = read_excerpt(response, deadline, &mut record).await;
        return finish(record, started, EndReason::HttpError, Some(excerpt));
    }

    let mut tap = Tap::default();
    let mut error_event: Option<String> = None;
    let outcome = {
        let overlong = std::cell::Cell::new(false);
        let bytes = response
            .bytes_stream()
            .map(|chunk| {
                if let Ok(chunk) = &chunk {
                    tap.observe(chunk);
                    overlong.set(tap.overlong);
                }
                chunk
            })
            .take_while(|_| std::future::ready(!overlong.get()));
        let mut events = bytes.eventsource();
        loop {
            let now = Instant::now();
            let mut wait = limits.idle.min(deadline.saturating_duration_since(now));
            if record.done_at.is_some() {
                wait = wait.min(AFTER_DONE_WAIT);
            }
            let next = tokio::select! {
                next = tokio::time::timeout(wait, events.next()) => next,
                () = stop.stopped() => break Some((EndReason::Interrupted, "stopped by the user".to_string())),
            };
            let at = started.elapsed();
            match next {
                Err(_) => {
                    let detail = if Instant::now() >= deadline {
                        format!(
                            "the overall timeout of {} fired",
                            crate::units::duration::display(limits.overall)
                        )
                    } else if record.done_at.is_some() {
                        format!(
                            "the body did not end within {} of [DONE]",
                            crate::units::duration::display(wait)
                        )
                    } else {
                        format!(
                            "nothing arrived for {} (idle timeout)",
                            crate::units::duration::display(wait)
                        )
                    };
                    break Some((EndReason::ClientTimeout, detail));
                }
                Ok(None) if overlong.get() => {
                    break Some((
                        EndReason::StreamError,
                        format!(
                            "a line of over {} MiB without a line break: not an SSE stream; read no further",
                            MAX_LINE_BYTES / (1024 * 1024)
                        ),
                    ));
                }
                Ok(None) => break None,
                Ok(Some(Err(EventStreamError::Transport(error)))) => {
                    break Some(classify_transport(&error, true));
                }
                Ok(Some(Err(error))) => {
                    break Some((EndReason::StreamError, format!("malformed SSE: {error}")));
                }
                Ok(Some(Ok(event))) => {
                    record.events += 1;
                    if event.data.trim() == "[DONE]" {
                        record.done_at.get_or_insert(at);
                        continue;
                    }
                    match inspect_event(&event.data) {
                        Err(detail) => break Some((EndReason::StreamError, detail)),
                        Ok(Seen::Error(message)) => {
                            error_event.get_or_insert(message);
                        }
                        Ok(Seen::Chunk { content, usage }) => {
                            record.first_chunk_at.get_or_insert(at);
                            if content {
                                record.content_at.push(at);
                                on_content(record.content_at.len() as u64);
                            }
                            if usage.is_some() {
                                record.usage = usage;
                            }
                        }
                    }
                }
            }
        }
    };
    record.bytes = tap.bytes;
    record.keepalives = tap.comments;
    let (end, detail) = match (outcome, error_event) {
        (Some((EndReason::Interrupted, detail)), _) => (EndReason::Interrupted, Some(detail)),
        (_, Some(message)) => (
            EndReason::StreamError,
            Some(format!("error event in the 200 stream: {message}")),
        ),
        (None, None) if record.done_at.is_some() => (EndReason::Done, None),
        (None, None) => (
            EndReason::EofWithoutDone,
            Some("the body ended without [DONE]".to_string()),
        ),
        (Some((_, detail)), None) if record.done_at.is_some() => {
            (EndReason::Done, Some(format!("after [DONE]: {detail}")))
        }
        (Some((end, detail)), None) => (end, Some(detail)),
    };
    finish(record, started, end, detail)
}

fn finish(
    mut record: StreamRecord,
    started: Instant,
    end: EndReason,
    detail: Option<String>,
) -> StreamRecord {
    record.ended_at = started.elapsed();
    record.end = end;
    record.detail = detail;
    tracing::debug!(
        end = end.as_str(),
        status = record.status,
        chunks = record.content_at.len(),
        bytes = record.bytes,
        elapsed_ms = record.ended_at.as_millis() as u64,
        "stream ended"
    );
    record
}

enum Seen {
    Error(String),
    Chunk { content: bool, usage: Option<Usage> },
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Reads a whole SSE body as [`stream`] does, in small chunks: events split by
/// `eventsource-stream`, each `data:` payload but `[DONE]` inspected; one entry per event, the
/// parser's own errors included (what the fuzz target and the properties drive).
pub fn read_body(body: &[u8]) -> Vec<Result<(), String>> {
    use futures_util::FutureExt;
    let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
        body.chunks(7).map(|chunk| Ok(chunk.to_vec())).collect();
    let mut events = futures_util::stream::iter(chunks).eventsource();
    let mut read = Vec::new();
    // Every chunk is ready at once, so each step completes without waiting.
    while let Some(Some(event)) = events.next().now_or_never() {
        read.push(match event {
            Ok(event) if event.data.trim() == "[DONE]" => Ok(()),
            Ok(event) => inspect_event(&event.data).map(|_| ()),
            Err(error) => Err(format!("malformed SSE: {error}")),
        });
    }
    read
}

/// Reads one `data:` payload: an error event, or a chunk with or without content and usage.
fn inspect_event(data: &str) -> Result<Seen, String> {
    let value: Value = serde_json::from_str(data).map_err(|error| {
        let excerpt: String = data.chars().take(120).collect();
        format!("malformed SSE: a data line is not JSON ({error}): {excerpt:?}")
    })?;
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        return Ok(Seen::Error(message));
    }
    let content = value
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|choices| {
            choices.iter().any(|choice| {
                let text = choice
                    .get("text")
                    .or_else(|| choice.get("delta").and_then(|delta| delta.get("content")));
                text.and_then(Value::as_str).is_some_and(|t| !t.is_empty())
            })
        });
    let usage = value
        .get("usage")
        .filter(|usage| !usage.is_null())
        .and_then(|usage| serde_json::from_value::<UsageWire>(usage.clone()).ok())
        .map(|usage| Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        });
    Ok(Seen::Chunk { content, usage })
}

async fn read_excerpt(
    mut response: reqwest::Response,
    deadline: Instant,
    record: &mut StreamRecord,
) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_EXCERPT_BYTES {
        match tokio::time::timeout_at(deadline.into(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                record.bytes += chunk.len() as u64;
                body.extend_from_slice(&chunk);
            }
            _ => break,
        }
    }
    body.truncate(ERROR_EXCERPT_BYTES);
    String::from_utf8_lossy(&body).trim().to_string()
}

/// What a transport error means for the stream: a reset, a cut (EOF mid-body), or no connection.
pub(crate) fn classify_transport(error: &reqwest::Error, mid_body: bool) -> (EndReason, String) {
    let detail = describe_transport(error);
    if error.is_connect() {
        return (EndReason::ConnectError, detail);
    }
    if error.is_timeout() {
        return (EndReason::ClientTimeout, detail);
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => return (EndReason::Reset, detail),
                std::io::ErrorKind::UnexpectedEof => return (EndReason::EofWithoutDone, detail),
                _ => {}
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>()
            && hyper.is_incomplete_message()
        {
            return (EndReason::EofWithoutDone, detail);
        }
        source = cause.source();
    }
    let lower = detail.to_ascii_lowercase();
    if lower.contains("reset") || lower.contains("stream error") {
        return (EndReason::Reset, detail);
    }
    if mid_body {
        (EndReason::EofWithoutDone, detail)
    } else {
        (EndReason::Reset, detail)
    }
}

/// A transport error with its causes, on one line.
pub(crate) fn describe_transport(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_counts_comment_lines_across_chunks() {
        let mut tap = Tap::default();
        tap.observe(b": keep-alive\n\ndata: {\"a\": \":x\"}\n\n:");
        tap.observe(b" ping\n\n");
        assert_eq!(tap.comments, 2);
        assert_eq!(tap.bytes, 41);
    }

    #[test]
    fn events_are_read_as_vllm_writes_them() {
        let Ok(Seen::Chunk { content, usage }) =
            inspect_event(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#)
        else {
            panic!("role chunk not read");
        };
        assert!(!content && usage.is_none());
        let Ok(Seen::Chunk { content, .. }) = inspect_event(r#"{"choices":[{"text":" a"}]}"#)
        else {
            panic!("text chunk not read");
        };
        assert!(content);
        let Ok(Seen::Chunk { content, usage }) = inspect_event(
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}"#,
        ) else {
            panic!("usage chunk not read");
        };
        assert!(!content);
        assert_eq!(usage.unwrap().completion_tokens, 9);
        let Ok(Seen::Error(message)) =
            inspect_event(r#"{"error":{"message":"boom","type":"X","code":500}}"#)
        else {
            panic!("error event not read");
        };
        assert_eq!(message, "boom");
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let Err(detail) = inspect_event("{not json") else {
            panic!("accepted bad JSON");
        };
        assert!(detail.starts_with("malformed SSE"), "{detail}");
    }

    #[test]
    fn end_reasons_are_kebab_case() {
        assert_eq!(
            serde_json::to_string(&EndReason::EofWithoutDone).unwrap(),
            "\"eof-without-done\""
        );
        assert_eq!(EndReason::ClientTimeout.as_str(), "client-timeout");
    }
}

//! The probe's modes for the other failure modes: many streams at once (connection pool), one
//! large non-streaming body (buffer limits), a fresh connection against a warm one (cold start).

use super::ProbeError;
use super::client::{ClientOptions, HttpClient};
use super::request::Target;
use super::sse::{self, Limits, OnContent, StreamRecord};
use super::summary::tenth_ms;
use crate::evidence::probe::modes::{
    ColdResult, ConcurrencyResult, FailureGroup, LargeResult, MAX_STREAM_SPANS, StreamSpan,
};
use crate::evidence::probe::path::{
    EndReason, HeadersOfInterest, PathKind, PathResult, Percentiles,
};
use crate::sources::stop::Stop;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Largest non-streaming body kept in memory to check it; beyond it only bytes are counted.
const LARGE_BODY_LIMIT: usize = 256 << 20;
/// Characters of a failure cause kept when grouping failures.
const CAUSE_CHARS: usize = 100;

/// What a failed stream is grouped under; `None` for a stream that completed.
pub fn failure_cause(record: &StreamRecord) -> Option<String> {
    let first_line = |text: &Option<String>| -> String {
        text.as_deref()
            .and_then(|t| t.lines().next())
            .unwrap_or_default()
            .chars()
            .take(CAUSE_CHARS)
            .collect()
    };
    match record.end {
        EndReason::Done => None,
        EndReason::HttpError => Some(format!(
            "HTTP {}: {}",
            record.status.unwrap_or_default(),
            first_line(&record.detail)
        )),
        EndReason::StreamError => Some(format!("stream-error: {}", first_line(&record.detail))),
        other => Some(other.as_str().to_string()),
    }
}

/// Runs `streams` requests at once on `client` and sums them up.
#[allow(clippy::too_many_arguments)]
pub async fn concurrent(
    client: &HttpClient,
    path: PathKind,
    target: &Target,
    body: &Value,
    streams: u32,
    limits: Limits,
    stop: &Stop,
    on_content: OnContent<'_>,
) -> ConcurrencyResult {
    let opened_before = client.connections_opened();
    let started = Instant::now();
    let records = futures_util::future::join_all(
        (0..streams).map(|_| sse::stream(client, target, body, limits, stop, on_content)),
    )
    .await;
    summarize_concurrency(
        path,
        target.url.as_str(),
        &records,
        client.connections_opened().saturating_sub(opened_before),
        started.elapsed(),
    )
}

pub fn summarize_concurrency(
    path: PathKind,
    url: &str,
    records: &[StreamRecord],
    connections_opened: usize,
    wall: Duration,
) -> ConcurrencyResult {
    let mut by_status = BTreeMap::new();
    let mut by_end = BTreeMap::new();
    let mut causes: BTreeMap<String, u32> = BTreeMap::new();
    let mut overloaded = 0;
    let mut ttfts = Vec::new();
    for record in records {
        let status = record
            .status
            .map_or_else(|| "none".to_string(), |s| s.to_string());
        *by_status.entry(status).or_insert(0) += 1;
        *by_end.entry(record.end.as_str().to_string()).or_insert(0) += 1;
        if record.headers.envoy_overloaded.is_some() {
            overloaded += 1;
        }
        if let Some(cause) = failure_cause(record) {
            *causes.entry(cause).or_insert(0) += 1;
        }
        if let Some(ttft) = record.ttft() {
            ttfts.push(ttft.as_secs_f64() * 1000.0);
        }
    }
    let mut failures: Vec<FailureGroup> = causes
        .into_iter()
        .map(|(cause, count)| FailureGroup { cause, count })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.cause.cmp(&b.cause)));
    let streams = records.len() as u32;
    let zero = records.iter().map(|record| record.started).min();
    let stream_spans = records
        .iter()
        .take(MAX_STREAM_SPANS)
        .map(|record| {
            let offset = zero.map_or(Duration::ZERO, |zero| record.started - zero);
            let at = |time: Duration| tenth_ms(offset + time);
            StreamSpan {
                status: record.status,
                end: record.end,
                headers_ms: record.headers_at.map(at),
                ttft_ms: record.ttft().map(at),
                last_content_ms: record.last_content_at().map(at),
                end_ms: at(record.ended_at),
                chunks: record.content_at.len() as u64,
            }
        })
        .collect();
    let count_503 = by_status.get("503").copied().unwrap_or(0);
    ConcurrencyResult {
        path,
        url: url.to_string(),
        streams,
        by_status,
        by_end,
        share_503: if streams == 0 {
            0.0
        } else {
            f64::from(count_503) / f64::from(streams)
        },
        overloaded,
        failures,
        connections_opened,
        ttft_ms: Percentiles::of(&ttfts),
        wall_ms: wall.as_secs_f64() * 1000.0,
        server_side: None,
        stream_spans,
    }
}

/// Sends one non-streaming request and checks that the whole body arrived.
pub async fn large(
    client: &HttpClient,
    path: PathKind,
    target: &Target,
    body: &Value,
    tokens_asked: u32,
    limits: Limits,
    stop: &Stop,
) -> LargeResult {
    let started = Instant::now();
    let deadline = started + limits.overall;
    let mut stop = stop.clone();
    let mut result = LargeResult {
        path,
        url: target.url.to_string(),
        status: None,
        end: EndReason::Interrupted,
        end_detail: None,
        complete: false,
        bytes: 0,
        content_length: None,
        tokens_asked,
        tokens: None,
        headers_ms: None,
        total_ms: 0.0,
        headers: HeadersOfInterest::default(),
    };
    let finish = |mut result: LargeResult, end: EndReason, detail: Option<String>| {
        result.end = end;
        result.end_detail = detail;
        result.total_ms = started.elapsed().as_secs_f64() * 1000.0;
        result
    };
    let request = target
        .apply(client.inner().post(target.url.clone()))
        .json(body);
    let sent = tokio::select! {
        sent = tokio::time::timeout_at(deadline.into(), request.send()) => sent,
        () = stop.stopped() => return finish(result, EndReason::Interrupted, None),
    };
    let mut response = match sent {
        Err(_) => {
            return finish(
                result,
                EndReason::ClientTimeout,
                Some("no response headers in time".to_string()),
            );
        }
        Ok(Err(error)) => {
            let (end, detail) = sse::classify_transport(&error, false);
            return finish(result, end, Some(detail));
        }
        Ok(Ok(response)) => response,
    };
    result.headers_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    result.status = Some(response.status().as_u16());
    result.headers = HeadersOfInterest::from_map(response.headers());
    result.content_length = response.content_length();
    let success = response.status().is_success();
    let mut kept = Vec::new();
    let outcome = loop {
        let wait = limits
            .idle
            .min(deadline.saturating_duration_since(Instant::now()));
        let next = tokio::select! {
            next = tokio::time::timeout(wait, response.chunk()) => next,
            () = stop.stopped() => break Some((EndReason::Interrupted, "stopped by the user".to_string())),
        };
        match next {
            Err(_) => {
                break Some((
                    EndReason::ClientTimeout,
                    "the body stopped arriving".to_string(),
                ));
            }
            Ok(Err(error)) => break Some(sse::classify_transport(&error, true)),
            Ok(Ok(None)) => break None,
            Ok(Ok(Some(chunk))) => {
                result.bytes += chunk.len() as u64;
                if kept.len() + chunk.len() <= LARGE_BODY_LIMIT {
                    kept.extend_from_slice(&chunk);
                }
            }
        }
    };
    if !success {
        kept.truncate(sse::ERROR_EXCERPT_BYTES);
        let excerpt = String::from_utf8_lossy(&kept).trim().to_string();
        return finish(result, EndReason::HttpError, Some(excerpt));
    }
    if let Some((end, detail)) = outcome {
        let detail = format!("{detail} after {} bytes", result.bytes);
        return finish(result, end, Some(detail));
    }
    if let Some(length) = result.content_length
        && length != result.bytes
    {
        let detail = format!("{} of {length} announced bytes arrived", result.bytes);
        return finish(result, EndReason::EofWithoutDone, Some(detail));
    }
    if result.bytes as usize > LARGE_BODY_LIMIT {
        let detail = format!("body over {LARGE_BODY_LIMIT} bytes: not parsed");
        result.complete = true;
        return finish(result, EndReason::Done, Some(detail));
    }
    match serde_json::from_slice::<Value>(&kept) {
        Ok(json) if json.get("choices").is_some() => {
            result.tokens = json
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64);
            result.complete = true;
            finish(result, EndReason::Done, None)
        }
        Ok(_) => finish(
            result,
            EndReason::StreamError,
            Some("the body is JSON but not a completion".to_string()),
        ),
        Err(error) => finish(
            result,
            EndReason::EofWithoutDone,
            Some(format!("the body is not whole JSON: {error}")),
        ),
    }
}

/// Pause between the cold and the warm request, so the warm one finds the connection pooled.
const POOL_RETURN_WAIT: Duration = Duration::from_millis(100);

/// Builds a new client (so the first request opens a new connection), then sends a second
/// request on it.
pub async fn cold(
    options: ClientOptions,
    path: PathKind,
    target: &Target,
    body: &Value,
    limits: Limits,
    stop: &Stop,
    on_content: OnContent<'_>,
) -> Result<ColdResult, ProbeError> {
    let fresh = HttpClient::new(options)?;
    let url = target.url.to_string();
    let cold_record = sse::stream(&fresh, target, body, limits, stop, on_content).await;
    // The client hands the connection back to its pool a moment after the body ends; a warm
    // request sent before that would open a second connection.
    tokio::time::sleep(POOL_RETURN_WAIT).await;
    let warm_record = sse::stream(&fresh, target, body, limits, stop, on_content).await;
    let cold = PathResult::from_record(path, &url, &cold_record);
    let warm = PathResult::from_record(path, &url, &warm_record);
    Ok(ColdResult {
        path,
        url,
        ttft_penalty_ms: cold.ttft_ms.zip(warm.ttft_ms).map(|(c, w)| c - w),
        warm_reused_connection: !warm.new_connection,
        cold,
        warm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: Instant, status: u16, end: EndReason, content_ms: &[u64]) -> StreamRecord {
        let mut record = StreamRecord::new(started);
        record.status = Some(status);
        record.end = end;
        record.headers_at = Some(Duration::from_millis(2));
        record.content_at = content_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect();
        record.ended_at = Duration::from_millis(content_ms.last().copied().unwrap_or(3) + 1);
        record
    }

    #[test]
    fn a_burst_keeps_each_stream_span_from_the_first_send() {
        let zero = Instant::now();
        let records = [
            record(zero, 200, EndReason::Done, &[50, 100]),
            record(
                zero + Duration::from_millis(1),
                503,
                EndReason::HttpError,
                &[],
            ),
        ];
        let result =
            summarize_concurrency(PathKind::Mesh, "u", &records, 1, Duration::from_secs(1));
        let spans = &result.stream_spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(
            (
                spans[0].status,
                spans[0].end,
                spans[0].ttft_ms,
                spans[0].end_ms
            ),
            (Some(200), EndReason::Done, Some(50.0), 101.0)
        );
        assert_eq!(spans[0].last_content_ms, Some(100.0));
        // The second stream was sent 1 ms later: its offsets are from the first send.
        assert_eq!(
            (spans[1].status, spans[1].headers_ms, spans[1].end_ms),
            (Some(503), Some(3.0), 5.0)
        );
        assert_eq!((spans[1].ttft_ms, spans[1].chunks), (None, 0));
    }
}

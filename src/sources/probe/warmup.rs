//! The warm-up that sizes `--duration`: one stream read for a fixed time after its first token,
//! whose decode rate turns a duration into a token count. A time window, not a token count,
//! because a path that delivers tokens in bunches (a port-forward, a buffering hop) makes a short
//! sample look many times faster than the model is, and a stream sized from that would run far
//! past the duration asked.

use super::client::HttpClient;
use super::request::Target;
use super::sse::{self, Limits, OnContent, StreamRecord};
use crate::evidence::probe::path::EndReason;
use crate::sources::stop::Stop;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after its first token the warm-up is read.
pub const WINDOW: Duration = Duration::from_millis(1500);
/// Tokens the warm-up asks for: more than any model makes in the window, so the window ends it.
pub const MAX_TOKENS: u32 = 4096;

/// What the warm-up saw, and the decode rate measured from it.
#[derive(Debug)]
pub struct Warmup {
    pub record: StreamRecord,
    /// Tokens per second; `None` when too little arrived to measure.
    pub rate: Option<f64>,
}

/// Streams `body` to `target` and stops reading `WINDOW` after the first token (dropping the
/// connection, which makes vLLM abort the request), or when the stream ends first.
pub async fn measure(
    client: &HttpClient,
    target: &Target,
    body: &Value,
    limits: Limits,
    user_stop: &Stop,
    on_content: OnContent<'_>,
) -> Warmup {
    let (window_over, window_stop) = Stop::new();
    let first_token: OnceLock<Instant> = OnceLock::new();
    let watch_window = |count: u64| {
        on_content(count);
        let first = *first_token.get_or_init(Instant::now);
        if first.elapsed() >= WINDOW {
            let _ = window_over.send(true);
        }
    };
    let mut user = user_stop.clone();
    let record = tokio::select! {
        record = sse::stream(client, target, body, limits, &window_stop, &watch_window) => record,
        () = user.stopped() => return Warmup { record: interrupted(), rate: None },
    };
    let sampled = record.end == EndReason::Interrupted && !user_stop.is_stopped();
    let rate = if sampled || record.end == EndReason::Done {
        rate(&record)
    } else {
        None
    };
    Warmup { record, rate }
}

/// Decode rate: tokens after the first over the time they took. A finished stream counts the
/// server's usage; one cut at the window counts its content chunks.
pub fn rate(record: &StreamRecord) -> Option<f64> {
    let tokens = match record.end {
        EndReason::Done => record.tokens().0,
        _ => record.content_at.len() as u64,
    };
    let span = record.last_content_at()?.checked_sub(record.ttft()?)?;
    (tokens > 1 && !span.is_zero()).then(|| (tokens - 1) as f64 / span.as_secs_f64())
}

fn interrupted() -> StreamRecord {
    let mut record = StreamRecord::new(Instant::now());
    record.end = EndReason::Interrupted;
    record.detail = Some("stopped by the user".to_string());
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(end: EndReason, content_ms: impl IntoIterator<Item = u64>) -> StreamRecord {
        let mut record = StreamRecord::new(Instant::now());
        record.end = end;
        record.content_at = content_ms.into_iter().map(Duration::from_millis).collect();
        record
    }

    #[test]
    fn a_window_of_bunched_tokens_still_measures_the_model_rate() {
        // 100 tokens/s, but the first 10 held back and delivered in one lump at 140 ms.
        let lump = std::iter::repeat_n(140, 10);
        let steady = (15..=160).map(|tick| tick * 10);
        let sampled = record(EndReason::Interrupted, lump.chain(steady));
        let rate = rate(&sampled).unwrap();
        assert!((95.0..=112.0).contains(&rate), "{rate}");
    }

    #[test]
    fn too_little_to_measure_is_no_rate() {
        assert_eq!(rate(&record(EndReason::Interrupted, [100])), None);
        assert_eq!(rate(&record(EndReason::Interrupted, [100, 100])), None);
        assert_eq!(rate(&record(EndReason::Interrupted, [])), None);
    }
}

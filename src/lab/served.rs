//! Counters of what the lab server did, for tests and the `lab` command to assert on.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the lab server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Served {
    /// TCP connections accepted.
    pub connections: u64,
    /// HTTP requests of any kind.
    pub requests: u64,
    /// Requests that arrived over HTTP/2 (h2c).
    pub http2_requests: u64,
    pub completions: u64,
    pub chat_completions: u64,
    /// Generation requests with `stream: true`.
    pub streaming: u64,
    /// 401 answers (missing or wrong bearer).
    pub unauthorized: u64,
    /// Other 4xx/5xx answers to generation requests (bad request, unknown model, dead engine).
    pub rejected: u64,
    /// Tokens handed to connections.
    pub tokens: u64,
    /// Generations that ran to their end (`[DONE]` or the full body).
    pub finished: u64,
    /// Error events sent inside a 200 stream (or 500s for non-streaming requests).
    pub error_events: u64,
    /// Responses cut or reset on purpose (`close_after_tokens`, `reset_after_tokens`).
    pub cut: u64,
    /// Generations stopped because the client went away.
    pub abandoned: u64,
    /// Most requests generating at once.
    pub max_running: u64,
    /// Most requests waiting for a slot at once.
    pub max_waiting: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub http2_requests: AtomicU64,
    pub completions: AtomicU64,
    pub chat_completions: AtomicU64,
    pub streaming: AtomicU64,
    pub unauthorized: AtomicU64,
    pub rejected: AtomicU64,
    pub tokens: AtomicU64,
    pub finished: AtomicU64,
    pub error_events: AtomicU64,
    pub cut: AtomicU64,
    pub abandoned: AtomicU64,
    pub max_running: AtomicU64,
    pub max_waiting: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Served {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Served {
            connections: read(&self.connections),
            requests: read(&self.requests),
            http2_requests: read(&self.http2_requests),
            completions: read(&self.completions),
            chat_completions: read(&self.chat_completions),
            streaming: read(&self.streaming),
            unauthorized: read(&self.unauthorized),
            rejected: read(&self.rejected),
            tokens: read(&self.tokens),
            finished: read(&self.finished),
            error_events: read(&self.error_events),
            cut: read(&self.cut),
            abandoned: read(&self.abandoned),
            max_running: read(&self.max_running),
            max_waiting: read(&self.max_waiting),
        }
    }
}

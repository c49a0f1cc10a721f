//! One request's life in the lab "engine": queue for a slot, warm up, emit paced tokens, and play
//! the configured failure. Streaming writes vLLM's SSE frames; non-streaming returns one body.

use super::openai::{Plan, ResponseId, Usage, error_json, token_text};
use super::served::bump;
use super::server::Lab;
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, sleep_until};

/// What a stream's body channel carries: a frame, or the error that makes hyper abort.
pub(crate) type FrameResult = Result<Bytes, io::Error>;

const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";
const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// The client went away: stop generating.
struct Gone;

/// Holds the request's place in the waiting gauge until it is scheduled or dropped.
struct Waiting {
    lab: Arc<Lab>,
    active: bool,
}

impl Waiting {
    fn enter(lab: &Arc<Lab>, prompt_tokens: u32) -> Self {
        lab.metrics.enqueued(prompt_tokens);
        lab.counters
            .max_waiting
            .fetch_max(lab.metrics.waiting(), Ordering::Relaxed);
        Self {
            lab: Arc::clone(lab),
            active: true,
        }
    }

    fn leave(mut self) {
        self.active = false;
        self.lab.metrics.left_queue();
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.active {
            self.lab.metrics.left_queue();
        }
    }
}

/// A generation slot (one of `max_num_seqs`); counts as running until dropped.
struct Running {
    lab: Arc<Lab>,
    _permit: OwnedSemaphorePermit,
}

impl Running {
    fn start(lab: &Arc<Lab>, permit: OwnedSemaphorePermit, queue_time: Duration) -> Self {
        let running = lab.metrics.scheduled(queue_time);
        lab.counters
            .max_running
            .fetch_max(running, Ordering::Relaxed);
        Self {
            lab: Arc::clone(lab),
            _permit: permit,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.lab.metrics.unscheduled();
    }
}

/// Writes frames into the response body, sending keep-alive comments while it waits.
struct Writer {
    lab: Arc<Lab>,
    tx: mpsc::Sender<FrameResult>,
    last_write: Instant,
    sent_tokens: Vec<std::time::Instant>,
}

enum Woke<T> {
    Ready(T),
    KeepAlive,
    Closed,
}

impl Writer {
    async fn send(&mut self, frame: Bytes) -> Result<(), Gone> {
        self.tx.send(Ok(frame)).await.map_err(|_| Gone)?;
        self.last_write = Instant::now();
        Ok(())
    }

    async fn send_data(&mut self, json: &str) -> Result<(), Gone> {
        self.send(Bytes::from(format!("data: {json}\n\n"))).await
    }

    /// Waits for `future`, writing `: keep-alive` comments when due; fails if the client left.
    async fn wait_for<F: Future>(&mut self, future: F) -> Result<F::Output, Gone> {
        tokio::pin!(future);
        loop {
            let keepalive = self.lab.config.keepalive_interval;
            let next_keepalive = self.last_write + keepalive.unwrap_or(Duration::ZERO);
            let woke = tokio::select! {
                output = &mut future => Woke::Ready(output),
                () = sleep_until(next_keepalive), if keepalive.is_some() => Woke::KeepAlive,
                () = self.tx.closed() => Woke::Closed,
            };
            match woke {
                Woke::Ready(output) => return Ok(output),
                Woke::KeepAlive => self.send(Bytes::from_static(KEEPALIVE_FRAME)).await?,
                Woke::Closed => return Err(Gone),
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.lab.config.record_send_times {
            self.lab.record_sends(std::mem::take(&mut self.sent_tokens));
        }
    }
}

/// Streams one request into `tx` as vLLM frames it.
pub(crate) async fn stream(
    lab: Arc<Lab>,
    plan: Plan,
    id: ResponseId,
    include_usage: bool,
    arrival: Instant,
    tx: mpsc::Sender<FrameResult>,
) {
    let mut writer = Writer {
        lab: Arc::clone(&lab),
        tx,
        last_write: Instant::now(),
        sent_tokens: Vec::new(),
    };
    if run_stream(&lab, plan, &id, include_usage, arrival, &mut writer)
        .await
        .is_err()
    {
        bump(&lab.counters.abandoned);
    }
}

async fn run_stream(
    lab: &Arc<Lab>,
    plan: Plan,
    id: &ResponseId,
    include_usage: bool,
    arrival: Instant,
    writer: &mut Writer,
) -> Result<(), Gone> {
    let config = &lab.config;
    let waiting = Waiting::enter(lab, plan.prompt_tokens);
    let permit = writer
        .wait_for(Arc::clone(&lab.slots).acquire_owned())
        .await?
        .map_err(|_| Gone)?;
    waiting.leave();
    let _running = Running::start(lab, permit, arrival.elapsed());
    if let Some(warm_at) = lab.warm_deadline() {
        writer.wait_for(sleep_until(warm_at)).await?;
    }
    let interval = config.token_interval();
    let mut deadline = Instant::now() + interval;
    let mut previous_token: Option<Instant> = None;
    for index in 0..=plan.output_tokens {
        // A failure happens when the next token would have come, so what was sent is flushed.
        if index < plan.output_tokens {
            if let Some(pause) = config.pause
                && pause.after_tokens == index
            {
                deadline += pause.duration;
            }
            writer.wait_for(sleep_until(deadline)).await?;
        }
        if config.error_after_tokens == Some(index) {
            let error = error_json(
                "InternalServerError",
                &format!("lab: engine error after {index} tokens"),
                500,
            );
            writer.send_data(&error).await?;
            writer.send(Bytes::from_static(DONE_FRAME)).await?;
            bump(&lab.counters.error_events);
            return Ok(());
        }
        if config.close_after_tokens == Some(index) {
            bump(&lab.counters.cut);
            return Ok(());
        }
        if config.reset_after_tokens == Some(index) {
            bump(&lab.counters.cut);
            let reset = io::Error::new(io::ErrorKind::ConnectionReset, "lab: reset on purpose");
            writer.tx.send(Err(reset)).await.map_err(|_| Gone)?;
            return Ok(());
        }
        if index == plan.output_tokens {
            break;
        }
        if index == 0 && id.api == super::openai::Api::Chat {
            writer.send_data(&id.role_chunk()).await?;
        }
        let last = index + 1 == plan.output_tokens;
        let chunk = id.content_chunk(&token_text(index), last.then_some(plan.finish_reason));
        writer.send_data(&chunk).await?;
        let now = Instant::now();
        if config.record_send_times {
            writer.sent_tokens.push(now.into_std());
        }
        bump(&lab.counters.tokens);
        match previous_token {
            None => lab.metrics.first_token(now - arrival),
            Some(previous) => lab.metrics.next_tokens(now - previous, 1),
        }
        previous_token = Some(now);
        deadline += interval;
    }
    if include_usage {
        let usage = Usage::new(plan.prompt_tokens, plan.output_tokens);
        writer.send_data(&id.usage_chunk(usage)).await?;
    }
    writer.send(Bytes::from_static(DONE_FRAME)).await?;
    lab.metrics.finished(plan.finish_reason, arrival.elapsed());
    bump(&lab.counters.finished);
    Ok(())
}

/// The outcome of a non-streaming request.
pub(crate) enum Complete {
    /// The full JSON body.
    Body(String),
    /// An engine error (500 with vLLM's error JSON).
    EngineError(String),
    /// The full body's length is announced but only `prefix` is sent, then the connection drops.
    Truncated { body: String, prefix: usize },
}

/// Generates one non-streaming response: all tokens' time, then the whole body.
pub(crate) async fn complete(
    lab: Arc<Lab>,
    plan: Plan,
    id: ResponseId,
    arrival: Instant,
) -> Complete {
    let config = &lab.config;
    let waiting = Waiting::enter(&lab, plan.prompt_tokens);
    let permit = match Arc::clone(&lab.slots).acquire_owned().await {
        Ok(permit) => permit,
        Err(_) => return Complete::EngineError("lab: engine stopped".to_string()),
    };
    waiting.leave();
    let _running = Running::start(&lab, permit, arrival.elapsed());
    if let Some(warm_at) = lab.warm_deadline() {
        sleep_until(warm_at).await;
    }
    let interval = config.token_interval();
    let tokens = plan.output_tokens;
    if let Some(after) = config.error_after_tokens
        && after <= tokens
    {
        tokio::time::sleep(interval * after).await;
        bump(&lab.counters.error_events);
        return Complete::EngineError(error_json(
            "InternalServerError",
            &format!("lab: engine error after {after} tokens"),
            500,
        ));
    }
    let mut busy = interval * tokens;
    if let Some(pause) = config.pause
        && pause.after_tokens < tokens
    {
        busy += pause.duration;
    }
    if tokens > 0 {
        tokio::time::sleep(interval).await;
        lab.metrics.first_token(arrival.elapsed());
        tokio::time::sleep(busy.saturating_sub(interval)).await;
        lab.metrics
            .next_tokens(interval, u64::from(tokens.saturating_sub(1)));
    }
    lab.counters
        .tokens
        .fetch_add(u64::from(tokens), Ordering::Relaxed);
    let text: String = (0..tokens).map(token_text).collect();
    let body = id.full_response(
        &text,
        plan.finish_reason,
        Usage::new(plan.prompt_tokens, tokens),
    );
    let cut = [config.close_after_tokens, config.reset_after_tokens]
        .into_iter()
        .flatten()
        .min();
    if let Some(cut) = cut
        && cut < tokens
    {
        bump(&lab.counters.cut);
        let prefix = body.len() * cut as usize / tokens.max(1) as usize;
        return Complete::Truncated { body, prefix };
    }
    lab.metrics.finished(plan.finish_reason, arrival.elapsed());
    bump(&lab.counters.finished);
    Complete::Body(body)
}

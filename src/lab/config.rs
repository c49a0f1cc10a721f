//! The knobs of the lab server: how fast it "generates", and which failure it plays.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A one-time stop inside every stream: after `after_tokens` tokens, wait `duration` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub after_tokens: u32,
    pub duration: Duration,
}

/// Everything the lab server can be told. Build with struct update syntax:
/// `ServerConfig { tokens_per_second: 200.0, ..ServerConfig::default() }`.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen; the default `127.0.0.1:0` picks a free loopback port.
    pub addr: SocketAddr,
    /// The model id served by `/v1/models` and required in requests.
    pub model: String,
    /// Token rate of each stream; `0` (or negative) streams as fast as possible.
    pub tokens_per_second: f64,
    /// A pause inside every stream.
    pub pause: Option<Pause>,
    /// Cold model: requests that start before `start of the first request + warmup_delay` wait
    /// until then before their first token.
    pub warmup_delay: Duration,
    /// After this many tokens, send `data: {"error": …}` inside the 200 stream (then `[DONE]`,
    /// as vLLM does). Non-streaming requests answer 500 instead.
    pub error_after_tokens: Option<u32>,
    /// After this many tokens, end the response body cleanly without usage or `[DONE]` (a cut).
    pub close_after_tokens: Option<u32>,
    /// After this many tokens, reset: a TCP RST on HTTP/1.1 (the server's sockets close with
    /// `SO_LINGER` 0 while this is set), `RST_STREAM` on HTTP/2.
    pub reset_after_tokens: Option<u32>,
    /// Send a `: keep-alive` SSE comment when nothing was written for this long.
    pub keepalive_interval: Option<Duration>,
    /// When set, `/v1/*` requires `Authorization: Bearer <key>` (401 otherwise), as `vllm --api-key`.
    pub api_key: Option<String>,
    /// Requests generating at once; the rest wait (`vllm:num_requests_waiting`).
    pub max_num_seqs: usize,
    /// Prompt plus output tokens allowed per request (400 beyond it, as vLLM).
    pub max_model_len: u32,
    /// The model's natural end: it emits EOS after this many tokens unless `ignore_eos` is set or
    /// `min_tokens` asks for more. `None`: it always runs to `max_tokens`.
    pub eos_after_tokens: Option<u32>,
    /// A dead engine: `/health` answers 503 and generation requests 500.
    pub dead: bool,
    /// Serve the metric names of older vLLM (`vllm:time_per_output_token_seconds`,
    /// `vllm:gpu_cache_usage_perc`) instead of the current ones.
    pub legacy_metric_names: bool,
    /// Keep the instant each token was handed to the connection (see `RunningServer::send_log`).
    pub record_send_times: bool,
}

impl ServerConfig {
    /// The time between two tokens; zero when unpaced.
    pub fn token_interval(&self) -> Duration {
        if self.tokens_per_second > 0.0 && self.tokens_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / self.tokens_per_second)
        } else {
            Duration::ZERO
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            model: "lab-model".to_string(),
            tokens_per_second: 50.0,
            pause: None,
            warmup_delay: Duration::ZERO,
            error_after_tokens: None,
            close_after_tokens: None,
            reset_after_tokens: None,
            keepalive_interval: None,
            api_key: None,
            max_num_seqs: 256,
            max_model_len: 1 << 20,
            eos_after_tokens: None,
            dead: false,
            legacy_metric_names: false,
            record_send_times: false,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("model", &self.model)
            .field("tokens_per_second", &self.tokens_per_second)
            .field("pause", &self.pause)
            .field("warmup_delay", &self.warmup_delay)
            .field("error_after_tokens", &self.error_after_tokens)
            .field("close_after_tokens", &self.close_after_tokens)
            .field("reset_after_tokens", &self.reset_after_tokens)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("max_num_seqs", &self.max_num_seqs)
            .field("max_model_len", &self.max_model_len)
            .field("eos_after_tokens", &self.eos_after_tokens)
            .field("dead", &self.dead)
            .field("legacy_metric_names", &self.legacy_metric_names)
            .field("record_send_times", &self.record_send_times)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_api_key() {
        let config = ServerConfig {
            api_key: Some("sk-very-secret".to_string()),
            ..ServerConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("sk-very-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn interval_follows_the_rate() {
        let paced = ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        };
        assert_eq!(paced.token_interval(), Duration::from_millis(5));
        let unpaced = ServerConfig {
            tokens_per_second: 0.0,
            ..ServerConfig::default()
        };
        assert_eq!(unpaced.token_interval(), Duration::ZERO);
    }
}

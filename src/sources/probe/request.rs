//! What the probe asks vLLM for: the completions or chat body, the model, the bearer key, and how
//! many tokens make a stream last about `--duration`.

use super::ProbeError;
use super::client::{HttpClient, endpoint};
use crate::evidence::probe::report::Api;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;
use std::time::Duration;

/// Largest body read from `/v1/models`.
const MODELS_BODY_LIMIT: usize = 1 << 20;

/// A bearer key read from the environment. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key in `$name`, or `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .map(|value| Self(value.trim().to_string()))
    }

    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationSpec {
    pub api: Api,
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    /// Ask for exactly `max_tokens` (vLLM's `min_tokens` + `ignore_eos`): a stream of known length.
    pub exact_length: bool,
    pub stream: bool,
}

impl GenerationSpec {
    /// The JSON body vLLM's OpenAI server accepts.
    pub fn body(&self) -> Value {
        let mut body = match self.api {
            Api::Completions => json!({"model": self.model, "prompt": self.prompt}),
            Api::Chat => json!({
                "model": self.model,
                "messages": [{"role": "user", "content": self.prompt}],
            }),
        };
        body["max_tokens"] = json!(self.max_tokens);
        body["stream"] = json!(self.stream);
        if self.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if self.exact_length {
            body["min_tokens"] = json!(self.max_tokens);
            body["ignore_eos"] = json!(true);
        }
        body
    }
}

/// Where one request goes: the full endpoint URL, an optional Host override (gateways route by
/// Host), and the bearer key.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub host: Option<String>,
    pub api_key: Option<ApiKey>,
}

impl Target {
    pub fn new(base: &Url, api: Api, host: Option<String>, api_key: Option<ApiKey>) -> Self {
        Self {
            url: endpoint(base, api.path()),
            host,
            api_key,
        }
    }

    pub(crate) fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(host) = &self.host {
            request = request.header(reqwest::header::HOST, host);
        }
        if let Some(key) = &self.api_key {
            request = request.header(reqwest::header::AUTHORIZATION, key.bearer());
        }
        request
    }
}

#[derive(Debug, Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
    /// vLLM adds the model's context length to its model list.
    #[serde(default)]
    max_model_len: Option<u64>,
}

/// A model as `/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub max_model_len: Option<u32>,
}

/// The first model `GET /v1/models` lists.
pub async fn discover_model(
    client: &HttpClient,
    base: &Url,
    host: Option<&str>,
    api_key: Option<&ApiKey>,
    timeout: Duration,
) -> Result<ModelInfo, ProbeError> {
    let url = endpoint(base, "v1/models");
    let failed = |reason: String| ProbeError::ModelDiscovery {
        url: url.to_string(),
        reason,
    };
    let target = Target {
        url: url.clone(),
        host: host.map(str::to_string),
        api_key: api_key.cloned(),
    };
    let request = target.apply(client.inner().get(url.clone()));
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| {
            failed(format!(
                "no answer within {}",
                crate::units::duration::display(timeout)
            ))
        })?
        .map_err(|error| failed(super::sse::describe_transport(&error)))?;
    let status = response.status();
    let body = tokio::time::timeout(timeout, read_limited(response, MODELS_BODY_LIMIT))
        .await
        .map_err(|_| failed("the body did not arrive in time".to_string()))?
        .map_err(failed)?;
    if !status.is_success() {
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(failed(format!("HTTP {status}: {}", excerpt.trim())));
    }
    let list: ModelList = serde_json::from_slice(&body)
        .map_err(|error| failed(format!("not a model list: {error}")))?;
    list.data
        .into_iter()
        .next()
        .map(|model| ModelInfo {
            id: model.id,
            max_model_len: model
                .max_model_len
                .map(|len| u32::try_from(len).unwrap_or(u32::MAX)),
        })
        .ok_or_else(|| failed("the list is empty".to_string()))
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| super::sse::describe_transport(&error))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(format!("the body is larger than {limit} bytes"));
        }
    }
    Ok(body)
}

/// Tokens for a stream of about `duration` at `tokens_per_second`, at least 1, at most `cap`.
/// `prompt` repeated (space-separated) to at least `bytes` bytes: a long context of real words.
pub fn padded_prompt(prompt: &str, bytes: u64) -> String {
    let unit = if prompt.trim().is_empty() {
        "context"
    } else {
        prompt.trim()
    };
    let wanted = usize::try_from(bytes).unwrap_or(usize::MAX);
    let mut padded = String::with_capacity(wanted.saturating_add(unit.len()));
    while padded.len() < wanted {
        if !padded.is_empty() {
            padded.push(' ');
        }
        padded.push_str(unit);
    }
    padded
}

pub fn tokens_for_duration(tokens_per_second: f64, duration: Duration, cap: u32) -> u32 {
    let wanted = (tokens_per_second * duration.as_secs_f64()).ceil();
    if !wanted.is_finite() || wanted < 1.0 {
        return 1;
    }
    if wanted >= f64::from(cap) {
        cap
    } else {
        wanted as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_padded_prompt_reaches_the_size_asked_in_whole_words() {
        let padded = padded_prompt("tell me a story", 100);
        assert!((100..=116).contains(&padded.len()), "{}", padded.len());
        assert!(padded.starts_with("tell me a story tell"));
        assert!(padded.ends_with("story"));
        assert_eq!(padded_prompt("", 10), "context context");
    }

    #[test]
    fn completions_body_asks_for_usage_and_exact_length() {
        let spec = GenerationSpec {
            api: Api::Completions,
            model: "m".to_string(),
            prompt: "p".to_string(),
            max_tokens: 40,
            exact_length: true,
            stream: true,
        };
        let body = spec.body();
        assert_eq!(body["prompt"], "p");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["min_tokens"], 40);
        assert_eq!(body["ignore_eos"], true);
    }

    #[test]
    fn chat_body_has_messages_and_no_stream_options_when_not_streaming() {
        let spec = GenerationSpec {
            api: Api::Chat,
            model: "m".to_string(),
            prompt: "p".to_string(),
            max_tokens: 4,
            exact_length: false,
            stream: false,
        };
        let body = spec.body();
        assert_eq!(body["messages"][0]["content"], "p");
        assert!(body.get("stream_options").is_none());
        assert!(body.get("min_tokens").is_none());
    }

    #[test]
    fn api_key_never_shows() {
        let key = ApiKey::new("sk-secret-value");
        assert!(!format!("{key:?} {key}").contains("secret"));
        let target = Target {
            url: Url::parse("http://h/v1/completions").unwrap(),
            host: None,
            api_key: Some(key),
        };
        assert!(!format!("{target:?}").contains("secret"));
    }

    #[test]
    fn duration_sizing_is_bounded() {
        assert_eq!(
            tokens_for_duration(50.0, Duration::from_secs(10), 10_000),
            500
        );
        assert_eq!(
            tokens_for_duration(50.0, Duration::from_secs(1000), 10_000),
            10_000
        );
        assert_eq!(tokens_for_duration(0.0, Duration::from_secs(10), 10_000), 1);
        assert_eq!(
            tokens_for_duration(f64::NAN, Duration::from_secs(10), 10_000),
            1
        );
    }
}

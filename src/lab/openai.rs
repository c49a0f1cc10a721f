//! The OpenAI-compatible request and response shapes, as vLLM writes them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Completions when absent (`vllm` follows OpenAI's legacy default of 16).
const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Completions,
    Chat,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GenerationRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: Option<Value>,
    #[serde(default)]
    pub messages: Option<Vec<Value>>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub min_tokens: u32,
    #[serde(default)]
    pub ignore_eos: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// How many tokens a request gets and why it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub finish_reason: &'static str,
}

/// A request the server refuses, with vLLM's status and error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl GenerationRequest {
    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|options| options.include_usage)
    }

    /// Words of the prompt (or of every message), at least one: the lab's "tokenizer".
    fn prompt_tokens(&self, api: Api) -> u32 {
        let mut words = 0usize;
        match api {
            Api::Completions => count_words(self.prompt.as_ref(), &mut words),
            Api::Chat => {
                for message in self.messages.iter().flatten() {
                    count_words(message.get("content"), &mut words);
                }
            }
        }
        u32::try_from(words.max(1)).unwrap_or(u32::MAX)
    }

    /// Checks the request as vLLM would and decides its length.
    pub(crate) fn plan(
        &self,
        api: Api,
        served_model: &str,
        max_model_len: u32,
        eos_after: Option<u32>,
    ) -> Result<Plan, Rejection> {
        if let Some(model) = &self.model
            && model != served_model
        {
            return Err(Rejection {
                status: 404,
                kind: "NotFoundError",
                message: format!("The model `{model}` does not exist."),
            });
        }
        match api {
            Api::Completions if self.prompt.is_none() => {
                return Err(bad_request("`prompt` is required"));
            }
            Api::Chat if self.messages.as_ref().is_none_or(Vec::is_empty) => {
                return Err(bad_request("`messages` is required"));
            }
            _ => {}
        }
        let prompt_tokens = self.prompt_tokens(api);
        let room = max_model_len.saturating_sub(prompt_tokens);
        let limit = match (api, self.max_completion_tokens.or(self.max_tokens)) {
            (_, Some(asked)) if asked > room => {
                return Err(bad_request(&format!(
                    "This model's maximum context length is {max_model_len} tokens. However, you requested {} tokens ({prompt_tokens} in the messages, {asked} in the completion). Please reduce the length of the messages or completion.",
                    u64::from(prompt_tokens) + u64::from(asked)
                )));
            }
            (_, Some(asked)) => asked,
            (Api::Completions, None) => DEFAULT_COMPLETION_MAX_TOKENS.min(room),
            (Api::Chat, None) => room,
        };
        if self.min_tokens > limit {
            return Err(bad_request(&format!(
                "min_tokens must be less than or equal to max_tokens={limit}, got {}.",
                self.min_tokens
            )));
        }
        let natural_end = match eos_after {
            Some(eos) if !self.ignore_eos => Some(eos.max(self.min_tokens)),
            _ => None,
        };
        Ok(match natural_end {
            Some(end) if end < limit => Plan {
                prompt_tokens,
                output_tokens: end,
                finish_reason: "stop",
            },
            _ => Plan {
                prompt_tokens,
                output_tokens: limit,
                finish_reason: "length",
            },
        })
    }
}

fn count_words(value: Option<&Value>, words: &mut usize) {
    match value {
        Some(Value::String(text)) => *words += text.split_whitespace().count(),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Object(part) => count_words(part.get("text"), words),
                    other => count_words(Some(other), words),
                }
            }
        }
        Some(Value::Number(_)) => *words += 1,
        _ => {}
    }
}

pub(crate) fn bad_request(message: &str) -> Rejection {
    Rejection {
        status: 400,
        kind: "BadRequestError",
        message: message.to_string(),
    }
}

/// The text of token `index`: deterministic, so a client can check what it got.
pub fn token_text(index: u32) -> String {
    format!(" tok{index}")
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorInfo<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorInfo<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<()>,
    pub code: u16,
}

pub(crate) fn error_json(kind: &str, message: &str, code: u16) -> String {
    serde_json::to_string(&ErrorBody {
        error: ErrorInfo {
            message,
            kind,
            param: None,
            code,
        },
    })
    .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            completion_tokens,
        }
    }
}

/// Identity shared by every chunk of one response.
#[derive(Debug, Clone)]
pub(crate) struct ResponseId {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
    stop_reason: Option<()>,
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

#[derive(Serialize)]
struct Nothing;

impl ResponseId {
    fn chunk_object(&self) -> &'static str {
        match self.api {
            Api::Completions => "text_completion",
            Api::Chat => "chat.completion.chunk",
        }
    }

    fn serialize<C: Serialize>(&self, choices: Vec<C>, usage: Option<Usage>) -> String {
        serde_json::to_string(&Chunk {
            id: &self.id,
            object: self.chunk_object(),
            created: self.created,
            model: &self.model,
            choices,
            usage,
        })
        .unwrap_or_default()
    }

    /// The chat stream's first chunk: the role, no content yet.
    pub(crate) fn role_chunk(&self) -> String {
        self.serialize(
            vec![DeltaChoice {
                index: 0,
                delta: Delta {
                    role: Some("assistant"),
                    content: "",
                },
                logprobs: None,
                finish_reason: None,
            }],
            None,
        )
    }

    pub(crate) fn content_chunk(&self, text: &str, finish_reason: Option<&str>) -> String {
        match self.api {
            Api::Completions => self.serialize(
                vec![TextChoice {
                    index: 0,
                    text,
                    logprobs: None,
                    finish_reason,
                    stop_reason: None,
                }],
                None,
            ),
            Api::Chat => self.serialize(
                vec![DeltaChoice {
                    index: 0,
                    delta: Delta {
                        role: None,
                        content: text,
                    },
                    logprobs: None,
                    finish_reason,
                }],
                None,
            ),
        }
    }

    /// The last chunk under `stream_options.include_usage`: no choices, only usage.
    pub(crate) fn usage_chunk(&self, usage: Usage) -> String {
        self.serialize(Vec::<Nothing>::new(), Some(usage))
    }

    /// The whole non-streaming response.
    pub(crate) fn full_response(&self, text: &str, finish_reason: &str, usage: Usage) -> String {
        let body = match self.api {
            Api::Completions => serde_json::json!({
                "id": self.id,
                "object": "text_completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "text": text,
                    "logprobs": null,
                    "finish_reason": finish_reason,
                    "stop_reason": null,
                    "prompt_logprobs": null
                }],
                "usage": usage,
            }),
            Api::Chat => serde_json::json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": []},
                    "logprobs": null,
                    "finish_reason": finish_reason,
                    "stop_reason": null
                }],
                "usage": usage,
            }),
        };
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> GenerationRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn completions_default_to_16_tokens() {
        let plan = request(r#"{"prompt": "hello there"}"#)
            .plan(Api::Completions, "m", 100, None)
            .unwrap();
        assert_eq!(
            plan,
            Plan {
                prompt_tokens: 2,
                output_tokens: 16,
                finish_reason: "length"
            }
        );
    }

    #[test]
    fn eos_stops_early_unless_ignored_or_min_tokens_asks_more() {
        let eos = Some(5);
        let stop = request(r#"{"prompt": "x", "max_tokens": 50}"#)
            .plan(Api::Completions, "m", 1000, eos)
            .unwrap();
        assert_eq!((stop.output_tokens, stop.finish_reason), (5, "stop"));
        let ignored = request(r#"{"prompt": "x", "max_tokens": 50, "ignore_eos": true}"#)
            .plan(Api::Completions, "m", 1000, eos)
            .unwrap();
        assert_eq!(
            (ignored.output_tokens, ignored.finish_reason),
            (50, "length")
        );
        let min = request(r#"{"prompt": "x", "max_tokens": 50, "min_tokens": 20}"#)
            .plan(Api::Completions, "m", 1000, eos)
            .unwrap();
        assert_eq!((min.output_tokens, min.finish_reason), (20, "stop"));
    }

    #[test]
    fn rejects_what_vllm_rejects() {
        let wrong_model = request(r#"{"model": "other", "prompt": "x"}"#)
            .plan(Api::Completions, "m", 100, None)
            .unwrap_err();
        assert_eq!(wrong_model.status, 404);
        let too_long = request(r#"{"prompt": "x", "max_tokens": 100}"#)
            .plan(Api::Completions, "m", 100, None)
            .unwrap_err();
        assert_eq!(too_long.status, 400);
        let min_over_max = request(r#"{"prompt": "x", "max_tokens": 5, "min_tokens": 6}"#)
            .plan(Api::Completions, "m", 100, None)
            .unwrap_err();
        assert_eq!(min_over_max.status, 400);
        let no_messages = request(r#"{"messages": []}"#)
            .plan(Api::Chat, "m", 100, None)
            .unwrap_err();
        assert_eq!(no_messages.status, 400);
    }

    #[test]
    fn chunks_are_shaped_as_vllm_writes_them() {
        let id = ResponseId {
            api: Api::Chat,
            id: "chatcmpl-1".to_string(),
            created: 7,
            model: "m".to_string(),
        };
        let role: Value = serde_json::from_str(&id.role_chunk()).unwrap();
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        let content: Value = serde_json::from_str(&id.content_chunk(" tok0", None)).unwrap();
        assert_eq!(content["choices"][0]["delta"]["content"], " tok0");
        assert!(content["choices"][0]["delta"].get("role").is_none());
        assert!(content.get("usage").is_none());
        let usage: Value = serde_json::from_str(&id.usage_chunk(Usage::new(2, 3))).unwrap();
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 5);
    }
}

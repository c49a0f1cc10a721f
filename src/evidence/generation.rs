//! Which request paths carry generations, and whether a route's match admits one: a route that
//! only matches `/health`, `/metrics` or `/v1/models` carries no generation, so its timeout cuts
//! no stream. The paths are the servers' own generation endpoints: the OpenAI-compatible API of
//! vLLM, SGLang and TGI (`/v1/completions`, `/v1/chat/completions`, `/v1/responses`), TGI's and
//! SGLang's native `/generate` and `/generate_stream`, and Triton's generate extension
//! (`/v2/models/<model>/generate`, `/generate_stream`).

use serde_json::Value;

/// Paths that carry generations.
pub const GENERATION_PATHS: [&str; 5] = [
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/responses",
    "/generate",
    "/generate_stream",
];
/// Triton's per-model generate endpoints live under this prefix.
const TRITON_MODELS: &str = "/v2/models/";

/// Whether a path prefix admits a generation path (Istio's `uri.prefix` and Envoy's `prefix` are
/// plain string prefixes; Gateway API's `PathPrefix` is by segment, which only narrows this).
pub fn prefix_admits(prefix: &str) -> bool {
    GENERATION_PATHS.iter().any(|path| path.starts_with(prefix))
        || TRITON_MODELS.starts_with(prefix)
        || (prefix.starts_with(TRITON_MODELS) && !prefix.contains("/ready"))
}

/// Whether an exact path is a generation path.
pub fn exact_admits(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    GENERATION_PATHS.contains(&path)
        || (path.starts_with(TRITON_MODELS) && path.contains("/generate"))
}

/// Whether an Envoy route's match (as the config model words it: `prefix /v1/`, `path /health`,
/// `regex …`, empty for none) admits a generation path. A regex is assumed to (it is not run).
pub fn envoy_matcher_admits(matcher: &str) -> bool {
    match matcher.split_once(' ') {
        Some(("prefix" | "path_separated_prefix", prefix)) => prefix_admits(prefix),
        Some(("path", path)) => exact_admits(path),
        _ => true,
    }
}

/// Whether a VirtualService route's `match` list admits a generation path: no match at all, or
/// one match whose `uri` is absent, a prefix or exact path that admits one, or a regex.
pub fn istio_matches_admit(matches: &[Value]) -> bool {
    matches.is_empty()
        || matches.iter().any(|one| {
            let Some(uri) = one.get("uri") else {
                return true;
            };
            string_match_admits(uri, "prefix", "exact")
        })
}

/// Whether an HTTPRoute rule's `matches` admit a generation path: none, or one whose `path` is
/// absent (`PathPrefix /` by default), a `PathPrefix` or `Exact` that admits one, or a regex.
pub fn gateway_matches_admit(matches: &[Value]) -> bool {
    matches.is_empty()
        || matches.iter().any(|one| {
            let Some(path) = one.get("path") else {
                return true;
            };
            let value = path.get("value").and_then(Value::as_str).unwrap_or("/");
            match path
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("PathPrefix")
            {
                "PathPrefix" => prefix_admits(value),
                "Exact" => exact_admits(value),
                _ => true,
            }
        })
}

fn string_match_admits(value: &Value, prefix_key: &str, exact_key: &str) -> bool {
    if let Some(prefix) = value.get(prefix_key).and_then(Value::as_str) {
        return prefix_admits(prefix);
    }
    if let Some(exact) = value.get(exact_key).and_then(Value::as_str) {
        return exact_admits(exact);
    }
    true
}

/// The words for a route's match when it carries no generation: `/health`.
pub fn describe_matches(matches: &[Value]) -> String {
    let paths: Vec<String> = matches
        .iter()
        .filter_map(|one| one.get("uri").or_else(|| one.get("path")))
        .filter_map(|uri| {
            ["prefix", "exact", "value"]
                .iter()
                .find_map(|key| uri.get(key).and_then(Value::as_str))
                .map(str::to_string)
        })
        .collect();
    paths.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generation_paths_are_admitted_and_health_metrics_and_models_are_not() {
        for prefix in [
            "/",
            "/v1",
            "/v1/",
            "/v1/chat",
            "/gen",
            "/v2",
            "/v2/models/llama/",
        ] {
            assert!(prefix_admits(prefix), "{prefix}");
        }
        for prefix in [
            "/health",
            "/metrics",
            "/v1/models",
            "/version",
            "/v2/health",
        ] {
            assert!(!prefix_admits(prefix), "{prefix}");
        }
        assert!(exact_admits("/v1/chat/completions"));
        assert!(exact_admits("/v2/models/llama/generate_stream"));
        assert!(!exact_admits("/health"));
        assert!(envoy_matcher_admits(""));
        assert!(envoy_matcher_admits("prefix /"));
        assert!(envoy_matcher_admits("regex ^/v1/.*"));
        assert!(!envoy_matcher_admits("path /health"));
        assert!(!envoy_matcher_admits("prefix /metrics"));
    }

    #[test]
    fn route_matches_admit_generation_when_any_match_does() {
        assert!(istio_matches_admit(&[]));
        assert!(istio_matches_admit(&[
            json!({"headers": {"x": {"exact": "y"}}})
        ]));
        assert!(!istio_matches_admit(&[
            json!({"uri": {"prefix": "/health"}})
        ]));
        assert!(istio_matches_admit(&[
            json!({"uri": {"prefix": "/health"}}),
            json!({"uri": {"prefix": "/v1/"}})
        ]));
        assert!(!gateway_matches_admit(&[
            json!({"path": {"type": "Exact", "value": "/metrics"}})
        ]));
        assert!(gateway_matches_admit(&[json!({"method": "POST"})]));
        assert_eq!(
            describe_matches(&[json!({"uri": {"prefix": "/health"}})]),
            "/health"
        );
    }
}

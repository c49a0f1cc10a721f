//! 4 `buffer-limit`: EnvoyFilters on the inference path that make Envoy buffer bodies, and
//! buffer limits smaller than the bodies the service exchanges. Bodies of any size stream
//! through Envoy while no filter buffers them (docs/facts.md); limits bite where a filter buffers.
//!
//! Sizes: the largest prompt or (non-streamed) response is estimated as `--max-model-len`
//! tokens × 4 bytes, about 4 bytes of text per token; JSON and chat framing add to it, and a
//! streamed response carries each token in an SSE chunk of some 200 bytes, so the estimate is a
//! floor. Without `--max-model-len` vLLM uses the model's full context: 32768 tokens is assumed
//! and named. Envoy's connection buffer limit is 1 MiB unless `per_connection_buffer_limit_bytes`
//! says otherwise.
//!
//! Severity:
//! - **warning**: a Lua filter that calls `body()` in `envoy_on_response` (the whole response
//!   is held, tokens stop streaming, and responses beyond the limit fail with 500 or a reset); a
//!   buffering filter whose limit is below the estimate: buffer `max_request_bytes`, ext_authz
//!   `with_request_body.max_request_bytes` (without `allow_partial_message`), Lua request
//!   `body()` against the connection limit (large prompts get 413); a buffer filter without
//!   `max_request_bytes` (Envoy rejects it); an explicit connection limit below the estimate
//!   while a filter that buffers within it (Lua, wasm) is on the path.
//! - **info**: a buffering filter whose limit covers the estimate (it still holds each prompt
//!   before forwarding it); a wasm filter (it may buffer; that cannot be seen statically); a
//!   small connection limit with no buffering filter (only retried or mirrored requests are
//!   buffered, and larger ones are not retried).
//!
//! When Envoys on the path were read, the filters and limits they run win (`proxy::buffers`): an
//! EnvoyFilter's filter that a proxy of its context runs is judged there (with the patch's lines
//! and fix); one that no such proxy runs is reported as not applied; `downstream_rq_too_large`,
//! `rs_too_large`, `retry_or_shadow_abandoned` or 413s make the finding critical and runtime.

use super::fixes::{IstioKind, istio_label, istio_manifest, istio_ref};
use super::proxy;
use super::proxy::buffers::{FilterKind, WrittenFilter};
use super::target::{inference_path, service_ports};
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::objects::{EnvoyConfigPatch, EnvoyFilter};
use crate::evidence::resolve::patches::{
    Segment, as_bytes, fields, on_inference_path, set_at, value_path,
};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::units::quantity::display_memory;
use serde_json::Value;

const BYTES_PER_TOKEN: u64 = 4;
const ASSUMED_MAX_MODEL_LEN: u64 = 32768;
const ENVOY_BUFFER_LIMIT: u64 = 1 << 20;
const MIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpFilterKind {
    Buffer,
    ExtAuthz,
    Lua,
    Wasm,
}

/// One patch on the inference path.
struct OnPath<'a> {
    filter: &'a EnvoyFilter,
    index: usize,
    patch: &'a EnvoyConfigPatch,
    value: &'a Value,
}

/// The largest body, and the words that say how we know.
pub(crate) struct Estimate {
    pub(crate) bytes: u64,
    pub(crate) text: String,
    pub(crate) assumption: Option<String>,
}

/// An explicit `per_connection_buffer_limit_bytes`.
struct ConnectionLimit<'a> {
    bytes: u64,
    on: &'a OnPath<'a>,
    path: Vec<Segment>,
}

pub fn check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    let mut findings = configured(target, settings);
    super::probe_runs::add(&mut findings, target, super::CheckId::BufferLimit);
    findings
}

/// What the configuration and the Envoys' counters show (the probe runs are judged apart).
fn configured(target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    let (written, connection_limit) = written_findings(target);
    // What the proxies run wins: a filter they show is judged there, with the YAML's lines and fix.
    let (mut findings, covered) = proxy::buffers::findings(target, &written);
    let (not_applied, replaced) = proxy::buffers::filters_not_applied(target, &written);
    findings.extend(not_applied);
    for (index, filter) in written.into_iter().enumerate() {
        if !covered.contains(&index) && !replaced.contains(&index) {
            findings.push(filter.finding);
        }
    }
    findings.extend(connection_limit);
    findings
}

/// The YAML's findings: one per EnvoyFilter patch that adds a buffering filter (with its kind
/// and context, to meet the proxies), and the connection buffer limit's.
fn written_findings(target: &TargetEvidence) -> (Vec<WrittenFilter>, Option<Finding>) {
    let ports = service_ports(target);
    let inference = inference_path(target, &ports);
    let on_path: Vec<OnPath> = target
        .mesh
        .envoy_filters
        .iter()
        .flat_map(|filter| {
            filter
                .spec
                .config_patches
                .iter()
                .enumerate()
                .filter(move |(_, patch)| on_inference_path(filter, patch, inference))
                .filter_map(move |(index, patch)| {
                    let value = patch.patch.as_ref()?.value.as_ref()?;
                    Some(OnPath {
                        filter,
                        index,
                        patch,
                        value,
                    })
                })
        })
        .collect();
    if on_path.is_empty() {
        return (Vec::new(), None);
    }
    let estimate = estimate(target);
    let connection_limit = on_path
        .iter()
        .flat_map(|on| {
            fields(on.value)
                .into_iter()
                .filter(|field| field.key == "per_connection_buffer_limit_bytes")
                .filter_map(move |field| {
                    Some(ConnectionLimit {
                        bytes: as_bytes(field.value)?,
                        on,
                        path: field.path,
                    })
                })
        })
        .min_by_key(|limit| limit.bytes);

    let mut written = Vec::new();
    let mut buffers_within_connection_limit = false;
    for on in &on_path {
        let Some(kind) = filter_kind(on) else {
            continue;
        };
        let found = match kind {
            HttpFilterKind::Buffer => buffer_finding(on, &estimate),
            HttpFilterKind::ExtAuthz => ext_authz_finding(on, &estimate),
            HttpFilterKind::Lua => {
                let (finding, buffers) = lua_finding(on, &estimate, connection_limit.as_ref());
                buffers_within_connection_limit |= buffers;
                finding
            }
            HttpFilterKind::Wasm => {
                buffers_within_connection_limit = true;
                Some(wasm_finding(on))
            }
        };
        if let Some(finding) = found {
            written.push(WrittenFilter {
                kind: match kind {
                    HttpFilterKind::Buffer => FilterKind::Buffer,
                    HttpFilterKind::ExtAuthz => FilterKind::ExtAuthz,
                    HttpFilterKind::Lua => FilterKind::Lua,
                    HttpFilterKind::Wasm => FilterKind::Wasm,
                },
                context: on
                    .patch
                    .matcher
                    .as_ref()
                    .and_then(|matcher| matcher.get("context"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                object: object(on),
                finding: with_estimate(finding, &estimate),
            });
        }
    }
    let limit_finding = connection_limit
        .filter(|limit| limit.bytes < estimate.bytes)
        .map(|limit| {
            with_estimate(
                connection_limit_finding(&limit, &estimate, buffers_within_connection_limit),
                &estimate,
            )
        });
    (written, limit_finding)
}

pub(crate) fn estimate(target: &TargetEvidence) -> Estimate {
    let (tokens, assumption) = match target.workload.vllm.max_model_len {
        Some(tokens) => (tokens, None),
        None => (
            ASSUMED_MAX_MODEL_LEN,
            Some(format!(
                "--max-model-len not set: vLLM uses the model's full context; {ASSUMED_MAX_MODEL_LEN} tokens assumed"
            )),
        ),
    };
    let bytes = tokens.saturating_mul(BYTES_PER_TOKEN);
    Estimate {
        bytes,
        text: format!(
            "~{} ({tokens} tokens × ~{BYTES_PER_TOKEN} bytes; streamed SSE responses are larger)",
            display_memory(bytes)
        ),
        assumption,
    }
}

fn with_estimate(mut finding: Finding, estimate: &Estimate) -> Finding {
    if let Some(assumption) = &estimate.assumption {
        finding = finding.assume(assumption.clone());
    }
    finding.assume(format!(
        "largest prompt or response estimated at {}",
        estimate.text
    ))
}

/// A limit that fits the largest body twice over, at least 1 MiB, in whole MiB.
pub(crate) fn raised_limit(estimate: &Estimate) -> u64 {
    let wanted = estimate.bytes.saturating_mul(2).max(MIB);
    wanted.div_ceil(MIB) * MIB
}

fn filter_kind(on: &OnPath) -> Option<HttpFilterKind> {
    let name = on.value.get("name").and_then(Value::as_str).or_else(|| {
        on.patch
            .matcher
            .as_ref()?
            .pointer("/listener/filterChain/filter/subFilter/name")?
            .as_str()
    });
    let type_url = on
        .value
        .pointer("/typed_config/@type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let by_name = match name {
        Some("envoy.filters.http.buffer" | "envoy.buffer") => Some(HttpFilterKind::Buffer),
        Some("envoy.filters.http.ext_authz" | "envoy.ext_authz") => Some(HttpFilterKind::ExtAuthz),
        Some("envoy.filters.http.lua" | "envoy.lua") => Some(HttpFilterKind::Lua),
        Some("envoy.filters.http.wasm") => Some(HttpFilterKind::Wasm),
        _ => None,
    };
    by_name.or_else(|| {
        [
            ("filters.http.buffer.v3.Buffer", HttpFilterKind::Buffer),
            (
                "filters.http.ext_authz.v3.ExtAuthz",
                HttpFilterKind::ExtAuthz,
            ),
            ("filters.http.lua.v3.Lua", HttpFilterKind::Lua),
            ("filters.http.wasm.v3.Wasm", HttpFilterKind::Wasm),
        ]
        .into_iter()
        .find(|(suffix, _)| type_url.ends_with(suffix))
        .map(|(_, kind)| kind)
    })
}

fn object(on: &OnPath) -> ObjectRef {
    istio_ref(IstioKind::EnvoyFilter, on.filter)
}

fn label(on: &OnPath) -> String {
    istio_label(IstioKind::EnvoyFilter, on.filter)
}

fn filter_line(on: &OnPath, what: &str) -> EvidenceLine {
    let name = on
        .value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("(merged into an existing filter)");
    EvidenceLine::new(
        object(on),
        format!("spec/configPatches[{}]/patch/value/name", on.index),
        name,
    )
    .with_note(what.to_string())
}

fn delete_command(on: &OnPath) -> String {
    format!(
        "kubectl delete envoyfilter {} -n {}",
        on.filter.metadata.name.as_deref().unwrap_or("<unnamed>"),
        on.filter.metadata.namespace.as_deref().unwrap_or("default")
    )
}

/// The filter with one value replaced, as apply-able YAML.
fn with_value(on: &OnPath, path: &[Segment], new: Value) -> Option<String> {
    let mut fixed = on.filter.clone();
    let value = fixed.spec.config_patches[on.index]
        .patch
        .as_mut()?
        .value
        .as_mut()?;
    set_at(value, path, new).then_some(())?;
    istio_manifest(IstioKind::EnvoyFilter, &fixed)
}

/// A limit of a request-buffering filter against the largest prompt.
fn request_limit_finding(
    on: &OnPath,
    filter: &str,
    limit: Option<(u64, Vec<Segment>)>,
    estimate: &Estimate,
) -> Finding {
    let raised = raised_limit(estimate);
    match limit {
        Some((bytes, path)) if bytes < estimate.bytes => {
            let finding = Finding::new(
                CheckId::BufferLimit,
                Severity::Warning,
                Basis::Static,
                format!(
                    "{} buffers prompts up to {} ({filter}); the largest is {}",
                    label(on),
                    display_memory(bytes),
                    display_memory(estimate.bytes)
                ),
            )
            .evidence(filter_line(on, "buffers the whole request before forwarding it"))
            .evidence(
                EvidenceLine::new(object(on), value_path(on.index, &path), bytes.to_string())
                    .with_note(format!("below the largest prompt, {}: longer prompts get 413", estimate.text)),
            );
            match with_value(on, &path, Value::from(raised)) {
                Some(yaml) => finding.fix(
                    format!(
                        "Raise the limit to {} as below and `kubectl apply -f fix.yaml`, or take the filter off the \
                         inference route.",
                        display_memory(raised)
                    ),
                    yaml,
                ),
                None => finding,
            }
        }
        Some((bytes, path)) => Finding::new(
            CheckId::BufferLimit,
            Severity::Info,
            Basis::Static,
            format!(
                "{} buffers each prompt before forwarding it ({filter}, limit {})",
                label(on),
                display_memory(bytes)
            ),
        )
        .evidence(filter_line(on, "buffers the whole request before forwarding it"))
        .evidence(
            EvidenceLine::new(object(on), value_path(on.index, &path), bytes.to_string())
                .with_note(format!("covers the largest prompt, {}", estimate.text)),
        ),
        None => Finding::new(
            CheckId::BufferLimit,
            Severity::Warning,
            Basis::Static,
            format!("{} adds {filter} without max_request_bytes", label(on)),
        )
        .evidence(filter_line(
            on,
            "max_request_bytes is required: Envoy rejects the filter and the listener update",
        ))
        .fix(
            format!(
                "Set typed_config.max_request_bytes to at least {} in the patch, or remove it ({}).",
                display_memory(raised),
                delete_command(on)
            ),
            "",
        ),
    }
}

fn buffer_finding(on: &OnPath, estimate: &Estimate) -> Option<Finding> {
    let limit = fields(on.value)
        .into_iter()
        .find(|field| field.key == "max_request_bytes")
        .and_then(|field| Some((as_bytes(field.value)?, field.path)));
    Some(request_limit_finding(
        on,
        "envoy.filters.http.buffer",
        limit,
        estimate,
    ))
}

fn ext_authz_finding(on: &OnPath, estimate: &Estimate) -> Option<Finding> {
    let body = fields(on.value)
        .into_iter()
        .find(|field| field.key == "with_request_body")?;
    if body
        .value
        .get("allow_partial_message")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Some(
            Finding::new(
                CheckId::BufferLimit,
                Severity::Info,
                Basis::Static,
                format!(
                    "{} sends request bodies to ext_authz (partial messages allowed)",
                    label(on)
                ),
            )
            .evidence(filter_line(
                on,
                "buffers up to max_request_bytes of each prompt before authorising; larger prompts pass truncated to the authoriser",
            )),
        );
    }
    let mut path = body.path.clone();
    path.push(Segment::Key("max_request_bytes".into()));
    let limit = body
        .value
        .get("max_request_bytes")
        .and_then(as_bytes)
        .map(|bytes| (bytes, path));
    Some(request_limit_finding(
        on,
        "ext_authz with_request_body",
        limit,
        estimate,
    ))
}

/// Which Lua handlers call `body()` (which buffers the whole body; `bodyChunks()` streams).
fn lua_body_calls(code: &str) -> (bool, bool) {
    let request_at = code.find("envoy_on_request");
    let response_at = code.find("envoy_on_response");
    let section = |start: Option<usize>, other: Option<usize>| -> &str {
        match start {
            None => "",
            Some(start) => {
                let end = other.filter(|other| *other > start).unwrap_or(code.len());
                &code[start..end]
            }
        }
    };
    (
        section(request_at, response_at).contains(":body("),
        section(response_at, request_at).contains(":body("),
    )
}

/// The Lua finding, and whether the filter buffers within the connection buffer limit.
fn lua_finding(
    on: &OnPath,
    estimate: &Estimate,
    connection_limit: Option<&ConnectionLimit>,
) -> (Option<Finding>, bool) {
    let code: Vec<&str> = fields(on.value)
        .into_iter()
        .filter(|field| matches!(field.key, "inline_code" | "inline_string"))
        .filter_map(|field| field.value.as_str())
        .collect();
    if code.is_empty() {
        let finding = Finding::new(
            CheckId::BufferLimit,
            Severity::Info,
            Basis::Static,
            format!("{} adds a Lua filter whose code is not inline", label(on)),
        )
        .evidence(filter_line(
            on,
            "its code cannot be read here: a call to body() would buffer whole bodies",
        ));
        return (Some(finding), true);
    }
    let (request, response) = code
        .iter()
        .map(|code| lua_body_calls(code))
        .fold((false, false), |(a, b), (c, d)| (a || c, b || d));
    let limit_bytes = connection_limit.map_or(ENVOY_BUFFER_LIMIT, |limit| limit.bytes);
    // The limit the filter buffers within: where it is set, or Envoy's default at the filter.
    let limit_line = match connection_limit {
        Some(limit) => EvidenceLine::new(
            object(limit.on),
            value_path(limit.on.index, &limit.path),
            limit.bytes.to_string(),
        ),
        None => EvidenceLine::new(
            object(on),
            format!("spec/configPatches[{}]/patch/value/typed_config", on.index),
            format!(
                "{} (Envoy's default connection buffer limit)",
                display_memory(ENVOY_BUFFER_LIMIT)
            ),
        ),
    };
    if response {
        let mut finding = Finding::new(
            CheckId::BufferLimit,
            Severity::Warning,
            Basis::Static,
            format!(
                "{} buffers whole responses in Lua (body() in envoy_on_response): tokens stop streaming",
                label(on)
            ),
        )
        .evidence(filter_line(
            on,
            "envoy_on_response calls body(): the client gets nothing until the generation ends",
        ))
        .evidence(limit_line.with_note(if limit_bytes < estimate.bytes {
            format!("below the largest response, {}: longer ones fail with 500 or a reset", estimate.text)
        } else {
            format!("the held response must fit in it; the largest is {}", estimate.text)
        }));
        if connection_limit.is_none() {
            finding = finding.assume("Envoy's connection buffer limit is 1 MiB when unset");
        }
        let mut fixed = on.filter.clone();
        fixed.spec.config_patches.remove(on.index);
        let finding = if fixed.spec.config_patches.is_empty() {
            finding.fix(
                format!(
                    "Take the Lua filter off the inference path: `{}`, or rewrite its response handler with \
                     bodyChunks(), which streams.",
                    delete_command(on)
                ),
                "",
            )
        } else {
            match istio_manifest(IstioKind::EnvoyFilter, &fixed) {
                Some(yaml) => finding.fix(
                    "Take the Lua filter off the inference path (below: the EnvoyFilter without that patch; \
                     `kubectl apply -f fix.yaml`), or rewrite its response handler with bodyChunks(), which streams.",
                    yaml,
                ),
                None => finding,
            }
        };
        return (Some(finding), true);
    }
    if request {
        let finding = if limit_bytes < estimate.bytes {
            Finding::new(
                CheckId::BufferLimit,
                Severity::Warning,
                Basis::Static,
                format!(
                    "{} buffers prompts in Lua within {}; the largest is {}",
                    label(on),
                    display_memory(limit_bytes),
                    display_memory(estimate.bytes)
                ),
            )
            .fix(
                "Raise per_connection_buffer_limit_bytes (see its finding) or use bodyChunks() in envoy_on_request.",
                "",
            )
        } else {
            Finding::new(
                CheckId::BufferLimit,
                Severity::Info,
                Basis::Static,
                format!(
                    "{} buffers each prompt in Lua before forwarding it",
                    label(on)
                ),
            )
        };
        let finding = finding
            .evidence(filter_line(
                on,
                "envoy_on_request calls body(): the whole prompt is held",
            ))
            .evidence(limit_line.with_note("the buffer limit the held prompt must fit in"));
        return (Some(finding), true);
    }
    (None, false)
}

fn wasm_finding(on: &OnPath) -> Finding {
    Finding::new(
        CheckId::BufferLimit,
        Severity::Info,
        Basis::Static,
        format!("{} adds a wasm filter on the inference path", label(on)),
    )
    .evidence(filter_line(
        on,
        "a wasm filter may buffer bodies within the connection buffer limit; that cannot be seen statically",
    ))
}

fn connection_limit_finding(
    limit: &ConnectionLimit,
    estimate: &Estimate,
    buffering: bool,
) -> Finding {
    let on = limit.on;
    let line = EvidenceLine::new(
        object(on),
        value_path(on.index, &limit.path),
        limit.bytes.to_string(),
    );
    let finding = if buffering {
        Finding::new(
            CheckId::BufferLimit,
            Severity::Warning,
            Basis::Static,
            format!(
                "{} limits connection buffers to {}; buffered bodies reach {}",
                label(on),
                display_memory(limit.bytes),
                display_memory(estimate.bytes)
            ),
        )
        .evidence(line.with_note(format!(
            "below the largest body, {}, while a filter on the path buffers bodies: 413 on requests, 500 or a reset on responses",
            estimate.text
        )))
    } else {
        Finding::new(
            CheckId::BufferLimit,
            Severity::Info,
            Basis::Static,
            format!(
                "{} limits connection buffers to {}; no filter on the path buffers bodies",
                label(on),
                display_memory(limit.bytes)
            ),
        )
        .evidence(line.with_note(format!(
            "below the largest body, {}: only retried or mirrored requests are buffered, and larger ones are not retried",
            estimate.text
        )))
    };
    let raised = raised_limit(estimate);
    match with_value(on, &limit.path, Value::from(raised)) {
        Some(yaml) => finding.fix(
            format!(
                "Raise per_connection_buffer_limit_bytes to {} (or remove it for Envoy's 1 MiB default) and \
                 `kubectl apply -f fix.yaml`.",
                display_memory(raised)
            ),
            yaml,
        ),
        None => finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{assert_well_formed, object as parse, settings, target};
    use crate::evidence::SidecarMode;

    /// target(): max-model-len 32768 → the estimate is 128Ki.
    fn with_filter(yaml: &str) -> TargetEvidence {
        let mut target = target();
        target.mesh.envoy_filters.push(parse(yaml));
        target
    }

    const BUFFER: &str = r#"
apiVersion: networking.istio.io/v1alpha3
metadata: {name: request-buffer, namespace: llm}
spec:
  workloadSelector: {labels: {app: vllm}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8000
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter: {name: envoy.filters.http.router}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.buffer
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
          max_request_bytes: LIMIT
"#;

    #[test]
    fn a_buffer_filter_below_the_largest_prompt_is_a_warning_with_the_limit_raised() {
        let findings = check(&with_filter(&BUFFER.replace("LIMIT", "65536")), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.title,
            "EnvoyFilter llm/request-buffer buffers prompts up to 64Ki (envoy.filters.http.buffer); the largest is 128Ki"
        );
        assert_eq!(
            finding.evidence[1].path,
            "spec/configPatches[0]/patch/value/typed_config/max_request_bytes"
        );
        assert!(
            finding
                .assumptions
                .iter()
                .any(|text| text.contains("32768 tokens × ~4 bytes"))
        );
        let fixed: EnvoyFilter = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        let value = fixed.spec.config_patches[0]
            .patch
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap();
        assert_eq!(value["typed_config"]["max_request_bytes"], 1 << 20);
    }

    #[test]
    fn a_buffer_filter_with_room_is_info_and_one_off_the_path_is_ignored() {
        let roomy = check(
            &with_filter(&BUFFER.replace("LIMIT", "\"4194304\"")),
            &settings(),
        );
        assert_well_formed(&roomy);
        assert_eq!(roomy[0].severity, Severity::Info);

        let elsewhere = BUFFER
            .replace("LIMIT", "1024")
            .replace("app: vllm", "app: web");
        assert!(check(&with_filter(&elsewhere), &settings()).is_empty());

        // Outside the mesh or in ambient mode there is no inbound sidecar listener to patch.
        for mode in [SidecarMode::None, SidecarMode::Ambient] {
            let mut no_sidecar = with_filter(&BUFFER.replace("LIMIT", "1024"));
            no_sidecar.mesh.sidecar_mode = mode;
            assert!(check(&no_sidecar, &settings()).is_empty(), "{mode:?}");
        }
    }

    #[test]
    fn the_estimate_follows_max_model_len_or_names_its_assumption() {
        let mut target = with_filter(&BUFFER.replace("LIMIT", "65536"));
        target.workload.vllm.max_model_len = Some(8192);
        assert_eq!(
            check(&target, &settings())[0].severity,
            Severity::Info,
            "32Ki fits"
        );
        target.workload.vllm.max_model_len = None;
        let findings = check(&target, &settings());
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].assumptions[0].contains("32768 tokens assumed"));
    }

    const LUA: &str = r#"
metadata: {name: audit, namespace: llm}
spec:
  workloadSelector: {labels: {app: vllm}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.lua
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
          inline_code: |
            function envoy_on_request(request_handle)
              request_handle:logInfo(request_handle:headers():get(":path"))
            end
            function envoy_on_response(response_handle)
              local body = response_handle:body()
              response_handle:logInfo("bytes: " .. body:length())
            end
  - applyTo: LISTENER
    match: {context: SIDECAR_INBOUND, listener: {portNumber: 8000}}
    patch:
      operation: MERGE
      value: {per_connection_buffer_limit_bytes: 32768}
"#;

    #[test]
    fn a_lua_response_body_call_and_a_small_connection_limit_are_warnings() {
        let findings = check(&with_filter(LUA), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 2);
        assert!(
            findings
                .iter()
                .all(|finding| finding.severity == Severity::Warning)
        );
        assert!(
            findings[0].title.contains("tokens stop streaming"),
            "{}",
            findings[0].title
        );
        assert_eq!(findings[0].evidence[1].value, "32768");
        assert_eq!(
            findings[0].evidence[1].path,
            "spec/configPatches[1]/patch/value/per_connection_buffer_limit_bytes"
        );
        // The fix drops the Lua patch and keeps the other one.
        let fixed: EnvoyFilter =
            serde_yaml::from_str(&findings[0].fix.as_ref().unwrap().yaml).unwrap();
        assert_eq!(fixed.spec.config_patches.len(), 1);
        assert_eq!(
            fixed.spec.config_patches[0].apply_to.as_deref(),
            Some("LISTENER")
        );

        assert!(
            findings[1]
                .title
                .contains("limits connection buffers to 32Ki"),
            "{}",
            findings[1].title
        );
        let fixed: EnvoyFilter =
            serde_yaml::from_str(&findings[1].fix.as_ref().unwrap().yaml).unwrap();
        let value = fixed.spec.config_patches[1]
            .patch
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap();
        assert_eq!(value["per_connection_buffer_limit_bytes"], 1 << 20);
    }

    #[test]
    fn lua_that_streams_and_a_lone_connection_limit_stay_quiet_or_info() {
        let streaming = LUA.replace("response_handle:body()", "response_handle:bodyChunks()");
        let findings = check(&with_filter(&streaming), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].severity,
            Severity::Info,
            "only the connection limit, nothing buffers"
        );
        assert!(
            findings[0]
                .title
                .contains("no filter on the path buffers bodies")
        );
    }

    #[test]
    fn ext_authz_with_body_is_judged_by_its_limit_unless_partial() {
        let ext_authz = r#"
metadata: {name: authz, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: GATEWAY}
    patch:
      operation: INSERT_FIRST
      value:
        name: envoy.filters.http.ext_authz
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
          grpc_service: {envoy_grpc: {cluster_name: authz}, timeout: 1s}
          with_request_body: {max_request_bytes: 8192, allow_partial_message: PARTIAL}
"#;
        let findings = check(
            &with_filter(&ext_authz.replace("PARTIAL", "false")),
            &settings(),
        );
        assert_well_formed(&findings);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            findings[0].evidence[1].path,
            "spec/configPatches[0]/patch/value/typed_config/with_request_body/max_request_bytes"
        );
        let partial = check(
            &with_filter(&ext_authz.replace("PARTIAL", "true")),
            &settings(),
        );
        assert_eq!(partial[0].severity, Severity::Info);
    }

    #[test]
    fn a_buffer_filter_without_its_required_limit_is_a_warning() {
        let findings = check(
            &with_filter(&BUFFER.replace("          max_request_bytes: LIMIT\n", "")),
            &settings(),
        );
        assert_well_formed(&findings);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].title.ends_with("without max_request_bytes"));
    }
}

#![allow(clippy::unwrap_used)]
//! `diagnose --fix` end to end: over every bundled example, the cluster fixtures and a set that
//! makes every fixable kind appear, the stream parses as YAML, each document is an Istio object
//! of a served API version whose spec matches the kind's schema (tests/support/istio_schema.rs),
//! the workload patches are commands that a shell runs and whose bodies deserialize into the
//! Kubernetes kinds without unknown fields, and the exit code is the report's.

#[path = "support/istio_schema.rs"]
mod istio_schema;

use assert_cmd::cargo::cargo_bin_cmd;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const COMMAND_PREFIX: &str = "#> ";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `diagnose` input: the `-f` paths.
struct Input {
    name: String,
    paths: Vec<PathBuf>,
}

fn inputs() -> Vec<Input> {
    let mut inputs: Vec<Input> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| Input {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            paths: vec![path],
        })
        .collect();
    inputs.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(inputs.len(), 11, "the eleven bundled examples");
    inputs.push(Input {
        name: "cluster fixtures".into(),
        paths: vec![root().join("tests/fixtures/cluster")],
    });
    inputs.push(Input {
        name: "connection-pool with a Sidecar and an idle-timeout EnvoyFilter".into(),
        paths: vec![
            root().join("examples/connection-pool"),
            root().join("tests/fixtures/fix-stream"),
        ],
    });
    inputs
}

struct Run {
    code: i32,
    stdout: String,
}

fn diagnose(input: &Input, extra: &[&str]) -> Run {
    let mut command = cargo_bin_cmd!("kubectl-infermesh");
    command.arg("diagnose");
    for path in &input.paths {
        command.arg("-f").arg(path);
    }
    let output = command
        .args(extra)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.is_empty(),
        "{}: {extra:?}: stderr: {stderr}",
        input.name
    );
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
    }
}

/// The documents of a YAML stream; comment-only streams have none.
fn documents(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|error| panic!("not YAML ({error}):\n{stream}"))
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// A `kubectl patch` command of the stream and its heredoc body.
struct Patch {
    command: String,
    resource: String,
    body: String,
}

fn patches(stream: &str) -> Vec<Patch> {
    let lines: Vec<&str> = stream
        .lines()
        .filter_map(|line| line.strip_prefix(COMMAND_PREFIX))
        .collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let command = lines[index];
        assert!(
            command.starts_with("kubectl patch ")
                && command
                    .ends_with("--type strategic --patch-file /dev/stdin <<'INFERMESH_PATCH'"),
            "a command line opens each patch: {command}"
        );
        let end = lines[index + 1..]
            .iter()
            .position(|line| *line == "INFERMESH_PATCH")
            .map(|offset| index + 1 + offset)
            .unwrap_or_else(|| panic!("unterminated heredoc after {command}"));
        let resource = command.split_whitespace().nth(2).unwrap();
        found.push(Patch {
            command: command.to_string(),
            resource: resource.split('/').next().unwrap().to_string(),
            body: lines[index + 1..end].join("\n"),
        });
        index = end + 1;
    }
    found
}

/// Errors of a strategic-merge patch of `resource` (`deployment`, `statefulset`): it must
/// deserialize into the Kubernetes type, and every field it sets must survive the round trip
/// (k8s-openapi drops unknown fields, so one that does not survive is unknown).
fn validate_patch(resource: &str, body: &str) -> Vec<String> {
    let patch: Json = match serde_yaml::from_str(body) {
        Ok(patch) => patch,
        Err(error) => return vec![format!("patch is not YAML: {error}")],
    };
    match resource {
        "deployment" => round_trip::<Deployment>(&patch),
        "statefulset" => round_trip::<StatefulSet>(&patch),
        other => vec![format!("kubectl patch of {other} is not expected")],
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(patch: &Json) -> Vec<String> {
    let typed: T = match serde_json::from_value(patch.clone()) {
        Ok(typed) => typed,
        Err(error) => return vec![format!("wrong type: {error}")],
    };
    let back = serde_json::to_value(typed).unwrap();
    let mut errors = Vec::new();
    contained(patch, &back, "", &mut errors);
    errors
}

/// Every field of `original` is in `back` with the same value. Quantities and int-or-strings
/// written as numbers come back as strings.
fn contained(original: &Json, back: &Json, path: &str, errors: &mut Vec<String>) {
    match (original, back) {
        (Json::Object(fields), Json::Object(back_fields)) => {
            for (key, value) in fields {
                match back_fields.get(key) {
                    Some(back_value) => {
                        contained(value, back_value, &format!("{path}/{key}"), errors)
                    }
                    None => errors.push(format!("{path}/{key}: unknown field")),
                }
            }
        }
        (Json::Array(items), Json::Array(back_items)) if items.len() == back_items.len() => {
            for (index, (item, back_item)) in items.iter().zip(back_items).enumerate() {
                contained(item, back_item, &format!("{path}[{index}]"), errors);
            }
        }
        (Json::Number(number), Json::String(text)) if number.to_string() == *text => {}
        _ if original == back => {}
        _ => errors.push(format!("{path}: {original} came back as {back}")),
    }
}

#[test]
fn every_fix_stream_parses_and_matches_the_schemas() {
    let mut kinds_seen = BTreeSet::new();
    let mut patches_seen = 0;
    for input in inputs() {
        for fail_on in ["critical", "info"] {
            let report = diagnose(&input, &["--fail-on", fail_on, "-o", "json"]);
            let stream = diagnose(&input, &["--fail-on", fail_on, "--fix"]);
            let context = format!("{} --fail-on {fail_on}", input.name);
            assert_eq!(
                stream.code, report.code,
                "{context}: --fix keeps the exit code"
            );
            assert!(
                stream
                    .stdout
                    .starts_with("# kubectl infermesh diagnose --fix:"),
                "{context}: only the YAML stream on stdout:\n{}",
                stream.stdout
            );
            let mut identities = BTreeSet::new();
            for document in documents(&stream.stdout) {
                let errors = istio_schema::validate_document(&document);
                assert!(
                    errors.is_empty(),
                    "{context}: {errors:#?}\n{}",
                    serde_yaml::to_string(&document).unwrap()
                );
                let kind = document["kind"].as_str().unwrap().to_string();
                let name = document["metadata"]["name"].as_str().unwrap().to_string();
                let namespace = document["metadata"]["namespace"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(
                    identities.insert((kind.clone(), namespace, name)),
                    "{context}: each object once:\n{}",
                    stream.stdout
                );
                kinds_seen.insert(kind);
            }
            for patch in patches(&stream.stdout) {
                let errors = validate_patch(&patch.resource, &patch.body);
                assert!(
                    errors.is_empty(),
                    "{context}: {}: {errors:#?}\n{}",
                    patch.command,
                    patch.body
                );
                patches_seen += 1;
            }
            let report: Json = serde_json::from_str(&report.stdout).unwrap();
            let fixes = report["targets"][0]["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|finding| finding["id"] != "mesh-need")
                .filter(|finding| fail_on == "info" || finding["severity"] != "info")
                .filter(|finding| {
                    finding["fix"]["yaml"]
                        .as_str()
                        .is_some_and(|y| !y.is_empty())
                })
                .count();
            let emitted = documents(&stream.stdout).len() + patches(&stream.stdout).len();
            assert_eq!(
                fixes == 0,
                emitted == 0,
                "{context}: a stream exactly when a finding in scope carries a fix:\n{}",
                stream.stdout
            );
        }
    }
    let expected: BTreeSet<String> = [
        "DestinationRule",
        "EnvoyFilter",
        "HTTPRoute",
        "InferencePool",
        "Sidecar",
        "VirtualService",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        kinds_seen, expected,
        "every kind that fixes emit was checked"
    );
    assert!(
        patches_seen >= 4,
        "workload patches were checked: {patches_seen}"
    );
}

#[test]
fn two_fixes_of_one_envoy_filter_apply_as_one_merged_object() {
    let input = Input {
        name: "buffer-limit".into(),
        paths: vec![root().join("examples/buffer-limit")],
    };
    let stream = diagnose(&input, &["--fix"]).stdout;
    let documents = documents(&stream);
    assert_eq!(documents.len(), 1, "{stream}");
    let patches = documents[0]["spec"]["configPatches"].as_sequence().unwrap();
    assert_eq!(patches.len(), 1, "the Lua filter is gone:\n{stream}");
    assert_eq!(patches[0]["applyTo"], "LISTENER");
    assert_eq!(
        patches[0]["patch"]["value"]["per_connection_buffer_limit_bytes"], 1048576,
        "and the buffer is raised:\n{stream}"
    );
    assert!(
        stream.contains("# 2 fixes are merged into this one EnvoyFilter"),
        "{stream}"
    );
}

#[test]
fn no_fix_in_scope_prints_comments_only_and_exit_zero() {
    let input = Input {
        name: "healthy".into(),
        paths: vec![root().join("examples/healthy")],
    };
    let run = diagnose(&input, &["--fix"]);
    assert_eq!(run.code, 0);
    assert!(documents(&run.stdout).is_empty(), "{}", run.stdout);
    assert!(patches(&run.stdout).is_empty());
    assert!(
        run.stdout.lines().all(|line| line.starts_with('#')),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("No finding at warning or above carries a fix")
    );
}

#[test]
fn fix_and_output_format_do_not_mix() {
    let input = Input {
        name: "healthy".into(),
        paths: vec![root().join("examples/healthy")],
    };
    let mut command = cargo_bin_cmd!("kubectl-infermesh");
    let output = command
        .args(["diagnose", "-f"])
        .arg(&input.paths[0])
        .args(["--fix", "-o", "json"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error");
}

/// The documented way to run the patches: `sed -n 's/^#> //p' fix.yaml > patches.sh; sh
/// patches.sh`, here with a `kubectl` on PATH that records what it was given.
#[test]
fn patch_commands_run_as_a_shell_script() {
    let tools = Command::new("sh").args(["-c", "command -v sed"]).output();
    assert!(
        tools.is_ok_and(|output| output.status.success()),
        "this test needs `sh` and `sed` on PATH (install a POSIX shell and sed)"
    );
    let input = Input {
        name: "cluster fixtures".into(),
        paths: vec![root().join("tests/fixtures/cluster")],
    };
    let stream = diagnose(&input, &["--fix", "--fail-on", "info"]).stdout;
    let expected = patches(&stream);
    assert_eq!(expected.len(), 2, "{stream}");

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("kubectl");
    std::fs::write(
        &fake,
        "#!/bin/sh\nn=$(ls \"$RECORD\" | wc -l)\necho \"$@\" > \"$RECORD/$n.args\"\ncat > \"$RECORD/$n.stdin\"\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let record = dir.path().join("record");
    std::fs::create_dir(&record).unwrap();
    std::fs::write(dir.path().join("fix.yaml"), &stream).unwrap();
    let extract = Command::new("sed")
        .args(["-n", "s/^#> //p", "fix.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(extract.status.success());
    std::fs::write(dir.path().join("patches.sh"), &extract.stdout).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let ran = Command::new("sh")
        .arg("patches.sh")
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RECORD", &record)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );

    let mut calls: Vec<PathBuf> = std::fs::read_dir(&record)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "args"))
        .collect();
    calls.sort();
    assert_eq!(calls.len(), expected.len());
    for (call, patch) in calls.iter().zip(&expected) {
        let args = std::fs::read_to_string(call).unwrap();
        assert_eq!(
            args.trim(),
            "patch deployment/vllm -n inference --type strategic --patch-file /dev/stdin"
        );
        let body = std::fs::read_to_string(call.with_extension("stdin")).unwrap();
        assert_eq!(
            body.trim_end(),
            patch.body.trim_end(),
            "the heredoc is the patch"
        );
        let errors = validate_patch("deployment", &body);
        assert!(errors.is_empty(), "{errors:#?}\n{body}");
    }
}

// ---- the validators themselves ----------------------------------------------------------

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

const RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 768, connectTimeout: 10s}
      http: {http1MaxPendingRequests: 768, idleTimeout: 1h}
    portLevelSettings:
    - port: {number: 8000}
      outlierDetection: {consecutive5xxErrors: 10, interval: 10s}
  subsets:
  - name: v1
    labels: {version: v1}
"#;

#[test]
fn the_schema_accepts_a_valid_object() {
    assert_eq!(
        istio_schema::validate_document(&yaml(RULE)),
        Vec::<String>::new()
    );
}

#[test]
fn the_schema_rejects_unknown_fields_wrong_types_and_bad_values() {
    let cases = [
        (
            "maxConnections: 768",
            "maxConnection: 768",
            "unknown field \"maxConnection\"",
        ),
        (
            "maxConnections: 768",
            "maxConnections: \"768\"",
            "expected an int32",
        ),
        (
            "maxConnections: 768",
            "maxConnections: 3000000000",
            "expected an int32",
        ),
        (
            "connectTimeout: 10s",
            "connectTimeout: 10",
            "expected a duration string",
        ),
        (
            "connectTimeout: 10s",
            "connectTimeout: 10 seconds",
            "is not a duration",
        ),
        ("idleTimeout: 1h", "idleTimeout: 500us", "below 1ms"),
        (
            "- name: v1",
            "- weight: 3\n    name: v1",
            "unknown field \"weight\"",
        ),
        (
            "  host: vllm\n",
            "  hosts: [vllm]\n",
            "required field \"host\"",
        ),
        (
            "kind: DestinationRule",
            "kind: DestinationRules",
            "not an Istio kind",
        ),
        (
            "networking.istio.io/v1",
            "networking.istio.io/v2",
            "apiVersion",
        ),
        (
            "metadata: {name: vllm, namespace: llm}",
            "metadata: {name: vllm}",
            "\"namespace\" is missing",
        ),
        (
            "metadata: {name: vllm, namespace: llm}",
            "metadata: {name: vllm, namespace: llm, resourceVersion: \"1\"}",
            "unknown field \"resourceVersion\"",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(RULE.contains(from), "{from}");
        let broken = RULE.replacen(from, to, 1);
        let errors = istio_schema::validate_document(&yaml(&broken));
        assert!(
            errors.iter().any(|error| error.contains(expected)),
            "{to}: expected an error with {expected:?}, got {errors:#?}"
        );
    }
}

#[test]
fn the_schema_checks_enums_and_envoy_filter_patches() {
    let filter = r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: f, namespace: llm}
spec:
  workloadSelector: {labels: {app: vllm}}
  configPatches:
  - applyTo: LISTENER
    match: {context: SIDECAR_INBOUND, listener: {portNumber: 8000}}
    patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 1048576}}
"#;
    assert_eq!(
        istio_schema::validate_document(&yaml(filter)),
        Vec::<String>::new()
    );
    let bad_context = filter.replace("SIDECAR_INBOUND", "INBOUND");
    assert!(
        istio_schema::validate_document(&yaml(&bad_context))
            .iter()
            .any(|error| error.contains("INBOUND is not one of"))
    );
    let wrong_version = filter.replace("v1alpha3", "v1");
    assert!(
        istio_schema::validate_document(&yaml(&wrong_version))
            .iter()
            .any(|error| error.contains("apiVersion"))
    );
    let value_not_object = filter.replace(
        "value: {per_connection_buffer_limit_bytes: 1048576}",
        "value: 1048576",
    );
    assert!(!istio_schema::validate_document(&yaml(&value_not_object)).is_empty());
}

#[test]
fn the_patch_check_rejects_unknown_fields_and_wrong_types() {
    let good = "spec:\n  template:\n    metadata:\n      annotations: {a: b}\n    spec:\n      containers:\n      - name: vllm\n        resources: {requests: {nvidia.com/gpu: 1, cpu: 50m}}\n";
    assert_eq!(validate_patch("deployment", good), Vec::<String>::new());
    let unknown = good.replace("annotations", "annotation");
    assert!(
        validate_patch("deployment", &unknown)
            .iter()
            .any(|error| error.contains("/spec/template/metadata/annotation: unknown field")),
        "{:?}",
        validate_patch("deployment", &unknown)
    );
    let wrong_type = good.replace("annotations: {a: b}", "annotations: [a]");
    assert!(!validate_patch("deployment", &wrong_type).is_empty());
    assert!(!validate_patch("daemonset", good).is_empty());
}

#[test]
fn go_durations_parse() {
    assert_eq!(istio_schema::duration_nanos("300s"), Some(300_000_000_000));
    assert_eq!(
        istio_schema::duration_nanos("1h30m"),
        Some(5_400_000_000_000)
    );
    assert_eq!(istio_schema::duration_nanos("1.5s"), Some(1_500_000_000));
    assert_eq!(istio_schema::duration_nanos("0"), Some(0));
    assert_eq!(istio_schema::duration_nanos("s"), None);
    assert_eq!(istio_schema::duration_nanos("10"), None);
    assert_eq!(istio_schema::duration_nanos(""), None);
}

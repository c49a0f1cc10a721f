//! Secrets a pod spec may carry in the clear, taken out before the spec becomes evidence (which
//! is printed, saved with `--save-evidence` and shared on tickets): env values whose names say
//! they hold a secret (`HF_TOKEN`, `OPENAI_API_KEY`, `DB_PASSWORD`), and the value of a flag
//! whose name does (`--api-key KEY`, `--hf-token=…`) in a container's command and args, shell
//! lines (`sh -c "vllm serve … --api-key …"`) included, and the same in probe and lifecycle hook
//! commands, with bearer tokens and secret headers. The checks read none of these values.

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Name parts that mark a secret, upper case with `_` between words.
const SECRET_PARTS: [&str; 9] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
];

/// Redacts `spec` in place; returns what was redacted, `container vllm env HF_TOKEN`.
pub fn pod_spec(spec: &mut PodSpec) -> Vec<String> {
    let mut redacted = Vec::new();
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        redact_container(container, &mut redacted);
    }
    redacted
}

fn redact_container(container: &mut Container, redacted: &mut Vec<String>) {
    let name = container.name.clone();
    for env in container.env.iter_mut().flatten() {
        if let Some(value) = env.value.as_mut()
            && is_secret_name(&env.name)
            && value != REDACTED
        {
            *value = REDACTED.to_string();
            redacted.push(format!("container {name} env {}", env.name));
        }
    }
    let probes = [
        ("startupProbe", container.startup_probe.as_mut()),
        ("readinessProbe", container.readiness_probe.as_mut()),
        ("livenessProbe", container.liveness_probe.as_mut()),
    ];
    let mut fields: Vec<(&str, Option<&mut Vec<String>>)> = vec![
        ("command", container.command.as_mut()),
        ("args", container.args.as_mut()),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        fields.push((field, probe.exec.as_mut().and_then(|e| e.command.as_mut())));
        for header in probe
            .http_get
            .iter_mut()
            .flat_map(|get| get.http_headers.iter_mut().flatten())
        {
            if header.name.eq_ignore_ascii_case("authorization") || is_secret_name(&header.name) {
                header.value = REDACTED.to_string();
                redacted.push(format!("container {name} {field} header {}", header.name));
            }
        }
    }
    if let Some(lifecycle) = container.lifecycle.as_mut() {
        for (field, hook) in [
            ("postStart", lifecycle.post_start.as_mut()),
            ("preStop", lifecycle.pre_stop.as_mut()),
        ] {
            if let Some(hook) = hook {
                fields.push((field, hook.exec.as_mut().and_then(|e| e.command.as_mut())));
            }
        }
    }
    for (field, words) in fields {
        let Some(words) = words else { continue };
        for flag in redact_words(words) {
            redacted.push(format!("container {name} {field} {flag}"));
        }
    }
}

/// Redacts the values of secret flags among `words`, and inside any word that is a shell line;
/// returns the flags whose values went.
fn redact_words(words: &mut [String]) -> Vec<String> {
    let mut flags = Vec::new();
    let mut value_follows: Option<String> = None;
    for word in words.iter_mut() {
        if let Some(flag) = value_follows.take() {
            if word == REDACTED {
                continue;
            }
            if !word.starts_with('-') {
                *word = REDACTED.to_string();
                flags.push(flag);
                continue;
            }
        }
        if word.contains(char::is_whitespace) {
            let mut parts: Vec<String> = word.split_whitespace().map(str::to_string).collect();
            let inner = redact_words(&mut parts);
            if !inner.is_empty() {
                *word = parts.join(" ");
                flags.extend(inner);
            }
            continue;
        }
        if word.eq_ignore_ascii_case("bearer") {
            value_follows = Some("Bearer".to_string());
            continue;
        }
        match word.split_once('=') {
            Some((flag, value)) if is_secret_flag(flag) && value != REDACTED => {
                let flag = flag.to_string();
                *word = format!("{flag}={REDACTED}");
                flags.push(flag);
            }
            None if is_secret_flag(word) => value_follows = Some(word.clone()),
            _ => {}
        }
    }
    flags
}

fn is_secret_flag(word: &str) -> bool {
    word.starts_with("--") && is_secret_name(word.trim_start_matches('-'))
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase().replace('-', "_");
    SECRET_PARTS.iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EnvVar;

    fn words(text: &[&str]) -> Vec<String> {
        text.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn secret_env_values_and_flag_values_go_and_the_rest_stays() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "vllm".to_string(),
                command: Some(words(&[
                    "sh",
                    "-c",
                    "vllm serve m --api-key sk-live-1 --max-num-seqs 64",
                ])),
                args: Some(words(&[
                    "--hf-token=hf_abc",
                    "--api-key",
                    "sk-live-2",
                    "--port",
                    "8000",
                ])),
                env: Some(vec![
                    EnvVar {
                        name: "HF_TOKEN".to_string(),
                        value: Some("hf_def".to_string()),
                        ..EnvVar::default()
                    },
                    EnvVar {
                        name: "VLLM_LOGGING_LEVEL".to_string(),
                        value: Some("DEBUG".to_string()),
                        ..EnvVar::default()
                    },
                ]),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let redacted = pod_spec(&mut spec);
        assert_eq!(
            redacted,
            [
                "container vllm env HF_TOKEN",
                "container vllm command --api-key",
                "container vllm args --hf-token",
                "container vllm args --api-key",
            ]
        );
        let container = &spec.containers[0];
        let text = serde_json::to_string(container).unwrap();
        for secret in ["sk-live-1", "sk-live-2", "hf_abc", "hf_def"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            container.command.as_ref().unwrap()[2],
            "vllm serve m --api-key <redacted> --max-num-seqs 64"
        );
        assert_eq!(
            container.args.as_ref().unwrap(),
            &words(&[
                "--hf-token=<redacted>",
                "--api-key",
                "<redacted>",
                "--port",
                "8000"
            ])
        );
        assert_eq!(
            container.env.as_ref().unwrap()[1].value.as_deref(),
            Some("DEBUG")
        );
        assert!(
            pod_spec(&mut spec).is_empty(),
            "redacting twice finds nothing new"
        );
    }

    #[test]
    fn a_bearer_token_in_a_warm_up_hook_goes() {
        let mut command = words(&[
            "sh",
            "-c",
            "curl -s -H 'Authorization: Bearer sk-hook-3' http://127.0.0.1:8000/v1/completions",
        ]);
        assert_eq!(redact_words(&mut command), ["Bearer"]);
        assert!(!command[2].contains("sk-hook-3"), "{}", command[2]);
    }

    #[test]
    fn a_secret_flag_without_a_value_leaves_the_next_flag_alone() {
        let mut args = words(&["--api-key", "--port", "8000"]);
        assert!(redact_words(&mut args).is_empty());
        assert_eq!(args, words(&["--api-key", "--port", "8000"]));
    }
}

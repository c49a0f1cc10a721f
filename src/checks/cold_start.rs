//! 5 `cold-start`: a new pod takes user traffic before it is warm. With mTLS in effect every
//! caller's first connection pays a handshake, and with nothing sending a completion before the
//! pod turns Ready, the first users also pay the model's first-request costs.
//!
//! - **mTLS**: the most specific PeerAuthentication mode (mesh, then namespace, then workload;
//!   `UNSET` inherits; a workload policy's `portLevelMtls` for the vLLM port wins). None at all
//!   means Istio's default PERMISSIVE, under which auto-mTLS makes meshed callers use mTLS: named
//!   as an assumption. Ambient pods get mTLS from ztunnel.
//! - **Warm-up**: an exec `postStart` hook, `startupProbe` or `readinessProbe` of the vLLM
//!   container that posts to `/v1/completions` or `/v1/chat/completions`. An `httpGet` cannot
//!   (it sends GET); a readiness probe on `/health` only says the server is up.
//! - **holdApplicationUntilProxyStarts** in `proxy.istio.io/config`: without it vLLM may start
//!   (and download its model) before the proxy can carry traffic. Native sidecars start first
//!   anyway. A mesh-wide default is not visible here: Istio's `false` is assumed and named.
//!
//! Severity: **warning** for a sidecar pod with mTLS (STRICT or PERMISSIVE) and no warm-up;
//! **info** for a warm-up without `holdApplicationUntilProxyStarts` on a classic sidecar, for
//! ambient pods without warm-up (ztunnel does the mTLS and no sidecar races the app), and for
//! mTLS DISABLE without warm-up. Nothing for pods outside the mesh.
//!
//! When Envoys on the path were read, whether TLS is in effect comes from them (`proxy::tls`:
//! the client cluster's transport socket, the sidecar listener's), not from the PeerAuthentication
//! guess, with handshake counts and connect times as evidence. Without a pod spec (an Endpoint)
//! only that is judged, as info.

use super::fixes::{IstioKind, istio_ref, patch_instruction, workload_patch};
use super::proxy;
use super::target::{pod_metadata_path, pod_spec_path, vllm_container};
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::{SidecarMode, TargetEvidence, Workload};
use k8s_openapi::api::core::v1::{Container, Probe};
use serde_json::{Map, Value, json};

const PROXY_CONFIG: &str = "proxy.istio.io/config";
const HOLD: &str = "holdApplicationUntilProxyStarts";
const INFERENCE_PATHS: [&str; 2] = ["/v1/completions", "/v1/chat/completions"];

/// The mTLS mode in effect on the vLLM port, and the fact behind it.
struct Mtls {
    mode: String,
    line: EvidenceLine,
    assumption: Option<String>,
}

fn mtls(target: &TargetEvidence) -> Mtls {
    let workload = &target.workload;
    let port = workload.vllm.port.to_string();
    let mut found: Option<(String, EvidenceLine)> = None;
    let set = |mode: &Option<String>| {
        mode.as_deref()
            .map(str::to_ascii_uppercase)
            .filter(|mode| mode != "UNSET")
    };
    for policy in &target.mesh.peer_authentications {
        let object = istio_ref(IstioKind::PeerAuthentication, policy);
        if let Some(mode) = policy.spec.mtls.as_ref().and_then(|mtls| set(&mtls.mode)) {
            let line = EvidenceLine::new(object.clone(), "spec/mtls/mode", mode.clone());
            found = Some((mode, line));
        }
        let port_mode = policy
            .spec
            .selector
            .as_ref()
            .and_then(|_| policy.spec.port_level_mtls.get(&port))
            .and_then(|mtls| set(&mtls.mode));
        if let Some(mode) = port_mode {
            let line = EvidenceLine::new(
                object,
                format!("spec/portLevelMtls/{port}/mode"),
                mode.clone(),
            );
            found = Some((mode, line));
        }
    }
    match found {
        Some((mode, line)) => Mtls {
            mode,
            line,
            assumption: None,
        },
        None => Mtls {
            mode: "PERMISSIVE".into(),
            line: EvidenceLine::new(workload.object_ref(), "PeerAuthentication", "<none applies>")
                .with_note("Istio's default PERMISSIVE: meshed callers use mTLS (auto-mTLS)"),
            assumption: Some(
                "no PeerAuthentication applies: Istio's default PERMISSIVE with auto-mTLS, so meshed callers use mTLS"
                    .into(),
            ),
        },
    }
}

/// Whether an exec handler's command posts a completion.
fn exec_posts_completion(command: Option<&Vec<String>>) -> bool {
    command.is_some_and(|command| {
        let text = command.join(" ");
        INFERENCE_PATHS.iter().any(|path| text.contains(path))
    })
}

fn probe_warms(probe: Option<&Probe>) -> bool {
    probe
        .and_then(|probe| probe.exec.as_ref())
        .is_some_and(|exec| exec_posts_completion(exec.command.as_ref()))
}

fn post_start_warms(container: &Container) -> bool {
    container
        .lifecycle
        .as_ref()
        .and_then(|lifecycle| lifecycle.post_start.as_ref())
        .and_then(|hook| hook.exec.as_ref())
        .is_some_and(|exec| exec_posts_completion(exec.command.as_ref()))
}

/// What a probe does, in a few words, for evidence.
fn describe_probe(probe: Option<&Probe>) -> (String, String) {
    match probe {
        None => (
            "<unset>".into(),
            "no readiness probe: Ready as soon as the container runs".into(),
        ),
        Some(probe) => {
            if let Some(get) = &probe.http_get {
                let path = get.path.clone().unwrap_or_else(|| "/".into());
                let note = if INFERENCE_PATHS
                    .iter()
                    .any(|inference| path.starts_with(inference))
                {
                    "an httpGet sends GET, which cannot run a completion".to_string()
                } else {
                    "says the server is up, not that the model has served a request".to_string()
                };
                (format!("httpGet {path}"), note)
            } else if let Some(exec) = &probe.exec {
                let command = exec.command.clone().unwrap_or_default().join(" ");
                (
                    format!("exec {command}"),
                    "does not post a completion".into(),
                )
            } else if probe.tcp_socket.is_some() {
                (
                    "tcpSocket".into(),
                    "says the port is open, not that the model is warm".into(),
                )
            } else {
                ("grpc".into(), "does not post a completion".into())
            }
        }
    }
}

/// Whether `proxy.istio.io/config` sets holdApplicationUntilProxyStarts, and the parsed config.
fn hold_application(workload: &Workload) -> (bool, Map<String, Value>) {
    let config: Map<String, Value> = workload
        .pod_annotations
        .get(PROXY_CONFIG)
        .and_then(|text| serde_yaml::from_str::<Value>(text).ok())
        .and_then(|value| match value {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let hold = match config.get(HOLD) {
        Some(Value::Bool(hold)) => *hold,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    };
    (hold, config)
}

pub fn check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    let mut findings = configured(target, settings);
    super::probe_runs::add(&mut findings, target, super::CheckId::ColdStart);
    findings
}

/// What the configuration and the Envoys' counters show (the probe runs are judged apart).
fn configured(target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    let workload = &target.workload;
    if !workload.spec_known() {
        return endpoint_findings(target);
    }
    let mode = target.mesh.sidecar_mode;
    if !(mode.has_sidecar() || mode == SidecarMode::Ambient) {
        return Vec::new();
    }
    let Some((index, container)) = vllm_container(workload) else {
        return Vec::new();
    };
    let container_path = format!("{}/containers[{index}]", pod_spec_path(workload));
    let object = workload.object_ref();
    let warm_up = post_start_warms(container)
        || probe_warms(container.startup_probe.as_ref())
        || probe_warms(container.readiness_probe.as_ref());
    let (hold, proxy_config) = hold_application(workload);
    let needs_hold = matches!(mode, SidecarMode::Injected | SidecarMode::Classic);
    let hold_line = EvidenceLine::new(
        object.clone(),
        format!("{}/annotations/{PROXY_CONFIG}", pod_metadata_path(workload)),
        workload
            .pod_annotations
            .get(PROXY_CONFIG)
            .cloned()
            .unwrap_or_else(|| "<unset>".into()),
    )
    .with_note(format!(
        "{HOLD} {}: vLLM may start before the proxy carries traffic",
        if hold { "true" } else { "unset" }
    ));
    let hold_assumption =
        format!("no mesh-wide {HOLD} is visible here: Istio's default false is assumed");

    if warm_up {
        if !needs_hold || hold {
            return Vec::new();
        }
        let finding = Finding::new(
            CheckId::ColdStart,
            Severity::Info,
            Basis::Static,
            format!(
                "{} warms up, but without {HOLD} the app may start before its proxy",
                workload.target_name()
            ),
        )
        .evidence(hold_line)
        .assume(hold_assumption);
        return vec![with_fix(
            finding,
            workload,
            container,
            mode,
            &proxy_config,
            false,
        )];
    }

    let mut mtls = mtls(target);
    // What the proxies run wins over the PeerAuthentication guess.
    let tls = proxy::tls::facts(target);
    let basis = if tls.is_some() {
        Basis::Effective
    } else {
        Basis::Static
    };
    let mut written_mtls = None;
    if let Some(facts) = &tls {
        if facts.in_effect && (mtls.assumption.is_some() || mtls.mode == "DISABLE") {
            if mtls.mode == "DISABLE" {
                written_mtls = Some(mtls.line.clone());
            }
            mtls.mode = match facts.inbound_mode {
                Some(mode @ ("STRICT" | "PERMISSIVE")) => format!("{mode} (seen on the proxies)"),
                _ => "on (seen on the proxies)".to_string(),
            };
            mtls.assumption = None;
        } else if !facts.in_effect {
            mtls.mode = "DISABLE".into();
            mtls.assumption = None;
            mtls.line = mtls.line.with_note(format!(
                "no proxy on the path speaks TLS ({})",
                facts.proxies.join(", ")
            ));
        }
    }
    let hbone = tls.as_ref().filter(|facts| facts.hbone);
    let (severity, title) = if let (SidecarMode::Ambient, Some(facts)) = (mode, hbone) {
        let mut counted = match facts.handshakes {
            Some(count) => format!("{count} so far"),
            None => "not counted".to_string(),
        };
        if let Some(p99) = facts.connect_p99_ms {
            counted.push_str(&format!(", connect P99 {p99} ms with it"));
        }
        (
            Severity::Info,
            format!(
                "{} (ambient) turns Ready without a warm-up request; each new HBONE connection to a pod pays an mTLS handshake ({counted}) before its first request",
                workload.target_name()
            ),
        )
    } else if mode == SidecarMode::Ambient {
        (
            Severity::Info,
            format!(
                "{} (ambient) turns Ready without a warm-up request; ztunnel carries mTLS",
                workload.target_name()
            ),
        )
    } else if mtls.mode == "DISABLE" {
        (
            Severity::Info,
            format!(
                "{} turns Ready without a warm-up request (mTLS disabled)",
                workload.target_name()
            ),
        )
    } else {
        (
            Severity::Warning,
            format!(
                "{} takes traffic cold: mTLS {} and no warm-up before Ready",
                workload.target_name(),
                mtls.mode
            ),
        )
    };
    let (readiness, readiness_note) = describe_probe(container.readiness_probe.as_ref());
    let mut finding = Finding::new(CheckId::ColdStart, severity, basis, title)
        .evidence(mtls.line)
        .evidence(
            EvidenceLine::new(
                object.clone(),
                format!("{container_path}/readinessProbe"),
                readiness,
            )
            .with_note(readiness_note),
        )
        .evidence(
            EvidenceLine::new(
                object.clone(),
                format!("{container_path}/lifecycle/postStart"),
                if container
                    .lifecycle
                    .as_ref()
                    .and_then(|lifecycle| lifecycle.post_start.as_ref())
                    .is_some()
                {
                    "set"
                } else {
                    "<unset>"
                },
            )
            .with_note("no hook posts a completion before the pod is Ready"),
        )
        .evidence(
            EvidenceLine::new(
                object,
                format!("{container_path}/startupProbe"),
                describe_probe(container.startup_probe.as_ref()).0,
            )
            .with_note("does not post a completion"),
        );
    if let Some(assumption) = mtls.assumption {
        finding = finding.assume(assumption);
    }
    for line in written_mtls
        .into_iter()
        .chain(tls.into_iter().flat_map(|facts| facts.lines))
    {
        finding = finding.evidence(line);
    }
    if needs_hold && !hold {
        finding = finding.evidence(hold_line).assume(hold_assumption);
    }
    vec![with_fix(
        finding,
        workload,
        container,
        mode,
        &proxy_config,
        true,
    )]
}

/// Without a pod spec only what the proxies show is judged: TLS on the path means each new
/// connection pays a handshake; whether the pods warm up before Ready cannot be seen.
fn endpoint_findings(target: &TargetEvidence) -> Vec<Finding> {
    let Some(facts) = proxy::tls::facts(target).filter(|facts| facts.in_effect) else {
        return Vec::new();
    };
    let mut counted = match facts.handshakes {
        Some(count) => format!("{count} so far"),
        None => "not counted: the TLS stats were not read or are trimmed".to_string(),
    };
    if let Some(p99) = facts.connect_p99_ms {
        counted.push_str(&format!(", connect P99 {p99} ms with the handshake"));
    }
    let mut finding = Finding::new(
        CheckId::ColdStart,
        Severity::Info,
        Basis::Effective,
        format!(
            "mTLS on the path to {}: each new connection pays a TLS handshake ({counted}); warm-up is not judged \
             without the pod spec",
            target.workload.name
        ),
    );
    for line in facts.lines {
        finding = finding.evidence(line);
    }
    vec![finding
        .assume(
            "pod spec unknown (an endpoint seen only through Envoy): warm-up probes and holdApplicationUntilProxyStarts \
             are not judged",
        )
        .fix(
            "In the vLLM workload's pod template: gate readiness on a warm-up completion (a startupProbe that posts \
             /v1/completions) and set holdApplicationUntilProxyStarts: true in proxy.istio.io/config; keep callers' \
             connections reused so they pay the handshake once.",
            "",
        )]
}

/// A Python warm-up for the vLLM image (which has no curl guarantee but always has Python):
/// waits for `/health`, then posts one short completion over loopback. It never fails, so a
/// slow model load cannot get the container killed by its own hook.
fn warm_up_script(workload: &Workload, wait_for_health: bool) -> String {
    let port = workload.vllm.port;
    let model = workload
        .vllm
        .served_model_name
        .as_ref()
        .map(|name| format!("\"model\": {}, ", Value::from(name.as_str())))
        .unwrap_or_default();
    let wait = if wait_for_health {
        format!(
            "for _ in range(360):\n    try:\n        urllib.request.urlopen(\"http://127.0.0.1:{port}/health\", timeout=5)\n        break\n    except Exception:\n        time.sleep(5)\n"
        )
    } else {
        String::new()
    };
    format!(
        "import json, sys, time, urllib.request\n{wait}body = json.dumps({{{model}\"prompt\": \"warm-up\", \"max_tokens\": 4}}).encode()\n\
         request = urllib.request.Request(\"http://127.0.0.1:{port}/v1/completions\", data=body, headers={{\"Content-Type\": \"application/json\"}})\n\
         try:\n    urllib.request.urlopen(request, timeout=120).read()\nexcept Exception:\n    sys.exit({})\n",
        if wait_for_health { 0 } else { 1 }
    )
}

/// `null` for every handler a probe has other than exec, so a strategic merge replaces it.
fn clear_other_handlers(probe: Option<&Probe>, patch: &mut Map<String, Value>) {
    if let Some(probe) = probe {
        for (present, key) in [
            (probe.http_get.is_some(), "httpGet"),
            (probe.tcp_socket.is_some(), "tcpSocket"),
            (probe.grpc.is_some(), "grpc"),
        ] {
            if present {
                patch.insert(key.into(), Value::Null);
            }
        }
    }
}

fn with_fix(
    finding: Finding,
    workload: &Workload,
    container: &Container,
    mode: SidecarMode,
    proxy_config: &Map<String, Value>,
    warm_up_missing: bool,
) -> Finding {
    let mut pod = Map::new();
    let mut wants_hold = false;
    if matches!(mode, SidecarMode::Injected | SidecarMode::Classic) {
        let mut config = proxy_config.clone();
        config.insert(HOLD.into(), Value::Bool(true));
        if let Ok(text) = serde_yaml::to_string(&config) {
            pod.insert(
                "metadata".into(),
                json!({ "annotations": { PROXY_CONFIG: text } }),
            );
            wants_hold = true;
        }
    }
    let mut summary = Vec::new();
    if warm_up_missing {
        let mut startup = Map::new();
        clear_other_handlers(container.startup_probe.as_ref(), &mut startup);
        startup.insert(
            "exec".into(),
            json!({ "command": ["python3", "-c", warm_up_script(workload, false)] }),
        );
        startup.insert("periodSeconds".into(), json!(10));
        startup.insert("timeoutSeconds".into(), json!(120));
        startup.insert("failureThreshold".into(), json!(180));
        pod.insert(
            "spec".into(),
            json!({ "containers": [{
                "name": container.name,
                "lifecycle": { "postStart": { "exec": {
                    "command": ["python3", "-c", warm_up_script(workload, true)]
                } } },
                "startupProbe": startup,
            }] }),
        );
        summary.push(
            "Warm the model before the pod turns Ready: a postStart hook posts a short completion over loopback \
             once /health answers, and a startupProbe that posts one gates readiness (up to 30 minutes of model \
             load)"
                .to_string(),
        );
        if container
            .lifecycle
            .as_ref()
            .and_then(|lifecycle| lifecycle.post_start.as_ref())
            .is_some()
        {
            summary.push("this replaces the existing postStart hook".into());
        }
        if workload.vllm.served_model_name.is_none() {
            summary.push("add \"model\" to the request body if the server needs it".into());
        }
        summary.push(
            "callers still pay one mTLS handshake per new connection, so keep connections reused"
                .into(),
        );
    }
    if wants_hold {
        summary.push(format!(
            "set {HOLD}: true in {PROXY_CONFIG} so the app starts only once its proxy is ready"
        ));
    }
    if pod.is_empty() {
        return finding;
    }
    let instruction = patch_instruction(workload);
    match workload_patch(workload, Value::Object(pod)) {
        Some(yaml) => finding.fix(format!("{}; {instruction}.", summary.join("; ")), yaml),
        None => finding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{
        POD_SPEC, assert_well_formed, object, pod_spec, settings, target,
    };

    #[test]
    fn a_cold_sidecar_pod_with_default_mtls_is_a_warning_with_the_default_named() {
        let findings = check(&target(), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            finding.title,
            "deploy/vllm takes traffic cold: mTLS PERMISSIVE and no warm-up before Ready"
        );
        assert!(
            finding
                .assumptions
                .iter()
                .any(|text| text.contains("default PERMISSIVE"))
        );
        let readiness = &finding.evidence[1];
        assert_eq!(
            readiness.path,
            "spec/template/spec/containers[0]/readinessProbe"
        );
        assert_eq!(readiness.value, "httpGet /health");

        let fix = finding.fix.as_ref().unwrap();
        assert!(fix.summary.contains("kubectl patch deployment/vllm -n llm"));
        let patch: Value = serde_yaml::from_str(&fix.yaml).unwrap();
        let template = &patch["spec"]["template"];
        let config = template["metadata"]["annotations"][PROXY_CONFIG]
            .as_str()
            .unwrap();
        assert_eq!(config.trim(), "holdApplicationUntilProxyStarts: true");
        let container = &template["spec"]["containers"][0];
        assert_eq!(container["name"], "vllm");
        let script = container["lifecycle"]["postStart"]["exec"]["command"][2]
            .as_str()
            .unwrap();
        assert!(
            script.contains("/v1/completions") && script.contains("\"model\": \"llama-3.1-8b\"")
        );

        // The patched container counts as warm, and with hold set nothing is left.
        let mut healed = target();
        let spec = POD_SPEC.replace(
            "  readinessProbe:",
            "  startupProbe:\n    exec: {command: [python3, -c, \"post /v1/completions\"]}\n  readinessProbe:",
        );
        healed.workload.pod_spec = pod_spec(&spec);
        assert_eq!(
            check(&healed, &settings())[0].severity,
            Severity::Info,
            "hold still unset"
        );
        healed.workload.pod_annotations.insert(
            PROXY_CONFIG.into(),
            "{\"holdApplicationUntilProxyStarts\": true}".into(),
        );
        assert!(check(&healed, &settings()).is_empty());
    }

    #[test]
    fn the_most_specific_peer_authentication_decides() {
        let mut target = target();
        target.mesh.peer_authentications = vec![
            object(
                "metadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}",
            ),
            object("metadata: {name: default, namespace: llm}\nspec: {mtls: {mode: UNSET}}"),
            object(
                "metadata: {name: vllm, namespace: llm}\nspec: {selector: {matchLabels: {app: vllm}}, portLevelMtls: {'8000': {mode: DISABLE}}}",
            ),
        ];
        let findings = check(&target, &settings());
        assert_eq!(
            findings[0].severity,
            Severity::Info,
            "port-level DISABLE wins"
        );
        assert_eq!(findings[0].evidence[0].path, "spec/portLevelMtls/8000/mode");

        target.mesh.peer_authentications.pop();
        let findings = check(&target, &settings());
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(findings[0].title.contains("mTLS STRICT"));
        assert!(
            findings[0]
                .assumptions
                .iter()
                .all(|text| !text.contains("no PeerAuthentication"))
        );
    }

    #[test]
    fn native_sidecars_need_no_hold_and_ambient_is_info() {
        let mut native = target();
        native.mesh.sidecar_mode = SidecarMode::Native;
        native.workload.pod_spec = pod_spec(&POD_SPEC.replace(
            "  readinessProbe:\n    httpGet: {path: /health, port: 8000}",
            "  readinessProbe:\n    exec: {command: [sh, -c, \"curl -sf -X POST localhost:8000/v1/chat/completions -d @/warm.json\"]}",
        ));
        assert!(check(&native, &settings()).is_empty());

        let mut ambient = target();
        ambient.mesh.sidecar_mode = SidecarMode::Ambient;
        let findings = check(&ambient, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings[0].severity, Severity::Info);
        let patch: Value = serde_yaml::from_str(&findings[0].fix.as_ref().unwrap().yaml).unwrap();
        assert!(
            patch["spec"]["template"].get("metadata").is_none(),
            "no proxy to hold for"
        );

        let mut outside = target();
        outside.mesh.sidecar_mode = SidecarMode::None;
        assert!(check(&outside, &settings()).is_empty());
    }

    #[test]
    fn an_http_get_on_a_completion_path_is_not_a_warm_up_and_the_fix_replaces_it() {
        let mut target = target();
        target.workload.pod_spec = pod_spec(&POD_SPEC.replace(
            "  readinessProbe:\n    httpGet: {path: /health, port: 8000}",
            "  startupProbe:\n    httpGet: {path: /v1/completions, port: 8000}",
        ));
        target.workload.pod_annotations.insert(
            PROXY_CONFIG.into(),
            "proxyStatsMatcher:\n  inclusionPrefixes: [cluster.outbound]\n".into(),
        );
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(finding.evidence[1].value, "<unset>");
        let patch: Value = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        let template = &patch["spec"]["template"];
        assert_eq!(
            template["spec"]["containers"][0]["startupProbe"].get("httpGet"),
            Some(&Value::Null),
            "the strategic merge must delete the GET handler"
        );
        let config: Value = serde_yaml::from_str(
            template["metadata"]["annotations"][PROXY_CONFIG]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(config[HOLD], true);
        assert_eq!(
            config["proxyStatsMatcher"]["inclusionPrefixes"][0], "cluster.outbound",
            "kept"
        );
    }
}

#[cfg(test)]
mod hbone_tests {
    use super::*;
    use crate::checks::test_support::{
        assert_well_formed, evidence_paths, lab_target, scenario_envoy, settings,
    };

    /// The lab's gateway Envoy reaching the pod over HBONE (captured by
    /// `tests/envoy_scenarios.rs`, scenario `hbone`), in front of a target in `mode`.
    fn behind_hbone(mode: SidecarMode) -> TargetEvidence {
        let mut target = lab_target(vec![scenario_envoy("hbone", "client")]);
        target.mesh.sidecar_mode = mode;
        target
    }

    #[test]
    fn an_ambient_pod_pays_the_tunnels_handshake_as_the_gateway_counted_it() {
        let findings = check(&behind_hbone(SidecarMode::Ambient), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Info);
        assert_eq!(finding.basis, Basis::Effective);
        assert!(
            finding.title.contains(
                "each new HBONE connection to a pod pays an mTLS handshake (1 so far, connect P99 "
            ),
            "{}",
            finding.title
        );
        let paths = evidence_paths(finding);
        assert!(
            paths
                .iter()
                .any(|path| path.ends_with("transport_socket_matches[hbone]")),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"cluster.connect_originate.ssl.handshake"),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|path| path.ends_with("[tlsMode-istio]")),
            "HBONE, not tlsMode-istio, is in effect: {paths:?}"
        );
    }

    #[test]
    fn a_sidecar_pod_behind_the_same_gateway_is_reached_by_tls_mode_istio() {
        let findings = check(&behind_hbone(SidecarMode::Classic), &settings());
        let paths: Vec<&str> = findings.iter().flat_map(evidence_paths).collect();
        assert!(
            paths.iter().any(|path| path.ends_with("[tlsMode-istio]")),
            "{paths:?}"
        );
        assert!(
            !paths
                .iter()
                .any(|path| path.contains("connect_originate") || path.ends_with("[hbone]")),
            "the tunnel serves other (ambient) destinations: {paths:?}"
        );
    }
}

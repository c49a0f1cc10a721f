//! 6 `endpoint-picker`: the Inference Gateway's endpoint picker (EPP). An InferencePool's
//! `endpointPickerRef` names the EPP Service the gateway's Envoy asks, over `ext_proc`, which pod
//! to send each request to. When no EPP answers, a `FailClose` pool (the API's default) refuses
//! every request; a `FailOpen` one lets requests through to an endpoint of the gateway's picking,
//! without the picker's load and cache awareness.
//!
//! Severity:
//! - **critical**: a FailClose pool whose EPP Service is absent, has no ready pod (live), or whose
//!   workloads are all scaled to zero; a gateway ext_proc filter with `failure_mode_allow: false`
//!   whose gRPC cluster is absent or has no endpoint; its `streams_failed` or `message_timeouts`
//!   moved (runtime, requests were refused).
//! - **warning**: the same absence behind a FailOpen pool, or `failure_mode_allowed` moved
//!   (requests went through without the picker).
//! - **info**: the ext_proc filter the gateway runs, with its settings (`message_timeout`,
//!   `failure_mode_allow`, body modes), when nothing is wrong with it. A `BUFFERED` body mode is
//!   judged by `buffer-limit` (the filter holds the body).
//!
//! A probe through the gateway answered 500 or 503 while the direct path streamed, with an
//! ext_proc counter moving meanwhile, is runtime proof (`probe_runs`).

use super::fixes::{IstioKind, istio_manifest};
use super::proxy::{self, Proxy};
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::endpoint_picker::EndpointPicker;
use crate::evidence::envoy::config::{ExtProcSettings, HcmConfig, ListenerConfig};
use crate::evidence::{ObjectRef, TargetEvidence};

const MODE: CheckId = CheckId::EndpointPicker;
/// Envoy's `message_timeout` when the filter sets none.
const ENVOY_MESSAGE_TIMEOUT: &str = "0.200s";

pub fn check(target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    let mut findings: Vec<Finding> = target
        .mesh
        .endpoint_pickers
        .iter()
        .filter_map(|picker| picker_finding(target, picker))
        .collect();
    for proxy in proxy::proxies(target) {
        findings.extend(filter_findings(&proxy));
    }
    super::probe_runs::add(&mut findings, target, MODE);
    findings
}

/// Why no EPP can answer, when so: `(evidence line, words)`.
fn absence(picker: &EndpointPicker) -> Option<(EvidenceLine, String)> {
    let service = ObjectRef::new("Service", picker.pool.namespace.as_deref(), &picker.service);
    if !picker.service_found {
        let line = EvidenceLine::new(
            picker.pool.clone(),
            format!("{}/name", picker.path),
            picker.service.clone(),
        )
        .with_note("no Service of that name in the pool's namespace: the gateway's ext_proc cluster has no endpoint");
        return Some((
            line,
            format!(
                "its endpoint picker Service {} does not exist",
                picker.service
            ),
        ));
    }
    if let Some(pods) = picker.pods {
        if pods.ready == 0 {
            let line = EvidenceLine::new(service, "endpoints/ready", format!("0 of {}", pods.total))
                .with_note("no Ready pod behind the EPP Service: nothing answers the gateway's ext_proc stream");
            let words = if pods.total == 0 {
                format!("no pod runs its endpoint picker {}", picker.service)
            } else {
                format!(
                    "none of the {} pods of its endpoint picker {} is Ready",
                    pods.total, picker.service
                )
            };
            return Some((line, words));
        }
        return None;
    }
    if !picker.workloads.is_empty() && picker.workloads.iter().all(|w| w.replicas == 0) {
        let workload = &picker.workloads[0];
        let line =
            EvidenceLine::new(workload.object.clone(), "spec/replicas", "0").with_note(format!(
                "the only workload behind EPP Service {}: scaled to zero",
                picker.service
            ));
        return Some((
            line,
            format!("its endpoint picker {} is scaled to zero", picker.service),
        ));
    }
    None
}

fn picker_finding(target: &TargetEvidence, picker: &EndpointPicker) -> Option<Finding> {
    let (line, words) = absence(picker)?;
    let mode_line = EvidenceLine::new(
        picker.pool.clone(),
        format!("{}/failureMode", picker.path),
        if picker.failure_mode_defaulted {
            format!("{} (not set: the API's default)", picker.failure_mode)
        } else {
            picker.failure_mode.clone()
        },
    );
    let (severity, consequence, mode_note) = if picker.fails_closed() {
        (
            Severity::Critical,
            "every request through the gateway fails",
            "FailClose: the gateway drops a request when the picker does not answer",
        )
    } else {
        (
            Severity::Warning,
            "requests bypass the picker (the gateway picks an endpoint itself, blind to load and KV cache)",
            "FailOpen: the gateway forwards to an endpoint of its picking when the picker does not answer",
        )
    };
    let basis = if picker.pods.is_some() {
        Basis::Effective
    } else {
        Basis::Static
    };
    let mut finding = Finding::new(
        MODE,
        severity,
        basis,
        format!(
            "{} serves {} but {words}: {consequence}",
            picker.pool,
            target.workload.target_name()
        ),
    )
    .evidence(line)
    .evidence(mode_line.with_note(mode_note));
    if picker.pods.is_none() {
        finding = finding.assume(
            "the manifests hold no pods: readiness of the picker is not known, only its Service and replicas",
        );
    }
    let scale = picker.workloads.first().map(|workload| {
        format!(
            "`kubectl scale {} --replicas=1 -n {}`",
            workload.object.kind.to_lowercase() + "/" + &workload.object.name,
            picker.pool.namespace.as_deref().unwrap_or("default")
        )
    });
    let summary = match (picker.service_found, scale) {
        (false, _) => format!(
            "Deploy the endpoint picker and its Service {} on port {} (the address the gateway dials: {}), or point {} at the one that runs.",
            picker.service,
            picker.port,
            picker.address(),
            picker.path
        ),
        (true, Some(scale)) => format!(
            "Bring the endpoint picker back ({scale}) and check its readiness (`kubectl get pods -l` with the Service's selector); \
             while it is away, failureMode: FailOpen keeps requests flowing without its picking."
        ),
        (true, None) => format!(
            "Start the pods behind Service {} and check why they are not Ready; while the picker is away, failureMode: \
             FailOpen keeps requests flowing without its picking.",
            picker.service
        ),
    };
    let pool = target.mesh.inference_pools.iter().find(|pool| {
        pool.metadata.name.as_deref() == Some(picker.pool.name.as_str())
            && pool.metadata.namespace == picker.pool.namespace
    });
    let yaml = match pool.filter(|_| picker.fails_closed()) {
        Some(pool) => {
            let mut open = pool.clone();
            for epp in [
                &mut open.spec.endpoint_picker_ref,
                &mut open.spec.extension_ref,
            ]
            .into_iter()
            .flatten()
            {
                epp.failure_mode = Some("FailOpen".to_string());
            }
            istio_manifest(IstioKind::InferencePool, &open)
                .map(|yaml| {
                    format!(
                        "# Stopgap while the picker is away: requests go to an endpoint of the gateway's choosing.\n{yaml}"
                    )
                })
                .unwrap_or_default()
        }
        None => String::new(),
    };
    Some(finding.fix(summary, yaml))
}

/// The ext_proc filters one Envoy runs, judged by their failure mode, their cluster and counters.
fn filter_findings(proxy: &Proxy) -> Vec<Finding> {
    let config = proxy.config();
    let mut out = Vec::new();
    for (listener, _, hcm) in config.hcms() {
        for filter in &hcm.http_filters {
            let Some(settings) = &filter.ext_proc else {
                continue;
            };
            out.push(one_filter(
                proxy,
                listener,
                hcm,
                &filter.name,
                filter.disabled,
                settings,
            ));
        }
    }
    out
}

fn filter_path(listener: &ListenerConfig, hcm: &HcmConfig, filter: &str, field: &str) -> String {
    proxy::hcm_path(listener, hcm, &format!("http_filters[{filter}]/{field}"))
}

fn one_filter(
    proxy: &Proxy,
    listener: &ListenerConfig,
    hcm: &HcmConfig,
    filter_name: &str,
    disabled: bool,
    settings: &ExtProcSettings,
) -> Finding {
    let name = filter_name;
    let config = proxy.config();
    let allow_line = proxy
        .line(
            filter_path(listener, hcm, name, "failure_mode_allow"),
            settings.failure_mode_allow.to_string(),
        )
        .with_note(if settings.failure_mode_allow {
            "true: when the processor fails, Envoy lets the request through without it"
        } else {
            "false (Envoy's default): when the processor fails or cannot be reached, Envoy refuses the request"
        });
    let timeout_line = proxy
        .line(
            filter_path(listener, hcm, name, "message_timeout"),
            settings
                .message_timeout
                .clone()
                .unwrap_or_else(|| format!("{ENVOY_MESSAGE_TIMEOUT} (not in the dump: Envoy's default for ExternalProcessor.message_timeout)")),
        )
        .with_note("how long Envoy waits for each answer of the processor");
    let modes = format!(
        "request {}, response {}",
        settings.request_body_mode.as_deref().unwrap_or("NONE"),
        settings.response_body_mode.as_deref().unwrap_or("NONE")
    );
    let modes_line = proxy
        .line(filter_path(listener, hcm, name, "processing_mode"), modes)
        .with_note("a BUFFERED body mode holds the body in memory: judged by buffer-limit");
    let cluster = settings.cluster.as_deref();
    let known = cluster.and_then(|name| config.clusters.iter().find(|c| c.name == name));
    let unreachable = match (cluster, known) {
        (Some(name), None) => Some(
            proxy
                .line(
                    filter_path(
                        listener,
                        hcm,
                        filter_name,
                        "grpc_service/envoy_grpc/cluster_name",
                    ),
                    name,
                )
                .with_note(
                    "no cluster of that name in the config_dump: the processor cannot be reached",
                ),
        ),
        (Some(name), Some(found))
            if found.endpoints.is_empty() && found.discovery.as_deref() == Some("STATIC") =>
        {
            Some(
                proxy
                    .line(
                        proxy::cluster_path(found, "load_assignment"),
                        "no endpoints",
                    )
                    .with_note(format!("the processor's cluster {name} has no endpoint")),
            )
        }
        _ => None,
    };
    let failed = proxy.moved(&["ext_proc.streams_failed", "ext_proc.message_timeouts"]);
    let allowed = proxy.moved(&["ext_proc.failure_mode_allowed"]);
    let label = proxy.label();
    let (severity, basis, title) = if !failed.is_empty() && !settings.failure_mode_allow {
        (
            Severity::Critical,
            Basis::Runtime,
            format!(
                "{label}'s ext_proc filter {name} could not reach its processor and refused requests (failure_mode_allow false)"
            ),
        )
    } else if !allowed.is_empty() || (!failed.is_empty() && settings.failure_mode_allow) {
        (
            Severity::Warning,
            Basis::Runtime,
            format!(
                "{label}'s ext_proc filter {name} failed and let requests through without its processor (failure_mode_allow true)"
            ),
        )
    } else if let (Some(_), false) = (&unreachable, settings.failure_mode_allow) {
        (
            Severity::Critical,
            Basis::Effective,
            format!(
                "{label}'s ext_proc filter {name} fails closed and its processor cannot be reached: every request is refused"
            ),
        )
    } else if unreachable.is_some() {
        (
            Severity::Warning,
            Basis::Effective,
            format!(
                "{label}'s ext_proc filter {name} cannot reach its processor: requests pass without it (failure_mode_allow true)"
            ),
        )
    } else {
        (
            Severity::Info,
            Basis::Effective,
            format!(
                "{label} runs ext_proc filter {name} (an endpoint picker's): its counters show no failure"
            ),
        )
    };
    let mut finding = Finding::new(MODE, severity, basis, title);
    for reading in failed.iter().chain(allowed.iter()) {
        finding =
            finding.evidence(proxy.counter_line(reading, "the ext_proc filter's processor failed"));
    }
    if let Some(line) = unreachable {
        finding = finding.evidence(line);
    }
    finding = finding
        .evidence(allow_line)
        .evidence(timeout_line)
        .evidence(modes_line);
    if disabled {
        finding = finding.assume("the filter is disabled on the HCM and enabled per route (Istio enables it on the InferencePool's routes)");
    }
    if let Some(words) = proxy.blind_spot(MODE).filter(|_| severity > Severity::Info) {
        finding = finding.assume(words);
    }
    if severity > Severity::Info {
        finding = finding.fix(
            "Bring the processor back (for an InferencePool: its endpoint picker Deployment and Service); set the pool's \
             failureMode: FailOpen (Istio writes it as failure_mode_allow: true) to keep requests flowing while it is away.",
            "",
        );
    }
    finding
}

//! The Envoy sources of `diagnose`: `--admin-url` and `--envoy-dump` (read before anything
//! else), an Envoy-only run that builds its target from them, and on a live cluster the admin
//! reads through port-forwards to the pods on both sides of each target.

use crate::cli::DiagnoseArgs;
use crate::evidence::inventory::Inventory;
use crate::evidence::objects::Gateway;
use crate::evidence::resolve::ambient::refill_waypoint_pods;
use crate::evidence::resolve::workloads::LabelSelector;
use crate::evidence::{EVIDENCE_SCHEMA_VERSION, Evidence, Gap, ObjectRef};
use crate::sources::cluster::admin_failures;
use crate::sources::cluster::admin_reads::{self, PODS_PER_SIDE};
use crate::sources::cluster::client::ClusterClient;
use crate::sources::cluster::paths::{self, has_proxy, pod_ref};
use crate::sources::cluster::selected::{
    add_gateway_pods, add_pods, list_selected_pods, named_gateways,
};
use crate::sources::envoy::admin::{self, AdminClient, AdminError};
use crate::sources::envoy::attach;
use crate::sources::envoy::discover::{self, DiscoverError};
use crate::sources::envoy::reading::EnvoyReading;
use crate::sources::envoy::saved::{self, DumpError};
use crate::sources::progress::Progress;
use crate::sources::stop::Stop;
use futures_util::StreamExt;
use std::time::Duration;

/// Admin URLs read at once.
const URL_CONCURRENCY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum EnvoySourceError {
    #[error(transparent)]
    AdminUrl(AdminError),
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("no Envoy could be read: {reasons}")]
    NothingRead { reasons: String },
    #[error("{0}")]
    Usage(String),
}

impl EnvoySourceError {
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            EnvoySourceError::Usage(_)
                | EnvoySourceError::AdminUrl(_)
                | EnvoySourceError::Discover(DiscoverError::BadService { .. })
        )
    }
}

/// A run with `--admin-url`/`--envoy-dump` (or `--probe` with both path URLs) and nothing that
/// points at a cluster or manifests.
pub fn envoy_only(args: &DiagnoseArgs) -> bool {
    (!args.admin_urls.is_empty() || !args.envoy_dumps.is_empty() || probe_paths_given(args))
        && args.filenames.is_empty()
        && args.target.is_none()
        && args.namespace.is_none()
        && !args.all_namespaces
        && args.selector.is_none()
        && !args.cluster.points_at_a_cluster()
        && args.clients.is_empty()
        && args.client_selector.is_none()
}

/// Flags that make no sense together, as usage errors.
pub fn check_flags(args: &DiagnoseArgs) -> Result<(), EnvoySourceError> {
    if args.service.is_some() && !envoy_only(args) {
        return Err(EnvoySourceError::Usage(
            "--service chooses the service of an --admin-url/--envoy-dump run without a cluster; with a cluster or -f, name the workload as TARGET".to_string(),
        ));
    }
    if !args.filenames.is_empty() && (!args.clients.is_empty() || args.client_selector.is_some()) {
        return Err(EnvoySourceError::Usage(
            "--client and --client-selector read pods on a live cluster; with -f, pass the callers' Envoys with --admin-url or --envoy-dump".to_string(),
        ));
    }
    if let Some(service) = &args.service
        && !discover::may_be_cluster_name(service)
    {
        discover::parse_service(service)?;
    }
    for client in &args.clients {
        parse_client(client)?;
    }
    if let Some(selector) = &args.client_selector {
        LabelSelector::parse(selector)
            .map_err(|error| EnvoySourceError::Usage(format!("--client-selector: {error}")))?;
    }
    Ok(())
}

/// `pod/NAME` (also `po/`, `pods/`).
fn parse_client(text: &str) -> Result<String, EnvoySourceError> {
    let invalid = || EnvoySourceError::Usage(format!("--client {text:?}: expected pod/NAME"));
    let (kind, name) = text.trim().split_once('/').ok_or_else(invalid)?;
    if !matches!(kind.to_ascii_lowercase().as_str(), "pod" | "po" | "pods")
        || name.is_empty()
        || name.contains('/')
    {
        return Err(invalid());
    }
    Ok(name.to_string())
}

/// The bound on each admin call: `--request-timeout`, or the admin client's default for 0.
pub fn admin_timeout(args: &DiagnoseArgs) -> Duration {
    args.cluster
        .request_deadline()
        .unwrap_or(admin::DEFAULT_TIMEOUT)
}

/// Reads `--admin-url`s (a few at once) and `--envoy-dump`s, in the order given.
pub async fn read_explicit(args: &DiagnoseArgs) -> Result<Vec<EnvoyReading>, EnvoySourceError> {
    let timeout = admin_timeout(args);
    let clients = args
        .admin_urls
        .iter()
        .map(|url| {
            AdminClient::new(url)
                .map(|client| (url.clone(), client.with_timeout(timeout)))
                .map_err(EnvoySourceError::AdminUrl)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut readings: Vec<EnvoyReading> =
        futures_util::stream::iter(clients)
            .map(|(url, client)| async move {
                EnvoyReading::read(&client, &format!("admin {url}")).await
            })
            .buffered(URL_CONCURRENCY)
            .collect()
            .await;
    readings.extend(saved::read_dumps(&args.envoy_dumps)?);
    Ok(readings)
}

/// The sources an explicit read adds to the evidence.
pub fn explicit_sources(args: &DiagnoseArgs) -> Vec<String> {
    let mut sources = Vec::new();
    if !args.admin_urls.is_empty() {
        sources.push("envoy-admin".to_string());
    }
    if !args.envoy_dumps.is_empty() {
        sources.push("envoy-dump".to_string());
    }
    sources
}

/// `--probe` with `--direct-url` and `--mesh-url`: the probe needs no cluster to find its paths.
fn probe_paths_given(args: &DiagnoseArgs) -> bool {
    args.probe && args.direct_url.is_some() && args.mesh_url.is_some()
}

/// With no Envoy read but both probe paths given: one `Endpoint` target named after `--service`,
/// else the mesh URL's host and port, judged on the probe runs alone.
fn probe_only_evidence(
    args: &DiagnoseArgs,
    mut gaps: Vec<Gap>,
) -> Result<Evidence, EnvoySourceError> {
    let (host, port) = match &args.service {
        Some(service) => discover::parse_service(service)?,
        None => {
            let url = args.mesh_url.as_deref().unwrap_or_default();
            let parsed = reqwest::Url::parse(url).map_err(|error| {
                EnvoySourceError::Usage(format!(
                    "--mesh-url {url:?}: {error}; expected http://HOST:PORT"
                ))
            })?;
            (
                parsed.host_str().unwrap_or("mesh").to_string(),
                parsed.port_or_known_default().unwrap_or(80),
            )
        }
    };
    let choice = discover::ServiceChoice {
        host,
        port,
        server_port: port,
        reason: "no Envoy was read: named after --service or --mesh-url".to_string(),
    };
    gaps.push(Gap::new(
        "Envoy configuration and counters",
        "no --admin-url or --envoy-dump: the verdict rests on the probe runs alone",
    ));
    let mut sources = explicit_sources(args);
    sources.push("urls".to_string());
    Ok(Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION,
        sources,
        expected_generation: args.expected_generation,
        targets: vec![attach::endpoint_target(&choice, &[])],
        gaps,
        gathered_at: None,
        redacted: Vec::new(),
    })
}

/// Evidence from Envoys alone: one `Endpoint` target for the service they point at.
pub fn envoy_only_evidence(
    args: &DiagnoseArgs,
    readings: Vec<EnvoyReading>,
) -> Result<Evidence, EnvoySourceError> {
    let (readable, unreadable): (Vec<EnvoyReading>, Vec<EnvoyReading>) =
        readings.into_iter().partition(EnvoyReading::is_judgeable);
    let gaps: Vec<Gap> = unreadable
        .iter()
        .flat_map(|reading| reading.gaps.iter().cloned())
        .collect();
    if readable.is_empty() && probe_paths_given(args) {
        return probe_only_evidence(args, gaps);
    }
    if readable.is_empty() {
        let reasons: Vec<String> = gaps
            .iter()
            .map(|gap| format!("{}: {}", gap.what, gap.reason))
            .collect();
        return Err(EnvoySourceError::NothingRead {
            reasons: reasons.join("; "),
        });
    }
    let refs: Vec<&EnvoyReading> = readable.iter().collect();
    let choice = discover::find_service(&refs, args.service.as_deref())?;
    tracing::info!(host = %choice.host, port = choice.port, reason = %choice.reason, "service found from Envoy clusters");
    let target = attach::endpoint_target(&choice, &readable);
    Ok(Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION,
        sources: explicit_sources(args),
        expected_generation: args.expected_generation,
        targets: vec![target],
        gaps,
        gathered_at: None,
        redacted: Vec::new(),
    })
}

/// Attaches explicit readings to the targets of a cluster or manifest run.
pub fn attach_explicit(
    evidence: &mut Evidence,
    inventory: &Inventory,
    args: &DiagnoseArgs,
    readings: &[EnvoyReading],
) {
    if readings.is_empty() {
        return;
    }
    for source in explicit_sources(args) {
        add_source(evidence, &source);
    }
    let mut gaps = Vec::new();
    let owners = crate::evidence::resolve::workloads::Owners::new(inventory);
    attach::attach(
        &mut evidence.targets,
        readings,
        |target| {
            owners
                .live_pods(&target.workload)
                .iter()
                .filter_map(|pod| pod.metadata.name.clone())
                .collect()
        },
        &mut gaps,
    );
    evidence.gaps.extend(gaps);
}

/// On a live cluster: finds the gateway and `--client` pods, reads the Envoys on both sides of
/// each target through port-forwards, and attaches what they say. Never fails the run: what
/// cannot be read is a gap.
pub async fn read_live(
    client: &ClusterClient,
    inventory: &mut Inventory,
    evidence: &mut Evidence,
    args: &DiagnoseArgs,
    namespace: Option<&str>,
    stop: &Stop,
) {
    let mut gateways: Vec<Gateway> = Vec::new();
    for gateway in evidence.targets.iter().flat_map(|t| &t.mesh.gateways) {
        if !gateways.contains(gateway) {
            gateways.push(gateway.clone());
        }
    }
    let named = named_gateways(&evidence.targets);
    match add_gateway_pods(client, inventory, &gateways, &named).await {
        Ok(gaps) => {
            evidence.gaps.extend(gaps);
            refill_waypoint_pods(&mut evidence.targets, inventory);
        }
        Err(error) => evidence.gaps.push(Gap::new(
            "gateway pods",
            format!("{}: the mesh path's client side is not read", error),
        )),
    }
    let client_pods = client_pods(client, inventory, args, namespace, &mut evidence.gaps).await;
    let plan = admin_reads::plan(inventory, &evidence.targets, &client_pods);
    if plan.pods.is_empty() {
        return;
    }
    tracing::info!(pods = plan.pods.len(), "reading Envoy admin APIs");
    let deadline = (!args.envoy_timeout.is_zero()).then_some(args.envoy_timeout);
    let progress = Progress::detect();
    let bar = progress.counter(
        &format!("reading {} Envoy admin APIs", plan.pods.len()),
        plan.pods.len() as u64,
    );
    let readings = admin_reads::read_pods(
        client,
        &plan.pods,
        args.admin_port,
        admin_timeout(args),
        deadline,
        stop,
        &|done| bar.set_position(done as u64),
    )
    .await;
    bar.finish_and_clear();
    admin_reads::attach_readings(
        &mut evidence.targets,
        &plan,
        &readings,
        &client_pods,
        &mut evidence.gaps,
    );
    for cause in admin_failures::aggregate(&mut evidence.targets, &plan.pods, &mut evidence.gaps) {
        tracing::warn!("Envoy admin: {cause}");
    }
    add_source(evidence, "envoy-admin");
}

fn add_source(evidence: &mut Evidence, source: &str) {
    if !evidence.sources.iter().any(|have| have == source) {
        evidence.sources.push(source.to_string());
    }
}

/// The pods `--client` names (in the namespace in scope) and up to [`PODS_PER_SIDE`] that
/// `--client-selector` matches (any namespace; the namespace in scope when that is forbidden).
async fn client_pods(
    client: &ClusterClient,
    inventory: &mut Inventory,
    args: &DiagnoseArgs,
    namespace: Option<&str>,
    gaps: &mut Vec<Gap>,
) -> Vec<ObjectRef> {
    let mut out = Vec::new();
    for text in &args.clients {
        let Ok(name) = parse_client(text) else {
            continue;
        };
        let found = inventory.pods.iter().find(|pod| {
            pod.metadata.name.as_deref() == Some(name.as_str())
                && namespace.is_none_or(|wanted| pod.metadata.namespace.as_deref() == Some(wanted))
        });
        match found {
            Some(pod) if has_proxy(pod) => out.extend(pod_ref(pod)),
            Some(_) => gaps.push(Gap::new(
                format!("--client {text}"),
                "the pod has no istio-proxy: there is no Envoy to read",
            )),
            None => gaps.push(Gap::new(
                format!("--client {text}"),
                format!(
                    "no such pod in {}",
                    namespace.map_or("any namespace".to_string(), |n| format!("namespace {n}"))
                ),
            )),
        }
    }
    if let Some(selector) = &args.client_selector {
        let listed = match list_selected_pods(client, None, selector).await {
            Err(error) if error.is_forbidden() && namespace.is_some() => {
                gaps.push(Gap::new(
                    format!("--client-selector {selector} outside the namespace in scope"),
                    error.gap_reason(),
                ));
                list_selected_pods(client, namespace, selector).await
            }
            other => other,
        };
        match listed {
            Ok(pods) => {
                let mut pods: Vec<_> = pods
                    .into_iter()
                    .filter(has_proxy)
                    .filter_map(|pod| Some((paths::readiness_rank(&pod)?, pod)))
                    .collect();
                pods.sort_by_key(|(rank, _)| *rank);
                if pods.is_empty() {
                    gaps.push(Gap::new(
                        format!("--client-selector {selector}"),
                        "no running pod with an istio-proxy matches",
                    ));
                }
                let chosen: Vec<_> = pods
                    .into_iter()
                    .take(PODS_PER_SIDE)
                    .map(|(_, pod)| pod)
                    .collect();
                out.extend(chosen.iter().filter_map(pod_ref));
                add_pods(inventory, chosen);
            }
            Err(error) => gaps.push(Gap::new(
                format!("--client-selector {selector}"),
                error.gap_reason(),
            )),
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_flags_take_pod_names_only() {
        assert_eq!(parse_client("pod/caller-0").unwrap(), "caller-0");
        assert_eq!(parse_client("po/caller-0").unwrap(), "caller-0");
        for bad in ["deploy/caller", "caller", "pod/", "pod/a/b"] {
            let error = parse_client(bad).unwrap_err();
            assert!(error.is_usage());
            assert!(error.to_string().contains("expected pod/NAME"), "{error}");
        }
    }
}

//! The `diagnose` command: load manifests -> gather evidence -> run the checks -> verdict ->
//! render -> exit code. `main` only parses arguments, sets up logging and prints errors.

pub mod completion;
pub mod envoy_reads;
mod lab;
mod probe_runs;

use crate::checks::Settings;
use crate::cli::{Cli, Command, DiagnoseArgs, ProbeCommand};
use crate::evidence::EVIDENCE_SCHEMA_VERSION;
use crate::evidence::inventory::Inventory;
use crate::evidence::resolve::{self, GatherError, Scope, Target};
use crate::evidence::{Evidence, Gap};
use crate::report::{self, RenderError, Style};
use crate::sources::cluster::client::ClusterClient;
use crate::sources::cluster::error::ClusterError;
use crate::sources::cluster::inventory::{ListScope, list_inventory};
use crate::sources::manifest::{self, ManifestError};
use crate::sources::probe::ProbeOutput;
use crate::sources::probe::live::{self, LiveError, LiveRequest};
use crate::sources::progress::Progress;
use crate::sources::stop::{Stop, ctrl_c_stop};
use crate::verdict;
use crate::verdict::Diagnosis;
use crate::verdict::probe_outcome::Outcome;
use envoy_reads::EnvoySourceError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::io::Write;
use std::path::Path;

/// Exit code when the diagnosis could not run (bad input, nothing to analyse).
pub const EXIT_ERROR: u8 = 1;
/// Exit code after Ctrl-C, as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code for usage errors (clap's, and a TARGET that is not `KIND/NAME`).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `probe` when the mesh path fails where the direct path does not (the same code
/// `diagnose` uses for a finding).
pub const EXIT_MESH_FAILURE: u8 = 3;

/// The namespace of manifest objects that name none, when `-n` is not given (as kubectl does).
const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("evidence file {path}: {reason}")]
    EvidenceFile { path: String, reason: String },
    #[error("TARGET {text:?}: {reason}")]
    InvalidTarget { text: String, reason: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("no inference workload found in {inputs}{scope}: {hint}")]
    NoWorkloads {
        inputs: String,
        scope: String,
        hint: String,
    },
    #[error(transparent)]
    Probe(#[from] LiveError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write the timeline picture {path}: {reason}")]
    Timeline { path: String, reason: String },
    #[error("could not write the report to stdout")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Envoy(#[from] EnvoySourceError),
    #[error("interrupted (Ctrl-C) during {during}: nothing was gathered yet to report")]
    Interrupted { during: &'static str },
    #[error(transparent)]
    Lab(#[from] lab::LabCommandError),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::InvalidTarget { .. } => EXIT_USAGE,
            AppError::Envoy(error) if error.is_usage() => EXIT_USAGE,
            AppError::Probe(error) if error.is_usage() => EXIT_USAGE,
            AppError::Probe(LiveError::Interrupted) | AppError::Interrupted { .. } => {
                EXIT_INTERRUPTED
            }
            _ => EXIT_ERROR,
        }
    }
}

/// Runs the parsed command, writing the report to `out`; returns the exit code.
pub async fn run(cli: &Cli, out: &mut dyn Write, style: Style) -> Result<u8, AppError> {
    match &cli.command {
        Command::Diagnose(args) => diagnose(args, out, style).await,
        Command::Probe(args) => probe(args, out, style).await,
        Command::Lab(args) => lab::run(args, out, style).await,
        Command::Completion(args) => {
            write_out(out, &completion::script(args.shell))?;
            Ok(0)
        }
    }
}

/// The `probe` command: the paths (URLs, or opened on the cluster), the probe, its report; the
/// exit code says whether the mesh failed where the direct path did not.
async fn probe(args: &ProbeCommand, out: &mut dyn Write, style: Style) -> Result<u8, AppError> {
    let request = LiveRequest {
        target: args.target.as_deref(),
        namespace: args.namespace.as_deref(),
        cluster: &args.cluster,
        admin_urls: &args.admin_urls,
        probe: &args.probe,
        found: None,
    };
    let mut report = live::probe(request, Progress::detect()).await?;
    verdict::probe_reading::read(&mut report);
    let text = match args.probe.output {
        ProbeOutput::Json => report::probe::json(&report)?,
        ProbeOutput::Table => report::probe::table(&report, style.width),
    };
    write_out(out, &text)?;
    if let Some(path) = &args.timeline {
        write_timeline(path, &verdict::timeline::of_report(&report))?;
    }
    Ok(match report.outcome() {
        Outcome::Fine => 0,
        Outcome::MeshFailure => EXIT_MESH_FAILURE,
        Outcome::DirectFailure => EXIT_ERROR,
        Outcome::Interrupted => EXIT_INTERRUPTED,
    })
}

/// Draws `timelines` as SVG into `path` (after the report is printed, so a bad path loses
/// nothing measured).
fn write_timeline(path: &Path, timelines: &[verdict::timeline::Timeline]) -> Result<(), AppError> {
    let svg = report::timeline_svg::svg(timelines)?;
    std::fs::write(path, svg).map_err(|error| AppError::Timeline {
        path: path.display().to_string(),
        reason: error.to_string(),
    })
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), AppError> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A reader that stopped early (`| head`) does not change the verdict.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(AppError::Write(error)),
    }
}

async fn diagnose(args: &DiagnoseArgs, out: &mut dyn Write, style: Style) -> Result<u8, AppError> {
    let (stop, ctrl_c) = ctrl_c_stop();
    let diagnosis = diagnose_and_report(args, out, style, &stop).await;
    ctrl_c.abort();
    let diagnosis = diagnosis?;
    Ok(if stop.is_stopped() {
        EXIT_INTERRUPTED
    } else {
        diagnosis.exit_code()
    })
}

/// `diagnose`: the evidence, the verdict, the report written to `out`; returns the verdict.
/// `stop` ends it early: during the listing there is nothing to report yet; later, the report
/// holds what was read before it (and `diagnose` exits [`EXIT_INTERRUPTED`]).
pub(crate) async fn diagnose_and_report(
    args: &DiagnoseArgs,
    out: &mut dyn Write,
    style: Style,
    stop: &Stop,
) -> Result<Diagnosis, AppError> {
    let mut evidence = match &args.from_evidence {
        Some(path) => read_evidence(path)?,
        None => {
            let (mut evidence, listed) = gather_evidence(args, stop).await?;
            if args.probe && !stop.is_stopped() {
                probe_runs::probe_targets(&mut evidence, listed.as_ref(), args, stop).await;
            }
            evidence
        }
    };
    if stop.is_stopped() {
        evidence.gaps.push(Gap::new(
            "diagnosis",
            "interrupted (Ctrl-C): the report holds what was read before it",
        ));
    }
    if let Some(path) = &args.save_evidence {
        write_evidence(path, &evidence)?;
    }
    if evidence.targets.is_empty() {
        return Err(no_workloads(args, &evidence));
    }
    let settings = Settings {
        expected_generation: args.expected_generation,
    };
    let diagnosis = verdict::diagnose(&evidence, &settings, args.fail_on);
    tracing::info!(
        targets = diagnosis.targets.len(),
        worst = ?diagnosis.worst,
        "diagnosis done"
    );
    let timelines = verdict::timeline::of_evidence(&evidence.targets);
    let timeline_file = args
        .timeline
        .as_ref()
        .map(|path| path.display().to_string());
    let text = if args.fix {
        report::fix_stream::render(&diagnosis, &evidence)
    } else {
        let envoys = report::envoys::lines_for(&evidence);
        let extras = report::Extras {
            envoys: &envoys,
            timelines: &timelines,
            timeline_file: timeline_file.as_deref(),
        };
        report::render_with(&diagnosis, extras, args.output, style)?
    };
    write_out(out, &text)?;
    if let Some(path) = &args.timeline {
        let all: Vec<_> = timelines.into_iter().flatten().collect();
        write_timeline(path, &all)?;
    }
    Ok(diagnosis)
}

/// What was read on a live cluster, kept for `--probe` to open its paths without listing again:
/// the client and the inventory (with the gateway pods the Envoy reads added).
struct Listed {
    client: ClusterClient,
    inventory: Inventory,
}

/// Manifests (-f), the live cluster, or Envoys alone (`--admin-url`, `--envoy-dump`) to
/// Evidence for the targets in scope, and what was listed on a live cluster.
async fn gather_evidence(
    args: &DiagnoseArgs,
    stop: &Stop,
) -> Result<(Evidence, Option<Listed>), AppError> {
    envoy_reads::check_flags(args)?;
    let target = match &args.target {
        Some(text) => Some(
            Target::parse(text).map_err(|error| AppError::InvalidTarget {
                text: text.clone(),
                reason: error.to_string(),
            })?,
        ),
        None => None,
    };
    let explicit = envoy_reads::read_explicit(args).await?;
    if envoy_reads::envoy_only(args) {
        return Ok((envoy_reads::envoy_only_evidence(args, explicit)?, None));
    }
    let (mut inventory, namespace, cluster, gathered_at) = if args.filenames.is_empty() {
        let (client, inventory, namespace) = read_cluster(args, stop).await?;
        // Pod ages are measured against this, so the checks need no clock.
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        (inventory, namespace, Some(client), Some(now))
    } else {
        let default_namespace = args.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let inventory = manifest::load(&args.filenames, default_namespace)?;
        (inventory, args.namespace.clone(), None, None)
    };
    let source = if cluster.is_some() {
        "cluster"
    } else {
        "manifests"
    };
    tracing::debug!(
        deployments = inventory.deployments.len(),
        stateful_sets = inventory.stateful_sets.len(),
        pods = inventory.pods.len(),
        source,
        "inventory read"
    );
    let scope = Scope {
        namespace: namespace.clone(),
        all_namespaces: args.all_namespaces,
        selector: args.selector.clone(),
        target,
    };
    let mut evidence = resolve::gather(
        &inventory,
        &scope,
        args.expected_generation,
        vec![source.to_string()],
    )?;
    evidence.gathered_at = gathered_at;
    if cluster.is_some()
        && let Some(namespace) = &scope.namespace
    {
        note_node_view_scope(&mut evidence, namespace);
    }
    if let Some(client) = &cluster
        && !args.no_envoy
        && !evidence.targets.is_empty()
    {
        let namespace = if args.all_namespaces {
            None
        } else {
            namespace.as_deref()
        };
        envoy_reads::read_live(client, &mut inventory, &mut evidence, args, namespace, stop).await;
    }
    envoy_reads::attach_explicit(&mut evidence, &inventory, args, &explicit);
    let listed = cluster.map(|client| Listed { client, inventory });
    Ok((evidence, listed))
}

/// With `-n`, only that namespace's pods were listed: a node's share of sidecar CPU counts them
/// alone, and the report says so.
fn note_node_view_scope(evidence: &mut Evidence, namespace: &str) {
    for target in &mut evidence.targets {
        if target.nodes.is_empty() {
            continue;
        }
        let nodes: Vec<&str> = target.nodes.iter().map(|node| node.node.as_str()).collect();
        target.gaps.push(Gap::new(
            format!("Pods of other namespaces on {}", nodes.join(", ")),
            format!(
                "only namespace {namespace} was listed, so the node view counts its meshed GPU pods alone; -A counts them all"
            ),
        ));
    }
}

/// The live cluster's client and inventory, and the namespace in scope (`-n`, else the
/// context's; none for `-A`).
async fn read_cluster(
    args: &DiagnoseArgs,
    stop: &Stop,
) -> Result<(ClusterClient, Inventory, Option<String>), AppError> {
    let client = ClusterClient::connect(&args.cluster).await?;
    let scope = ListScope::from_flags(args.namespace.as_deref(), args.all_namespaces, &client);
    tracing::info!(
        context = client.context(),
        server = client.server(),
        ?scope,
        "reading cluster"
    );
    let bar = Progress::detect().plan("listing");
    bar.set_message(format!(
        "pods, workloads and mesh objects {}",
        scope.describe()
    ));
    let mut stopped = stop.clone();
    let inventory = tokio::select! {
        inventory = list_inventory(&client, &scope) => inventory,
        () = stopped.stopped() => {
            bar.finish_and_clear();
            return Err(AppError::Interrupted { during: "listing" });
        }
    };
    bar.finish_and_clear();
    let inventory = inventory?;
    let namespace = scope.namespace().map(str::to_string);
    Ok((client, inventory, namespace))
}

fn read_evidence(path: &Path) -> Result<Evidence, AppError> {
    let error = |reason: String| AppError::EvidenceFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let evidence: Evidence = serde_json::from_str(&text)
        .map_err(|e| error(format!("not evidence saved by --save-evidence: {e}")))?;
    if evidence.schema_version != EVIDENCE_SCHEMA_VERSION {
        return Err(error(format!(
            "schemaVersion {} is not the {EVIDENCE_SCHEMA_VERSION} this version reads",
            evidence.schema_version
        )));
    }
    Ok(evidence)
}

fn write_evidence(path: &Path, evidence: &Evidence) -> Result<(), AppError> {
    let error = |reason: String| AppError::EvidenceFile {
        path: path.display().to_string(),
        reason,
    };
    let text = serde_json::to_string_pretty(evidence).map_err(|e| error(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| error(e.to_string()))
}

/// Nothing could be analysed: say where we looked and, when kinds that hold workloads could not
/// be read, which.
fn no_workloads(args: &DiagnoseArgs, evidence: &Evidence) -> AppError {
    let inputs = match (&args.from_evidence, args.filenames.is_empty()) {
        (Some(path), _) => format!("evidence {}", path.display()),
        (None, true) => "the cluster".to_string(),
        (None, false) => args
            .filenames
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut scope = Vec::new();
    if args.all_namespaces {
        scope.push("all namespaces".to_string());
    } else if let Some(namespace) = &args.namespace {
        scope.push(format!("namespace {namespace}"));
    }
    if let Some(selector) = &args.selector {
        scope.push(format!("selector {selector}"));
    }
    let scope = if scope.is_empty() {
        String::new()
    } else {
        format!(" ({})", scope.join(", "))
    };
    let unreadable: Vec<String> = evidence
        .gaps
        .iter()
        .filter(|gap| WORKLOAD_LISTS.iter().any(|kind| gap.what.starts_with(kind)))
        .map(|gap| {
            let reason = gap.reason.split(':').next().unwrap_or_default().trim();
            format!("{} ({reason})", gap.what)
        })
        .collect();
    let hint = if !unreadable.is_empty() {
        format!(
            "could not read {}; ask for list access to pods, deployments and statefulsets",
            unreadable.join(", ")
        )
    } else if args.selector.is_some() {
        "no pod runs vLLM or matches the selector".to_string()
    } else {
        "vLLM is recognised by its image or command; for other servers pass -l/--selector"
            .to_string()
    };
    AppError::NoWorkloads {
        inputs,
        scope,
        hint,
    }
}

/// The lists whose absence leaves nothing to find workloads in.
const WORKLOAD_LISTS: [&str; 3] = ["Pod list", "Deployment list", "StatefulSet list"];

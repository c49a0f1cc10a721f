//! Renderers: table (and wide), JSON, YAML, markdown. They render the verdict; they never decide.

pub mod envoys;
pub mod fix_stream;
pub mod fixes;
pub mod markdown;
mod merge;
pub mod probe;
pub mod structured;
pub mod summary;
pub mod table;
pub mod timeline;
pub mod timeline_svg;
pub mod wrap;

use crate::checks::{EvidenceLine, Severity};
use crate::evidence::{Gap, SidecarMode};
use crate::verdict::timeline::Timeline;
use crate::verdict::{CheckStatus, Diagnosis, TargetDiagnosis, TargetSummary};

/// How the terminal renderers may style their output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colour: only on a terminal, and never when `NO_COLOR` is set (the caller decides).
    pub colour: bool,
    /// stdout is a terminal: the table may wrap to its width.
    pub terminal: bool,
    /// Columns the probe timelines are drawn in (`timeline::width`; 0: the default 80).
    pub width: usize,
    /// Columns the prose lines wrap to, at word boundaries: on a terminal only (`None` in a pipe).
    pub wrap: Option<usize>,
}

/// The formats `diagnose -o` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Wide,
    Json,
    Yaml,
    Markdown,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("could not write the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not write the report as YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("could not draw the timeline: {0}")]
    Plot(String),
}

/// Renders the diagnosis in the asked format; the text ends with a newline.
pub fn render(
    diagnosis: &Diagnosis,
    format: OutputFormat,
    style: Style,
) -> Result<String, RenderError> {
    render_with_envoys(diagnosis, &[], format, style)
}

/// [`render`], with the Envoys read per target (`envoys::lines_for`, in the targets' order).
pub fn render_with_envoys(
    diagnosis: &Diagnosis,
    envoys: &[Vec<envoys::EnvoyLine>],
    format: OutputFormat,
    style: Style,
) -> Result<String, RenderError> {
    render_with(
        diagnosis,
        Extras {
            envoys,
            ..Extras::default()
        },
        format,
        style,
    )
}

/// What a report shows beside the verdict, per target in the targets' order: the Envoys read
/// and the timelines of the probe runs; and the SVG the timelines were written to, if any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub envoys: &'a [Vec<envoys::EnvoyLine>],
    pub timelines: &'a [Vec<Timeline>],
    pub timeline_file: Option<&'a str>,
    /// Which targets' details the table shows below the summary (`--details`).
    pub details: summary::Details<'a>,
}

impl Extras<'_> {
    pub(crate) fn timelines_of(&self, index: usize) -> &[Timeline] {
        self.timelines.get(index).map_or(&[], Vec::as_slice)
    }
}

/// [`render`], with what `extras` holds.
pub fn render_with(
    diagnosis: &Diagnosis,
    extras: Extras<'_>,
    format: OutputFormat,
    style: Style,
) -> Result<String, RenderError> {
    let envoys = extras.envoys;
    Ok(match format {
        OutputFormat::Table => table::render_with(diagnosis, extras, false, style),
        OutputFormat::Wide => table::render_with(diagnosis, extras, true, style),
        OutputFormat::Json => structured::json_with_envoys(diagnosis, envoys)?,
        OutputFormat::Yaml => structured::yaml_with_envoys(diagnosis, envoys)?,
        OutputFormat::Markdown => markdown::render_with(diagnosis, extras),
    })
}

pub(crate) fn sidecar_mode_text(mode: SidecarMode) -> &'static str {
    match mode {
        SidecarMode::None => "none",
        SidecarMode::Injected => "injected",
        SidecarMode::Classic => "classic",
        SidecarMode::Native => "native",
        SidecarMode::Ambient => "ambient",
    }
}

/// How the pods meet the mesh, for a target's header: `sidecar classic (container istio-proxy in
/// the pod)`, `ambient (ztunnel), waypoint serving/waypoint (…)`, `ambient, no waypoint (…)`.
pub(crate) fn dataplane_text(target: &TargetSummary) -> String {
    match &target.ambient {
        Some(ambient) => {
            let waypoint = match &ambient.waypoint {
                Some(name) => format!("ambient (ztunnel), waypoint {name}"),
                None => "ambient, no waypoint".to_string(),
            };
            format!(
                "{waypoint} ({}; {})",
                target.sidecar_reason, ambient.waypoint_reason
            )
        }
        None => format!(
            "sidecar {} ({})",
            sidecar_mode_text(target.sidecar_mode),
            target.sidecar_reason
        ),
    }
}

/// `1× nvidia.com/gpu`, or `none`.
pub(crate) fn gpu_text(target: &TargetSummary) -> String {
    match &target.gpu {
        Some(gpu) => format!("{}× {}", gpu.count, gpu.resource),
        None => "none".to_string(),
    }
}

/// `VirtualService inference/vllm spec/http[0]/timeout = 30s (shorter than …)`
pub(crate) fn evidence_text(line: &EvidenceLine) -> String {
    let mut text = format!("{} {} = {}", line.object, line.path, line.value);
    if let Some(note) = &line.note {
        text.push_str(&format!(" ({note})"));
    }
    text
}

/// The line for a target without a root cause: healthy, unless no check applied at all (no
/// sidecar and no Istio, e.g.), when nothing was judged and calling it healthy would mislead.
pub(crate) fn no_root_cause_text(target: &TargetDiagnosis) -> &'static str {
    let judged = target
        .checks
        .iter()
        .any(|check| check.status != CheckStatus::NotApplicable);
    if judged {
        "No failure mode found above info: healthy for streaming inference."
    } else {
        "No check applies to this workload, so nothing was judged: see why for each check below."
    }
}

pub(crate) fn gap_text(gap: &Gap) -> String {
    format!("{}: {}", gap.what, gap.reason)
}

/// One sentence on the exit status, the same in every format.
pub(crate) fn outcome_text(diagnosis: &Diagnosis) -> String {
    let fail_on = diagnosis.fail_on;
    if diagnosis.failed {
        format!(
            "findings at or above --fail-on {fail_on}: exit {}",
            diagnosis.exit_code()
        )
    } else {
        match diagnosis.worst {
            Some(worst) if worst > Severity::Info => format!(
                "worst finding is {worst}, below --fail-on {fail_on}: exit {}",
                diagnosis.exit_code()
            ),
            _ => format!("nothing above info: exit {}", diagnosis.exit_code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::IstioPresence;
    use crate::verdict;

    #[test]
    fn nothing_applicable_is_not_called_healthy() {
        let outside = verdict::judge_target(
            &verdict::tests::target(SidecarMode::None, IstioPresence::NotInstalled),
            crate::evidence::CheckId::ALL
                .iter()
                .map(|id| (*id, Vec::new()))
                .collect(),
        );
        assert!(no_root_cause_text(&outside).starts_with("No check applies"));
        let healthy = &sample::healthy().targets[0];
        assert!(no_root_cause_text(healthy).contains("healthy"));
    }
}

#[cfg(test)]
pub(crate) mod sample {
    //! A diagnosis built by hand, for the renderer tests.

    use crate::checks::{Basis, EvidenceLine, Finding, Severity};
    use crate::evidence::{CheckId, Gap, IstioPresence, ObjectRef, SidecarMode};
    use crate::verdict::{self, Diagnosis};

    pub fn stream_timeout_finding() -> Finding {
        Finding::new(
            CheckId::StreamTimeout,
            Severity::Critical,
            Basis::Static,
            "VirtualService vllm cuts responses at 30s, shorter than the 300s expected generation",
        )
        .evidence(
            EvidenceLine::new(
                ObjectRef::new("VirtualService", Some("inference"), "vllm"),
                "spec/http[0]/timeout",
                "30s",
            )
            .with_note("shorter than the 300s expected generation"),
        )
        .fix(
            "Set the route timeout to at least the expected generation",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vllm\n  namespace: inference\nspec:\n  http:\n  - timeout: 300s\n",
        )
    }

    pub fn pool_finding() -> Finding {
        Finding::new(
            CheckId::ConnectionPool,
            Severity::Warning,
            Basis::Static,
            "DestinationRule vllm caps connections at 64, below 512 concurrent sequences",
        )
        .evidence(EvidenceLine::new(
            ObjectRef::new("DestinationRule", Some("inference"), "vllm"),
            "spec/trafficPolicy/connectionPool/tcp/maxConnections",
            "64",
        ))
        .fix(
            "Raise the limits to what the replicas serve",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: vllm\n  namespace: inference\nspec:\n  host: vllm\n",
        )
        .assume("--max-num-seqs not set: assumed 256 per replica")
    }

    pub fn info_finding() -> Finding {
        Finding::new(
            CheckId::SidecarOverhead,
            Severity::Info,
            Basis::Static,
            "istio-proxy requests 50m/64Mi: tuned",
        )
    }

    pub fn diagnosis(findings: Vec<Finding>, fail_on: Severity) -> Diagnosis {
        let mut target = verdict::tests::target(SidecarMode::Injected, IstioPresence::Unknown);
        target
            .gaps
            .push(Gap::new("Envoy admin", "offline manifests only"));
        let evidence = verdict::tests::evidence(
            vec![target.clone()],
            vec![Gap::new("Istio CRDs", "unknown offline")],
        );
        let per_check = CheckId::ALL
            .iter()
            .map(|id| {
                (
                    *id,
                    findings.iter().filter(|f| f.id == *id).cloned().collect(),
                )
            })
            .collect();
        verdict::summarise(
            &evidence,
            vec![verdict::judge_target(&target, per_check)],
            fail_on,
        )
    }

    pub fn failing() -> Diagnosis {
        diagnosis(
            vec![pool_finding(), stream_timeout_finding(), info_finding()],
            Severity::Critical,
        )
    }

    pub fn healthy() -> Diagnosis {
        diagnosis(vec![info_finding()], Severity::Critical)
    }

    /// `diagnosis` with the "Do you need Istio here?" advice for its first target, which has no
    /// mesh object: nothing needs the sidecar.
    pub fn with_mesh_need(mut diagnosis: Diagnosis) -> Diagnosis {
        let target = verdict::tests::target(SidecarMode::Injected, IstioPresence::Unknown);
        diagnosis.targets[0].mesh_need = crate::checks::mesh_need::assess(&target);
        assert!(diagnosis.targets[0].mesh_need.is_some());
        diagnosis
    }
}

//! `diagnose --probe`: per target, the cold pair first (it also measures the pace), then the
//! runs that fit what is left of `--probe-budget`, planned with the measured pace, through one
//! set of paths; what the budget left out, and what no run can prove, become gaps.

use crate::cli::DiagnoseArgs;
use crate::evidence::probe::{ProbeMode, ProbeRun};
use crate::evidence::{Evidence, Gap, TargetEvidence};
use crate::sources::probe::ProbeArgs;
use crate::sources::probe::live::{Found, LiveRequest};
use crate::sources::probe::planned::PlannedPaths;
use crate::sources::progress::Progress;
use crate::sources::stop::Stop;
use crate::verdict::probe_plan::{self as plan, Pace, Plan, PlanInput};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::{Duration, Instant};

use super::Listed;

/// Estimated seconds to open a target's paths: port-forwards and the Envoys' configs on a
/// cluster, the Envoys' configs alone with URLs.
const CLUSTER_SETUP_S: f64 = 2.0;
const URL_SETUP_S: f64 = 0.5;

/// Runs the probe runs each target's evidence calls for and keeps them in the evidence. A run
/// that cannot run is a gap, not an error: the diagnosis goes on with what was read.
pub async fn probe_targets(
    evidence: &mut Evidence,
    listed: Option<&Listed>,
    args: &DiagnoseArgs,
    stop: &Stop,
) {
    let by_url = args.direct_url.is_some() || args.mesh_url.is_some();
    let mut base = ProbeArgs::for_urls(args.direct_url.clone(), args.mesh_url.clone());
    base.mesh_host = args.mesh_host.clone();
    base.mesh_ca = args.mesh_ca.clone();
    base.mesh_insecure_skip_tls_verify = args.mesh_insecure_skip_tls_verify;
    let progress = Progress::detect();
    let gathered_at = evidence.gathered_at.clone();
    let mut summaries = Vec::new();
    for (index, target) in evidence.targets.iter_mut().enumerate() {
        if stop.is_stopped() {
            target
                .gaps
                .push(Gap::new("probe runs", "not run: interrupted (Ctrl-C)"));
            continue;
        }
        if by_url && index > 0 {
            target.gaps.push(Gap::new(
                "probe runs",
                "--direct-url and --mesh-url reach one service: only the first target was probed",
            ));
            continue;
        }
        let on_cluster = target.workload.spec_known() && args.filenames.is_empty();
        let both_urls = args.direct_url.is_some() && args.mesh_url.is_some();
        if !(on_cluster || both_urls) {
            target.gaps.push(Gap::new(
                "probe runs",
                "no cluster to open the paths on: give both --direct-url and --mesh-url",
            ));
            continue;
        }
        let name = target.workload.target_name();
        let found = listed.filter(|_| on_cluster).map(|listed| Found {
            client: &listed.client,
            inventory: &listed.inventory,
            target: &*target,
        });
        let request = LiveRequest {
            target: on_cluster.then_some(name.as_str()),
            namespace: Some(target.workload.namespace.as_str()),
            cluster: &args.cluster,
            admin_urls: &args.admin_urls,
            probe: &base,
            found,
        };
        let setup_s = if on_cluster && !both_urls {
            CLUSTER_SETUP_S
        } else {
            URL_SETUP_S
        };
        let budget = Budget::new(args.probe_budget);
        let outcome = probe_target(
            target,
            request,
            Settings {
                gathered_at: gathered_at.as_ref(),
                expected_generation: args.expected_generation,
                budget,
                setup_s,
            },
            &progress,
            stop,
        )
        .await;
        keep(target, outcome, &mut summaries);
    }
    for summary in summaries {
        evidence.sources.push(format!("probe: {summary}"));
    }
}

/// The time `--probe-budget` gives, counted from the start of a target's probe.
#[derive(Debug, Clone, Copy)]
struct Budget {
    seconds: Option<f64>,
}

impl Budget {
    /// `0` is no limit.
    fn new(budget: Duration) -> Self {
        Self {
            seconds: (!budget.is_zero()).then_some(budget.as_secs_f64()),
        }
    }

    /// What is left after `spent` seconds.
    fn left(self, spent: f64) -> Option<Duration> {
        self.seconds
            .map(|seconds| Duration::from_secs_f64((seconds - spent).max(0.0)))
    }

    fn text(self) -> String {
        match self.seconds {
            Some(seconds) => format!(
                "budget {}",
                crate::units::duration::display(Duration::from_secs_f64(seconds))
            ),
            None => "no budget".to_string(),
        }
    }
}

struct Settings<'a> {
    gathered_at: Option<&'a Time>,
    expected_generation: Duration,
    budget: Budget,
    setup_s: f64,
}

/// What one target's probe made, left out and took.
struct Outcome {
    runs: Vec<ProbeRun>,
    unprovable: Vec<String>,
    /// `3 probe runs (cold, stream 5s, large 2000 tokens), about 14 s and 9 requests; took 12 s`
    summary: String,
}

async fn probe_target(
    target: &TargetEvidence,
    request: LiveRequest<'_>,
    settings: Settings<'_>,
    progress: &Progress,
    stop: &Stop,
) -> Outcome {
    let started = Instant::now();
    let name = target.workload.target_name();
    let input = |pace: Pace, cold_done: bool, spent: f64| PlanInput {
        target,
        gathered_at: settings.gathered_at,
        expected_generation: settings.expected_generation,
        budget: settings.budget.left(spent),
        pace,
        cold_done,
    };
    // The first plan, at the assumed pace, says what the probe will cost at most; the plan
    // after the cold pair is made with the pace it measured.
    let first = plan::plan(&input(Pace::ASSUMED, false, settings.setup_s));
    let first_estimate = settings.setup_s + first.cost_s();
    let announce = format!(
        "probing {name}: {} first (pace measured on it), then what fits: about {:.0} s at an assumed {:.0} tokens/s ({})",
        first
            .runs
            .first()
            .map_or_else(|| "nothing".to_string(), |run| plan::short_name(&run.mode)),
        first_estimate.ceil(),
        Pace::ASSUMED.tokens_per_second,
        settings.budget.text()
    );
    tracing::info!("{announce}");
    progress.say(&announce);
    let bar = progress.plan(&format!("{name}: opening the paths"));
    let paths = match PlannedPaths::open(request, stop).await {
        Ok(paths) => paths,
        Err(error) => {
            bar.finish_and_clear();
            let runs = first
                .runs
                .into_iter()
                .map(|planned| ProbeRun::failed(planned, error.clone()))
                .collect();
            return Outcome {
                runs,
                unprovable: first.unprovable,
                summary: format!("paths not opened: {error}"),
            };
        }
    };
    let mut done: Vec<ProbeRun> = Vec::new();
    let mut plan = first;
    let mut remaining = std::mem::take(&mut plan.runs);
    let mut step = 0;
    let mut total = remaining.len();
    let mut estimate =
        started.elapsed().as_secs_f64() + remaining.iter().map(|r| r.cost_s).sum::<f64>();
    while !remaining.is_empty() {
        let run = remaining.remove(0);
        step += 1;
        bar.set_prefix(format!("{name}: run {step} of {total}"));
        bar.set_message(format!(
            "{} ({}), about {:.0} s in all",
            plan::short_name(&run.mode),
            run.reason,
            estimate.ceil()
        ));
        let is_cold = matches!(run.mode, ProbeMode::Cold);
        let run_started = Instant::now();
        let made = paths.run(run, progress.clone(), stop).await;
        let wall_s = run_started.elapsed().as_secs_f64();
        if is_cold && !stop.is_stopped() {
            let pace = Pace::measured(&made, wall_s).unwrap_or(Pace::ASSUMED);
            let spent = started.elapsed().as_secs_f64();
            plan = plan::plan(&input(pace, true, spent));
            remaining = std::mem::take(&mut plan.runs);
            total = step + remaining.len();
            estimate = spent + remaining.iter().map(|r| r.cost_s).sum::<f64>();
            let line = format!(
                "{name}: measured {:.0} tokens/s; {} more: about {:.0} s in all ({})",
                pace.tokens_per_second,
                plan::describe_cost(&remaining),
                estimate.ceil(),
                settings.budget.text()
            );
            tracing::info!("{line}");
            progress.say(&line);
        }
        done.push(made);
    }
    bar.finish_and_clear();
    paths.close().await;
    let took = started.elapsed().as_secs_f64();
    let planned: Vec<_> = done.iter().map(|run| run.planned.clone()).collect();
    let summary = format!(
        "{}; estimated {:.0} s ({:.0} s before the pace was measured), took {:.1} s ({})",
        plan::describe_cost(&planned),
        estimate.ceil(),
        first_estimate.ceil(),
        took,
        settings.budget.text()
    );
    done.extend(not_run(&plan));
    Outcome {
        runs: done,
        unprovable: plan.unprovable,
        summary,
    }
}

/// The runs the budget left out, as runs that did not run.
fn not_run(plan: &Plan) -> Vec<ProbeRun> {
    plan.not_run
        .iter()
        .map(|left| ProbeRun {
            planned: left.run.clone(),
            report: None,
            error: None,
            not_run: Some(left.line.clone()),
        })
        .collect()
}

/// The target's runs, and a gap for each that failed, was left out, or cannot be run.
fn keep(target: &mut TargetEvidence, mut outcome: Outcome, summaries: &mut Vec<String>) {
    for report in outcome
        .runs
        .iter_mut()
        .filter_map(|run| run.report.as_mut())
    {
        crate::verdict::probe_reading::read(report);
    }
    for run in &outcome.runs {
        let what = format!("probe run {}", run.planned.mode.name());
        if let Some(error) = &run.error {
            target.gaps.push(Gap::new(what, error.clone()));
        } else if let Some(line) = &run.not_run {
            target.gaps.push(Gap::new(what, format!("not run: {line}")));
        }
    }
    for line in outcome.unprovable {
        target.gaps.push(Gap::new("probe of an idle timeout", line));
    }
    target.probes = outcome.runs;
    summaries.push(outcome.summary);
}
